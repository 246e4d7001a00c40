"""Self-training on a region's unlabelled images (the ``unlabelled=`` setting).

A few labelled images of a new region rarely show its classes in the region's proportions
(on a held-out Dubai tile, four images held 2.6 % vegetation and the tile's other five
10 %), and a network fine-tuned on them forgets what they lack. Here the model the run
starts from (``init_from``) predicts the region's unlabelled images, and where its
calibrated confidence reaches ``pseudo_confidence`` its class becomes the label; the rest
is IGNORE_INDEX, out of the loss. Training crops are then drawn from these images as from
the labelled ones. Prediction is the one ``Predictor.rows`` loop that ``predict`` runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from aerialseg.data.classes import IGNORE_INDEX, ClassTable
from aerialseg.data.raster import InputError, open_input
from aerialseg.data.scenes import LabelledImage
from aerialseg.errors import ConfigError
from aerialseg.inference.load import load_predictor
from aerialseg.inference.predict import Predictor
from aerialseg.inference.run import named_inputs
from aerialseg.models.io import model_path
from aerialseg.training.config import TrainConfig


def class_map(model: ClassTable, run: ClassTable) -> np.ndarray:
    """The run's id of each of the model's class ids, matched by name; IGNORE_INDEX for
    a class the run's table lacks (and for the model's nodata value)."""
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    ids = {name: i for i, name in enumerate(run.names)}
    for i, name in enumerate(model.names):
        lut[i] = ids.get(name, IGNORE_INDEX)
    return lut


def _opened(path, bands, whole_read_pixels: int | None = None):
    try:
        return open_input(path, bands, "bands=", whole_read_pixels=whole_read_pixels)
    except InputError as err:
        raise ConfigError(f"unlabelled=: {err}") from None


def decoded_bytes(path, bands) -> int:
    """What an unlabelled image and its labels take in memory, from its header."""
    raster = _opened(path, bands, whole_read_pixels=0)  # no pixel decoded
    try:
        return (len(raster.bands) + 1) * raster.width * raster.height
    finally:
        raster.close()


@dataclass
class Predicted:
    """An unlabelled image as the starting model sees it: its pixels, class ids,
    confidences (whole percents) and valid pixels."""

    name: str
    image: np.ndarray
    ids: np.ndarray
    confidence: np.ndarray
    valid: np.ndarray


def predicted(predictor: Predictor, path, bands, name: str) -> Predicted:
    raster = _opened(path, bands)
    images, ids, confidences, valid = [], [], [], []
    try:
        for chunk in predictor.rows(raster, confidence=True):
            images.append(np.rint(chunk.image).astype(np.uint8))
            ids.append(chunk.ids)
            confidences.append(chunk.confidence)
            valid.append(chunk.valid)
    finally:
        raster.close()
    return Predicted(
        name,
        np.concatenate(images, axis=1),
        np.concatenate(ids),
        np.concatenate(confidences),  # type: ignore[arg-type]
        np.concatenate(valid),
    )


def least_confidences(found: list[Predicted], confidence: float, share: float) -> np.ndarray:
    """The least confidence (a whole percent) at which a pixel predicted as each class id
    is labelled: ``confidence``, lowered for a class where that would keep less than
    ``share`` of the pixels predicted as it, to keep its most confident ``share``.
    (Class-balanced self-training, Zou et al. 2018: a global threshold keeps few pixels
    of the classes the model is least sure of, the ones a new region needs most.)"""
    least = np.full(256, round(100 * confidence), dtype=np.int64)
    if share <= 0:
        return least
    counts = np.zeros((256, 101), dtype=np.int64)  # class id x confidence percent
    for p in found:
        pixels = p.ids[p.valid].astype(np.int64) * 101 + p.confidence[p.valid]
        counts += np.bincount(pixels, minlength=256 * 101).reshape(256, 101)
    at_least = counts[:, ::-1].cumsum(axis=1)[:, ::-1]  # [c, k]: pixels of c at >= k %
    for c in np.flatnonzero(at_least[:, 0]):
        enough = np.flatnonzero(at_least[c] >= share * at_least[c, 0])
        least[c] = min(least[c], enough[-1])
    return least


def pseudo_label(p: Predicted, lut: np.ndarray, least: np.ndarray) -> LabelledImage:
    """An unlabelled image and the starting model's class ids as its labels where its
    confidence reaches its class's ``least`` (percent); the rest IGNORE_INDEX."""
    sure = p.valid & (p.confidence >= least[p.ids])
    mask = np.where(sure, lut[p.ids], IGNORE_INDEX).astype(np.uint8)
    return LabelledImage(f"unlabelled:{p.name}", torch.from_numpy(p.image), torch.from_numpy(mask))


def pseudo_labelled(cfg: TrainConfig, classes: ClassTable) -> list[LabelledImage]:
    """The images ``cfg.unlabelled`` names, labelled by ``cfg.init_from`` where it is sure.

    Raises:
        ConfigError: no images found, one unreadable, or more than cache_megabytes of them.
    """
    if not cfg.unlabelled:
        return []
    paths, names = named_inputs([cfg.unlabelled])
    if not paths:
        raise ConfigError(f"unlabelled={cfg.unlabelled}: no images found there")
    held = sum(decoded_bytes(path, cfg.band_tuple) for path in paths)  # headers only
    if held > cfg.cache_megabytes * 2**20:
        raise ConfigError(
            f"unlabelled={cfg.unlabelled}: its images take {held / 2**20:,.0f} MB decoded, more"
            f" than cache_megabytes={cfg.cache_megabytes:g}; name fewer or raise"
            " cache_megabytes"
        )
    predictor = load_predictor(model_path(cfg.init_from), device="auto")
    lut = class_map(predictor.classes, classes)
    seen = [predicted(predictor, path, cfg.band_tuple, names[path]) for path in paths]
    least = least_confidences(seen, cfg.pseudo_confidence, cfg.pseudo_class_share)
    found = [pseudo_label(p, lut, least) for p in seen]
    labelled = sum(int((s.mask != IGNORE_INDEX).sum()) for s in found)
    pixels = sum(s.mask.numel() for s in found)
    print(
        f"self-training: {len(found)} unlabelled image(s), {labelled / pixels:.0%} of their"
        f" pixels labelled by {cfg.init_from} at confidence >= {cfg.pseudo_confidence:g}"
        + (
            f", or among the {cfg.pseudo_class_share:.0%} most confident of their class"
            if cfg.pseudo_class_share
            else ""
        ),
        flush=True,
    )
    return found
