"""Build a model by name. Unknown names fail with the list of valid ones."""

from __future__ import annotations

from typing import Literal, cast, get_args

import segmentation_models_pytorch as smp
from torch import nn

from aerialseg.errors import ConfigError
from aerialseg.models.pretrained import WEIGHTS, Variant, load_imagenet_into
from aerialseg.models.seed_unet import SeedUNet

ModelName = Literal[
    "seed-unet", "unet-effnet-lite0", "fpn-effnet-lite0", "unet-effnet-lite2", "fpn-effnet-lite2"
]
MODEL_NAMES: tuple[str, ...] = get_args(ModelName)

# Input sides must be multiples of this for each model (its total downsampling).
STRIDE = {name: 16 if name == "seed-unet" else 32 for name in MODEL_NAMES}

# Where each model keeps its first convolution (which sees the bands) and its class head
# (one output row per class), as state-dict prefixes: what fine-tuning adapts.
STEM = {
    name: "down.0.0.weight" if name == "seed-unet" else "encoder.model.conv_stem.weight"
    for name in MODEL_NAMES
}
CLASS_HEAD = {
    name: "head." if name == "seed-unet" else "segmentation_head.0." for name in MODEL_NAMES
}

# Decoder widths when a config gives none. U-Net: five stages, deepest first (smp's).
# FPN: pyramid and segmentation-head widths, half of smp's 256/128: on 2 CPU cores a
# 512 px window predicts 1.8x and a batch trains 1.5x faster than with smp's widths
# (bench/results/architectures.json).
DEFAULT_DECODER_CHANNELS = {
    name: [256, 128, 64, 32, 16] if name.startswith("unet") else [128, 64]
    for name in MODEL_NAMES
    if name != "seed-unet"
}


def create_model(
    name: str,
    num_classes: int,
    *,
    in_channels: int = 3,
    pretrained: bool = True,
    base_width: int = 16,
    dropout: float = 0.2,
    decoder_channels: list[int] | None = None,
    drop_path: float = 0.0,
) -> nn.Module:
    """A segmentation network returning (N, num_classes, H, W) logits.

    Args:
        name: one of MODEL_NAMES.
        num_classes: output channels.
        in_channels: input bands; a pretrained encoder's first convolution is adapted to
            other counts than 3 (models/pretrained.py).
        pretrained: load ImageNet encoder weights (ignored by seed-unet). Off when the
            weights are about to be replaced from a model file anyway.
        base_width: seed-unet's first block width.
        dropout: seed-unet's dropout.
        decoder_channels: decoder widths (None: DEFAULT_DECODER_CHANNELS): five for the
            unet-* models, deepest first; pyramid and head widths for the fpn-* models.
        drop_path: the encoder's stochastic depth rate (timm's drop_path_rate).
    """
    if name == "seed-unet":
        return SeedUNet(num_classes, in_channels, base_width=base_width, dropout=dropout)
    if name not in MODEL_NAMES:
        raise ConfigError(f"unknown model {name!r}; valid models: {', '.join(MODEL_NAMES)}")
    decoder, _, variant = name.split("-")  # "fpn-effnet-lite2" -> fpn, lite2
    encoder = f"tu-{WEIGHTS[variant].timm_name}"
    model: nn.Module
    if decoder == "unet":
        widths = decoder_channels or DEFAULT_DECODER_CHANNELS[name]
        model = smp.Unet(
            encoder,
            encoder_weights=None,
            in_channels=in_channels,
            classes=num_classes,
            decoder_channels=tuple(widths),
            drop_path_rate=drop_path,
        )
    else:
        # Predicts at 1/4 resolution and upsamples the logits 4x (bilinear).
        pyramid, head = decoder_channels or DEFAULT_DECODER_CHANNELS[name]
        model = smp.FPN(
            encoder,
            encoder_weights=None,
            in_channels=in_channels,
            classes=num_classes,
            decoder_pyramid_channels=pyramid,
            decoder_segmentation_channels=head,
            drop_path_rate=drop_path,
        )
    if pretrained:
        timm_encoder = model.get_submodule("encoder.model")  # smp's "tu-" wrapper holds it
        load_imagenet_into(timm_encoder, cast(Variant, variant))
    return model
