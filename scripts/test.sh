#!/usr/bin/env bash
# Set up and run the whole test suite on a fresh machine, in one command: scripts/test.sh [pytest arguments]
#   - the project with its test tools (requirements-dev.txt: the package, Ray for the cluster tests, pytest,
#     Playwright, ruff),
#   - Debian's chromium for the real-browser tests, where it is missing,
#   - full MNIST: $MNIST_ROOT if set (CI points it at ../shared/data), else data/, downloaded when missing,
#   - ruff, then pytest (every core; `scripts/test.sh -m "not browser and not slow"` is the quick loop).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install -q -r requirements-dev.txt

if ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else
    echo "error: the browser tests need Debian's chromium (apt-get install chromium), or deselect them: -m 'not browser'" >&2
    exit 1
  fi
fi

export MNIST_ROOT="${MNIST_ROOT:-$PWD/data}"
python3 -m vae data --data-root "$MNIST_ROOT"

ruff check .
python3 -m pytest "$@"
