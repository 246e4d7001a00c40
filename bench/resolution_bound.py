"""How much mIoU a model loses by predicting on a coarser grid than the masks', at best.

Each validation mask is turned into one-hot class maps, average-pooled by k (what a
network whose class scores live on a 1/k grid can at most represent), upsampled back
bilinearly and arg-maxed; the result is scored against the mask itself like a prediction
(PROTOCOL.md's metrics). An FPN predicts on 1/4 of its input's grid, so at
``downsample=2`` on 1/8 of the native one. Validation masks, not test ones: this guides
choices.

    .venv/bin/python bench/resolution_bound.py
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from common import DATA, write_result

from aerialseg.data.catalog import open_catalog
from aerialseg.data.classes import DUBAI_CLASSES, IGNORE_INDEX
from aerialseg.data.scenes import Reading
from aerialseg.data.splits import make_split
from aerialseg.evaluation.metrics import metrics_from_confusion


def coarse_prediction(mask: torch.Tensor, num_classes: int, factor: int) -> torch.Tensor:
    onehot = F.one_hot(mask.clamp(max=num_classes), num_classes + 1)[..., :num_classes]
    small = F.avg_pool2d(onehot.permute(2, 0, 1).float()[None], factor, ceil_mode=True)
    up = F.interpolate(small, size=mask.shape, mode="bilinear", align_corners=False)
    return up[0].argmax(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factors", type=int, nargs="+", default=[2, 4, 8, 16])
    parser.add_argument("--split", default="val")
    args = parser.parse_args()
    catalog = open_catalog(DATA, DUBAI_CLASSES)
    ids = make_split(catalog.entries).ids(args.split)
    masks = [s.mask.long() for s in catalog.read(ids, Reading(max_unknown=1.0))]
    n = DUBAI_CLASSES.num_classes
    bounds = {}
    for factor in args.factors:
        cm = np.zeros((n, n))
        for mask in masks:
            pred = coarse_prediction(mask, n, factor)
            ok = mask != IGNORE_INDEX
            cm += np.bincount(mask[ok] * n + pred[ok], minlength=n * n).reshape(n, n)
        m = metrics_from_confusion(cm, DUBAI_CLASSES)
        bounds[f"1/{factor}"] = {
            "miou6": round(m["miou6"], 4),
            "miou5": round(m["miou5"], 4),
            "pixel_accuracy": round(m["pixel_accuracy"], 4),
            "per_class_iou": {k: round(v["iou"], 4) for k, v in m["per_class"].items()},
        }
        print(factor, bounds[f"1/{factor}"])
    write_result(
        "resolution_bound",
        {
            "benchmark": "best mIoU of class scores on a 1/k grid (masks pooled and upsampled)",
            "split": args.split,
            "images": len(ids),
            "bounds": bounds,
        },
    )


if __name__ == "__main__":
    main()
