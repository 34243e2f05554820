#!/usr/bin/env bash
# Set up (first run only), then serve: by default the built-in parrot on the embedded offline
# engines. Any arguments go to `python -m phoneactors` (try --help). It runs in the folder you
# call it from, so `--conversation mybot:MyBot` finds your own mybot.py there.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/setup.sh"
exec "$root/.venv/bin/python" -m phoneactors "$@"
