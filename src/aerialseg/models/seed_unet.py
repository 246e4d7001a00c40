"""The seed notebook's U-Net, in PyTorch, kept as the baseline."""

from __future__ import annotations

import torch
from torch import nn


def _double_conv(in_ch: int, out_ch: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
        nn.Dropout2d(dropout),
        nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class SeedUNet(nn.Module):
    """Encoder-decoder with skip connections; widths base, 2*base, ... 16*base.

    Input height and width must be multiples of 16 (four 2x poolings).
    """

    depth = 4

    def __init__(
        self, num_classes: int, in_channels: int = 3, base_width: int = 16, dropout: float = 0.2
    ):
        super().__init__()
        widths = [base_width * 2**i for i in range(self.depth + 1)]
        self.down = nn.ModuleList()
        prev = in_channels
        for w in widths[:-1]:
            self.down.append(_double_conv(prev, w, dropout))
            prev = w
        self.pool = nn.MaxPool2d(2)
        self.bottom = _double_conv(widths[-2], widths[-1], dropout + 0.1)
        self.up = nn.ModuleList()
        self.up_conv = nn.ModuleList()
        for w_low, w_skip in zip(widths[:0:-1], widths[-2::-1], strict=True):
            self.up.append(nn.ConvTranspose2d(w_low, w_skip, 2, stride=2))
            self.up_conv.append(_double_conv(2 * w_skip, w_skip, dropout))
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for up, conv, skip in zip(self.up, self.up_conv, reversed(skips), strict=True):
            x = conv(torch.cat([up(x), skip], dim=1))
        return self.head(x)  # logits; softmax is applied at inference
