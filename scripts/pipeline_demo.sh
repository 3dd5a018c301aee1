#!/usr/bin/env bash
# The pipeline demo: the real pre-annotation pipeline (Celery workers, queues, batching,
# retries, progress) on the demo photographs, with tiny RANDOM models of the real
# architectures and a local chat server with CANNED answers. It shows the machinery,
# not model quality.
#
#   bash scripts/pipeline_demo.sh            # then open the printed pipeline page; Ctrl-C stops everything
#   bash scripts/pipeline_demo.sh --once     # run until every image is done, then stop (no browser needed)
#
# Uses Redis as the broker when one answers at DEMO_REDIS_URL (default redis://127.0.0.1:6379/0),
# else Celery's filesystem transport (queues as files under var/pipeline-demo/broker).
# Its own SQLite database under var/pipeline-demo unless DATABASE_URL is set.
# Environment: HOST (127.0.0.1), PORT (8000); options: python -m demo.pipeline_demo --help.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '\n== %s\n' "$*"; }
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}

if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv
fi
. .venv/bin/activate

# The workers need the model requirements (torch, transformers, sentence-transformers).
stamp=.venv/.requirements-ml.sha256
wanted=$(cat requirements.txt requirements-ml.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  log "installing requirements-ml.txt (the workers' model libraries, CPU)"
  pip install --disable-pip-version-check -q -r requirements-ml.txt
  echo "$wanted" > "$stamp"
fi

if [[ " $* " != *" --no-web "* ]] && ! python -c "import socket, sys; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((sys.argv[1], int(sys.argv[2])))" "$HOST" "$PORT" 2>/dev/null; then
  echo "Port $PORT on $HOST is in use (is a demo already running?). Stop it, or run: PORT=8001 bash scripts/pipeline_demo.sh" >&2
  exit 1
fi
exec python -m demo.pipeline_demo --host "$HOST" --port "$PORT" "$@"
