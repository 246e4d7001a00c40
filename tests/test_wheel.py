"""``python -m build`` makes a wheel that installs into a fresh virtual environment and runs
``aerialseg predict`` with the bundled model, which must travel inside it.

The fresh environment is made without pip and torch: the wheel goes in with ``pip
--python NEW --no-deps --no-index`` (nothing is downloaded), and a ``.pth`` file puts this
project's site-packages after the new environment's own, so the pinned torch and the other
dependencies are found without installing 2 GB again. ``.pth`` lines add a folder to the
path without running the ``.pth`` files inside it, so the editable install of the working
tree stays out: ``aerialseg`` is imported from the wheel, which the test checks.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio

from aerialseg.cli import main
from tests.helpers.geotiff import write_geotiff
from tests.helpers.images import rgb_scene
from tests.helpers.paths import REPO


def run(*args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(list(map(str, args)), cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel ``python -m build`` makes of a copy of the project (no build/ or
    egg-info left in the working tree)."""
    src = tmp_path_factory.mktemp("project")
    shutil.copy(REPO / "pyproject.toml", src)
    shutil.copy(REPO / "README.md", src)
    shutil.copytree(
        REPO / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    dist = tmp_path_factory.mktemp("dist")
    # --no-isolation: build with this environment's setuptools instead of downloading one
    run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", dist, src)
    (found,) = dist.glob("aerialseg-*.whl")
    return found


def test_the_wheel_carries_the_package_data_and_nothing_else(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for data in (
        "aerialseg/assets/default-model.pt",
        "aerialseg/assets/MODEL_CARD.md",
        "aerialseg/api/static/index.html",
        "aerialseg/py.typed",
        "aerialseg/public.py",
    ):
        assert data in names, data
    assert not [n for n in names if n.startswith(("tests/", "bench/", "docs/"))]
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "Requires-Dist: torch>=" in text and "Provides-Extra: serve" in text
    entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "aerialseg = aerialseg.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


def test_the_wheel_installs_and_predicts_with_the_bundled_model(wheel, tmp_path):
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    new_site = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    (Path(new_site.stdout.strip()) / "project-deps.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n"
    )
    pip = [sys.executable, "-m", "pip", "--python", python, "install", "-q"]
    run(*pip, "--no-deps", "--no-index", "--disable-pip-version-check", wheel)

    where = run(python, "-c", "import aerialseg; print(aerialseg.__file__)", cwd=tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(venv)

    scene = write_geotiff(tmp_path / "scene.tif", rgb_scene(120, 150))
    run(
        venv / "bin" / "aerialseg",
        "predict",
        scene,
        "--out",
        "out",
        "--device",
        "cpu",
        cwd=tmp_path,
    )
    assert main(["predict", str(scene), "--out", str(tmp_path / "dev"), "--device", "cpu"]) == 0
    with (
        rasterio.open(tmp_path / "out" / "scene_classes.tif") as installed,
        rasterio.open(tmp_path / "dev" / "scene_classes.tif") as dev,
    ):
        assert installed.crs == dev.crs
        assert np.array_equal(installed.read(1), dev.read(1))
