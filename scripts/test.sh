#!/usr/bin/env bash
# Set up and run the test suite (reads the real dataset from ../shared when present); with
# no arguments, ruff, mypy and the docs build first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ $# -eq 0 ]; then  # the whole suite: lint, format and types fail it as a test would
  .venv/bin/ruff check -q src tests bench docs
  .venv/bin/ruff format -q --check src tests bench docs
  .venv/bin/mypy src
  # The docs site must build without a warning (a dead link, a missing page or anchor).
  # Not --quiet: it hides the warnings that --strict counts.
  site=$(mktemp -d)
  if ! log=$(NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --site-dir "$site" 2>&1); then
    echo "$log" >&2
    exit 1
  fi
  rm -rf "$site"
fi
# Two test processes (TEST_WORKERS) of one thread each (OMP_NUM_THREADS): on 2 cores the
# data and inference tests took 67 s against 110 s in one process of two threads
# (2026-12-05); worksteal evens out the long tests. -n 0 after it runs them in one.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
exec .venv/bin/python -m pytest -q -p no:cacheprovider --timeout 600 \
  -n "${TEST_WORKERS:-2}" --dist worksteal "$@"
