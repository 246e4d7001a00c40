#!/usr/bin/env bash
# Set up and run the test suite (reads the real dataset from ../shared when present).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ $# -eq 0 ]; then  # the whole suite: lint, format and types fail it as a test would
  .venv/bin/ruff check -q src tests bench
  .venv/bin/ruff format -q --check src tests bench
  .venv/bin/mypy src
fi
exec .venv/bin/python -m pytest -q -p no:cacheprovider --timeout 600 "$@"
