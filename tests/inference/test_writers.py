"""writers: Cloud Optimized GeoTIFF outputs with class-true overviews; nothing left on failure."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from affine import Affine
from PIL import Image
from rasterio.enums import ColorInterp
from rasterio.windows import Window

from aerialseg.data.classes import DUBAI_CLASSES, ClassTable
from aerialseg.data.raster import InputError, open_input
from aerialseg.files import OutputSet, finish_sets, owner
from aerialseg.inference.predict import NODATA, ChunkResult
from aerialseg.inference.writers import RasterOutputs, area_table, write_areas
from tests.helpers.geotiff import TRANSFORM, UTM40N, VALUE_CLASSES, write_geotiff
from tests.helpers.images import rgb_scene

SIZE = 600  # over two 256 px blocks: GDAL gives the COG overviews


def _write(
    tmp_path, ids: np.ndarray, percent=None, valid=None, fmt="tif", **outputs
) -> RasterOutputs:
    """RasterOutputs of a SIZE px georeferenced scene, fed ``ids`` (and confidences
    ``percent``, the ``valid`` pixels: default all) in two bands of rows."""
    scene = write_geotiff(tmp_path / "scene.tif", rgb_scene(SIZE, SIZE))
    raster = open_input(scene)
    (tmp_path / "out").mkdir()
    outs = RasterOutputs(raster, DUBAI_CLASSES, tmp_path / "out" / "scene", fmt=fmt, **outputs)
    image = raster.dataset.read().astype(np.float32)
    for top in (0, SIZE // 2):
        rows = slice(top, top + SIZE // 2)
        ok = np.ones_like(ids[rows], dtype=bool) if valid is None else valid[rows]
        confidence = None if percent is None else percent[rows]
        window = Window(0, top, SIZE, SIZE // 2)
        outs.write(ChunkResult(window, ids[rows], image[:, rows], ok, confidence))
    raster.close()
    return outs


def test_class_raster_is_a_cog_whose_overviews_take_the_majority_class(tmp_path):
    # Every 2x2 block holds one Building (0) pixel, at its top left, and three Water (4)
    # ones: the majority is 4, where an average of ids gives 3 and nearest-neighbour 0.
    ids = np.full((SIZE, SIZE), 4, dtype=np.uint8)
    ids[::2, ::2] = 0
    outs = _write(tmp_path, ids, color=True, overlay=False)
    written = outs.finish()
    with rasterio.open(written["classes"]) as dst:
        assert dst.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert dst.overviews(1)[0] == 2 and dst.compression is not None
        assert dst.crs == UTM40N and dst.transform == TRANSFORM
        assert dst.colormap(1)[4][:3] == (0x50, 0xE3, 0xC2)
        assert np.array_equal(dst.read(1), ids)
    with rasterio.open(written["classes"], overview_level=0) as half:
        assert (half.read(1) == 4).all()
    with rasterio.open(written["color"], overview_level=0) as half:
        colours = {tuple(c) for c in half.read().reshape(4, -1).T}
    assert colours <= {(*c, 255) for c in DUBAI_CLASSES.display_palette()}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "scene_classes.qml",
        "scene_classes.tif",
        "scene_classes.tif.aux.xml",  # the class names, for GDAL
        "scene_color.tif",
    ]


def test_a_failed_copy_leaves_no_file(tmp_path, monkeypatch):
    ids = np.zeros((SIZE, SIZE), dtype=np.uint8)
    outs = _write(tmp_path, ids, color=True, overlay=True)

    def disk_full(src, dst, **options):
        Path(dst).write_bytes(b"half")
        raise OSError("No space left on device")

    monkeypatch.setattr(rasterio.shutil, "copy", disk_full)
    with pytest.raises(OSError, match="No space"):
        outs.finish()
    assert list((tmp_path / "out").iterdir()) == []


def test_confidence_overviews_average_the_percentages(tmp_path):
    ids = np.zeros((SIZE, SIZE), dtype=np.uint8)
    confidence = np.full((SIZE, SIZE), 40, dtype=np.uint8)
    confidence[:, ::2] = 60
    outs = _write(tmp_path, ids, confidence, color=False, overlay=False, confidence=True)
    written = outs.finish()
    with rasterio.open(written["confidence"]) as dst:
        assert dst.nodata == 255 and np.array_equal(dst.read(1), confidence)
    with rasterio.open(written["confidence"], overview_level=0) as half:
        assert (half.read(1) == 50).all()


def test_pngs_of_a_georeferenced_scene_keep_its_georeference(tmp_path):
    ids = np.zeros((SIZE, SIZE), dtype=np.uint8)
    ids[:, SIZE // 2 :] = 3
    written = _write(tmp_path, ids, fmt="png", color=True, overlay=True).finish()
    assert written["overlay"].suffix == ".png" and written["classes"].suffix == ".png"
    for key in ("classes", "color", "overlay"):
        with rasterio.open(written[key]) as png:  # GDAL reads it from the .aux.xml beside
            assert png.crs == UTM40N and png.transform == TRANSFORM, key
    # the class PNG's sidecar holds its georeference and its class names together
    pam = (tmp_path / "out" / "scene_classes.png.aux.xml").read_text()
    assert "<SRS" in pam and "<GeoTransform>" in pam and "<Category>Water</Category>" in pam


def test_an_earlier_runs_sidecar_does_not_outlive_its_file(tmp_path):
    stale = tmp_path / "out" / "scene_color.tif.aux.xml"
    ids = np.zeros((SIZE, SIZE), dtype=np.uint8)
    outs = _write(tmp_path, ids, color=True, overlay=False)
    stale.write_text("<PAMDataset><SRS>EPSG:4326</SRS></PAMDataset>")
    outs.finish()
    assert not stale.exists()
    with rasterio.open(tmp_path / "out" / "scene_color.tif") as colour:
        assert colour.crs == UTM40N


def regions() -> tuple[np.ndarray, np.ndarray]:
    """Class ids in blocks of Building, Road and Water, with a corner of no data."""
    ids = np.zeros((SIZE, SIZE), dtype=np.uint8)
    ids[:, SIZE // 3 :] = 4
    ids[SIZE // 2 :, : SIZE // 4] = 2
    valid = np.ones((SIZE, SIZE), dtype=bool)
    valid[:50, :70] = False
    ids[~valid] = NODATA
    return ids, valid


def test_colour_mask_geotiff_has_the_input_grid_and_the_class_colours(tmp_path):
    ids, valid = regions()
    written = _write(tmp_path, ids, valid=valid, color=True, overlay=False).finish()
    with rasterio.open(written["color"]) as dst:
        assert dst.crs == UTM40N and dst.transform == TRANSFORM
        assert (dst.width, dst.height, dst.count) == (SIZE, SIZE, 4)
        assert dst.colorinterp[3] == ColorInterp.alpha
        colours = dst.read()
    palette = DUBAI_CLASSES.display_palette()
    # RGBA: the class colour, opaque; clear (and black) where nothing was predicted
    expected = np.zeros((4, SIZE, SIZE), dtype=np.uint8)
    expected[:3, valid] = palette[ids[valid]].T
    expected[3, valid] = 255
    np.testing.assert_array_equal(colours, expected)
    assert tuple(colours[:, SIZE - 1, SIZE - 1]) == (0x50, 0xE3, 0xC2, 255)  # Water's colour
    assert tuple(colours[:, 0, 0]) == (0, 0, 0, 0)


def test_overlay_shows_half_picture_half_class_colour_and_the_bare_picture_at_nodata(tmp_path):
    ids, valid = regions()
    written = _write(tmp_path, ids, valid=valid, color=False, overlay=True).finish()
    overlay = np.asarray(Image.open(written["overlay"])).transpose(2, 0, 1).astype(int)
    picture = rgb_scene(SIZE, SIZE).astype(int)
    colour = DUBAI_CLASSES.display_palette()[np.where(valid, ids, 0)].transpose(2, 0, 1)
    np.testing.assert_array_equal(overlay[:, valid], ((picture + colour) // 2)[:, valid])
    np.testing.assert_array_equal(overlay[:, ~valid], picture[:, ~valid])


def _plain(tmp_path, ids: np.ndarray, valid: np.ndarray, table=DUBAI_CLASSES, **outputs):
    """RasterOutputs of a plain PNG photo (no georeference), fed ``ids`` in one chunk."""
    h, w = ids.shape
    Image.fromarray(rgb_scene(h, w).transpose(1, 2, 0)).save(tmp_path / "photo.png")
    raster = open_input(tmp_path / "photo.png")
    (tmp_path / "out").mkdir()
    outs = RasterOutputs(raster, table, tmp_path / "out" / "photo", fmt="png", **outputs)
    values, _ = raster.read(Window(0, 0, w, h))
    outs.write(ChunkResult(Window(0, 0, w, h), ids, values, valid))
    raster.close()
    return outs


def test_a_plain_photo_gives_palette_pngs_and_counts_valid_pixels_only(tmp_path):
    ids = np.zeros((30, 40), dtype=np.uint8)
    ids[:, 25:] = 4
    ids[20:, :10] = 2
    valid = np.ones_like(ids, dtype=bool)
    valid[:5, :8] = False
    ids[~valid] = NODATA
    outs = _plain(tmp_path, ids, valid, color=True, overlay=False)
    written = outs.finish()
    assert {k: p.name for k, p in written.items()} == {
        "classes": "photo_classes.png",
        "color": "photo_color.png",
        "classes_style": "photo_classes.qml",
    }
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "photo_classes.png",
        "photo_classes.png.aux.xml",  # the class names, for GDAL and QGIS
        "photo_classes.qml",
        "photo_color.png",
    ]
    classes = Image.open(written["classes"])
    assert classes.mode == "P" and classes.size == (40, 30)
    np.testing.assert_array_equal(np.asarray(classes), ids)
    palette = np.array(classes.getpalette()[:18]).reshape(6, 3)
    np.testing.assert_array_equal(palette, DUBAI_CLASSES.display_palette())
    colour = Image.open(written["color"])
    assert colour.mode == "RGBA" and colour.size == (40, 30)
    colour = np.asarray(colour)
    assert tuple(colour[0, 39]) == (0x50, 0xE3, 0xC2, 255) and tuple(colour[0, 0]) == (0, 0, 0, 0)
    np.testing.assert_array_equal(colour[..., 3], np.where(valid, 255, 0))
    expected = [int(((ids == k) & valid).sum()) for k in range(6)]
    assert outs.counts.tolist() == expected and outs.valid_pixels == 30 * 40 - 5 * 8
    rows = area_table(outs)
    assert [r["pixels"] for r in rows] == expected
    assert [r["share"] for r in rows] == pytest.approx([n / (30 * 40 - 40) for n in expected])
    assert all(r["area_m2"] is None for r in rows)  # pixels only: no georeference


def test_class_rasters_of_a_value_table_hold_its_values(tmp_path):
    table = ClassTable.from_dict(VALUE_CLASSES)  # Building 1 ... Water 5
    ids = np.array([[0, 1, 2], [3, 4, NODATA]], dtype=np.uint8)
    valid = ids != NODATA
    written = _plain(tmp_path, ids, valid, table, color=False, overlay=False).finish()
    np.testing.assert_array_equal(np.asarray(Image.open(written["classes"])), ids + 1 * valid)
    wide = ClassTable.from_dict(
        {"classes": [{"name": "a", "mask_value": 300}, {"name": "b", "mask_value": 7}]}
    )
    ids = np.array([[0, 1], [1, NODATA]], dtype=np.uint8)
    outs = _write_wide(tmp_path / "wide", wide, ids)
    with rasterio.open(outs["classes"]) as dst:
        assert dst.dtypes[0] == "uint16" and dst.nodata == 65535
        np.testing.assert_array_equal(dst.read(1), [[300, 7], [7, 65535]])


def _write_wide(tmp_path, table, ids):
    tmp_path.mkdir()
    h, w = ids.shape
    scene = write_geotiff(tmp_path / "s.tif", rgb_scene(h, w))
    raster = open_input(scene)
    outs = RasterOutputs(raster, table, tmp_path / "s", fmt="tif", color=False, overlay=False)
    values, valid = raster.read(Window(0, 0, w, h))
    outs.write(ChunkResult(Window(0, 0, w, h), ids, values, ids != NODATA))
    raster.close()
    return outs.finish()


def test_areas_are_written_as_csv_and_json_under_their_final_names(tmp_path):
    rows = [
        {"class": "Building", "pixels": 3, "share": 0.75, "area_m2": 0.75},
        {"class": "Water", "pixels": 1, "share": 0.25, "area_m2": None},
    ]
    written = write_areas(rows, tmp_path / "scene")
    assert written == {
        "areas_csv": tmp_path / "scene_areas.csv",
        "areas_json": tmp_path / "scene_areas.json",
    }
    assert written["areas_csv"].read_text().splitlines() == [
        "class,pixels,share,area_m2",
        "Building,3,0.75,0.75",
        "Water,1,0.25,",
    ]
    assert json.loads(written["areas_json"].read_text()) == rows
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene_areas.csv", "scene_areas.json"]


def test_area_tables_are_utf_8_whatever_the_locale_and_names_are_not_formulas(tmp_path):
    """A review: a non-ASCII class name stopped predict with a UnicodeEncodeError under a
    non-UTF-8 locale (the CSV took the locale's encoding), and a class named '=HYPERLINK(...'
    was a formula to a spreadsheet that opened the CSV."""
    import csv
    import subprocess
    import sys

    names = ["مبنى 🏠", '=HYPERLINK("http://x.example/","click")', "-1", "@SUM(A1)", "Road"]
    rows = [{"class": n, "pixels": 1, "share": 0.2, "area_m2": 0.25} for n in names]
    script = (
        "import json, sys; from pathlib import Path;"
        " from aerialseg.inference.writers import write_areas;"
        " write_areas(json.loads(sys.argv[1]), Path(sys.argv[2]))"
    )
    c_locale = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    argv = [sys.executable, "-c", script, json.dumps(rows), str(tmp_path / "scene")]
    subprocess.run(argv, env=c_locale, check=True, capture_output=True)
    with (tmp_path / "scene_areas.csv").open(encoding="utf-8", newline="") as f:
        cells = [row["class"] for row in csv.DictReader(f)]
    assert cells == ["مبنى 🏠", "'" + names[1], "'-1", "'@SUM(A1)", "Road"]
    assert json.loads((tmp_path / "scene_areas.json").read_text("utf-8")) == rows


def test_abort_leaves_nothing(tmp_path):
    ids = np.zeros((SIZE, SIZE), dtype=np.uint8)
    outs = _write(tmp_path, ids, color=True, overlay=True)
    assert len(list((tmp_path / "out").iterdir())) == 3  # the step files being written
    outs.abort()
    assert list((tmp_path / "out").iterdir()) == []


def test_step_files_are_tiled_and_zstd_only_towards_a_geotiff(tmp_path):
    ids = np.zeros((SIZE, SIZE), dtype=np.uint8)
    for fmt, compression in (("tif", "zstd"), ("png", None)):
        (tmp_path / fmt).mkdir()
        outs = _write(tmp_path / fmt, ids, fmt=fmt, color=True, overlay=False, confidence=True)
        for writer in outs.writers.values():
            writer.close()
        for key, step in outs.tiffs.items():
            with rasterio.open(step) as written:
                assert written.driver == "GTiff", key
                assert written.block_shapes == [(256, 256)] * written.count, key
                found = written.compression.value.lower() if written.compression else None
                assert found == compression, (fmt, key)
        outs.abort()


def test_confidence_is_one_band_of_its_own_name_written_where_its_rows_are(tmp_path):
    ids = np.zeros((SIZE, SIZE), dtype=np.uint8)
    percent = np.tile(np.arange(SIZE, dtype=np.uint8)[:, None] % 101, (1, SIZE))  # by row
    outs = _write(tmp_path, ids, percent, color=False, overlay=False, confidence=True)
    written = outs.finish()
    assert written["confidence"] == tmp_path / "out" / "scene_confidence.tif"
    with rasterio.open(written["confidence"]) as dst:
        assert dst.count == 1 and np.array_equal(dst.read(1), percent)
    # confidences given to outputs that were not asked for them: nothing written, no error
    (tmp_path / "no").mkdir()
    quiet = _write(tmp_path / "no", ids, percent, color=False, overlay=False)
    assert "confidence" not in quiet.finish()
    assert not list((tmp_path / "no" / "out").glob("*confidence*"))


def test_colour_geotiff_is_rgba_and_final_cogs_are_deflated_in_256_px_tiles(tmp_path):
    ids = np.zeros((SIZE, SIZE), dtype=np.uint8)
    written = _write(tmp_path, ids, color=True, overlay=False, confidence=True).finish()
    with rasterio.open(written["color"]) as dst:
        assert dst.colorinterp == (
            ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha,
        )  # fmt: skip
    for key in ("classes", "color", "confidence"):
        with rasterio.open(written[key]) as dst:
            assert dst.compression.value == "DEFLATE" and dst.block_shapes[0] == (256, 256)


def test_a_wide_value_table_geotiff_keeps_its_colour_table(tmp_path):
    wide = ClassTable.from_dict(
        {"classes": [{"name": "a", "mask_value": 300}, {"name": "b", "mask_value": 7}]}
    )
    written = _write_wide(tmp_path / "wide", wide, np.array([[0, 1], [1, 0]], dtype=np.uint8))
    with rasterio.open(written["classes"]) as dst:
        colours = dst.colormap(1)
    assert colours[300] == (*wide.display_palette()[0].tolist(), 255)
    assert colours[7] == (*wide.display_palette()[1].tolist(), 255)


def test_value_rasters_counts_and_valid_pixels_add_up_over_bands_of_rows(tmp_path):
    table = ClassTable.from_dict(VALUE_CLASSES)  # values 1..5
    ids = (np.arange(SIZE)[:, None] // 120 + np.zeros(SIZE, dtype=int)).astype(np.uint8)  # 0..4
    valid = np.ones((SIZE, SIZE), bool)
    valid[:10] = False
    scene = write_geotiff(tmp_path / "scene.tif", rgb_scene(SIZE, SIZE))
    raster = open_input(scene)
    outs = RasterOutputs(raster, table, tmp_path / "scene", fmt="tif", color=False, overlay=False)
    for top in (0, SIZE // 2):
        rows = slice(top, top + SIZE // 2)
        values, _ = raster.read(Window(0, top, SIZE, SIZE // 2))
        outs.write(ChunkResult(Window(0, top, SIZE, SIZE // 2), ids[rows], values, valid[rows]))
    raster.close()
    assert outs.valid_pixels == valid.sum()
    assert outs.counts.tolist() == np.bincount(ids[valid], minlength=5).tolist()
    with rasterio.open(outs.finish()["classes"]) as dst:
        np.testing.assert_array_equal(dst.read(1), ids + 1)  # values, in their rows


def test_area_rows_of_a_metre_grid(tmp_path):
    ids = np.full((SIZE, SIZE), 4, dtype=np.uint8)
    valid = np.zeros((SIZE, SIZE), bool)
    valid[7, 9] = True  # one valid pixel: its share is 1
    outs = _write(tmp_path, ids, valid=valid, color=False, overlay=False)
    rows = area_table(outs)
    assert rows[4] == {"class": "Water", "pixels": 1, "share": 1.0, "area_m2": 0.25}
    assert [r["class"] for r in rows] == DUBAI_CLASSES.names
    assert all(r["pixels"] == 0 and r["area_m2"] == 0.0 for r in rows[:4])
    written = write_areas(rows, tmp_path / "scene")
    assert written["areas_json"].read_text() == json.dumps(rows, indent=2) + "\n"
    outs.abort()


def test_a_failure_after_the_first_copy_raises_it_and_leaves_no_step_file(tmp_path, monkeypatch):
    ids = np.zeros((SIZE, SIZE), dtype=np.uint8)
    outs = _write(tmp_path, ids, color=True, overlay=True)
    copy, calls = rasterio.shutil.copy, []

    def second_fails(src, dst, **options):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError("No space left on device")
        copy(src, dst, **options)

    monkeypatch.setattr(rasterio.shutil, "copy", second_fails)
    with pytest.raises(OSError, match="No space"):  # not a FileNotFoundError of the cleanup
        outs.finish()
    # no step or temporary file, and none of the set: not the first copy, nor its sidecar
    # or style written beside it
    assert list((tmp_path / "out").iterdir()) == []
    # finished into a set that a later output fails: all of it goes with the set
    monkeypatch.setattr(rasterio.shutil, "copy", copy)
    (tmp_path / "again").mkdir()
    outs = _write(tmp_path / "again", ids, color=True, overlay=True)
    later = OutputSet(tmp_path / "again" / "out", "scene")
    assert outs.finish(into=later)["classes_style"].name == "scene_classes.qml"
    later.abort()
    assert list((tmp_path / "again" / "out").iterdir()) == []


def test_the_overlay_keeps_black_pixels_black_where_there_is_no_data(tmp_path):
    scene = write_geotiff(tmp_path / "scene.tif", np.zeros((3, 4, 6), np.uint8))
    raster = open_input(scene)
    outs = RasterOutputs(
        raster, DUBAI_CLASSES, tmp_path / "scene", fmt="tif", color=False, overlay=True
    )
    valid = np.zeros((4, 6), bool)
    values, _ = raster.read(Window(0, 0, 6, 4))
    outs.write(ChunkResult(Window(0, 0, 6, 4), np.zeros((4, 6), np.uint8), values, valid))
    raster.close()
    overlay = np.asarray(Image.open(outs.finish()["overlay"]))
    assert (overlay == 0).all()


def _staged(work: Path, ids: np.ndarray) -> OutputSet:
    """The class raster, colour mask and areas of one scene, in one set not yet renamed."""
    work.mkdir()
    outs = _write(work, ids, color=True, overlay=False)
    into = OutputSet(work / "out", "scene")
    outs.finish(into)
    write_areas(area_table(outs), into.folder / "scene", into)
    return into


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_set_interrupted_between_renames_is_completed_not_left_mixed(tmp_path, monkeypatch):
    """Old outputs in place, a new set renamed up to its class raster when the process is
    stopped: the manifest says the set is incomplete, and finish_sets (which the next run
    calls first) ends it with the new set in full."""
    new_ids = np.full((SIZE, SIZE), 3, dtype=np.uint8)
    expected = _staged(tmp_path / "new", new_ids)
    expected.commit()
    old = _staged(tmp_path / "old", np.zeros((SIZE, SIZE), dtype=np.uint8))
    old.commit()
    into = _staged(tmp_path / "interrupted", new_ids)
    for name, content in _files(old.folder).items():
        (into.folder / name).write_bytes(content)
    rename, renamed = os.replace, []

    def stopped_after_one(src, dst):
        if Path(dst).name.startswith("."):  # the manifest
            return rename(src, dst)
        if renamed:
            raise KeyboardInterrupt  # as good as a kill: nothing after this runs
        rename(src, dst)
        renamed.append(dst)

    monkeypatch.setattr(os, "replace", stopped_after_one)
    with pytest.raises(KeyboardInterrupt):
        into.commit()
    monkeypatch.undo()
    now = _files(into.folder)
    assert now["scene_classes.tif"] == _files(expected.folder)["scene_classes.tif"]
    assert now["scene_areas.csv"] == _files(old.folder)["scene_areas.csv"]  # a mix...
    assert into.manifest.is_file() and finish_sets(into.folder) == 0  # (its owner runs)
    assert finish_sets(into.folder, dead=owner()) == 1  # ...that the next run completes
    assert _files(into.folder) == _files(expected.folder)


def test_a_manifest_that_names_files_outside_its_set_is_left_alone(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    tmp = tmp_path / f".scene_areas.csv.aerialseg-{owner()}.tmp"
    tmp.write_text("class,pixels\n")
    for moves in ([["notes.txt", tmp.name]], [["../scene_areas.csv", tmp.name]]):
        manifest = tmp_path / ".scene.aerialseg-set.json"
        manifest.write_text(json.dumps({"owner": owner(), "moves": moves, "drops": []}))
        assert finish_sets(tmp_path, dead=owner()) == 0
        assert (tmp_path / "notes.txt").read_text() == "mine" and tmp.exists()


def _sieved(tmp_path, ids: np.ndarray, sieve_pixels: int) -> np.ndarray:
    """The class ids of a small georeferenced scene after RasterOutputs sieved them."""
    h, w = ids.shape
    tmp_path.mkdir()
    raster = open_input(write_geotiff(tmp_path / "small.tif", rgb_scene(h, w)))
    outs = RasterOutputs(
        raster,
        DUBAI_CLASSES,
        tmp_path / "small",
        fmt="tif",
        color=True,
        overlay=False,
        sieve_pixels=sieve_pixels,
    )
    image, valid = raster.read(Window(0, 0, w, h))
    outs.write(ChunkResult(Window(0, 0, w, h), ids, image, valid))
    raster.close()
    written = outs.finish()
    with rasterio.open(written["classes"]) as src, rasterio.open(written["color"]) as color:
        sieved, rgb = src.read(1), color.read()[:3].transpose(1, 2, 0)
    assert (rgb == DUBAI_CLASSES.display_palette()[sieved]).all()  # the colours follow
    assert outs.counts.tolist() == np.bincount(sieved.ravel(), minlength=6)[:6].tolist()
    return sieved


def test_a_sieve_of_the_whole_scene_or_more_is_what_gdal_takes(tmp_path):
    """GDAL refuses a threshold of the scene's pixels or more ("size must be smaller than
    size of image"): a min area of the scene crashed predict. Capped at the scene less one
    pixel, specks still merge into a region that reaches it; a scene of one pixel is left
    as it is; and where no region reaches it, GDAL merges nothing."""
    ids = np.full((8, 10), 1, np.uint8)
    ids[3, 4] = 0  # a speck in a region of all pixels but it
    for size in (80, 81, 10**9):
        assert (_sieved(tmp_path / f"s{size}", ids, size) == 1).all()
    one = np.array([[3]], np.uint8)
    assert _sieved(tmp_path / "one", one, 4).tolist() == [[3]]
    halves = np.repeat(np.array([[0] * 5 + [2] * 5], np.uint8), 8, axis=0)
    assert (_sieved(tmp_path / "halves", halves, 80) == halves).all()
    # a threshold of the scene less one (79): a region of 78 px does not reach it, so the
    # 2 px beside it stay
    pair = np.full((8, 10), 1, np.uint8)
    pair[0, :2] = 0
    assert (_sieved(tmp_path / "pair", pair, 80) == pair).all()


def test_a_scene_whose_area_overflows_is_refused_before_a_pixel_is_written(tmp_path):
    """Pixels of 1e200 m (a broken georeference) measured Infinity m², which Python's json
    writes and strict parsers refuse: such a scene is refused on opening, its corners far
    past where any CRS places the Earth (data/raster.py, FARTHEST_COORDINATE)."""
    for name, size in (("huge.tif", 1e200), ("wide.tif", 3.1e152)):
        grid = Affine(size, 0, 300_000, 0, -size, 2_800_000)
        scene = write_geotiff(tmp_path / name, rgb_scene(8, 8), transform=grid)
        with pytest.raises(InputError, match=f"{name}: its georeference puts it .* where no CRS"):
            open_input(scene)
        scene.unlink()
    # and whatever reaches write_areas, no Infinity or NaN goes into the JSON
    for bad in (float("inf"), float("nan")):
        rows = [{"class": "Building", "pixels": 1, "share": 1.0, "area_m2": bad}]
        with pytest.raises(ValueError, match="JSON"):
            write_areas(rows, tmp_path / "scene")
        assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["tif", "png"])
def test_the_image_and_overlay_hold_the_picture_clipped_to_8_bits(tmp_path, fmt):
    """The server's preview image, and the overlay: values past 0..255 (a float scene's,
    read unscaled) are clipped, not wrapped; a one-band picture is grey."""
    ids = np.zeros((4, 6), np.uint8)
    ids[:, 3:] = 4  # Water on the right
    valid = np.ones_like(ids, dtype=bool)
    valid[0] = False
    ids[~valid] = NODATA
    values = np.array([[-20.4, 0.0, 127.6, 255.0, 300.0, 1e6]], np.float32).repeat(4, axis=0)
    values[2:] = values[2:, ::-1]  # each band of rows its own
    raster = open_input(write_geotiff(tmp_path / "grey.tif", values[None].astype(np.uint8)), (1,))
    outs = RasterOutputs(
        raster, DUBAI_CLASSES, tmp_path / "grey", fmt=fmt, color=False, overlay=True, image=True
    )
    for top in (0, 2):  # two bands of rows, each where it goes
        rows = slice(top, top + 2)
        chunk = ChunkResult(Window(0, top, 6, 2), ids[rows], values[None, rows], valid[rows])
        outs.write(chunk)
    raster.close()
    written = outs.finish()
    assert {written[k].name for k in ("image", "overlay")} == {
        "grey_image.png",
        "grey_overlay.png",
    }
    clipped = np.clip(values, 0, 255).astype(np.uint8)
    with rasterio.open(written["image"]) as src:
        assert src.count == 3 and src.dtypes[0] == "uint8"
        np.testing.assert_array_equal(src.read(), np.stack([clipped] * 3))
    with rasterio.open(written["overlay"]) as src:
        overlay = src.read()[:3].astype(int)
    water = DUBAI_CLASSES.display_palette()[4]
    blend = np.clip(values, 0, 255).astype(int)  # half the picture, half the class colour
    for band in range(3):
        colour = np.where(ids == 4, water[band], DUBAI_CLASSES.display_palette()[0][band])
        expected = np.where(valid, (blend + colour) // 2, clipped)
        np.testing.assert_allclose(overlay[band], expected, atol=1)


def test_a_sieve_of_two_merges_single_pixels_and_leaves_nodata_out(tmp_path):
    """--min-area of two pixels merges a lone pixel; no-data pixels are not a region to
    merge, nor one to merge into (a 2 x 2 hole under a sieve of 5 stays a hole)."""
    ids = np.full((8, 10), 1, np.uint8)
    ids[2, 2] = 3  # a lone pixel
    assert (_sieved(tmp_path / "two", ids, 2) == 1).all()
    assert _sieved(tmp_path / "one", ids, 1)[2, 2] == 3  # 1: no sieve
    valid = np.ones_like(ids, dtype=bool)
    valid[5:7, 6:8] = False
    raster = open_input(write_geotiff(tmp_path / "holed.tif", rgb_scene(8, 10)))
    outs = RasterOutputs(
        raster, DUBAI_CLASSES, tmp_path / "holed", fmt="tif", color=True, overlay=False,
        sieve_pixels=5,
    )  # fmt: skip
    image, _ = raster.read(Window(0, 0, 10, 8))
    outs.write(ChunkResult(Window(0, 0, 10, 8), np.where(valid, ids, NODATA), image, valid))
    raster.close()
    written = outs.finish()
    with rasterio.open(written["classes"]) as src, rasterio.open(written["color"]) as color:
        sieved, alpha = src.read(1), color.read(4)
    np.testing.assert_array_equal(sieved, np.where(valid, 1, NODATA))
    np.testing.assert_array_equal(alpha, np.where(valid, 255, 0))  # clear where no data
    assert outs.counts.tolist() == [0, 76, 0, 0, 0, 0] and outs.valid_pixels == 76


def test_a_georeference_off_the_earth_is_refused_naming_its_file(tmp_path):
    """Latitudes past the poles cannot be measured: the error names the scene's file."""
    polar = Affine(0.001, 0, 55, 0, -0.001, 90.004)
    scene = write_geotiff(tmp_path / "polar.tif", rgb_scene(8, 8), crs="EPSG:4326", transform=polar)
    raster = open_input(scene)
    with pytest.raises(
        InputError, match=r"^\S*polar\.tif: its georeference reaches past the poles"
    ):
        RasterOutputs(raster, DUBAI_CLASSES, tmp_path / "o", fmt="tif", color=True, overlay=False)
    raster.close()


def test_a_sieve_over_bands_of_rows_keeps_each_rows_area(tmp_path):
    """A scene taller than a sieve band (1,024 rows), in degrees at 60°N, where a pixel's
    area shrinks row by row: the speck in the second band merges, and the areas, counted
    again after the sieve, still add up to the scene's."""
    ids = np.full((1200, 4), 1, np.uint8)
    ids[1100, 2] = 3  # a lone pixel in the second band
    grid = Affine(0.0001, 0, 25, 0, -0.0001, 60.1)
    areas = {}
    for sieve_pixels in (0, 2):
        folder = tmp_path / f"s{sieve_pixels}"
        folder.mkdir()
        scene = write_geotiff(
            folder / "tall.tif", rgb_scene(1200, 4), crs="EPSG:4326", transform=grid
        )
        raster = open_input(scene)
        outs = RasterOutputs(
            raster, DUBAI_CLASSES, folder / "tall", fmt="tif", color=False, overlay=False,
            sieve_pixels=sieve_pixels,
        )  # fmt: skip
        image, valid = raster.read(Window(0, 0, 4, 1200))
        outs.write(ChunkResult(Window(0, 0, 4, 1200), ids, image, valid))
        raster.close()
        with rasterio.open(outs.finish()["classes"]) as src:
            sieved = src.read(1)
        areas[sieve_pixels] = outs.areas.copy()
    assert (sieved == 1).all()
    assert areas[2].sum() == pytest.approx(areas[0].sum(), rel=1e-12)
    # the merged pixel's area, of its own row, moved to the class it merged into
    assert areas[2][1] == pytest.approx(areas[0][1] + areas[0][3], rel=1e-12) and areas[2][3] == 0


def test_a_text_written_alone_is_renamed_into_place_at_once(tmp_path):
    from aerialseg.inference.writers import write_text

    path = write_text(tmp_path / "note.qml", "<qgis/>")
    assert path.read_text(encoding="utf-8") == "<qgis/>"
    assert [p.name for p in tmp_path.iterdir()] == ["note.qml"]
