"""Where a model's errors lie: along the masks' class boundaries, or inside regions.

Hand-drawn polygon masks are imprecise along class boundaries, and so is a network whose
class scores come from a coarser grid; more training fixes neither. For every split this
scores a model (fp32, PROTOCOL.md's way), then again forgiving its errors within 2 and 4 px
of a class boundary in the mask, and counts how its errors split by distance from one.
If forgiving them gains little, the errors are confusions of whole regions (the wrong class
for a plot, a roof, a race track), not outlines. Writes bench/results/error_sources.json.

    .venv/bin/python bench/error_sources.py                  # the bundled default model
    .venv/bin/python bench/error_sources.py runs/X/model.pt --name X --splits val
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from common import BUNDLED, DATA, REPO, decoded_scenes, predictor_of, write_result
from scipy.ndimage import distance_transform_edt
from torchmetrics.functional.classification import multiclass_confusion_matrix
from tqdm import tqdm

from aerialseg.data.classes import IGNORE_INDEX
from aerialseg.data.source import DatasetSource
from aerialseg.data.splits import SPLIT_NAMES, make_split
from aerialseg.evaluation.evaluate import predicted
from aerialseg.evaluation.metrics import headline_keys, metrics_from_confusion
from aerialseg.models.io import load_model

TOLERANCES_PX = (0, 2, 4)
# distance from the nearest class boundary, px: (low, high]
BANDS_PX = {"within 2 px": (0, 2), "2-8 px": (2, 8), "beyond 8 px": (8, np.inf)}


def boundary_distance(mask: np.ndarray) -> np.ndarray:
    """Each pixel's distance in px from the nearest class boundary: 1 for a pixel with a
    4-neighbour of another label, 2 for the pixels next to those, and so on."""
    edge = np.zeros(mask.shape, dtype=bool)
    horizontal = mask[:, 1:] != mask[:, :-1]
    vertical = mask[1:] != mask[:-1]
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    edge[1:] |= vertical
    edge[:-1] |= vertical
    return distance_transform_edt(~edge) + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help="model.pt (default: the bundled model)")
    parser.add_argument("--name", help="suffix of the result file")
    parser.add_argument("--splits", nargs="+", choices=SPLIT_NAMES, default=list(SPLIT_NAMES))
    parser.add_argument("--data", default=str(DATA))
    args = parser.parse_args()

    model = load_model(args.model or BUNDLED, for_inference=True)
    cfg, classes = model.spec, model.classes
    predictor = predictor_of(model).with_options(batch_size=1)  # fp32, a window a pass
    n = classes.num_classes
    source = DatasetSource(args.data)
    split = make_split(source.pairs, None)
    results = {}
    for split_name in args.splits:
        cms = {t: np.zeros((n, n), dtype=np.int64) for t in TOLERANCES_PX}
        errors = dict.fromkeys(BANDS_PX, 0)
        pixels = dict.fromkeys(BANDS_PX, 0)
        ids = split.ids(split_name)
        items = tqdm(decoded_scenes(args.data, ids, classes, cfg.max_unknown), desc=split_name)
        for item, pred, _ in predicted(predictor, items):
            mask = item.mask.long()
            distance = torch.from_numpy(boundary_distance(mask.numpy()))
            valid = mask != IGNORE_INDEX
            wrong = valid & (pred != mask)
            for t in TOLERANCES_PX:
                forgiven = torch.where(wrong & (distance <= t), mask, pred)
                cms[t] += multiclass_confusion_matrix(
                    forgiven, mask, n, ignore_index=IGNORE_INDEX
                ).numpy()
            for band, (low, high) in BANDS_PX.items():
                inside = (distance > low) & (distance <= high)
                errors[band] += int((wrong & inside).sum())
                pixels[band] += int((valid & inside).sum())
        total_errors, total_pixels = sum(errors.values()), sum(pixels.values())
        keys = headline_keys(classes)
        scored = {}
        for t, cm in cms.items():
            metrics = metrics_from_confusion(cm, classes)
            scored[f"{t} px"] = {
                **{k: round(metrics[k], 4) for k in keys},
                "per_class_iou": {
                    c: None if m["iou"] is None else round(m["iou"], 4)
                    for c, m in metrics["per_class"].items()
                },
            }
        results[split_name] = {
            "images": len(ids),
            "forgiving_errors_near_boundaries": scored,
            "share_of_errors": {b: round(e / total_errors, 4) for b, e in errors.items()},
            "share_of_pixels": {b: round(p / total_pixels, 4) for b, p in pixels.items()},
            "error_rate": {b: round(errors[b] / max(pixels[b], 1), 4) for b in BANDS_PX},
        }
        print(split_name, results[split_name]["forgiving_errors_near_boundaries"])
    write_result(
        f"error_sources-{args.name}" if args.name else "error_sources",
        {
            "benchmark": "errors near class boundaries vs inside regions, every split (fp32)",
            "model": args.model or str(BUNDLED.relative_to(REPO)),
            "model_config": cfg.model,
            "splits": results,
        },
    )


if __name__ == "__main__":
    main()
