"""One typed config describes a run; it is saved in the run folder and inside every model file.

Presets give starting points; ``key=value`` overrides change single fields, e.g.
``aerialseg train --data D max_epochs=5 lr=3e-4``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml

from aerialseg.errors import ConfigError, parse_reason, shown
from aerialseg.files import read_bounded
from aerialseg.models.names import DEFAULT_DECODER_CHANNELS, SIZE_MULTIPLE, ModelName
from aerialseg.models.spec import MAX_OVERLAP, ModelSpec
from aerialseg.yamltext import dump_yaml, load_yaml


def setting(default: Any, help: str) -> Any:
    """A field of TrainConfig: its default and what it means (``--list-settings``)."""
    return field(default=default, metadata={"help": help})


# Most bands a network takes: a hyperspectral cube wants band selection or another model.
MAX_BANDS = 16
# Lightning's precision names (lightning.fabric's _PRECISION_INPUT_STR and its aliases)
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true",
              "32", "16", "bf16", "64")  # fmt: skip


@dataclass
class TrainConfig:
    """Everything that decides what a run trains and how. Each setting's help is part of
    its definition: ``aerialseg train --list-settings`` prints them (training/settings.py)."""

    model: ModelName = setting("fpn-effnet-lite0", "the network (models/factory.py)")
    base_width: int = setting(16, "seed-unet: first block width (16-32-64-128-256)")
    dropout: float = setting(0.2, "seed-unet: dropout rate before its class head")
    pretrained: bool = setting(True, "ImageNet encoder weights (the *-effnet-* models)")
    init_from: str | None = setting(
        None,
        "start from a trained model's weights instead (fine-tuning): a model file or .ckpt, or "
        '"default" for the bundled model. Same model and decoder widths; its class head rows '
        "are matched by class name (classes new to it start fresh) and its first convolution is"
        " adapted to other bands",
    )
    unlabelled: str | None = setting(
        None,
        "self-training with init_from: images of the region without labels (a file, a folder or"
        " a glob, as predict takes them; read whole, within cache_megabytes). Before training,"
        " the model init_from names labels their pixels where its calibrated confidence is at"
        " least pseudo_confidence, and training crops are drawn from them as from the labelled"
        " images, so classes that the few labelled images lack are not forgotten. None: off",
    )
    pseudo_confidence: float = setting(
        0.9,
        "with unlabelled: the least confidence (0..1) at which a pixel is labelled with the"
        " starting model's class; the others are left out of the loss",
    )
    drop_path: float = setting(
        0.0,
        "*-effnet-* models: stochastic depth, the chance that a residual block of the encoder "
        "is skipped in a training step, rising linearly with depth to this (timm's "
        "drop_path_rate); a regulariser for small datasets. 0: off. On the Dubai data 0.2 did "
        "not help (bench/results/recipe-lite0-droppath0.2.json)",
    )
    decoder_channels: list[int] | None = setting(
        None,
        "decoder widths; None: the model's own (unet: 256,128,64,32,16; fpn: 128,64). unet-* "
        "models take five, deepest first; fpn-* models pyramid and head widths.",
    )
    downsample: int = setting(
        1,
        "the network sees images averaged over downsample x downsample blocks (1: native "
        "resolution); its class scores are upsampled back, so crops, windows and outputs stay "
        "in native pixels. 2 costs a quarter of the compute and doubles the context.",
    )
    input_mode: Literal["crop", "resize"] = setting(
        "crop",
        "crop: random crops at native resolution; resize: whole images squashed to resize_to "
        "(the seed notebook's way; predictions are resized back to native size)",
    )
    crop_size: int = setting(256, "crop mode: side of the training crops, native px")
    resize_to: int = setting(256, "resize mode: side of the squashed images, px")
    bands: list[int] | None = setting(
        None,
        "TIFF/GeoTIFF images: the bands (1-based) the network sees, e.g. [3,2,1] for the RGB of"
        " a blue-green-red-NIR product, or [3,2,1,4] for RGB plus near infrared. The first "
        "three meet the pretrained encoder's R, G and B filters; further bands start from "
        "copies of them (timm's adapt_input_conv). None: bands 1-3 of 3-band or RGBA rasters. "
        "Saved in the model, so predict, evaluate and serve read the same bands.",
    )
    pixel_size: float | None = setting(
        None,
        "GeoTIFF images and masks are resampled to square pixels of this size in CRS units "
        "(e.g. 0.5 for 0.5 m in a UTM CRS), so scenes of mixed resolutions train at one; "
        "torchgeo's ``res``. Saved in the model: predict reads new scenes at it too. None: "
        "every raster at its own pixel size",
    )
    ground_resolution: list[float] | None = setting(
        None,
        "the ground resolution the training images had, in metres per pixel, as [finest, "
        "coarsest]: predict warns when an input's pixels are more than 2x outside it. None: "
        "pixel_size's, where that is in metres; else not known (no warning)",
    )
    augment: bool = setting(True, "flips, 90-degree rotations, mild colour jitter")
    scale_range: list[float] | None = setting(
        None,
        "with augment: a crop covers crop_size * s px, s log-uniform in [low, high], resized to"
        " crop_size (scale augmentation); None: crops at native scale only",
    )
    color_jitter: float = setting(
        0.2, "with augment: brightness, contrast and saturation factors drawn in 1 -/+ this"
    )
    class_balanced: float = setting(
        0.0,
        "share of crops cut around a pixel of a class drawn uniformly from the classes (crop "
        "mode), so rare classes are seen as often as common ones; 0: crops uniform over pixels",
    )
    cache_megabytes: float = setting(
        4096.0,
        "scenes with polygon labels are kept decoded in memory while they fit in this many MB "
        "(crops are then slices), else each crop reads its window from the files",
    )
    batch_size: int = setting(8, "crops (or images) per training step")
    samples_per_epoch: int = setting(
        800,
        "crops per epoch (crop mode); an epoch ends with a validation, which on 2 CPU cores "
        "costs about as much as 10 steps, so epochs are 100 steps long",
    )
    max_epochs: int = setting(60, "epochs at most; training stops at whichever limit comes first")
    max_steps: int = setting(-1, "-1: no step limit")
    max_time: str | None = setting(
        None,
        'wall-clock budget "HH:MM:SS" for the whole train command: loading, self-training\'s '
        "labelling (half of it at most), training, the last validation and the confidence "
        "calibration; the schedule anneals within it. None: no time limit",
    )
    optimizer: Literal["adam", "adamw"] = setting(
        "adamw", "adamw: Adam with decoupled weight decay"
    )
    lr: float = setting(1e-3, "learning rate at the start of the schedule")
    encoder_lr_factor: float = setting(1.0, "the pretrained encoder learns at lr * this")
    freeze_bn: bool = setting(
        False,
        "batch norms keep the running statistics the network starts with (init_from's, or "
        "ImageNet's) and learn only their scale and shift: the statistics of a few images' "
        "small batches are noisy. With encoder_lr_factor=0.1 it scored below the default "
        "recipe in a first fine-tuning bench (bench/results/finetune.json, 'superseded': "
        "a faulty split that trained on about half of the 4 images)",
    )
    weight_decay: float = setting(1e-4, "the optimiser's weight decay")
    scheduler: Literal["cosine", "plateau", "none"] = setting(
        "cosine",
        "learning rate schedule. cosine: down to 2 % over the budget (steps, epochs or "
        "max_time); plateau: halved when val mIoU stalls; none: constant",
    )
    plateau_patience: int = setting(
        5, "epochs without val mIoU gain before the LR is cut (plateau)"
    )
    early_stop_patience: int = setting(15, "epochs without val mIoU gain before stopping")
    ema_decay: float = setting(
        0.995,
        "weights validated, checkpointed and shipped: an exponential moving average of the "
        "trained ones with this decay per step (0: off, the raw weights)",
    )
    dice_weight: float = setting(
        1.0, "loss = cross-entropy + dice_weight * Dice + lovasz_weight * Lovasz-softmax"
    )
    focal_gamma: float = setting(
        0.0,
        "> 0: focal loss with this gamma (smp's, per class) in place of the cross-entropy, "
        "which weighs down pixels already right; for rare classes",
    )
    lovasz_weight: float = setting(0.0, "weight of the Lovasz-softmax term in the loss")
    class_weights: list[float] | None = setting(None, "cross-entropy weight per class")
    boundary_ignore: int = setting(
        0,
        "pixels within this many px of another label are left out of the loss, for masks whose "
        "outlines are uncertain; 0: off. On the Dubai data, where the model errs on nearly half"
        " the pixels beside outlines (bench/results/error_sources.json), 1 and 2 px did not "
        "help (recipe-lite0-bignore1.json, -bignore2.json)",
    )
    label_smoothing: float = setting(
        0.0,
        "cross-entropy target smoothing (PyTorch's label_smoothing): the share of each target "
        "spread over all classes, against overconfidence on hand-drawn masks; 0: off",
    )
    cutmix: float = setting(
        0.0,
        "share of training crops that get a box of another crop of the batch pasted in, image "
        "and mask alike (CutMix, box area uniform in 0..1); a regulariser for small datasets. "
        "0: off",
    )
    seed: int = setting(42, "random seed: the same seed and data give the same model on a CPU")
    num_workers: int = setting(0, "data loader processes; 0 is fastest on a 2-core CPU")
    confidence_temperature: float | None = setting(
        None,
        "predict --confidence: probabilities are sharpened or softened by this temperature (p "
        "** (1 / T), renormalised) before the class's is reported. Fitted by training on the "
        "validation images after the run (evaluation/calibration.py); None: 1, as the network "
        "gives them. Class ids do not depend on it",
    )
    window: int = setting(
        512,
        "Sliding windows for validation and prediction. 512 px overlapping by 32 px: faster "
        "than 64 or 128 px of overlap and than 768 or 1024 px windows, at the same validation "
        "mIoU (bench/results/windows.json), and 1.2 GB instead of 1.8 GB on a 10,000 px scene "
        "(predict_memory.json, predict_memory-1024px.json).",
    )
    overlap: float = setting(0.0625, "share of a window that overlaps its neighbour")
    max_unknown: float = setting(0.05, "largest share of unknown mask colours before an error")
    resize_masks: bool = setting(
        False,
        "masks without a georeference (PNG, JPEG) of another size than their image are "
        "resampled to it, nearest "
        "(train --resize-masks); false: such a pair is an error (data inspect lists them all)",
    )
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = setting(
        "auto", "auto: a GPU if any"
    )
    devices: int = setting(1, "GPUs (or CPU processes) to train on with DDP")
    num_nodes: int = setting(1, "machines to train on with DDP")
    precision: str = setting("32-true", "Lightning's precision, e.g. bf16-mixed on a GPU")
    val_every: int = setting(1, "validate every N epochs")
    val_images: int | None = setting(
        None,
        "validate (and calibrate the confidence) on only the first N validation images; None: "
        "all. The smoke preset's 1 checks a set-up end to end in seconds",
    )
    logger: Literal["csv", "tensorboard", "mlflow"] = setting(
        "csv",
        "where metrics go besides the run folder's metrics.csv and training.png (always "
        "written): tensorboard: RUN/logs/version_N/events.*; mlflow: a local MLflow file store "
        "in RUN/mlruns. Both work offline; they need the tracking extra (pip install "
        "'aerialseg[tracking]')",
    )

    @property
    def size_multiple(self) -> int:
        """What crop_size, resize_to and window must be multiples of: the network's stride."""
        return SIZE_MULTIPLE * max(self.downsample, 1)

    def validate(self) -> TrainConfig:
        multiple = self.size_multiple
        checks = [
            (self.downsample in (1, 2, 3, 4), "downsample must be 1, 2, 3 or 4"),
            (
                self.crop_size > 0 and self.crop_size % multiple == 0,
                f"crop_size must be a positive multiple of {multiple}",
            ),
            (
                self.resize_to > 0 and self.resize_to % multiple == 0,
                f"resize_to must be a positive multiple of {multiple}",
            ),
            (
                self.window > 0 and self.window % multiple == 0,
                f"window must be a positive multiple of {multiple}",
            ),
            (
                0 <= self.overlap <= MAX_OVERLAP,
                f"overlap must be 0 to {MAX_OVERLAP}: more predicts each pixel more than twice"
                f" along each axis (a run saved with more resumes with overlap={MAX_OVERLAP})",
            ),
            (0 <= self.color_jitter < 1, "color_jitter must be in [0, 1)"),
            (0 <= self.class_balanced <= 1, "class_balanced must be in [0, 1]"),
            (
                not self.unlabelled or bool(self.init_from),
                "unlabelled= needs init_from=: the model that labels them (e.g. init_from=default)",
            ),
            (
                not self.unlabelled or self.input_mode == "crop",
                "unlabelled= draws crops from the images: use input_mode=crop",
            ),
            (0 < self.pseudo_confidence <= 1, "pseudo_confidence must be in (0, 1]"),
            (0 <= self.drop_path < 1, "drop_path must be in [0, 1)"),
            (0 <= self.boundary_ignore <= 8, "boundary_ignore must be 0 to 8 px"),
            (0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)"),
            (
                self.label_smoothing == 0 or self.focal_gamma == 0,
                "label_smoothing applies to the cross-entropy: use it without focal_gamma",
            ),
            (0 <= self.cutmix <= 1, "cutmix must be in [0, 1]"),
            (
                self.confidence_temperature is None or self.confidence_temperature > 0,
                "confidence_temperature must be positive",
            ),
            (
                self.drop_path == 0 or self.model != "seed-unet",
                "seed-unet takes no drop_path (its encoder has no residual blocks)",
            ),
            (
                self.bands is None or (1 <= len(self.bands) <= MAX_BANDS and min(self.bands) >= 1),
                f"bands must be 1 to {MAX_BANDS} band numbers from 1, e.g. bands=[3,2,1] or"
                " bands=[3,2,1,4]",
            ),
            (
                self.pixel_size is None or self.pixel_size > 0,
                "pixel_size must be positive (CRS units, e.g. metres)",
            ),
            (
                self.ground_resolution is None
                or (
                    len(self.ground_resolution) == 2
                    and 0 < self.ground_resolution[0] <= self.ground_resolution[1]
                ),
                "ground_resolution must be [finest, coarsest] in metres, e.g. [1.0, 2.5]",
            ),
            (
                self.batch_size > 0
                and (self.samples_per_epoch < 1 or self.batch_size <= self.samples_per_epoch),
                "batch_size must be positive and at most samples_per_epoch",
            ),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (self.base_width >= 1, "base_width must be positive"),
            (self.samples_per_epoch >= 1, "samples_per_epoch must be positive"),
            (self.max_epochs >= 1, "max_epochs must be positive"),
            (self.val_every >= 1, "val_every must be 1 or more epochs"),
            (self.weight_decay >= 0, "weight_decay must be 0 or more"),
            (self.dice_weight >= 0 and self.lovasz_weight >= 0, "loss weights must be 0 or more"),
            (
                self.class_weights is None
                or (
                    min(self.class_weights, default=0) >= 0
                    and max(self.class_weights, default=0) > 0
                ),
                "class_weights must be 0 or more, one of them above 0",
            ),
            (0 <= self.num_workers <= 256, "num_workers must be in 0..256"),
            (self.plateau_patience >= 1, "plateau_patience must be 1 or more"),
            (self.early_stop_patience >= 1, "early_stop_patience must be 1 or more"),
            (self.cache_megabytes >= 0, "cache_megabytes must be 0 or more"),
            (0 <= self.seed < 2**32, "seed must be in [0, 2**32)"),
            (
                self.precision in PRECISIONS,
                f"precision must be one of Lightning's: {', '.join(PRECISIONS)}",
            ),
            (
                self.max_steps == -1 or self.max_steps > 0,
                "max_steps must be -1 (no limit) or a positive number of steps",
            ),
            (self.val_images is None or self.val_images > 0, "val_images must be positive"),
            (0 < self.lr <= 10, "lr must be above 0 and at most 10"),  # 1e300: inf in Adam
            (self.focal_gamma >= 0, "focal_gamma must be 0 (off) or positive"),
            (self.encoder_lr_factor > 0, "encoder_lr_factor must be positive"),
            (0 <= self.ema_decay < 1, "ema_decay must be in [0, 1)"),
            (0 <= self.max_unknown <= 1, "max_unknown must be in [0, 1]"),
            (
                self.scale_range is None
                or (len(self.scale_range) == 2 and 0 < self.scale_range[0] <= self.scale_range[1]),
                "scale_range must be [low, high] with 0 < low <= high",
            ),
            (
                0 < self.devices <= 4096 and 0 < self.num_nodes <= 100_000,
                "devices and num_nodes must be positive (devices at most 4096, num_nodes 100000)",
            ),
        ]
        if self.decoder_channels is not None:
            count = len(DEFAULT_DECODER_CHANNELS.get(self.model, []))
            checks.append(
                (
                    count > 0
                    and len(self.decoder_channels) == count
                    and all(width > 0 for width in self.decoder_channels),
                    f"decoder_channels for {self.model} must be {count} positive widths"
                    if count
                    else f"{self.model} takes no decoder_channels",
                )
            )
            if self.model.startswith("fpn") and count == len(self.decoder_channels):
                # smp's FPN head normalises with 32-group GroupNorm.
                checks.append(
                    (
                        self.decoder_channels[1] % 32 == 0,
                        "decoder_channels: the FPN head width must be a multiple of 32",
                    )
                )
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if self.max_time is not None:
            parse_duration(self.max_time)
        return self

    @property
    def band_tuple(self) -> tuple[int, ...] | None:
        """``bands`` in the form the raster readers take."""
        return tuple(self.bands) if self.bands else None

    @property
    def in_channels(self) -> int:
        """How many bands the network takes."""
        return len(self.bands) if self.bands else 3

    @property
    def spec(self) -> ModelSpec:
        """What a model trained by this config needs to predict: saved in its model file,
        which loads by it alone (models/spec.py); the rest of the config is the recipe."""
        return ModelSpec.from_dict(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"a training config is a mapping of settings, not {data!r:.40}")
        config = cls()
        for key, value in data.items():
            _set_field(config, key, value)
        return config.validate()

    def save(self, path: Path) -> None:
        path.write_text(dump_yaml(self.to_dict()))


@dataclass(frozen=True)
class Preset:
    """A named starting point: what it is for, and the settings it changes, each with the
    reason it has that value (``--list-settings`` prints them)."""

    about: str
    settings: dict[str, tuple[Any, str]]  # setting -> (value, why)

    @property
    def values(self) -> dict[str, Any]:
        return {key: value for key, (value, _) in self.settings.items()}


_NOTEBOOK = "as the original notebook"
PRESETS: dict[str, Preset] = {
    "default": Preset(
        "FPN on a pretrained encoder, native-resolution crops, weights averaged (EMA)", {}
    ),
    "seed": Preset(
        "the original notebook: its U-Net, squashed 256x256 images, Adam, reduce-LR-on-plateau",
        {
            "model": ("seed-unet", _NOTEBOOK),
            "pretrained": (False, "the notebook's U-Net has no pretrained encoder"),
            "ema_decay": (0.0, _NOTEBOOK),
            "input_mode": ("resize", _NOTEBOOK),
            "augment": (False, _NOTEBOOK),
            "batch_size": (16, _NOTEBOOK),
            "optimizer": ("adam", _NOTEBOOK),
            "lr": (1e-3, _NOTEBOOK),
            "weight_decay": (0.0, _NOTEBOOK),
            "scheduler": ("plateau", _NOTEBOOK),
            "max_epochs": (100, _NOTEBOOK),
            "early_stop_patience": (20, _NOTEBOOK),
        },
    ),
    "smoke": Preset(
        "the default recipe for a few steps, validated on one image: checks data, classes,"
        " bands and the run folder end to end in seconds before a long run; not a model to use",
        {
            "max_epochs": (1, "one validation, at the epoch's end, shows that scoring runs"),
            # not max_steps=4: at another batch_size it ended the run before its one
            # validation (a review)
            "samples_per_epoch": (32, "an epoch of 4 steps at the default batch_size of 8"),
            "val_images": (1, "validation in seconds"),
        },
    ),
    "finetune": Preset(
        "fine-tuning a trained model (the bundled one unless init_from= names another) on a"
        " few labelled images of a new region, validated on held-back blocks of them ('data"
        " split --block-size'); bench/finetune.py measures it",
        {
            "init_from": ("default", "the bundled model: start from what it knows"),
            "samples_per_epoch": (
                160,
                "a validation every 20 steps, so that the early stop acts within minutes",
            ),
            "early_stop_patience": (
                5,
                "stop after 5 validations (100 steps) without a gain on the region's"
                " held-back pixels: more steps would fit the few labelled images",
            ),
            "max_time": ("00:10:00", "a budget that fits the work: 10 CPU minutes at most"),
        },
    ),
}


def duration_text(value: str | float | timedelta) -> str:
    """A budget given as ``"HH:MM:SS"``, seconds or a ``timedelta`` -> ``"HH:MM:SS"``."""
    if isinstance(value, str):
        parse_duration(value)
        return value
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    finite = isinstance(seconds, int | float) and math.isfinite(seconds)
    if isinstance(seconds, bool) or not finite or not seconds >= 0:
        raise ConfigError(f"max_time {value!r}: give seconds, a datetime.timedelta or 'HH:MM:SS'")
    whole = math.ceil(seconds)
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def parse_duration(text: str) -> int:
    """ "HH:MM:SS" or "MM:SS" or seconds -> seconds (0: one step, then the model)."""
    # ASCII digits only: int() also reads "1_0" and other scripts' digits (a review)
    if not re.fullmatch(r"[0-9]+(:[0-9]+){0,2}", str(text).strip()):
        raise ConfigError(f"max_time {text!r} is not HH:MM:SS, MM:SS or seconds, e.g. 01:30:00")
    parts = [int(p) for p in str(text).strip().split(":")]
    if any(p > 59 for p in parts[1:]):
        raise ConfigError(f"max_time {text!r} is not HH:MM:SS (minutes and seconds 0 to 59)")
    seconds = 0
    for p in parts:
        seconds = seconds * 60 + p
    return seconds


def _coerce(value: Any, kind: Any, key: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        options = [k for k in typing.get_args(kind) if k is not type(None)]
        return _coerce(value, options[0], key)
    if value is None:
        raise ConfigError(f"{key} needs a value")
    if origin is Literal:
        allowed = typing.get_args(kind)
        if value not in allowed:
            raise ConfigError(f"{key}={value!r} is not one of: {', '.join(map(str, allowed))}")
        return value
    if origin is list:
        if not isinstance(value, list):
            example = "[1,2]" if typing.get_args(kind) == (int,) else "[1.0,2.0]"
            raise ConfigError(f"{key} must be a list, e.g. {key}={example}")
        (item,) = typing.get_args(kind)
        return [_coerce(v, item, key) for v in value]
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false")
        return value
    if kind is float:
        if isinstance(value, str):
            # a number written as text, in Python settings ({"lr": "3e-4"}), read as a
            # key=value setting is: float() also took '1_0' and other scripts' digits
            try:
                parsed = load_yaml(value)
            except yaml.YAMLError:
                parsed = value
            if isinstance(parsed, str) and value.strip().lower() in ("inf", "-inf", "nan"):
                raise ConfigError(f"{key}={value.strip()} must be a finite number")
            value = parsed
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ConfigError(f"{key}={value!r} must be a number")
        if not math.isfinite(value):
            raise ConfigError(f"{key}={value!r} must be a finite number")
        return float(value)
    if kind is int and isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)  # numpy's integers too
    if kind is int:
        raise ConfigError(f"{key}={value!r} must be a whole number, written in digits: 10000")
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(
                f"{key}={value!r} must be text; in a config file, quote it: {key}: '{value}'"
            )
        return value
    raise TypeError(f"setting {key}: no rule reads a value of type {kind}")  # a new field's kind


_HINTS = typing.get_type_hints(TrainConfig)


# What other tools call some settings, where no spelling of ours is close (difflib)
OTHER_NAMES = {
    "learning_rate": "lr",
    "epochs": "max_epochs",
    "steps": "max_steps",
    "patience": "early_stop_patience",
    "tile_size": "window",
    "patch_size": "crop_size",
    "architecture": "model",
}


def _set_field(config: TrainConfig, key: str, value: Any) -> None:
    if not isinstance(key, str):
        raise ConfigError(f"{key!r} is not a setting name (aerialseg train --list-settings)")
    if key not in _HINTS:
        close = [OTHER_NAMES[key]] if key in OTHER_NAMES else []
        close = close or difflib.get_close_matches(key, list(_HINTS), n=1)
        guess = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(  # a review: without a close name, all 60 on one line
            f"unknown setting {key!r}{guess} (aerialseg train --list-settings lists them all)"
        )
    setattr(config, key, _coerce(value, _HINTS[key], key))


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["lr=3e-4", "bands=[3,2,1]"]`` -> ``{"lr": "3e-4", "bands": [3, 2, 1]}``: each value
    read as YAML (an empty one as None); types are checked when the config is built."""
    data: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not key=value")
        if not text.strip() or (_HINTS.get(key) == str | None and text.strip() == "null"):
            data[key] = None  # "null" as --list-settings and --print-config write None
        elif _HINTS.get(key) in (str, str | None):
            data[key] = text  # a path or a glob as typed: YAML would read 'v #2' as 'v'
        else:
            try:
                data[key] = load_yaml(text)
            except yaml.YAMLError as err:
                problem = getattr(err, "problem", None) or "not valid YAML"
                raise ConfigError(
                    f"{item!r}: {problem}; quote the whole setting for the shell, e.g."
                    " 'bands=[3,2,1]'"
                ) from None
    return data


def resolve_config(
    preset: str = "default",
    config_file: str | Path | None = None,
    overrides: list[str] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> TrainConfig:
    """Preset, then the config file, then ``key=value`` overrides, then ``settings`` (typed
    values by key, as the Python API takes them: ``max_time`` also as seconds or a
    ``timedelta``), each over the last."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
    data: dict[str, Any] = PRESETS[preset].values
    if config_file is not None:
        path = Path(config_file)
        try:
            loaded = load_yaml(read_bounded(path).decode("utf-8-sig"))
        except OSError as err:
            raise ConfigError(f"cannot read config {path}: {err.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"config {path} is not UTF-8 text") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"config {path} is not valid YAML: {parse_reason(err)}") from None
        loaded = {} if loaded is None else loaded  # an empty file
        if not isinstance(loaded, dict):
            raise ConfigError(f"config {path} must be a mapping of keys to values")
        data.update(loaded)
    data.update(parse_overrides(overrides or []))
    if settings is not None and not isinstance(settings, Mapping):  # a review: TypeError
        raise ConfigError(
            f"settings={shown(settings)}: give a mapping of setting names to values, e.g."
            " {'max_epochs': 5}"
        )
    data.update(settings or {})
    if (settings or {}).get("max_time") is not None:  # as train(max_time=) takes it
        data["max_time"] = duration_text(settings["max_time"])  # type: ignore[index]
    return TrainConfig.from_dict(data)
