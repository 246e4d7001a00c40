"""Every input form works in every data command: data inspect, data split (random and by
blocks), train, evaluate and predict, through the CLI, on small built data (issue 28).

The forms: a folder of pairs in each layout, CSV and YAML manifests, a zip, GeoTIFF pairs,
a raster with a class raster, a raster with polygons, a folder of rasters, a glob, and a
URL over a local HTTP server that answers range requests."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml

from aerialseg.cli import main
from aerialseg.data.layouts import LAYOUTS
from tests.helpers.geodata import (
    POLYGON_CLASSES,
    class_boxes,
    class_ids_of,
    scene_transform,
    write_polygons,
    write_scene,
)
from tests.helpers.geotiff import VALUE_CLASSES, write_geotiff, write_geotiff_dataset
from tests.helpers.http_files import serve_folder
from tests.helpers.images import write_dataset, zip_folder
from tests.helpers.models import FAST

QUICK = [*FAST, "samples_per_epoch=4", "max_epochs=1"]


@dataclass
class Form:
    """A dataset as one input form: what --data says, the flags it needs, an image to
    predict, and whether it is one scene (split by blocks to train)."""

    data: str
    flags: list[str] = field(default_factory=list)
    image: str = ""
    one_scene: bool = False
    settings: list[str] = field(default_factory=list)


def _pairs(tmp: Path, layout) -> Form:
    root = write_dataset(tmp / "raw", tiles=1, parts=6)
    flat = tmp / "ds"
    (flat / layout.images).parent.mkdir(parents=True, exist_ok=True)
    shutil.move(root / "Tile 1" / "images", flat / layout.images)
    shutil.move(root / "Tile 1" / "masks", flat / layout.masks)
    return Form(str(flat), image=str(flat / layout.images / "image_part_001.jpg"))


def _manifest(tmp: Path, suffix: str) -> Form:
    root = write_dataset(tmp / "ds", tiles=1, parts=6)
    rows = [
        {
            "image": f"Tile 1/images/image_part_00{k}.jpg",
            "label": f"Tile 1/masks/image_part_00{k}.png",
        }
        for k in range(1, 7)
    ]
    manifest = root / f"pairs.{suffix}"
    if suffix == "csv":
        manifest.write_text("image,label\n" + "".join(f"{r['image']},{r['label']}\n" for r in rows))
    else:
        manifest.write_text(yaml.safe_dump(rows))
    return Form(str(manifest), image=str(root / rows[0]["image"]))


def _zip(tmp: Path) -> Form:
    root = write_dataset(tmp / "ds", tiles=2, parts=3)
    archive = zip_folder(root, tmp / "archive.zip")
    shutil.rmtree(root)
    inside = f"/vsizip/{archive}/ds/Tile 1/images/image_part_001.jpg"  # predict reads it in place
    return Form(str(archive), image=inside)


def _geotiff_pairs(tmp: Path) -> Form:
    root = write_geotiff_dataset(tmp / "own", parts=6)
    table = tmp / "classes.yaml"
    table.write_text(yaml.safe_dump(VALUE_CLASSES))
    image = str(root / "images" / "scene_0.tif")
    return Form(str(root), ["--classes", str(table)], image, settings=["bands=[3,2,1]"])


def _scene(folder: Path, name: str, seed: int, origin_shift: float = 0.0):
    h, w = 160, 200
    origin = (300_000.0 + origin_shift, 2_790_000.0)
    boxes = class_boxes(h, w, seed=seed, origin=origin)
    transform = scene_transform(origin)
    truth = class_ids_of(boxes, h, w, transform)
    write_scene(folder / name, truth, transform)
    return boxes, truth, transform


def _polygon_classes(tmp: Path) -> str:
    table = tmp / "classes.yaml"
    table.write_text(yaml.safe_dump(POLYGON_CLASSES))
    return str(table)


def _rasters_with_polygons(tmp: Path, how: str) -> Form:
    folder = tmp / "scenes"
    folder.mkdir()
    boxes = []
    for k in range(1 if how == "raster" else 3):
        boxes += _scene(folder, f"s{k}.tif", seed=k, origin_shift=k * 120.0)[0]
    labels = write_polygons(tmp / "labels.gpkg", boxes)
    flags = ["--labels", str(labels), "--label-field", "class", "--classes", _polygon_classes(tmp)]
    data = {"raster": folder / "s0.tif", "folder": folder, "glob": folder / "s*.tif"}
    return Form(
        str(data.get(how, folder / "s0.tif")), flags, str(folder / "s0.tif"), how == "raster"
    )


def _raster_with_class_raster(tmp: Path) -> Form:
    folder = tmp / "scenes"
    folder.mkdir()
    _, truth, transform = _scene(folder, "s0.tif", seed=3)
    values = np.array([1, 7, 3, 4], np.uint8)[truth]  # Road is mask_value 7 in the table
    table = {"classes": [dict(c, mask_value=c.get("mask_value", k + 1))
                         for k, c in enumerate(POLYGON_CLASSES["classes"])]}  # fmt: skip
    (tmp / "classes.yaml").write_text(yaml.safe_dump(table))
    classes = write_geotiff(tmp / "classes.tif", values[None], transform=transform)
    flags = ["--labels", str(classes), "--classes", str(tmp / "classes.yaml")]
    return Form(str(folder / "s0.tif"), flags, str(folder / "s0.tif"), one_scene=True)


FORMS = {
    **{
        f"pairs-{layout.images}-{layout.masks}": (lambda t, x=layout: _pairs(t, x))
        for layout in LAYOUTS
    },
    "manifest-csv": lambda t: _manifest(t, "csv"),
    "manifest-yaml": lambda t: _manifest(t, "yaml"),
    "zip": _zip,
    "geotiff-pairs": _geotiff_pairs,
    "raster+class-raster": _raster_with_class_raster,
    "raster+polygons": lambda t: _rasters_with_polygons(t, "raster"),
    "folder+polygons": lambda t: _rasters_with_polygons(t, "folder"),
    "glob+polygons": lambda t: _rasters_with_polygons(t, "glob"),
    "url+polygons": lambda t: _rasters_with_polygons(t, "url"),
}


@pytest.fixture(autouse=True)
def gdal_http(monkeypatch):
    # no retries and a timeout: a test fails fast (aerialseg itself turns off the listing
    # of a URL's folder, which this server kept GDAL waiting for)
    monkeypatch.delenv("GDAL_DISABLE_READDIR_ON_OPEN", raising=False)
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "0")
    monkeypatch.setenv("GDAL_HTTP_TIMEOUT", "10")


@contextmanager
def _served(form: Form, name: str) -> Iterator[Form]:
    """The form, its scene served over HTTP for the URL form."""
    if name != "url+polygons":
        yield form
        return
    with serve_folder(Path(form.data).parent) as (base, log):
        url = f"{base}/s0.tif"
        yield Form(url, form.flags, url, one_scene=True)
        assert log  # it was read over HTTP


def run(argv: list[str], capsys) -> str:
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, f"aerialseg {' '.join(argv)}\n{captured.out[-2000:]}\n{captured.err[-2000:]}"
    return captured.out


@pytest.mark.parametrize("name", list(FORMS))
def test_every_form_works_in_every_data_command(name, tmp_path, capsys):
    built = FORMS[name](tmp_path)
    context = _served(built, name) if name == "url+polygons" else nullcontext(built)
    with context as form:
        flags = form.flags
        report = json.loads(run(["data", "inspect", form.data, *flags, "--json"], capsys))
        assert report["pairs"] >= 1 and report["problems"] == []
        assert report["pixels"] > 0 and report["labelled_pixels"] > 0
        random_split, blocks = tmp_path / "random.json", tmp_path / "blocks.json"
        if not form.one_scene:
            run(["data", "split", form.data, *flags, "--val", "0.2", "--test", "0.2",
                 "--out", str(random_split)], capsys)  # fmt: skip
        run(["data", "split", form.data, *flags, "--block-size", "48", "--buffer", "8",
             "--val", "0.2", "--test", "0.2", "--out", str(blocks)], capsys)  # fmt: skip
        split = blocks if form.one_scene else random_split
        parts = json.loads(split.read_text())
        assert parts["train"] and parts["val"]
        out = tmp_path / "run"
        run(["train", "--data", form.data, *flags, "--split", str(split), "--out", str(out),
             *QUICK, *form.settings], capsys)  # fmt: skip
        model = out / "model.pt"
        evaluated = run(["evaluate", str(model), "--data", form.data, *flags,
                         "--split-file", str(split)], capsys)  # fmt: skip
        assert "written to" in evaluated
        run(["predict", form.image, "--model", str(model), "--out", str(tmp_path / "p")], capsys)
        assert list((tmp_path / "p").glob("*_classes.*"))
