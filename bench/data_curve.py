"""How quality grows with the number of training images, and how well the model fits them.

Every long run of the default recipe flattens near validation mIoU-6 0.60, whatever the
encoder, loss or crop size. Is the model short of data or of capacity and compute? This
trains the default recipe for the same number of steps on 1, 2, 3 and all 6 training
images of every tile (nested subsets, drawn once with a fixed seed) and scores each model
on the validation images (never on the test images: PROTOCOL.md) and on the images it
trained on. Writes bench/results/data_curve.json.

    .venv/bin/python bench/data_curve.py --steps 1000 --per-tile 1 2 3 6
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections import defaultdict

from common import DATA, REPO, aerialseg, evaluate_run, val_curve, write_result

from aerialseg.data.source import DatasetSource
from aerialseg.data.splits import rule_split

SEED = 0


def nested_subsets(train_ids: tuple[str, ...], counts: list[int]) -> dict[int, list[str]]:
    """For each count k, the first k images of every tile in one fixed random order."""
    by_tile: dict[str, list[str]] = defaultdict(list)
    for image_id in sorted(train_ids):
        by_tile[image_id.split("/")[0]].append(image_id)
    rng = random.Random(SEED)
    order = {tile: rng.sample(ids, len(ids)) for tile, ids in sorted(by_tile.items())}
    return {k: sorted(i for ids in order.values() for i in ids[:k]) for k in counts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-tile", type=int, nargs="+", default=[1, 2, 3, 6])
    parser.add_argument("--steps", type=int, default=1000, help="optimiser steps per run")
    parser.add_argument("--data", default=str(DATA))
    args = parser.parse_args()

    split = rule_split(DatasetSource(args.data).pairs)
    subsets = nested_subsets(split.train, args.per_tile)
    points = []
    for k, train_ids in subsets.items():
        run_dir = REPO / "runs" / f"data-curve-{k}-per-tile-{time.strftime('%Y%m%d-%H%M%S')}"
        overrides = [f"max_steps={args.steps}"]
        with tempfile.NamedTemporaryFile("w", suffix=".json") as subset:
            json.dump(
                {"test": list(split.test), "val": list(split.val), "train": train_ids}, subset
            )
            subset.flush()
            train_s = aerialseg(["train", "--data", args.data, "--out", str(run_dir),
                                 "--split", subset.name, *overrides])  # fmt: skip
        saved = run_dir / "split.json"  # the split the run recorded, subset included
        val = evaluate_run(run_dir, args.data, "val", saved)
        fit = evaluate_run(run_dir, args.data, "train", saved)
        points.append(
            {
                "per_tile": k,
                "train_images": train_ids,
                "overrides": overrides,
                "train_seconds": round(train_s, 1),
                "val_curve": val_curve(run_dir),
                "val": val["headline"],
                "val_per_class_iou": val["per_class_iou"],
                "own_train_images": fit["headline"],
                "own_train_images_per_class_iou": fit["per_class_iou"],
            }
        )
        print(f"{k} per tile: val mIoU-6 {val['headline']['miou6']:.4f},"
              f" own images {fit['headline']['miou6']:.4f}")  # fmt: skip
    write_result(
        "data_curve",
        {
            "benchmark": "quality against the number of training images (default recipe,"
            " same steps), scored on the validation split and on the run's own images",
            "steps": args.steps,
            "subset_seed": SEED,
            "points": points,
        },
    )


if __name__ == "__main__":
    main()
