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
from aerialseg.data.classes import DUBAI_CLASSES
from aerialseg.inference.vector import polygonize

SYSTEM_PYTHON = Path("/usr/bin/python3")

REPORT = r"""
import json, sys
from osgeo import gdal
from qgis.core import (QgsApplication, QgsRasterLayer, QgsVectorLayer)

app = QgsApplication([], False)
app.initQgis()
classes, color, overlay, gpkg, gpkg_alone, geojson = sys.argv[1:]

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

dataset = gdal.Open(classes)  # held: a band outliving its dataset crashes GDAL
rat = dataset.GetRasterBand(1).GetDefaultRAT()
report = {
    "classes": raster(classes),
    "classes_without_qml": raster(classes, default_style=False),
    "gdal_rat": [[rat.GetValueAsInt(i, 0), rat.GetValueAsString(i, 1)]
                 for i in range(rat.GetRowCount())] if rat else None,
    "color": raster(color),
    "overlay": raster(overlay),
    "gpkg": vector(gpkg + "|layername=polygons"),
    "gpkg_alone": vector(gpkg_alone + "|layername=polygons"),
    "geojson": vector(geojson),
}
print(json.dumps(report), flush=True)
"""


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
    python = qgis_python()
    out = tmp_path / "o"
    argv = ["predict", str(geotiff), "--model", str(tiny_model), "--out", str(out)]
    assert main([*argv, "--all-outputs", "--vector", "gpkg", "--device", "cpu"]) == 0
    polygonize(out / "scene_classes.tif", DUBAI_CLASSES, out / "scene", "geojson")
    alone = tmp_path / "alone"  # the GeoPackage copied without its .qml: its own style
    alone.mkdir()
    shutil.copy(out / "scene_polygons.gpkg", alone)
    files = [
        out / "scene_classes.tif",
        out / "scene_color.tif",
        out / "scene_overlay.png",
        out / "scene_polygons.gpkg",
        alone / "scene_polygons.gpkg",
        out / "scene_polygons.geojson",
    ]
    run = subprocess.run(
        [str(python), "-c", REPORT, *map(str, files)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])

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
