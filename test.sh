#!/usr/bin/env bash
# Run the test suite in .venv: bash test.sh [PYTEST ARGS...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet -e '.[test]'
# pytest's exit code 5 (no tests collected) stays a failure.
exec .venv/bin/python -m pytest -q "$@"
