"""Model files for tests: a tiny one trained for a few seconds; and stub networks."""

from __future__ import annotations

from pathlib import Path

import torch

from aerialseg.data.classes import DUBAI_CLASSES
from aerialseg.training.config import resolve_config

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


def train_tiny_model(data: Path, out: Path) -> Path:
    """A tiny model trained for a few seconds on ``data`` (a write_dataset folder): a real
    convolutional network whose predictions vary with the image; returns its model.pt."""
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
