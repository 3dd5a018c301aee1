#!/usr/bin/env bash
# The README's first command: the web app with the demo dataset, on the embedded
# defaults (SQLite file and media under var/, Celery tasks eager, no network needed).
#
#   bash scripts/demo.sh
#
# Idempotent: a second run reuses .venv, the database, the demo users and images.
# Environment: HOST (127.0.0.1), PORT (8000), and any setting of README.md
# (DATABASE_URL, MEDIA_ROOT, EMOVERSE_VAR_DIR...).
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

# Install the web requirements (no torch) once per change of requirements.txt.
stamp=.venv/.requirements-web.sha256
wanted=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  log "installing requirements.txt"
  pip install --disable-pip-version-check -q -r requirements.txt
  echo "$wanted" > "$stamp"
fi

log "migrating the database"
python manage.py migrate --noinput -v0
python manage.py collectstatic --noinput -v0
log "loading the demo dataset"
python manage.py demo

if ! python -c "import socket, sys; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((sys.argv[1], int(sys.argv[2])))" "$HOST" "$PORT" 2>/dev/null; then
  echo "Port $PORT on $HOST is in use (is the demo already running?). Stop that server, or run: PORT=8001 bash scripts/demo.sh" >&2
  exit 1
fi
log "EmoVerse Review is starting at http://$HOST:$PORT/  (log in with one of the accounts above; Ctrl-C stops it)"
exec gunicorn emoverse_site.wsgi --bind "$HOST:$PORT" --workers 2 --threads 4 --access-logfile - --log-level warning
