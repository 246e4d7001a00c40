"""Model files for tests: an untrained tiny one, written in milliseconds, for tests of
what is done with a model (predict, serve, export, evaluate); a trained tiny one where a
test needs a model that has learnt something; and stub networks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aerialseg.data.classes import DUBAI_CLASSES, ClassTable
from aerialseg.models.io import save_model
from aerialseg.models.network import SegmentationNet, build_network
from aerialseg.training.config import resolve_config
from tests.helpers.images import rgb_scene

# A seed-unet of width 4 with 64 px windows: a real convolutional network, small and fast.
TINY_SETTINGS = [
    "model=seed-unet",
    "pretrained=false",
    "base_width=4",
    "crop_size=64",
    "window=64",
    "overlap=0.5",
]


# Settings of a training run of a few seconds on tiny data (train tests add their own).
FAST = [
    "model=seed-unet",
    "pretrained=false",
    "base_width=4",
    "crop_size=32",
    "window=64",
    "batch_size=4",
    "samples_per_epoch=8",
    "accelerator=cpu",
]


def write_tiny_model(
    path: Path,
    settings: Sequence[str] = (),
    classes: ClassTable = DUBAI_CLASSES,
    meta: dict[str, Any] | None = None,
    seed: int = 0,
) -> Path:
    """An untrained model file: TINY_SETTINGS (then ``settings``) with random weights drawn
    from ``seed``. Its batch-norm statistics are those of a few synthetic images (no weight
    is trained): with the initial ones every pixel of a scene got the same class. Takes
    0.05 s; training the tiny model (train_tiny_model) 1.6 s, 2.9 s of CPU time."""
    # A temperature as training fits one into every model file it writes.
    cfg = resolve_config("default", None, [*TINY_SETTINGS, "confidence_temperature=0.8", *settings])
    with torch.random.fork_rng():  # leaves the caller's random stream as it was
        torch.manual_seed(seed)
        net = build_network(
            cfg.model,
            classes.num_classes,
            pretrained=False,
            base_width=cfg.base_width,
            dropout=cfg.dropout,
            decoder_channels=cfg.decoder_channels,
            downsample=cfg.downsample,
            in_channels=cfg.in_channels,
        )
        calibrate_batchnorms(net, seed)
    save_model(path, net.eval(), cfg.spec, classes, meta, recipe=cfg.to_dict())
    return path


def calibrate_batchnorms(net: torch.nn.Module, seed: int = 0) -> None:
    """Set the batch norms' running statistics to those of 8 synthetic 64 px scenes."""
    bands = net.in_channels if isinstance(net, SegmentationNet) else 3
    scenes = np.stack([rgb_scene(64, 64, seed=seed + k) for k in range(8)])
    x = torch.from_numpy(np.resize(scenes, (8, bands, 64, 64))).float()
    for module in net.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a plain average over this one batch
    net.train()
    with torch.no_grad():
        net(x)
    net.eval()


def train_tiny_model(data: Path, out: Path) -> Path:
    """A tiny model trained for a few seconds on ``data`` (a write_dataset folder), for tests
    that need weights that have learnt something; returns its model.pt."""
    from aerialseg.training.run import train

    cfg = resolve_config(
        "default",
        None,
        [
            *TINY_SETTINGS,
            "ema_decay=0",  # over a few steps an average stays near the random start
            "batch_size=8",
            "samples_per_epoch=64",
            "max_epochs=4",
            "lr=0.01",
            "accelerator=cpu",
        ],
    )
    return train(cfg, data, out, classes=DUBAI_CLASSES)


class BatchRecorder(torch.nn.Module):
    """A 1x1 convolution (an engine of stride 1) that notes how many windows each forward
    pass is given."""

    stride = 1

    def __init__(self, classes: int = 2):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, classes, 1)
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(x.shape[0])
        return self.conv(x)
