#!/usr/bin/env bash
# The main job: set up, train the default model on the shared Dubai dataset within a
# time budget (default 17 minutes of training on CPU), evaluate it on the protocol's test
# split and print the metrics table.
#   DATA=path/to/archive.zip-or-folder  OUT=runs/main  BUDGET=00:17:00  bash scripts/main.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
data=${DATA:-../shared/datasets/dubai-aerial}
out=${OUT:-runs/main-$(date +%Y%m%d-%H%M%S)}
.venv/bin/aerialseg data inspect "$data"
.venv/bin/aerialseg train --data "$data" --out "$out" --max-time "${BUDGET:-00:17:00}"
.venv/bin/aerialseg evaluate "$out/model.pt" --data "$data" --split test --out "$out/eval-test"
