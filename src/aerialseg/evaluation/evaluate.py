"""``aerialseg evaluate``: predict a split at native resolution and score it (PROTOCOL.md)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torchmetrics.functional.classification import multiclass_confusion_matrix
from tqdm import tqdm

from aerialseg.data.catalog import Catalog, LabelSpec, open_catalog
from aerialseg.data.classes import IGNORE_INDEX, ClassTable
from aerialseg.data.crops import WholeImageDataset
from aerialseg.data.raster import display_rgb
from aerialseg.data.scenes import LabelledImage, Reading
from aerialseg.data.splits import Split
from aerialseg.errors import AerialsegError, ClassTableError, DatasetError
from aerialseg.evaluation.calibration import ConfidenceTally
from aerialseg.evaluation.metrics import headline_keys, metrics_from_confusion
from aerialseg.evaluation.plots import plot_confusion, plot_panels
from aerialseg.inference.predict import Predictor
from aerialseg.models.io import atomic_write

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
    predictor: Predictor, items: Iterable[LabelledImage]
) -> Iterator[tuple[LabelledImage, torch.Tensor, torch.Tensor]]:
    """Each labelled image with its (H, W) class ids and (classes, H, W) probabilities on
    the predictor's device, predicted as ``aerialseg predict`` predicts a file."""
    for item in items:
        result = predictor.predict_image(item.image.float(), probabilities=True)
        assert result.probs is not None  # asked for
        ids = torch.from_numpy(result.ids).to(result.probs.device).long()
        yield item, ids, result.probs


def _part_name(image: str, window) -> str:
    """An image's name in the report, with the block's pixel window for a block split."""
    if window is None:
        return image
    return f"{image}[{window.col_off},{window.row_off},{window.width},{window.height}]"


@dataclass(frozen=True)
class ClassMatch:
    """A dataset's class table matched to a model's by class name (case aside)."""

    lut: np.ndarray  # (256,) dataset class id -> model class id; IGNORE_INDEX: not scored
    table: ClassTable  # the model's, with the classes the dataset lacks left out of mIoU
    report: dict  # which classes are scored, which are not and why (metrics.json)


def match_classes(model: ClassTable, data: ClassTable) -> ClassMatch:
    """Score a model on masks of another class table: the classes both have are scored;
    pixels of the dataset's classes the model lacks are ignored; the model's classes the
    dataset lacks are left out of mIoU (predicting them on a scored pixel is an error)."""
    lut = data.ids_in(model)
    shared = {int(i) for i in lut[: data.num_classes] if i != IGNORE_INDEX}
    if not shared:
        raise ClassTableError(
            f"none of the class table's classes ({', '.join(data.names)}) is one of the"
            f" model's ({', '.join(model.names)}); classes are matched by name"
        )
    table = replace(
        model,
        classes=tuple(
            c if i in shared else replace(c, scored=False) for i, c in enumerate(model.classes)
        ),
    )
    report = {
        "by": "name",
        "matched": [model.classes[i].name for i in sorted(shared)],
        "dataset_only": [  # their pixels are ignored
            c.name for j, c in enumerate(data.classes) if lut[j] == IGNORE_INDEX
        ],
        # left out of mIoU; a scored pixel predicted as one of them counts as an error
        "model_only": [c.name for i, c in enumerate(model.classes) if i not in shared],
    }
    return ClassMatch(lut, table, report)


def select_split(catalog: Catalog, split_name: str, split_file: str | None) -> tuple[Split, str]:
    """The split to score and the name of its part: a part of the split file or of the
    protocol's rule, or for ``all`` every image (as the test part of a split of its own)."""
    if split_name == "all":
        if split_file:
            raise DatasetError("--split all scores every image of the dataset; drop --split-file")
        every = tuple(catalog.scenes)
        return Split((), (), every, "all: every image of the dataset"), "test"
    split = catalog.split(split_file, for_training=False, needed=(split_name,))
    if not split.parts(split_name):
        raise DatasetError(
            f"no {split_name} images in this dataset by the split ({split.rule}); name them in"
            " a split file with --split-file, or score every image with --split all"
        )
    return split, split_name


def evaluate(
    predictor: Predictor,
    data: str | Path,
    out: str | Path,
    *,
    split_name: str = "test",
    split_file: str | None = None,
    pixel_size: float | None = None,
    labels: LabelSpec | None = None,
    classes: ClassTable | None = None,
    max_unknown: float | None = None,
    resize_masks: bool = False,
    bands: tuple[int, ...] | None = None,
) -> dict:
    """Score ``predictor`` on one split; writes metrics.json, confusion.png and panels.png.

    Its engine, precision, TTA and batch size are what is scored, through the loop that
    ``aerialseg predict`` writes files with; the benchmarks score ensembles and other TTAs
    with a predictor of their own engine (``dataclasses.replace(predictor, engine=...)``).
    ``pixel_size``: score georeferenced data resampled to it (None: the model's, if any).
    ``split_name`` ``all`` scores every image. ``classes``: the dataset's class table if
    not the model's, matched to it by name (``match_classes``). ``max_unknown``: the
    share of a mask in colours of no class before it is an error (None: the model's).
    ``resize_masks``: masks without a georeference of another size than their image
    resampled to it.
    ``labels``: ``data`` is image rasters labelled by these polygons or this class raster;
    with a block split only the blocks of ``split_name`` are scored. ``bands``: the images'
    1-based bands to read (None: the model's, else RGB)."""
    out = Path(out)
    if out.exists() and not out.is_dir():  # said now, not after every image is scored
        raise AerialsegError(f"--out {out}: a file; give the folder to write the scores in")
    spec = predictor.spec
    match = match_classes(predictor.classes, classes) if classes is not None else None
    data_classes = classes or predictor.classes  # what the masks are read with
    classes = match.table if match else predictor.classes  # what is scored
    pixel_size = pixel_size or spec.pixel_size
    catalog = open_catalog(data, data_classes, labels, pixel_size)
    split, part = select_split(catalog, split_name, split_file)
    total = np.zeros((classes.num_classes, classes.num_classes), dtype=np.int64)
    per_image = {}
    ignored = 0
    panels: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []  # id, image, truth, pred
    # whole images, or the blocks of a block split, read one at a time
    reading = Reading(
        bands=bands or spec.band_tuple,
        max_unknown=spec.max_unknown if max_unknown is None else max_unknown,
        resize_masks=resize_masks,
    )
    scenes, parts = catalog.split_scenes(split, part, reading)
    items: Iterable[LabelledImage] = WholeImageDataset(
        [scenes[k] for k, _ in parts], [w for _, w in parts]
    ).items
    ids = tuple(_part_name(i, w) for i, w in split.parts(part))
    if match:  # masks in the model's class ids
        lut = torch.from_numpy(match.lut)
        items = (replace(item, mask=lut[item.mask.long()]) for item in items)
    bar = tqdm(items, desc="evaluate", unit="img", total=len(ids))
    tally, temperature = ConfidenceTally(), spec.confidence_temperature or 1.0
    for name, (item, pred, probs) in zip(ids, predicted(predictor, bar), strict=True):
        mask = item.mask.to(probs.device).long()
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
    if not total.any():  # every pixel ignored: no figure would mean anything
        raise DatasetError(
            f"the {split_name} split's {len(ids)} image(s) have no labelled pixel to score"
            f" ({ignored:,} pixels, every one an ignore value, nodata or outside the labels);"
            " check the class table's ignore values and the labels' nodata"
        )
    metrics = metrics_from_confusion(total, classes)
    if match and match.report["model_only"]:  # a mean over every model class means nothing
        metrics["headline"] = [k for k in metrics["headline"] if k != f"miou{classes.num_classes}"]
        dice = [metrics["per_class"][name]["dice"] for name in match.report["matched"]]
        found = [d for d in dice if d is not None]
        metrics["mean_dice"] = sum(found) / len(found) if found else None
    report = {
        "model": spec.model,
        "split": split_name,
        "split_rule": split.rule,
        "images": list(ids),
        "scored": "blocks" if split.blocks else "images",  # what "images" lists
        "tta": predictor.tta,
        "precision": predictor.precision,
        "pixel_size": pixel_size,
        **metrics,
        "ignored_pixels": ignored,
        # predict --confidence on these pixels: its mean and calibration error
        "confidence": tally.summary(temperature),
        "classes": classes.names,
        "class_match": match.report if match else None,
        "per_image": per_image,
        # each scored image's file, for a command to run on it (a zip's: /vsizip/)
        "files": {
            name: catalog.scenes[i].example
            for name, (i, _) in zip(ids, split.parts(part), strict=True)
        },
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(
        out / "metrics.json", lambda tmp: Path(tmp).write_text(json.dumps(report, indent=2) + "\n")
    )
    plot_confusion(total, classes, out / "confusion.png")
    if panels:
        plot_panels(panels, classes, out / "panels.png")
    return report
