#!/usr/bin/env bash
# Set up (first run only), then serve the built-in parrot on the embedded offline engines.
# Any arguments go to `python -m phoneactors` (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m phoneactors "$@"
