"""PNG plots: training curves, confusion matrix, image / truth / prediction panels."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from aerialseg.data.classes import IGNORE_INDEX, ClassTable  # noqa: E402
from aerialseg.models.io import atomic_write  # noqa: E402


def _save(fig, path: Path) -> None:
    with warnings.catch_warnings():  # a class name's letters the font lacks: drawn as boxes
        warnings.filterwarnings("ignore", "Glyph .* missing from", UserWarning)
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)


def _series(rows: list[dict[str, str]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for row in rows:
        if row.get(key) not in (None, ""):
            xs.append(float(row["epoch"]))
            ys.append(float(row[key]))
    return xs, ys


def plot_training(metrics_csv: Path, out: Path) -> None:
    """Loss (train, val) and validation mIoU per epoch."""
    if not metrics_csv.is_file():
        return
    with metrics_csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    fig, (ax_loss, ax_miou) = plt.subplots(1, 2, figsize=(10, 4))
    for key in ("train_loss_epoch", "train_loss", "val_loss"):
        xs, ys = _series(rows, key)
        if xs:
            ax_loss.plot(xs, ys, marker=".", label=key.removesuffix("_epoch"))
    ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
    ax_loss.legend()
    xs, ys = _series(rows, "val_miou")
    ax_miou.plot(xs, ys, marker=".", color="tab:green")
    ax_miou.set(xlabel="epoch", ylabel="mIoU", title="Validation mIoU", ylim=(0, 1))
    ax_miou.grid(alpha=0.3)
    _save(fig, out)


def plot_confusion(cm: np.ndarray, classes: ClassTable, out: Path) -> None:
    """Row-normalised confusion matrix (recall per true class on the diagonal)."""
    cm = np.asarray(cm, dtype=float)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    names = classes.names
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix (row-normalised)")
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(
                j,
                i,
                f"{norm[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    fig.colorbar(im, ax=ax, fraction=0.046)
    _save(fig, out)


def colorize(ids: np.ndarray, classes: ClassTable) -> np.ndarray:
    """Class ids -> display RGB; ignored pixels black."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[: classes.num_classes] = classes.display_palette()
    palette[IGNORE_INDEX] = 0
    return palette[ids]


def plot_panels(
    panels: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], classes: ClassTable, out: Path
) -> None:
    """One row per (name, image, truth ids, predicted ids)."""
    fig, axes = plt.subplots(len(panels), 3, figsize=(12, 4 * len(panels)), squeeze=False)
    for row, (name, image, truth, pred) in zip(axes, panels, strict=True):
        for ax, picture, title in zip(
            row,
            (image, colorize(truth, classes), colorize(pred, classes)),
            (name, "ground truth", "prediction"),
            strict=True,
        ):
            ax.imshow(picture)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    handles = [
        plt.Rectangle((0, 0), 1, 1, color=np.array(c) / 255) for c in classes.display_palette()
    ]
    fig.legend(handles, classes.names, loc="lower center", ncol=len(handles))
    _save(fig, out)
