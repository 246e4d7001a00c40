"""Metrics of ``../shared/benchmark/PROTOCOL.md``, all derived from one confusion matrix.

Rows are the true class, columns the predicted class; ignored pixels never enter it
(torchmetrics' ``ignore_index``), so sums are over labelled pixels only.
"""

from __future__ import annotations

import math

import numpy as np

from aerialseg.data.classes import ClassTable


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is 0 (a class absent from both truth and prediction)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def _mean(values: np.ndarray) -> float | None:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else None


def _clean(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def metrics_from_confusion(cm: np.ndarray, classes: ClassTable) -> dict:
    """Headline and per-class metrics. ``miou_all`` is over every class, ``miou_scored``
    over the scored ones (a class table's ``scored: false`` leaves a class out), whatever
    the table; the same figures also go by their class count, as the protocol names them:
    for the Dubai table ``miou6`` and ``miou5`` (Unlabeled left out)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    fp = cm.sum(0) - tp
    fn = cm.sum(1) - tp
    iou = _ratio(tp, tp + fp + fn)
    dice = _ratio(2 * tp, 2 * tp + fp + fn)
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    total = cm.sum()
    scored = np.array([c.scored for c in classes.classes])
    n_all, n_scored = classes.num_classes, classes.num_scored
    result = {
        # which of these keys sum a model up, mIoU first: readers of metrics.json need no
        # class table to know
        "headline": headline_keys(classes),
        f"miou{n_all}": _mean(iou),
        f"miou{n_scored}": _mean(iou[scored]),
        "miou_all": _mean(iou),
        "miou_scored": _mean(iou[scored]),
        "pixel_accuracy": float(tp.sum() / total) if total else None,
        "mean_dice": _mean(dice),
        "per_class": {
            c.name: {
                "iou": _clean(iou[i]),
                "dice": _clean(dice[i]),
                "precision": _clean(precision[i]),
                "recall": _clean(recall[i]),
                "support": int(cm[i].sum()),
            }
            for i, c in enumerate(classes.classes)
        },
        "scored_classes": [c.name for c in classes.classes if c.scored],
        "labelled_pixels": int(total),
        "confusion_matrix": cm.astype(np.int64).tolist(),
    }
    return result


def headline_keys(classes: ClassTable) -> list[str]:
    n_all, n_scored = classes.num_classes, classes.num_scored
    keys = [f"miou{n_all}"] + ([f"miou{n_scored}"] if n_scored != n_all else [])
    return keys + ["pixel_accuracy", "mean_dice"]


def metric_label(key: str, total: int | None = None, present: int | None = None) -> str:
    """How a headline key reads to a person: of ``total`` classes, ``miou6`` is "mIoU over
    all 6 classes" and ``miou5`` "over 5 scored classes"; ``present``: how many of them
    have an IoU, where fewer ("mIoU over 3 of the 6 classes")."""
    if not key.startswith("miou") or not key[4:].isdigit():
        return {"pixel_accuracy": "pixel accuracy", "mean_dice": "mean Dice"}.get(key, key)
    n = int(key[4:])
    kind = "classes" if total is None or n == total else "scored classes"
    if present is not None and present < n:  # a review: "over 6 classes" averaged three
        return f"mIoU over {present} of the {n} {kind}"
    if total is None:
        return f"mIoU over {n} classes"
    return f"mIoU over all {n} classes" if n == total else f"mIoU over {n} scored classes"


def format_table(metrics: dict, classes: ClassTable | None = None) -> str:
    """The headline figures and a per-class table; ``classes`` default: the metrics' own."""
    keys = headline_keys(classes) if classes is not None else metrics["headline"]
    per_class = metrics["per_class"]
    scored = metrics.get("scored_classes", list(per_class))  # reports before it: all
    present = {  # how many classes each mean averages
        f"miou{len(per_class)}": sum(m["iou"] is not None for m in per_class.values()),
        f"miou{len(scored)}": sum(per_class[name]["iou"] is not None for name in scored),
    }

    def figure(k: str) -> str:
        label = metric_label(k, len(per_class), present.get(k))
        return f"{label} {metrics[k]:.4f}" if metrics[k] is not None else f"{label} n/a"

    lines = [", ".join(figure(k) for k in keys)]
    absent = [name for name, m in metrics["per_class"].items() if m["iou"] is None]
    if absent:  # an mIoU "over all N classes" averages fewer: say which are left out
        lines.append(
            f"  (left out of the means: {', '.join(absent)}, in neither the labels nor the"
            " predictions)"
        )
    lines.append(f"  {'class':<12} {'IoU':>7} {'Dice':>7} {'prec':>7} {'recall':>7}")
    for name, m in metrics["per_class"].items():
        cells = [
            f"{m[k]:>7.4f}" if m[k] is not None else f"{'n/a':>7}"
            for k in ("iou", "dice", "precision", "recall")
        ]
        lines.append(f"  {name:<12} " + " ".join(cells))
    return "\n".join(lines)
