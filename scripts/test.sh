#!/usr/bin/env bash
# Set up (first run only), then lint, type-check and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev,whispercpp,piper,remote,moonshine,llm,postgres
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest "$@"
