from __future__ import annotations

import pytest

from aerialseg.api.app import LoadedEngine, ServeLimits, create_app, load_engine


@pytest.fixture(scope="session")
def loaded(tiny_model) -> LoadedEngine:
    # As `aerialseg serve` loads it: the precision `predict` picks on this machine too.
    return load_engine(tiny_model)


@pytest.fixture
def app(loaded):
    return create_app(loaded, ServeLimits(max_upload_bytes=2_000_000, max_pixels=1_000_000))
