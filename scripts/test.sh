#!/usr/bin/env bash
# The README's test command: installs what the tests need, starts PostgreSQL and Redis
# if they are stopped (and stops what it started), then runs the whole suite on
# PostgreSQL and the database-bound tests again on SQLite.
#
#   bash scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
log() { printf '\n== %s\n' "$*"; }

# --- system packages -------------------------------------------------------------
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ ! -x /usr/bin/chromium ]; then
  log "installing Debian's Chromium for the browser tests"
  $SUDO apt-get install -y chromium >/dev/null || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y chromium >/dev/null; }
fi
command -v node >/dev/null || { log "installing node for the JS unit tests"; $SUDO apt-get install -y nodejs >/dev/null; }

# --- Python environment ------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv
fi
. .venv/bin/activate
log "installing Python requirements (web, ML workers, tests)"
pip install --disable-pip-version-check -q -r requirements-ml.txt -r requirements-dev.txt

# --- services ----------------------------------------------------------------------
STARTED=()
cleanup() {
  for svc in "${STARTED[@]:-}"; do
    case "$svc" in
      postgresql) log "stopping PostgreSQL (started by this script)"; pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main stop || true ;;
      redis) log "stopping Redis (started by this script)"; redis-cli -h 127.0.0.1 -p 6379 shutdown nosave >/dev/null 2>&1 || true ;;
    esac
  done
}
trap cleanup EXIT

if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  log "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
  STARTED+=(postgresql)
  for _ in $(seq 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  STARTED+=(redis)
  for _ in $(seq 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
fi

# --- checks ------------------------------------------------------------------------
export DJANGO_SETTINGS_MODULE=emoverse_site.settings
log "manage.py check --deploy with the production settings"
SECRET_KEY="ci-$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" ALLOWED_HOSTS=review.example.org \
  DJANGO_SETTINGS_MODULE=emoverse_site.settings_production python manage.py check --deploy --fail-level WARNING
log "import contracts (lint-imports, .importlinter)"
lint-imports
log "migrations are complete"
python manage.py makemigrations --check --dry-run >/dev/null

# --- tests -------------------------------------------------------------------------
# The databases: pytest-django creates test_<name> beside <name> (test_<name>_gw0, _gw1, …
# under pytest-xdist); SQLite tests run in memory. To run two suites side by side on one
# server, give each its own: TEST_DATABASE_URL (or an exported DATABASE_URL=postgres://…)
# and TEST_SQLITE_URL (or DATABASE_URL=sqlite://…).
case "${DATABASE_URL:-}" in postgres*) pg_url=$DATABASE_URL ;; *) pg_url=postgres://postgres@127.0.0.1:5432/emoverse ;; esac
case "${DATABASE_URL:-}" in sqlite*) sqlite_url=$DATABASE_URL ;; *) sqlite_url=sqlite:///$ROOT/var/test-emoverse.sqlite3 ;; esac
PG_URL=${TEST_DATABASE_URL:-$pg_url}
SQLITE_URL=${TEST_SQLITE_URL:-$sqlite_url}
# pytest-xdist: a worker per core, at most 4 (TEST_WORKERS overrides). The browser tests
# run on one worker, the end-to-end tests on one (xdist_group); the rest test by test.
WORKERS=${TEST_WORKERS:-$(( $(nproc) < 4 ? $(nproc) : 4 ))}
XDIST=(-n "$WORKERS" --dist loadgroup)

status=0
log "tests on PostgreSQL (the whole suite, $WORKERS workers, the API fuzzer included: it prints its case count at the end)"
DATABASE_URL=$PG_URL python -m pytest -q "${XDIST[@]}" "$@" || status=$?
log "tests on SQLite (database-bound tests; browser, ML, end-to-end and the API fuzzer run once, above)"
DATABASE_URL=$SQLITE_URL python -m pytest -q "${XDIST[@]}" \
  -m "not browser and not ml and not e2e and not postgres and not fuzz" "$@" || { rc=$?; [ $rc -eq 5 ] || status=$rc; }
exit $status
