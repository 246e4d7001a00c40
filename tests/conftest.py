"""Fixtures (thin wrappers of the builders in tests/helpers) and the slow-module list."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from tests.helpers.geotiff import write_geotiff
from tests.helpers.images import rgb_scene, write_dataset
from tests.helpers.models import train_tiny_model, write_tiny_model
from tests.helpers.paths import REPO

# Property tests: 50 examples each in the suite; bench/mutation.py runs them once per
# mutant, with fewer and always the same (HYPOTHESIS_PROFILE=mutation).
settings.register_profile("default", max_examples=50, deadline=None)
settings.register_profile("mutation", max_examples=10, deadline=None, derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# Modules whose tests are slow by nature (a wheel build, DDP, a browser, QGIS, the docs'
# examples, Ray, whole training runs): marked ``slow``, so that -m "not slow" is a quick
# inner loop. One list here rather than a mark in each file.
SLOW_MODULES = {
    "tests/test_wheel.py",
    "tests/test_docs.py",
    "tests/training/test_ddp.py",
    "tests/training/test_run.py",
    "tests/api/test_page.py",
    "tests/inference/test_qgis.py",
    "tests/inference/test_distributed.py",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.relative_to(REPO).as_posix() in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """Read-only tiny dataset shared by tests that do not modify it."""
    return write_dataset(tmp_path_factory.mktemp("tiny") / "Semantic segmentation dataset")


@pytest.fixture
def fresh_dataset(tmp_path) -> Path:
    """A tiny dataset a test may damage."""
    return write_dataset(tmp_path / "ds")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """An untrained seed-unet of width 4 with 64 px windows (helpers/models.py), written in
    a fraction of a second: for tests of what is done with a model, not of what it learnt."""
    return write_tiny_model(tmp_path_factory.mktemp("model") / "model.pt")


@pytest.fixture(scope="session")
def trained_model(tiny_dataset, tmp_path_factory) -> Path:
    """The tiny model trained for a few seconds on the synthetic tiles: for tests that need
    weights that have learnt something (a fitted temperature, a validation score)."""
    return train_tiny_model(tiny_dataset, tmp_path_factory.mktemp("trained") / "run")


@pytest.fixture
def geotiff(tmp_path) -> Path:
    return write_geotiff(tmp_path / "scene.tif", rgb_scene(150, 200))
