#!/usr/bin/env bash
# Run the test suite in .venv: bash test.sh [PYTEST ARGS...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet -e '.[test]'
# The browser tests (test/test_view.py) drive Debian's Chromium; install it where we may (root
# with apt-get, as in CI). Elsewhere those tests skip, saying so; under CI=true they fail instead.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
      || echo "test.sh: could not install chromium and chromium-driver; the browser tests will skip" >&2
  else
    echo "test.sh: chromium and chromium-driver are missing and this is not root with apt-get;" \
         "the browser tests will skip" >&2
  fi
fi
# Two pytest workers (pytest-xdist): the suite takes about half the time on CI's two cores. Each
# test file runs on one worker (--dist loadfile), so a file's module fixtures (the bad-input
# matrix, the skeleton references) are built once, not once per worker.
# pytest's exit code 5 (no tests collected) stays a failure.
exec .venv/bin/python -m pytest -q -n 2 --dist loadfile "$@"
