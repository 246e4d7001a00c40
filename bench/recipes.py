"""Compare training recipes on the validation images only, at a fixed number of steps.

Choosing a recipe is tuning, which PROTOCOL.md forbids on the test images: each recipe
trains for the same number of optimiser steps (the cosine schedule spans them, so every
run anneals fully) and is scored on the validation split (``image_part_005`` of every tile)
with ``aerialseg evaluate``. Writes bench/results/recipe-NAME.json per recipe, what did
not help included.

    .venv/bin/python bench/recipes.py --steps 600 lite0 lite0-ds2
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

from common import DATA, REPO, write_result

# name -> config overrides on the default preset
RECIPES: dict[str, list[str]] = {
    "lite0": ["model=fpn-effnet-lite0"],
    "lite0-ds2": ["model=fpn-effnet-lite0", "downsample=2", "crop_size=512", "window=1024"],
    "lite2": ["model=fpn-effnet-lite2"],
    "lite2-ds2": ["model=fpn-effnet-lite2", "downsample=2", "crop_size=512", "window=1024"],
    "lite2-ds2-scale": [
        "model=fpn-effnet-lite2", "downsample=2", "crop_size=512", "window=1024",
        "scale_range=[0.67,1.5]",
    ],
    "lite2-ds2-lovasz": [
        "model=fpn-effnet-lite2", "downsample=2", "crop_size=512", "window=1024",
        "dice_weight=0", "lovasz_weight=1",
    ],
    "lite0-ds2-scale": [
        "model=fpn-effnet-lite0", "downsample=2", "crop_size=512", "window=1024",
        "scale_range=[0.67,1.5]",
    ],
    "lite0-ds2-lovasz": [
        "model=fpn-effnet-lite0", "downsample=2", "crop_size=512", "window=1024",
        "dice_weight=0", "lovasz_weight=1",
    ],
    "unet-lite2-ds2": [
        "model=unet-effnet-lite2", "downsample=2", "crop_size=512", "window=1024",
    ],
    "unet-lite2-ds2-slim": [
        "model=unet-effnet-lite2", "downsample=2", "crop_size=512", "window=1024",
        "decoder_channels=[128,64,32,16,8]",
    ],
    "lite0-lovasz": ["model=fpn-effnet-lite0", "dice_weight=0", "lovasz_weight=1"],
    "lite0-scale": ["model=fpn-effnet-lite0", "scale_range=[0.67,1.5]"],
    # Unlabeled (0.5 % of pixels, a sixth of mIoU-6) weighted up in the cross-entropy
    "lite0-unlabeled5": ["model=fpn-effnet-lite0", "class_weights=[1,1,1,1,1,5]"],
    "lite0-enc-lr0.2": ["model=fpn-effnet-lite0", "encoder_lr_factor=0.2"],
}  # fmt: skip


def run(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([str(Path(sys.executable).with_name("aerialseg")), *args], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", choices=sorted(RECIPES))
    parser.add_argument("--steps", type=int, default=600, help="optimiser steps per recipe")
    parser.add_argument(
        "--val-every", type=int, default=1, help="epochs between validations (they cost time)"
    )
    parser.add_argument("--data", default=str(DATA))
    args = parser.parse_args()
    for name in args.names:
        run_dir = REPO / "runs" / f"recipe-{name}-{time.strftime('%Y%m%d-%H%M%S')}"
        overrides = [*RECIPES[name], f"max_steps={args.steps}", f"val_every={args.val_every}"]
        train_s = run(["train", "--data", args.data, "--out", str(run_dir), *overrides])
        eval_dir = run_dir / "eval-val"
        run(["evaluate", str(run_dir / "model.pt"), "--data", args.data, "--split", "val",
             "--out", str(eval_dir)])  # fmt: skip
        metrics = json.loads((eval_dir / "metrics.json").read_text())
        with (run_dir / "metrics.csv").open() as f:
            rows = list(csv.DictReader(f))
        write_result(
            f"recipe-{name}",
            {
                "benchmark": "training recipe, scored on the validation split only",
                "recipe": name,
                "overrides": overrides,
                "steps": args.steps,
                "train_seconds": round(train_s, 1),
                "val_curve": [
                    {"step": int(r["step"]), "val_miou": round(float(r["val_miou"]), 4)}
                    for r in rows
                    if r.get("val_miou")
                ],
                "val": {k: metrics[k] for k in ("miou6", "miou5", "pixel_accuracy", "mean_dice")},
                "val_per_class_iou": {n: m["iou"] for n, m in metrics["per_class"].items()},
            },
        )


if __name__ == "__main__":
    main()
