#!/usr/bin/env bash
# Set up and run the test suite (reads the real dataset from ../shared when present).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider --timeout 600 "$@"
