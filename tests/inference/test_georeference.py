"""predict's outputs on grids a review found mishandled: a PNG class raster's polygons,
south-up scenes resampled, engineering CRSs, and a transform without a CRS."""

from __future__ import annotations

import json

import fiona
import rasterio
from affine import Affine
from rasterio.crs import CRS

import aerialseg
from aerialseg.data.raster import open_input
from tests.helpers.geotiff import write_geotiff
from tests.helpers.images import rgb_scene


def test_polygons_of_a_png_class_raster_keep_the_inputs_georeference(tiny_model, tmp_path):
    """With --format png the polygons were written from the staged PNG, whose
    georeference sidecar lay under another name: pixel coordinates and area_px."""
    scene = write_geotiff(tmp_path / "scene.tif", rgb_scene(60, 80))
    done = {}
    for fmt in ("tif", "png"):
        out = tmp_path / fmt
        summary = aerialseg.predict_files(
            scene, out, model=tiny_model, format=fmt, vector="geojson", min_area=0
        )
        done[fmt] = json.loads(summary.done[str(scene)]["polygons"].read_text())
    features = {fmt: found["features"] for fmt, found in done.items()}
    assert "area_m2" in features["png"][0]["properties"]
    assert [f["geometry"] for f in features["png"]] == [f["geometry"] for f in features["tif"]]
    lon, lat = features["png"][0]["geometry"]["coordinates"][0][0]
    assert 50 < lon < 60 and 20 < lat < 30  # Dubai, not pixel coordinates


def test_a_south_up_scene_resampled_covers_the_scene(tmp_path):
    """ds.bounds of a south-up grid has bottom above top: it was resampled to one row."""
    south_up = Affine(0.5, 0, 300_000.0, 0, 0.5, 2_800_000.0)
    path = write_geotiff(tmp_path / "up.tif", rgb_scene(200, 120), transform=south_up)
    raster = open_input(path, pixel_size=1.0)
    try:
        assert (raster.width, raster.height) == (60, 100)
        assert raster.dataset.transform == Affine(1.0, 0, 300_000.0, 0, -1.0, 2_800_100.0)
    finally:
        raster.close()


def test_an_engineering_crs_is_one_line(tiny_model, tmp_path):
    site = CRS.from_wkt(
        'LOCAL_CS["site grid",LOCAL_DATUM["site",0],UNIT["metre",1],'
        'AXIS["Easting",EAST],AXIS["Northing",NORTH]]'
    )
    path = write_geotiff(tmp_path / "site.tif", rgb_scene(40, 50), crs=site)
    summary = aerialseg.predict_files(path, tmp_path / "out", model=tiny_model)
    assert "a local (engineering) CRS" in summary.failed[str(path)]  # was a CRSError trace
    assert not (tmp_path / "out").exists()


def test_a_transform_without_a_crs_measures_polygons_and_simplify_in_pixels(tiny_model, tmp_path):
    """area_px was in the transform's units squared, and --simplify in its units."""
    image = rgb_scene(60, 80)
    sizes = {}
    for name, transform in (("plain", None), ("scaled", Affine(0.5, 0, 10, 0, -0.5, 20))):
        path = tmp_path / f"{name}.tif"
        profile = dict(driver="GTiff", width=80, height=60, count=3, dtype="uint8")
        with rasterio.open(
            path, "w", **profile, **({"transform": transform} if transform else {})
        ) as dst:
            dst.write(image)
        summary = aerialseg.predict_files(
            path, tmp_path / name, model=tiny_model, vector="gpkg", simplify=2, min_area=0
        )
        with fiona.open(summary.done[str(path)]["polygons"]) as layer:
            features = list(layer)
        sizes[name] = (
            round(sum(f["properties"]["area_px"] for f in features)),
            sum(len(f.geometry["coordinates"][0]) for f in features),
        )
    assert sizes["scaled"] == sizes["plain"] and sizes["plain"][0] == 60 * 80
