"""predict's outputs on grids a review found mishandled: a PNG class raster's polygons,
south-up scenes resampled, engineering CRSs, and a transform without a CRS."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import fiona
import pytest
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning

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


SITE_GRID = (
    'LOCAL_CS["site grid",LOCAL_DATUM["site",0],UNIT["metre",1],'
    'AXIS["Easting",EAST],AXIS["Northing",NORTH]]'
)


@pytest.mark.parametrize("crs", [SITE_GRID, "EPSG:4978"], ids=["engineering", "geocentric"])
def test_a_crs_neither_projected_nor_geographic_is_one_line(tiny_model, tmp_path, crs):
    path = write_geotiff(tmp_path / "site.tif", rgb_scene(40, 50), crs=CRS.from_user_input(crs))
    summary = aerialseg.predict_files(path, tmp_path / "out", model=tiny_model)
    # was a CRSError trace; a geocentric CRS was called a local (engineering) one
    assert "neither a projected nor a geographic CRS" in summary.failed[str(path)]
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


def test_a_scene_placed_by_gcps_or_rpcs_alone_keeps_them_in_every_raster(tiny_model, tmp_path):
    """A scanned photo or a level-1 product has no grid, only ground control points or
    RPCs: the outputs were written bare, so a GIS could not place them. Its areas stay
    in pixels, as no grid gives them ground units."""
    from rasterio.control import GroundControlPoint
    from rasterio.rpc import RPC

    gcps = [
        GroundControlPoint(row, col, 55.3 + col * 1e-5, 25.2 - row * 1e-5)
        for row, col in [(0, 0), (0, 80), (60, 0), (60, 80)]
    ]
    rpcs = RPC(
        height_off=0.0,
        height_scale=100.0,
        lat_off=25.2,
        lat_scale=0.01,
        line_den_coeff=[1.0] + [0.0] * 19,
        line_num_coeff=[0.0, 0.0, -1.0] + [0.0] * 17,
        line_off=30.0,
        line_scale=30.0,
        long_off=55.3,
        long_scale=0.01,
        samp_den_coeff=[1.0] + [0.0] * 19,
        samp_num_coeff=[0.0, 1.0] + [0.0] * 18,
        samp_off=40.0,
        samp_scale=40.0,
    )
    profile = {"driver": "GTiff", "width": 80, "height": 60, "count": 3, "dtype": "uint8"}
    placed = {
        "gcps": dict(gcps=gcps, crs=CRS.from_epsg(4326)),
        "rpcs": dict(rpcs=rpcs),
    }
    for name, georeference in placed.items():
        scene = tmp_path / f"{name}.tif"
        with rasterio.open(scene, "w", **profile, **georeference) as dst:
            dst.write(rgb_scene(60, 80))
        for fmt in ("tif", "png"):
            summary = aerialseg.predict_files(
                scene, tmp_path / fmt, model=tiny_model, format=fmt, color=True, confidence=True
            )
            written = summary.done[str(scene)]
            for key in ("classes", "color", "confidence"):
                with rasterio.open(written[key]) as out:
                    assert out.crs is None and out.transform.is_identity
                    if name == "gcps":
                        points, crs = out.gcps
                        assert crs == CRS.from_epsg(4326), (fmt, key)
                        # a PNG's sidecar holds them as text, to 15 digits
                        assert [v for p in points for v in (p.row, p.col, p.x, p.y)] == (
                            pytest.approx([v for p in gcps for v in (p.row, p.col, p.x, p.y)])
                        ), (fmt, key)
                    else:
                        assert out.rpcs is not None and out.rpcs.lat_off == 25.2, (fmt, key)
            areas = json.loads(written["areas_json"].read_text())
            assert all(row["area_m2"] is None for row in areas)


def gcps_without_crs(folder: Path) -> Path:
    """A TIFF placed by ground control points in no CRS (gdal_translate -gcp without
    -a_srs; rasterio cannot write such points itself, so a VRT names them)."""
    plain = folder / "plain.tif"
    profile = {"driver": "GTiff", "width": 120, "height": 96, "count": 3, "dtype": "uint8"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(plain, "w", **profile) as dst:
            dst.write(rgb_scene(96, 120))
    points = [(0, 0, 500000, 2800000), (0, 120, 500060, 2800000), (96, 0, 500000, 2799952)]
    gcps = "".join(
        f'<GCP Id="{i}" Pixel="{col}" Line="{row}" X="{x}" Y="{y}"/>'
        for i, (row, col, x, y) in enumerate(points)
    )
    bands = "".join(
        f'<VRTRasterBand dataType="Byte" band="{b}"><SimpleSource><SourceFilename'
        f' relativeToVRT="0">{plain}</SourceFilename><SourceBand>{b}</SourceBand>'
        "</SimpleSource></VRTRasterBand>"
        for b in (1, 2, 3)
    )
    vrt = folder / "gcps.vrt"
    vrt.write_text(
        f'<VRTDataset rasterXSize="120" rasterYSize="96"><GCPList Projection="">{gcps}'
        f"</GCPList>{bands}</VRTDataset>"
    )
    tif = folder / "gcps.tif"
    rasterio.shutil.copy(vrt, tif, driver="GTiff")
    with rasterio.open(tif) as ds:
        assert len(ds.gcps[0]) == 3 and ds.gcps[1] is None
    return tif


def test_ground_control_points_in_no_crs_are_written_without_them(tiny_model, tmp_path):
    """A review: rasterio cannot write points of no CRS, and predict (and the server, a
    500) failed with its AttributeError; such points place nothing, in GDAL either."""
    scene = gcps_without_crs(tmp_path)
    for fmt in ("tif", "png"):
        summary = aerialseg.predict_files(scene, tmp_path / fmt, model=tiny_model, format=fmt)
        with rasterio.open(summary.done[str(scene)]["classes"]) as out:
            assert out.crs is None and not out.gcps[0] and out.shape == (96, 120)
