"""predict's outputs opened in a real QGIS (Debian's python3-qgis, headless).

QGIS's Python bindings belong to the system Python, not to our virtual environment, so
they run in a subprocess of /usr/bin/python3 that reports what QGIS made of each layer as
JSON. The test skips only where those bindings cannot be had (.ci/run installs them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from aerialseg.cli import main
from aerialseg.data.classes import DUBAI_CLASSES, ClassTable
from aerialseg.inference.vector import polygonize
from aerialseg.models.io import load_model, save_model
from tests.helpers.geotiff import write_geotiff

SYSTEM_PYTHON = Path("/usr/bin/python3")

REPORT = r"""
import json, sys
from osgeo import gdal
from qgis.core import (QgsApplication, QgsRasterLayer, QgsVectorLayer)

app = QgsApplication([], False)
app.initQgis()
layers = json.loads(sys.argv[1])  # name -> [how to open it, path]

def raster(path, default_style=True):
    options = QgsRasterLayer.LayerOptions(loadDefaultStyle=default_style)
    layer = QgsRasterLayer(path, "r", "gdal", options)
    renderer = layer.renderer()
    out = {"valid": layer.isValid(), "crs": layer.crs().authid(),
           "renderer": renderer.type() if renderer else None}
    if out["renderer"] == "paletted":
        out["palette"] = [[int(c.value), c.label] for c in renderer.classes()]
    if out["renderer"] == "multibandcolor":
        out["alpha_band"] = renderer.alphaBand()
    return out

def vector(uri):
    layer = QgsVectorLayer(uri, "v", "ogr")
    renderer = layer.renderer()
    out = {"valid": layer.isValid(), "crs": layer.crs().authid(),
           "features": layer.featureCount(), "renderer": renderer.type() if renderer else None}
    if out["renderer"] == "categorizedSymbol":
        out["field"] = renderer.classAttribute()
        out["categories"] = [[int(c.value()), c.label()] for c in renderer.categories()]
    return out

def gdal_rat(path):
    dataset = gdal.Open(path)  # held: a band outliving its dataset crashes GDAL
    rat = dataset.GetRasterBand(1).GetDefaultRAT()
    rows = range(rat.GetRowCount()) if rat else []
    return [[rat.GetValueAsInt(i, 0), rat.GetValueAsString(i, 1)] for i in rows]

def tasks(path):
    layer = QgsVectorLayer(path + "|layername=tasks", "t", "ogr")
    out = vector(path + "|layername=tasks")
    labeling = layer.labeling()
    out["labels"] = layer.labelsEnabled() and labeling is not None
    out["label_field"] = labeling.settings().fieldName if out["labels"] else None
    out["ranks"] = [f["rank"] for f in layer.getFeatures()]
    return out

how = {
    "tasks": tasks,
    "prelabel": lambda path: vector(path + "|layername=prelabel"),
    "raster": raster,
    "raster_without_qml": lambda path: raster(path, default_style=False),
    "gdal_rat": gdal_rat,
    "gpkg": lambda path: vector(path + "|layername=polygons"),
    "vector": vector,
}
report = {name: how[kind](path) for name, (kind, path) in layers.items()}
print(json.dumps(report), flush=True)
"""


def qgis_report(layers: dict[str, list]) -> dict:
    """What QGIS makes of each layer: name -> [how to open it, path]."""
    run = subprocess.run(
        [
            str(qgis_python()),
            "-c",
            REPORT,
            json.dumps({k: [h, str(p)] for k, (h, p) in layers.items()}),
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def qgis_python() -> Path:
    """The system Python, if QGIS's bindings import there; else skip, saying why."""
    if not SYSTEM_PYTHON.is_file():
        pytest.skip(f"QGIS: no system Python at {SYSTEM_PYTHON} for its bindings")
    probe = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", "import qgis.core, osgeo.gdal"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    if probe.returncode != 0:
        pytest.skip(
            "QGIS's Python bindings are not installed for /usr/bin/python3 (Debian:"
            " apt-get install python3-qgis; .ci/run does so as root)"
        )
    return SYSTEM_PYTHON


def _env() -> dict[str, str]:
    """The system Python's environment: headless Qt, none of our venv's paths."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.pop("VIRTUAL_ENV", None)
    runtime = Path(os.environ.get("TMPDIR", "/tmp")) / f"qgis-runtime-{os.getuid()}"
    runtime.mkdir(mode=0o700, exist_ok=True)
    return env | {"QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": str(runtime)}


def test_outputs_open_in_qgis_with_names_colours_and_crs(tiny_model, geotiff, tmp_path):
    qgis_python()
    out = tmp_path / "o"
    argv = ["predict", str(geotiff), "--model", str(tiny_model), "--out", str(out)]
    assert main([*argv, "--all-outputs", "--vector", "gpkg", "--device", "cpu"]) == 0
    polygonize(out / "scene_classes.tif", DUBAI_CLASSES, out / "scene", "geojson")
    alone = tmp_path / "alone"  # the GeoPackage copied without its .qml: its own style
    alone.mkdir()
    shutil.copy(out / "scene_polygons.gpkg", alone)
    # a model of value-coded classes (1-5, as label rasters come): styles at those values
    loaded = load_model(tiny_model)
    values = ClassTable.from_dict(
        {"classes": [{"name": n, "mask_value": i + 1} for i, n in enumerate(loaded.classes.names)]}
    )
    save_model(tmp_path / "values.pt", loaded.net, loaded.spec, values, loaded.meta)
    argv = ["predict", str(geotiff), "--model", str(tmp_path / "values.pt"), "--vector", "gpkg"]
    assert main([*argv, "--out", str(tmp_path / "v"), "--device", "cpu"]) == 0
    layers = {
        "classes": ["raster", out / "scene_classes.tif"],
        "classes_without_qml": ["raster_without_qml", out / "scene_classes.tif"],
        "gdal_rat": ["gdal_rat", out / "scene_classes.tif"],
        "color": ["raster", out / "scene_color.tif"],
        "overlay": ["raster", out / "scene_overlay.png"],
        "gpkg": ["gpkg", out / "scene_polygons.gpkg"],
        "gpkg_alone": ["gpkg", alone / "scene_polygons.gpkg"],
        "geojson": ["vector", out / "scene_polygons.geojson"],
        "value_classes": ["raster", tmp_path / "v" / "scene_classes.tif"],
        "value_polygons": ["gpkg", tmp_path / "v" / "scene_polygons.gpkg"],
    }
    report = qgis_report(layers)

    named = [[i, c.name] for i, c in enumerate(DUBAI_CLASSES.classes)]
    classes = report["classes"]
    assert classes["valid"] and classes["crs"] == "EPSG:32640"
    assert classes["renderer"] == "paletted" and classes["palette"] == named
    # without the .qml, QGIS still names the classes, from GDAL's categories
    bare = report["classes_without_qml"]
    assert bare["renderer"] == "paletted" and bare["palette"][: len(named)] == named
    assert report["gdal_rat"] == named

    assert report["color"]["valid"] and report["color"]["alpha_band"] == 4
    assert report["overlay"]["valid"] and report["overlay"]["crs"] == "EPSG:32640"

    for key, crs in (
        ("gpkg", "EPSG:32640"),
        ("gpkg_alone", "EPSG:32640"),
        ("geojson", "EPSG:4326"),
    ):
        layer = report[key]
        assert layer["valid"] and layer["crs"] == crs and layer["features"] > 0, key
        assert layer["renderer"] == "categorizedSymbol" and layer["field"] == "class_id", key
        assert layer["categories"] == named, key
    by_value = [[c.mask_value, c.name] for c in values.classes]
    assert report["value_classes"]["palette"] == by_value
    assert report["value_polygons"]["categories"] == by_value


def test_suggested_tasks_open_in_qgis_labelled_by_rank(tmp_path):
    from tests.inference.test_suggest import CLASSES, painted, run

    qgis_python()
    scene = write_geotiff(tmp_path / "scene.tif", painted([(1, 5)]))
    _, files = run([scene], tmp_path, count=4, prelabel=True)
    report = qgis_report(
        {"tasks": ["tasks", files["tasks"]], "prelabel": ["prelabel", files["tasks"]]}
    )
    tasks, prelabel = report["tasks"], report["prelabel"]
    assert tasks["valid"] and tasks["crs"] == "EPSG:32640" and tasks["features"] == 4
    assert tasks["renderer"] == "singleSymbol" and tasks["labels"]
    assert tasks["label_field"] == "rank" and sorted(tasks["ranks"]) == [1, 2, 3, 4]
    assert prelabel["valid"] and prelabel["features"] > 0
    assert prelabel["renderer"] == "categorizedSymbol" and prelabel["field"] == "class_id"
    assert prelabel["categories"] == [[i, n] for i, n in enumerate(CLASSES.names)]
