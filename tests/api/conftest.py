from __future__ import annotations

import pytest
import torch
from torch import nn

from aerialseg.api.app import ServeLimits, create_app, load_for_serving
from aerialseg.data.classes import DUBAI_CLASSES
from aerialseg.inference.predict import Predictor
from aerialseg.models.network import SegmentationNet
from aerialseg.models.spec import ModelSpec


@pytest.fixture(scope="session")
def loaded(tiny_model) -> Predictor:
    # As `aerialseg serve` loads it: the precision `predict` picks on this machine too.
    return load_for_serving(tiny_model)


@pytest.fixture
def app(loaded):
    return create_app(loaded, ServeLimits(max_upload_bytes=2_000_000, max_pixels=1_000_000))


@pytest.fixture(scope="session")
def pointwise() -> Predictor:
    """A 1x1 convolution in place of a trained network, for tests of the upload limits:
    the service around the model is under test there, not the model."""
    torch.manual_seed(0)
    net = SegmentationNet(nn.Conv2d(3, 6, 1), [0.0] * 3, [255.0] * 3, 1).eval()
    return Predictor(net, ModelSpec("fpn-effnet-lite0", window=64), DUBAI_CLASSES)
