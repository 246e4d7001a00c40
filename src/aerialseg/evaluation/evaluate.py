"""``aerialseg evaluate``: predict a split at native resolution and score it (PROTOCOL.md)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torchmetrics.functional.classification import multiclass_confusion_matrix
from tqdm import tqdm

from aerialseg.data.classes import IGNORE_INDEX, ClassTable
from aerialseg.data.raster import display_rgb
from aerialseg.data.samples import LabelledImage, WholeImageDataset
from aerialseg.data.scenes import PolygonSpec, open_dataset, split_scenes
from aerialseg.data.splits import make_split
from aerialseg.evaluation.calibration import ConfidenceTally
from aerialseg.evaluation.metrics import headline_keys, metrics_from_confusion
from aerialseg.evaluation.plots import plot_confusion, plot_panels
from aerialseg.inference.engine import FlipTTA, OnnxEngine, engine_precision, with_precision
from aerialseg.inference.predict import default_batch_size, predicted_probs
from aerialseg.models.io import LoadedModel, atomic_write
from aerialseg.training.config import TrainConfig

PANEL_COUNT = 4


def image_summary(cm: np.ndarray, classes: ClassTable) -> dict:
    """One image's headline figures and per-class IoU (None: class absent from both its
    mask and its prediction): finds the images, or the labels, that pull a score down."""
    metrics = metrics_from_confusion(cm, classes)
    return {
        **{key: metrics[key] for key in headline_keys(classes)},
        "iou": {name: m["iou"] for name, m in metrics["per_class"].items()},
        "labelled_pixels": metrics["labelled_pixels"],
    }


def predicted(
    engine, cfg: TrainConfig, items: Iterable[LabelledImage], device, batch_size: int
) -> Iterator[tuple[LabelledImage, torch.Tensor]]:
    """Each labelled image with its (H, W) predicted class ids on ``device``."""
    for item, probs in predicted_probs(engine, cfg, items, device, batch_size):
        yield item, probs.argmax(0)


def _part_name(image: str, window) -> str:
    """An image's name in the report, with the block's pixel window for a block split."""
    if window is None:
        return image
    return f"{image}[{window.col_off},{window.row_off},{window.width},{window.height}]"


def evaluate(
    model: LoadedModel | OnnxEngine,
    data: str | Path,
    out: str | Path,
    *,
    split_name: str = "test",
    split_file: str | None = None,
    batch_size: int | None = None,
    tta: bool = False,
    precision: str = "auto",
    engine=None,
    pixel_size: float | None = None,
    polygons: PolygonSpec | None = None,
) -> dict:
    """Score ``model`` on one split; writes metrics.json, confusion.png and panels.png.
    ``model`` is a loaded model file or an exported ONNX model (``OnnxEngine``, on the CPU).

    ``tta`` scores the flip-averaged prediction of ``aerialseg predict --tta``;
    ``precision`` is predict's (engine.resolve_precision), so both score the same.
    ``engine`` (inference/engine.py's interface) is scored in place of the model's own, with
    the model's windows and classes: the benchmarks score ensembles and other TTAs so.
    ``pixel_size``: score georeferenced data resampled to it (None: the model's, if any).
    ``polygons``: ``data`` is image rasters labelled by these polygons; with a block split
    only the blocks of ``split_name`` are scored."""
    cfg, classes = model.config, model.classes
    pixel_size = pixel_size or cfg.pixel_size
    source = open_dataset(data, classes, polygons, cfg.band_tuple, pixel_size)
    split = make_split(source.pairs, split_file)
    ids = split.ids(split_name)
    net = None if isinstance(model, OnnxEngine) else model.net  # an OnnxEngine is its engine
    device = next(net.parameters()).device if net is not None else torch.device("cpu")
    if engine is None:
        engine = with_precision(net, precision, device) if net is not None else model
        engine = FlipTTA(engine) if tta else engine
    batch_size = batch_size or default_batch_size(device, engine_precision(engine))
    total = np.zeros((classes.num_classes, classes.num_classes), dtype=np.int64)
    per_image = {}
    ignored = 0
    panels: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []  # id, image, truth, pred
    # whole images, or the blocks of a block split, read one at a time
    scenes, parts = split_scenes(
        source, split, split_name, classes, replace(cfg, pixel_size=pixel_size)
    )
    items = WholeImageDataset([scenes[k] for k, _ in parts], [w for _, w in parts]).items
    ids = tuple(_part_name(i, w) for i, w in split.parts(split_name))
    bar = tqdm(items, desc="evaluate", unit="img")
    tally, temperature = ConfidenceTally(), cfg.confidence_temperature or 1.0
    for name, (item, probs) in zip(
        ids, predicted_probs(engine, cfg, bar, device, batch_size), strict=True
    ):
        pred = probs.argmax(0)
        mask = item.mask.to(device).long()
        tally.add(probs, mask, temperature)
        cm = (
            multiclass_confusion_matrix(
                pred, mask, classes.num_classes, ignore_index=IGNORE_INDEX, normalize="none"
            )
            .cpu()
            .numpy()
            .astype(np.int64)
        )
        total += cm
        per_image[name] = image_summary(cm, classes)
        ignored += int((mask == IGNORE_INDEX).sum())
        if len(panels) < PANEL_COUNT:
            panels.append(
                (
                    name,
                    display_rgb(item.image.numpy()).transpose(1, 2, 0),
                    item.mask.numpy(),
                    pred.to(torch.uint8).cpu().numpy(),
                )
            )
    metrics = metrics_from_confusion(total, classes)
    report = {
        "model": cfg.model,
        "split": split_name,
        "split_rule": split.rule,
        "images": list(ids),
        "tta": tta,
        "precision": engine_precision(engine),
        "pixel_size": pixel_size,
        **metrics,
        "ignored_pixels": ignored,
        # predict --confidence on these pixels: its mean and calibration error
        "confidence": tally.summary(temperature),
        "classes": classes.names,
        "per_image": per_image,
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(
        out / "metrics.json", lambda tmp: Path(tmp).write_text(json.dumps(report, indent=2) + "\n")
    )
    plot_confusion(total, classes, out / "confusion.png")
    if panels:
        plot_panels(panels, classes, out / "panels.png")
    return report
