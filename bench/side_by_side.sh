#!/usr/bin/env bash
# Issue 16's side-by-side table in one run: Label Studio 1.23.2 (bench/label_studio.py, 10K
# tasks on SQLite) and EmoVerse Review (bench/review_api.py, bench/export.py, bench/import.py at
# --images images on PostgreSQL), back to back on this machine, everything printed to stdout with
# the load average of each step.
#
#   bash bench/side_by_side.sh [images]        # default 219000
#
# Needs Label Studio in its own virtual environment (LS_VENV, default /work/lsvenv:
# python3 -m venv /work/lsvenv && /work/lsvenv/bin/pip install label-studio==1.23.2 gunicorn).
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGES=${1:-219000}
PY=${PYTHON:-.venv/bin/python}
step() { printf '\n== %s (load average %s)\n' "$*" "$(cut -d' ' -f1-3 /proc/loadavg)"; }
step "Label Studio 1.23.2: 10,000 tasks"
"$PY" bench/label_studio.py --ls-venv "${LS_VENV:-/work/lsvenv}"
step "EmoVerse Review: next and submit at $IMAGES images"
"$PY" bench/review_api.py --images "$IMAGES"
step "EmoVerse Review: export at $IMAGES images"
"$PY" bench/export.py --images "$IMAGES"
step "EmoVerse Review: import of $IMAGES lines"
"$PY" bench/import.py --lines "$IMAGES" --pg postgres://postgres@127.0.0.1:5432 --no-rerun
step "done"
