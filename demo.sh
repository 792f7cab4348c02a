#!/usr/bin/env bash
# Make a synthetic volume and process it through a real file queue: bash demo.sh [OUTPUT_DIR] [--overwrite]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet -e .
.venv/bin/igneous-like -p 2 demo "$@"
