"""Self-training on a region's unlabelled images (the ``unlabelled=`` setting).

A few labelled images of a new region rarely show its classes in the region's proportions
(on a held-out Dubai tile, four images held 2.6 % vegetation and the tile's other five
10 %), and a network fine-tuned on them forgets what they lack. Here the model the run
starts from (``init_from``) predicts the region's unlabelled images, and where its
calibrated confidence reaches ``pseudo_confidence`` its class becomes the label; the rest
is IGNORE_INDEX, out of the loss. Training crops are then drawn from these images as from
the labelled ones. Prediction is the one ``Predictor.rows`` loop that ``predict`` runs.

Labelling counts against ``max_time`` and may take at most ``LABELLING_SHARE`` of it, so
that a run given many unlabelled images still trains and ends in time.
"""

from __future__ import annotations

import math
import os
import time

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

LABELLING_SHARE = 0.5  # of max_time, at most; images not labelled by then are left out


def _opened(path, bands, pixel_size=None, whole_read_pixels: int | None = None):
    try:
        return open_input(
            path, bands, "bands=", pixel_size, whole_read_pixels=whole_read_pixels,
            pixel_flag="pixel_size=",
        )  # fmt: skip
    except InputError as err:
        raise ConfigError(f"unlabelled=: {err}") from None


def decoded_bytes(path, bands, pixel_size=None) -> int:
    """What an unlabelled image and its labels take in memory, from its header."""
    with _opened(path, bands, pixel_size, whole_read_pixels=0) as raster:  # no pixel decoded
        return (len(raster.bands) + 1) * raster.width * raster.height


def source_bands(predictor: Predictor, bands: tuple[int, ...] | None) -> tuple[int, ...] | None:
    """The bands the starting model reads of the run's images: those it was trained on,
    as predict reads them; for a model that records none (RGB, the bundled one), the
    first three of the run's bands, which meet its R, G and B filters (a review: a run on
    bands 3,2,1,4 from an RGB model fed it four bands, a traceback)."""
    spec = predictor.spec
    if spec.bands or not bands or len(bands) < spec.in_channels:
        return spec.band_tuple  # None: as predict reads an image for an RGB model
    return bands[: spec.in_channels]


def pseudo_label(
    predictor: Predictor,
    path,
    lut: np.ndarray,
    confidence: float,
    bands,
    name: str,
    pixel_size: float | None = None,
    deadline: float | None = None,
) -> LabelledImage | None:
    """One unlabelled image in the run's ``bands`` on the run's grid (``pixel_size``) and
    the predictor's confident class ids as its labels, predicted from the bands it reads;
    None where ``deadline`` (a ``time.monotonic()``) passes before it is labelled."""
    seen = source_bands(predictor, bands)
    # confidences come in whole percents, rounded: the least percent that holds confidence
    least = math.ceil(100 * confidence - 1e-9)
    images, masks = [], []
    with (
        _opened(path, bands, pixel_size) as raster,
        raster if seen == bands else _opened(path, seen, pixel_size) as source,
    ):
        for chunk in predictor.rows(source, confidence=True):
            if deadline is not None and time.monotonic() > deadline:
                return None
            sure = chunk.confidence >= least  # type: ignore[operator]
            masks.append(np.where(sure & chunk.valid, lut[chunk.ids], IGNORE_INDEX))
            values = chunk.image if source is raster else raster.read(chunk.window)[0]
            images.append(np.rint(values).astype(np.uint8))
    image = torch.from_numpy(np.concatenate(images, axis=1))
    mask = torch.from_numpy(np.concatenate(masks).astype(np.uint8))
    return LabelledImage(f"unlabelled:{name}", image, mask)


# A process's rank on its machine, as the launchers Lightning runs under name it:
# Lightning's own and torchrun, SLURM's srun, LSF's jsrun.
LOCAL_RANK_VARIABLES = ("LOCAL_RANK", "SLURM_LOCALID", "JSM_NAMESPACE_LOCAL_RANK")


def labelling_device(accelerator: str) -> str:
    """Where the starting model labels: the CPU for a run told ``accelerator=cpu`` or
    without CUDA, else this DDP rank's own GPU (each rank builds its data, and so labels,
    itself), not GPU 0 for every rank; a launcher that shows each rank one GPU (by
    CUDA_VISIBLE_DEVICES) makes that GPU 0."""
    if accelerator == "cpu" or not torch.cuda.is_available():
        return "cpu"
    found = (os.environ.get(name, "") for name in LOCAL_RANK_VARIABLES)
    rank = next((int(value) for value in found if value.isdigit()), 0)
    return f"cuda:{rank % torch.cuda.device_count()}"


def pseudo_labelled(
    cfg: TrainConfig, classes: ClassTable, deadline: float | None = None
) -> list[LabelledImage]:
    """The images ``cfg.unlabelled`` names, labelled by ``cfg.init_from`` where it is sure,
    in their order until ``deadline`` (a ``time.monotonic()``; None: all of them).

    Raises:
        ConfigError: no images found, one unreadable, or more than cache_megabytes of them.
    """
    if not cfg.unlabelled:
        return []
    paths, names = named_inputs([cfg.unlabelled])
    if not paths:
        raise ConfigError(f"unlabelled={cfg.unlabelled}: no images found there")
    held = sum(decoded_bytes(path, cfg.band_tuple, cfg.pixel_size) for path in paths)  # headers
    if held > cfg.cache_megabytes * 2**20:
        raise ConfigError(
            f"unlabelled={cfg.unlabelled}: its images take {held / 2**20:,.0f} MB decoded, more"
            f" than cache_megabytes={cfg.cache_megabytes:g}; name fewer or raise"
            " cache_megabytes"
        )
    predictor = load_predictor(model_path(cfg.init_from), device=labelling_device(cfg.accelerator))
    lut = predictor.classes.ids_in(classes)
    print(
        f"self-training: labelling {len(paths)} unlabelled image(s) with {cfg.init_from}",
        flush=True,
    )
    found: list[LabelledImage] = []
    for path in paths:
        labelled_image = pseudo_label(
            predictor, path, lut, cfg.pseudo_confidence, cfg.band_tuple, names[path],
            cfg.pixel_size, deadline,
        )  # fmt: skip
        if labelled_image is None:
            break
        found.append(labelled_image)
    if len(found) < len(paths):
        print(
            f"self-training: {len(found)} of {len(paths)} unlabelled image(s) labelled in"
            f" {LABELLING_SHARE:.0%} of max_time={cfg.max_time}, the share labelling may take;"
            " the rest are left out (raise max_time or name fewer images)",
            flush=True,
        )
    if not found:
        return []
    labelled = sum(int((s.mask != IGNORE_INDEX).sum()) for s in found)
    pixels = sum(s.mask.numel() for s in found)
    # a model without a fitted temperature (a .ckpt, a run out of time) is overconfident
    uncalibrated = " (uncalibrated)" if predictor.spec.confidence_temperature is None else ""
    print(
        f"self-training: {len(found)} unlabelled image(s), {labelled / pixels:.0%} of their"
        f" pixels labelled by {cfg.init_from} at confidence >= {cfg.pseudo_confidence:g}"
        f"{uncalibrated}",
        flush=True,
    )
    return found
