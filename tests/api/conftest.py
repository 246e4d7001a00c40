from __future__ import annotations

import pytest

from aerialseg.api.app import LoadedEngine, ServeLimits, create_app
from aerialseg.models.io import load_model


@pytest.fixture(scope="session")
def loaded(tiny_model) -> LoadedEngine:
    model = load_model(tiny_model)
    return LoadedEngine(model.net, model.config, model.classes, model.meta)


@pytest.fixture
def app(loaded):
    return create_app(loaded, ServeLimits(max_upload_bytes=2_000_000, max_pixels=1_000_000))
