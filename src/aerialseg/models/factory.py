"""Build a model by name. Unknown names fail with the list of valid ones."""

from __future__ import annotations

from typing import cast

import segmentation_models_pytorch as smp
from torch import nn

from aerialseg.errors import ConfigError
from aerialseg.models.names import (
    DEFAULT_DECODER_CHANNELS,
    MODEL_NAMES,
)
from aerialseg.models.pretrained import WEIGHTS, Variant, load_imagenet_into
from aerialseg.models.seed_unet import SeedUNet


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
