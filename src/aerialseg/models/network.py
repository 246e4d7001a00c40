"""The network as shipped: input normalisation + segmentation model, in one module.

Putting normalisation inside the module means every caller (training, sliding-window
prediction, ONNX export) feeds raw 0-255 RGB and cannot forget or double it.
"""

from __future__ import annotations

import torch
from torch import nn

from aerialseg.models.factory import STRIDE, create_model

# TF EfficientNet-Lite weights were trained on inputs scaled to [-1, 1] (timm's
# pretrained config for tf_efficientnet_lite0: mean = std = 0.5).
LITE_MEAN = (127.5, 127.5, 127.5)
LITE_STD = (127.5, 127.5, 127.5)
# The seed notebook scaled pixels to [0, 1].
UNIT_MEAN = (0.0, 0.0, 0.0)
UNIT_STD = (255.0, 255.0, 255.0)


def normalization_for(model: str) -> dict[str, list[float]]:
    mean, std = (UNIT_MEAN, UNIT_STD) if model == "seed-unet" else (LITE_MEAN, LITE_STD)
    return {"mean": list(mean), "std": list(std)}


class SegmentationNet(nn.Module):
    """(N, 3, H, W) float RGB in 0..255 -> (N, C, H, W) logits."""

    def __init__(self, model: nn.Module, mean: list[float], std: list[float], stride: int):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))
        self.stride = stride  # input sides must be multiples of this

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


def build_network(
    name: str,
    num_classes: int,
    *,
    pretrained: bool,
    base_width: int = 16,
    dropout: float = 0.2,
    decoder_channels: list[int] | None = None,
) -> SegmentationNet:
    model = create_model(
        name,
        num_classes,
        pretrained=pretrained,
        base_width=base_width,
        dropout=dropout,
        decoder_channels=decoder_channels,
    )
    norm = normalization_for(name)
    return SegmentationNet(model, norm["mean"], norm["std"], STRIDE[name])
