#!/usr/bin/env bash
# Create .venv and install phoneactors into it (editable) with the extras named in $1
# (default: none). Idempotent and quick when nothing changed: an earlier install with
# at least these extras, newer than pyproject.toml, is enough.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"
stamp=".venv/.installed${extras:+-$extras}"

installed() {
  local done wanted have
  for done in .venv/.installed*; do
    [ -f "$done" ] && [ "$done" -nt pyproject.toml ] || continue
    have=",$(basename "$done" | sed 's/^\.installed-\{0,1\}//'),"
    for wanted in ${extras//,/ }; do
      case "$have" in *",$wanted,"*) ;; *) continue 2 ;; esac
    done
    return 0
  done
  return 1
}

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
if ! installed; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}"
  touch "$stamp"
fi
