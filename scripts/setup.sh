#!/usr/bin/env bash
# Create .venv with the decided stack and aerialseg installed (editable). Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))'; then
  echo "setup: aerialseg needs Python 3.11 or newer ($python is $("$python" --version 2>&1))" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install -qq --disable-pip-version-check)
# The pinned torch pair first: a bare 'torch' requirement would pull another build.
"${pip[@]}" torch==2.14.1 torchvision==0.29.1
"${pip[@]}" -e ".[export,serve,ray,tracking,dev,docs]"
echo "setup: ready (.venv/bin/aerialseg)"
