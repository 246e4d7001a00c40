import io
import json
import sys
import zipfile

import numpy as np
import pytest
import rasterio
import yaml
from affine import Affine
from PIL import Image

from aerialseg.cli import main
from aerialseg.data.catalog import open_catalog
from aerialseg.data.classes import DUBAI_CLASSES, ClassTable, parse_color
from aerialseg.data.inspect import inspect_dataset
from tests.helpers.geotiff import (
    TRANSFORM,
    UTM40N,
    VALUE_CLASSES,
    write_geotiff,
    write_geotiff_dataset,
)
from tests.helpers.hostile import bomb_png
from tests.helpers.images import write_dataset, zip_folder
from tests.helpers.paths import REAL_DATA, requires_real_data

# ../shared/datasets/README.md
README_SHARES = {
    "Building": 0.133,
    "Land": 0.524,
    "Road": 0.094,
    "Vegetation": 0.103,
    "Water": 0.136,
    "Unlabeled": 0.005,
}


@requires_real_data()
def test_inspect_real_dataset_matches_its_readme(capsys):
    assert main(["data", "inspect", str(REAL_DATA), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pairs"] == 72
    assert len(report["tiles"]) == 8 and all(t["pairs"] == 9 for t in report["tiles"].values())
    shares = {c["name"]: c["share"] for c in report["classes"]}
    for name, share in README_SHARES.items():
        assert shares[name] == pytest.approx(share, abs=0.001), name
    assert report["unmatched_share"] == pytest.approx(0.0056, abs=0.0005)
    assert report["unknown_colors"] == []  # every unmatched pixel is black
    assert report["mask_modes"] == {
        "3x uint8": 54,
        "1x uint8 palette": 18,
    }  # Tiles 2 and 4 are palette PNGs
    assert report["image_modes"] == {"3x uint8": 72} and report["image_grids"] == {"none": 72}
    assert report["tiles"]["Tile 2"]["sizes"].keys() >= {"509x544"}
    assert "2149x1479" in report["tiles"]["Tile 8"]["sizes"]


def test_inspect_reports_the_palette_tiles_and_black_borders_of_the_dubai_form(tmp_path):
    """Synthetic twin of the real-data facts above: palette PNG masks (Tiles 2 and 4 in
    the archive) read like RGB ones, and black borders are ignored, not unknown."""
    root = write_dataset(tmp_path / "ds", tiles=4, parts=2, size=(24, 30), palette_tiles=(2, 4))
    report = inspect_dataset(open_catalog(root, DUBAI_CLASSES), DUBAI_CLASSES, 0.05)
    assert report["mask_modes"] == {"3x uint8": 4, "1x uint8 palette": 4}
    assert report["unknown_colors"] == []  # every unmatched pixel is black
    assert report["unmatched_share"] == pytest.approx(1 / 24)  # one black row of 24
    assert report["image_modes"] == {"3x uint8": 8} and report["image_grids"] == {"none": 8}
    assert len(report["tiles"]) == 4 and all(t["pairs"] == 2 for t in report["tiles"].values())


def test_inspect_counts_synthetic_pixels(tiny_dataset):
    report = inspect_dataset(open_catalog(tiny_dataset, DUBAI_CLASSES), DUBAI_CLASSES, 0.05)
    assert report["pairs"] == 18
    assert report["pixels"] == 18 * 72 * 80
    assert report["ignore_color_pixels"] == 18 * 80  # one black row per mask
    assert sum(c["pixels"] for c in report["classes"]) == report["labelled_pixels"]
    assert report["labelled_pixels"] + report["unmatched_pixels"] == report["pixels"]


def test_inspect_table_output(tiny_dataset, capsys):
    assert main(["data", "inspect", str(tiny_dataset)]) == 0
    out = capsys.readouterr().out
    assert "pairs: 18 in 2 tile(s)" in out and "Building" in out


def _regrid(root, name: str, **grid) -> None:
    """Image and mask of scene ``name`` moved onto another grid (CRS and transform) alike."""
    for folder in ("images", "masks"):
        path = root / folder / f"{name}.tif"
        with rasterio.open(path) as src:
            data, nodata = src.read(), src.nodata
        write_geotiff(path, data, nodata=nodata, **grid)


def test_pixel_sizes_in_degrees_and_metres_are_told_apart(tmp_path, capsys):
    """No one pixel_size= reads a scene in degrees like one in metres: inspect counts the
    units and says to reproject, rather than offer the commonest size."""
    root = write_geotiff_dataset(tmp_path / "own", parts=3)
    _regrid(root, "scene_0", crs="EPSG:4326", transform=Affine(5e-6, 0, 55.2, 0, -5e-6, 25.1))
    table = tmp_path / "classes.yaml"
    table.write_text(yaml.safe_dump(VALUE_CLASSES))
    argv = ["data", "inspect", str(root), "--classes", str(table), "--bands", "3,2,1"]
    assert main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pixel_size_units"] == {"degree": 1, "metre": 2}
    assert report["pixel_sizes"] == {"0.5": 2, "5e-06": 1}
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "CRSs of different units (" in out and "reproject the scenes to one CRS" in out
    assert "several pixel sizes" not in out


def test_a_rotated_grid_reports_each_steps_length(tmp_path, capsys):
    """A rotated grid's pixel: a column's step (0.3, 0.4) and a row's (0.4, -0.3) are both
    0.5 m long, however the grid is turned."""
    root = write_geotiff_dataset(tmp_path / "own", parts=1)
    _regrid(root, "scene_0", transform=Affine(0.3, 0.4, TRANSFORM.c, 0.4, -0.3, TRANSFORM.f))
    table = tmp_path / "classes.yaml"
    table.write_text(yaml.safe_dump(VALUE_CLASSES))
    argv = ["data", "inspect", str(root), "--classes", str(table), "--bands", "3,2,1", "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pixel_sizes"] == {"0.5": 1}
    assert report["image_grids"] == {"EPSG:32640, 0.5 x 0.5": 1}


def test_several_pixel_sizes_are_reported_with_the_key_that_unifies_them(tmp_path, capsys):
    root = write_geotiff_dataset(tmp_path / "own", parts=3)
    one_metre = Affine(1.0, 0, TRANSFORM.c, 0, -1.0, TRANSFORM.f)
    for folder in ("images", "masks"):  # scene_0 at 1 m, image and mask on one grid
        path = root / folder / "scene_0.tif"
        with rasterio.open(path) as src:
            data, nodata = src.read(), src.nodata
        write_geotiff(path, data, nodata=nodata, transform=one_metre)
    table = tmp_path / "classes.yaml"
    table.write_text(yaml.safe_dump(VALUE_CLASSES))
    argv = ["data", "inspect", str(root), "--classes", str(table), "--bands", "3,2,1"]
    assert main([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pixel_sizes"] == {"0.5": 2, "1.0": 1}
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "several pixel sizes: train at one with pixel_size= (the most common here:" in out
    assert "pixel_size=0.5)" in out


def damage_in_six_ways(root):
    """Six problems of four kinds in one dataset (2 tiles of 9 pairs, 80x72)."""
    tile1, tile2 = root / "Tile 1", root / "Tile 2"
    for name in ("image_part_002.png", "image_part_006.png"):  # masks of another size
        path = tile1 / "masks" / name
        Image.open(path).resize((40, 36), Image.Resampling.NEAREST).save(path)
    truncated = tile1 / "images" / "image_part_004.jpg"
    truncated.write_bytes(truncated.read_bytes()[:300])
    (tile2 / "masks" / "image_part_003.png").write_text("not an image")
    (tile2 / "masks" / "image_part_005.png").unlink()
    Image.new("RGB", (80, 72), (1, 2, 3)).save(tile2 / "masks" / "image_part_008.png")


def test_inspect_reports_every_problem_in_one_run(fresh_dataset, capsys):
    damage_in_six_ways(fresh_dataset)
    assert main(["data", "inspect", str(fresh_dataset), "--json"]) == 2
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert captured.err.startswith(
        "aerialseg: error: 6 problem(s) in the dataset, listed above; the first:"
        " Tile 2/images/image_part_005.jpg: image has no mask"
    )
    assert len(captured.err.strip().splitlines()) == 1
    found = {(p["kind"], p["file"]) for p in report["problems"]}
    assert found == {
        ("no-mask", "Tile 2/images/image_part_005.jpg"),
        ("size", "Tile 1/masks/image_part_002.png"),
        ("size", "Tile 1/masks/image_part_006.png"),
        ("unreadable", "Tile 1/images/image_part_004.jpg"),
        ("unreadable", "Tile 2/masks/image_part_003.png"),
        ("classes", "Tile 2/masks/image_part_008.png"),
    }
    size = next(p for p in report["problems"] if p["file"].endswith("part_002.png"))
    assert "mask is 40x36 but its image is 80x72" in size["message"]
    assert "'aerialseg train --resize-masks'" in size["message"]
    assert "100.0% of pixels match no class colour" in report["problems"][-1]["message"]
    # the figures cover the 12 good pairs of the 17 that have a mask
    assert report["pairs"] == 17 and report["pixels"] == 12 * 80 * 72
    assert sum(t["pairs"] for t in report["tiles"].values()) == 12

    assert main(["data", "inspect", str(fresh_dataset)]) == 2
    out = capsys.readouterr().out
    assert (
        "6 problem(s), pairs left out of the figures above: 1 image(s) without a mask,"
        " 2 mask(s) of another size or grid than the image, 2 unreadable file(s),"
        " 1 mask(s) the class table does not fit" in out
    )
    assert out.count("\n  Tile ") >= 6  # one line per problem
    assert "  Tile 1/masks/image_part_006.png: mask is 40x36" in out


def test_a_dataset_with_no_problem_has_an_empty_list(tiny_dataset, capsys):
    assert main(["data", "inspect", str(tiny_dataset), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["problems"] == []


def test_a_dataset_of_only_problems_is_reported_not_divided_by_zero(tmp_path, capsys):
    root = write_dataset(tmp_path / "ds", tiles=1, parts=1)
    (root / "Tile 1" / "masks" / "image_part_001.png").write_text("broken")
    assert main(["data", "inspect", str(root), "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["pixels"] == 0 and report["unmatched_share"] == 0.0
    assert [c["share"] for c in report["classes"]] == [0.0] * 6
    # as text: no empty lines of what no scene gave (a review: "georeference: ")
    assert main(["data", "inspect", str(root)]) == 2
    out = capsys.readouterr().out
    assert not any(line.rstrip().endswith(":") for line in out.splitlines()), out


def test_inspect_of_the_zip_names_the_same_files(fresh_dataset, tmp_path, capsys):
    damage_in_six_ways(fresh_dataset)
    archive = zip_folder(fresh_dataset, tmp_path / "archive.zip")
    assert main(["data", "inspect", str(archive), "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    unreadable = {p["file"]: p["message"] for p in report["problems"] if p["kind"] == "unreadable"}
    assert sorted(unreadable) == [
        "Tile 1/images/image_part_004.jpg",
        "Tile 2/masks/image_part_003.png",
    ]
    root = f"{archive}:{fresh_dataset.name}"
    assert unreadable["Tile 2/masks/image_part_003.png"].startswith(
        f"{root}/Tile 2/masks/image_part_003.png: cannot read the file (not recognized as"
    )


def test_decompression_bombs_and_oversize_images_are_listed_as_problems(tmp_path, capsys):
    """A 500-byte PNG mask that declares 30,000 x 30,000 px crashed inspect: it is listed.
    A sparse GeoTIFF pair of 20,000 x 10,000 px is a scene read by windows, not decoded
    whole: inspected, its labels counted on every other pixel."""
    root = write_geotiff_dataset(tmp_path / "ds", parts=3)
    profile = {"driver": "GTiff", "width": 20_000, "height": 10_000, "tiled": True}
    profile |= {"crs": UTM40N, "transform": TRANSFORM}
    for folder, count, dtype in (("images", 4, "uint16"), ("masks", 1, "uint8")):
        path = root / folder / "scene_1.tif"
        with rasterio.open(path, "w", **profile, count=count, dtype=dtype, sparse_ok=True):
            pass  # no block written: a few KB on disk
    plain = write_dataset(tmp_path / "plain", tiles=1, parts=2)
    bomb_png(plain / "Tile 1" / "masks" / "image_part_001.png")
    argv = ["data", "inspect", str(root), "--json", "--bands", "3,2,1"]
    assert main([*argv, "--classes", classes_file(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["problems"] == [] and report["tiles"]["."]["sizes"]["20000x10000"] == 1
    assert report["ignore_color_pixels"] >= 20_000 * 10_000  # its value 0: ignored
    assert main(["data", "inspect", str(plain), "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert [(p["kind"], p["file"]) for p in report["problems"]] == [
        ("oversize", "Tile 1/masks/image_part_001.png")
    ]
    assert report["tiles"] == {"Tile 1": {"pairs": 1, "sizes": {"80x72": 1}}}  # the next one
    assert main(["data", "inspect", str(plain)]) == 2
    captured = capsys.readouterr()
    assert "1 image(s) too large to decode" in captured.out
    assert (
        "Tile 1/masks/image_part_001.png: 30,000 x 30,000 px, more than the 178,956,970 pixels"
        " a JPEG or PNG of a dataset may have (they are decoded whole)" in captured.out
    )
    assert "Traceback" not in captured.err and len(captured.err.strip().splitlines()) == 1


def classes_file(tmp_path) -> str:
    path = tmp_path / "classes.yaml"
    path.write_text(yaml.safe_dump(VALUE_CLASSES))
    return str(path)


def test_masks_without_a_labelled_pixel_are_a_problem_of_the_dataset(tmp_path, capsys):
    """A review: masks all nodata passed inspect with exit 0 ('pixels matching no class:
    100%'), and train then wrote a model of nothing. A problem of the whole dataset: no
    pair is left out of the figures for it."""
    from PIL import Image

    root = write_dataset(tmp_path / "ds", tiles=1, parts=2, palette_tiles=())
    for mask in (root / "Tile 1" / "masks").iterdir():
        Image.new("RGB", (80, 72)).save(mask)  # black: an ignore colour of the Dubai table
    assert main(["data", "inspect", str(root), "--json"]) == 2
    said = capsys.readouterr()
    assert json.loads(said.out)["problems"] == [
        {
            "kind": "unlabelled",
            "file": str(root),
            "message": f"{root}: no pixel of its masks is of a class (each is nodata, an ignore"
            " value or colour, or outside the labelled area): nothing to train on",
        }
    ]
    assert main(["data", "inspect", str(root)]) == 2
    out = capsys.readouterr().out
    assert "pairs left out" not in out and "  " + f"{root}: no pixel of its masks" in out


def test_a_class_raster_that_labels_none_of_its_image_is_a_problem(tmp_path, capsys):
    """Found by a review: a mask tagged with another CRS (or a place beside its image) was
    warped onto nothing; inspect said nothing, training used none of the scene, and
    evaluate scored it with no pixel."""
    root = write_geotiff_dataset(tmp_path / "own", parts=2)
    path = root / "masks" / "scene_0.tif"
    with rasterio.open(path) as src:
        data = src.read()
    far = Affine(TRANSFORM.a, 0, TRANSFORM.c + 50_000, 0, TRANSFORM.e, TRANSFORM.f)
    write_geotiff(path, data, transform=far)  # 50 km east: over no pixel of its image
    table = tmp_path / "classes.yaml"
    table.write_text(yaml.safe_dump(VALUE_CLASSES))
    argv = ["data", "inspect", str(root), "--classes", str(table), "--bands", "3,2,1"]
    main(argv)
    out = capsys.readouterr().out
    assert "masks/scene_0.tif: lies on no pixel of its image (another place, or a wrong" in out
    assert "masks/scene_1.tif" not in out.split("problem(s)")[1]  # the other is fine


def test_scenes_in_degrees_and_metres_are_told_to_share_a_crs(tmp_path, capsys):
    """Found by a review: a folder of a UTM and a WGS 84 scene was advised pixel_size=1.0,
    less than one pixel of the scene in degrees and 8x past the resampling limit of the
    other: one pixel_size= cannot read both."""
    root = write_geotiff_dataset(tmp_path / "own", parts=2)
    degrees = Affine(5e-6, 0, 57.0, 0, -5e-6, 25.0)
    for folder in ("images", "masks"):
        path = root / folder / "scene_0.tif"
        with rasterio.open(path) as src:
            data, nodata = src.read(), src.nodata
        write_geotiff(path, data, nodata=nodata, crs="EPSG:4326", transform=degrees)
    table = tmp_path / "classes.yaml"
    table.write_text(yaml.safe_dump(VALUE_CLASSES))
    assert main(["data", "inspect", str(root), "--classes", str(table), "--bands", "3,2,1"]) == 0
    out = capsys.readouterr().out
    assert "CRSs of different units (" in out and "degree" in out and "metre" in out
    assert "reproject the scenes to one CRS first" in out and "pixel_size=" not in out


def test_the_report_reads_as_documented():
    """format_report's text, line by line, from a report of every part: tiles and their
    sizes, file modes, grids, pixel sizes in two units, the class table with colours and
    values, unknown colours and values, and problems of two kinds."""
    from aerialseg.data.inspect import format_report

    report = {
        "path": "own.zip", "root": "data", "pairs": 3,
        "tiles": {"Tile 1": {"pairs": 2, "sizes": {"64x48": 1, "80x72": 1}}},
        "image_modes": {"3x uint8": 2, "4x uint16": 1}, "mask_modes": {"1x uint8": 3},
        "image_grids": {"EPSG:32640, 0.5 x 0.5": 2, "none": 1},
        "pixel_sizes": {"0.5": 2, "5e-06": 1}, "pixel_size_units": {"metre": 2},
        "pixels": 12345,
        "classes": [
            {"name": "Building", "mask_color": "#3C1098", "mask_value": None, "share": 0.25},
            {"name": "Water", "mask_color": None, "mask_value": 5, "share": 0.5},
        ],
        "unmatched_pixels": 1234, "unmatched_share": 0.1, "ignore_color_pixels": 1000,
        "unknown_colors": [{"color": "#FF0000", "pixels": 1500}],
        "unknown_values": [{"value": 9, "pixels": 2500}],
        "problems": [
            {"kind": "size", "file": "a", "message": "a.png: mask is 4x4"},
            {"kind": "unreadable", "file": "b", "message": "b.png: cannot read"},
        ],
    }  # fmt: skip
    assert format_report(report).splitlines() == [
        "dataset: own.zip (root: data)",
        "pairs: 3 in 1 tile(s)",
        "  Tile 1         2 pairs  64x48 x1, 80x72 x1",
        "image files: 3x uint8 x2, 4x uint16 x1",
        "mask files: 1x uint8 x3",
        "georeference: EPSG:32640, 0.5 x 0.5 x2, none x1",
        "several pixel sizes: train at one with pixel_size= (the most common here: pixel_size=0.5)",
        "pixels: 12,345",
        "  class        colour   value   share",
        "  Building     #3C1098         25.00%",
        "  Water                     5  50.00%",
        "pixels matching no class or the image's nodata: 1,234 (10.00%); of these ignored as"
        " declared: 1,000",
        "  unknown colour #FF0000: 1,500 px",
        "  unknown value 9: 2,500 px",
        "2 problem(s), pairs left out of the figures above: 1 mask(s) of another size or"
        " grid than the image, 1 unreadable file(s)",
        "  a.png: mask is 4x4",
        "  b.png: cannot read",
    ]
    # one pixel size, and plain images only: neither line
    report |= {"pixel_sizes": {"0.5": 3}, "image_grids": {"none": 3}}
    text = format_report(report)
    assert "several pixel sizes" not in text and "georeference:" not in text
    report["pixel_size_units"] = {"metre": 2, "degree": 1}
    assert (
        "CRSs of different units (metre, degree): pixel sizes do not compare; reproject the"
        " scenes to one CRS first (gdalwarp -t_srs)"
    ) in format_report(report)
    # polygons: what matches no class is what no label covers (a review: '99.51 %' read
    # as a broken dataset)
    said = "  of polygon labels: pixels outside the labelled area, or that no polygon covers"
    assert said not in format_report(report)
    report["mask_modes"] = {"polygons": 2, "1x uint8": 1}
    lines = format_report(report).splitlines()
    assert lines[
        lines.index(said + " where no class is the background; training leaves them out") - 1
    ].startswith("pixels matching no class or the image's nodata: ")


def _flat_pair(root, name: str, mask: np.ndarray) -> None:
    """``root/images/NAME.png`` (grey) and ``root/masks/NAME.png``, the flat layout."""
    for folder in ("images", "masks"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(mask.shape[:2], 128, np.uint8)).save(root / "images" / f"{name}.png")
    Image.fromarray(mask).save(root / "masks" / f"{name}.png")


def test_the_json_report_counts_whole_pixels_and_the_ten_commonest_unknown_codes(tmp_path):
    """The --json figures, exactly, on masks built so that each count is known: twelve
    unknown colours of 1 to 12 pixels (the ten commonest listed, commonest first), pixel
    counts as whole numbers, class shares, two pairs of one size in the flat layout's one
    tile, and masks whose ids reach no class past Land and no unknown code."""
    colours = {c.name: parse_color(c.mask_color) for c in DUBAI_CLASSES.classes}
    mask = np.zeros((10, 8, 3), np.uint8)
    mask[:] = colours["Land"]
    flat = mask.reshape(-1, 3)
    for k in range(1, 13):  # unknown colour (k, 200, 7) on k pixels: 78 in all
        start = k * (k - 1) // 2
        flat[start : start + k] = (k, 200, 7)
    flat[78:80] = colours["Building"]
    root = tmp_path / "flat"
    _flat_pair(root, "a", mask)
    plain = np.zeros((10, 8, 3), np.uint8)
    plain[:] = colours["Building"]
    plain[:5] = colours["Land"]
    _flat_pair(root, "b", plain)
    report = inspect_dataset(open_catalog(root, DUBAI_CLASSES), DUBAI_CLASSES, 1.0)
    assert report["problems"] == []
    assert report["tiles"] == {".": {"pairs": 2, "sizes": {"8x10": 2}}}
    assert report["unknown_colors"] == [
        {"color": f"#{k:02X}C807", "pixels": k} for k in range(12, 2, -1)
    ]
    assert report["unknown_values"] == []
    assert (report["pixels"], report["labelled_pixels"], report["unmatched_pixels"]) == (
        160,
        82,
        78,
    )
    by_name = {c["name"]: c for c in report["classes"]}
    assert (by_name["Building"]["pixels"], by_name["Land"]["pixels"]) == (42, 40)
    assert by_name["Building"]["share"] == 42 / 160 and by_name["Water"]["share"] == 0.0
    whole = [report["pixels"], *(u["pixels"] for u in report["unknown_colors"])]
    whole += [c["pixels"] for c in report["classes"]]
    assert all(type(n) is int for n in whole), whole  # not 160.0: JSON says 160
    # masks of Building and Land only (ids 0 and 1, nothing unknown) count alone too
    _flat_pair(tmp_path / "plain", "b", plain)
    only = inspect_dataset(open_catalog(tmp_path / "plain", DUBAI_CLASSES), DUBAI_CLASSES, 1.0)
    assert [c["pixels"] for c in only["classes"]] == [40, 40, 0, 0, 0, 0]


def test_unknown_mask_values_are_listed_as_values(tmp_path):
    root = write_geotiff_dataset(tmp_path / "own", parts=2)
    path = root / "masks" / "scene_0.tif"
    with rasterio.open(path) as src:
        data, nodata = src.read(), src.nodata
    for k in range(12):  # values 70-81 that no class has, on 1 to 12 pixels of row k
        data[0, k, : k + 1] = 70 + k
    write_geotiff(path, data, nodata=nodata)
    table = ClassTable.from_dict(VALUE_CLASSES)
    report = inspect_dataset(open_catalog(root, table), table, 1.0, bands=(3, 2, 1))
    assert report["unknown_values"] == [  # the ten commonest, commonest first
        {"value": str(70 + k), "pixels": k + 1} for k in range(11, 1, -1)
    ]
    assert report["unknown_colors"] == []


def test_a_zip_of_the_dataset_itself_names_its_files_as_the_folder_does(tmp_path, capsys):
    """An archive whose images/ and masks/ are at its top (root '.'): a problem's file is
    named without the archive's path, as in the folder."""
    root = write_dataset(tmp_path / "ds", tiles=1, parts=2)
    (root / "Tile 1" / "masks" / "image_part_002.png").write_text("not an image")
    archive = tmp_path / "top.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted((root / "Tile 1").rglob("*")):
            z.write(path, path.relative_to(root / "Tile 1"))
    assert main(["data", "inspect", str(archive), "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["root"] == "."
    assert [(p["kind"], p["file"]) for p in report["problems"]] == [
        ("unreadable", "masks/image_part_002.png")
    ]


def test_bands_are_read_where_asked_and_a_missing_band_is_a_problem(tmp_path):
    root = write_geotiff_dataset(tmp_path / "own", parts=2)
    table = ClassTable.from_dict(VALUE_CLASSES)
    report = inspect_dataset(open_catalog(root, table), table, 1.0, bands=(9,))
    assert [p["message"] for p in report["problems"]] == [
        f"images/scene_{k}.tif: --bands 9 asks for band 9 but the file has 4" for k in (0, 1)
    ]
    assert inspect_dataset(open_catalog(root, table), table, 1.0)["problems"] == []


def test_a_terminal_sees_a_bar_of_scenes_that_clears_when_done(tmp_path, monkeypatch):
    """Long inspections show progress where stderr is a terminal (none under pytest or in
    a log), counted in scenes, and leave no bar above the report."""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    root = write_dataset(tmp_path / "ds", tiles=1, parts=3)
    monkeypatch.setattr(sys, "stderr", Terminal())
    inspect_dataset(open_catalog(root, DUBAI_CLASSES), DUBAI_CLASSES, 0.05)
    drawn = sys.stderr.getvalue()
    assert drawn.startswith("\rinspect: ") and "/3 [" in drawn and "scene/s]" in drawn
    assert drawn.endswith("\r") and "\n" not in drawn  # cleared, not left


def test_an_image_whose_pixels_are_cut_short_is_named_not_its_mask(tmp_path, capsys):
    """A JPEG cut at 60 %: its header reads (so its mask is bound to its grid), its pixels
    do not; the problem names the image."""
    root = write_dataset(tmp_path / "ds", tiles=1, parts=3)
    image = root / "Tile 1" / "images" / "image_part_002.jpg"
    image.write_bytes(image.read_bytes()[: len(image.read_bytes()) * 6 // 10])
    report = inspect_dataset(open_catalog(root, DUBAI_CLASSES), DUBAI_CLASSES, 0.05)
    assert [(p["kind"], p["file"]) for p in report["problems"]] == [
        ("unreadable", "Tile 1/images/image_part_002.jpg")
    ]
    assert "truncated or damaged" in report["problems"][0]["message"]


@pytest.mark.parametrize("counted", [None, 2000])  # every pixel, or every 2nd row and column
def test_the_images_nodata_is_not_counted_as_labelled(tmp_path, monkeypatch, counted):
    """A review: inspect counted a scene's nodata pixels as labelled (as their polygons'
    or mask's class), while training leaves them out. These scenes' last 3 columns are
    nodata and their masks' first 2 rows unlabelled (value 0)."""
    from aerialseg.data import scenes

    if counted:
        monkeypatch.setattr(scenes, "COUNTED_PIXELS", counted)  # 72 x 80 px: every 2nd
    root = write_geotiff_dataset(tmp_path / "own", parts=2, size=(72, 80))
    table = ClassTable.from_dict(VALUE_CLASSES)
    report = inspect_dataset(open_catalog(str(root), table), table, 0.05, bands=(3, 2, 1))
    step = 2 if counted else 1
    rows, cols = len(range(0, 72, step)), len(range(0, 80, step))
    unlabelled = len(range(0, 2, step)) * cols + len(range(77, 80)[step - 1 :: step]) * rows
    unlabelled -= len(range(0, 2, step)) * len(range(77, 80)[step - 1 :: step])  # both
    assert report["pixels"] == 2 * 72 * 80
    assert report["labelled_pixels"] == 2 * (rows * cols - unlabelled) * step * step


def test_a_float_images_nan_and_inf_are_not_counted_as_labelled(tmp_path):
    """A review: inspect counted every pixel of a half-NaN float scene as labelled, while
    training and predict leave NaN and inf out. Rows 0-9 are NaN in band 1 and column 5 is
    inf in band 2; the masks' rows 0-1 are unlabelled already."""
    root = write_geotiff_dataset(tmp_path / "own", parts=2, size=(72, 80))
    table = ClassTable.from_dict(VALUE_CLASSES)

    def labelled(holes: bool) -> int:
        for image in sorted((root / "images").iterdir()):
            with rasterio.open(image) as src:
                profile = src.profile | {"dtype": "float32", "nodata": None}
                data = src.read().astype(np.float32)
            if holes:
                data[0, :10] = np.nan
                data[1, :, 5] = np.inf
            with rasterio.open(image, "w", **profile) as dst:
                dst.write(data)
        return inspect_dataset(open_catalog(str(root), table), table, 0.05)["labelled_pixels"]

    assert labelled(holes=False) - labelled(holes=True) == 2 * (8 * 80 + 62)


def test_a_palette_image_is_inspected_in_the_three_bands_of_its_colours(tmp_path):
    """A review: bands=(1,2,3) of a one-band palette image (its colours, as training reads
    it) asked GDAL for the mask of bands 2 and 3: IndexError."""
    root = write_geotiff_dataset(tmp_path / "own", parts=2, size=(24, 30))
    for image in (root / "images").iterdir():
        with rasterio.open(image) as src:
            profile = src.profile | {"count": 1, "dtype": "uint8", "nodata": None}
        with rasterio.open(image, "w", **profile) as dst:
            dst.write(np.arange(24 * 30, dtype=np.uint8).reshape(1, 24, 30) % 7)
            dst.write_colormap(1, {k: (30 * k, 20 * k, 10 * k, 255) for k in range(7)})
    table = ClassTable.from_dict(VALUE_CLASSES)
    for bands in ((1, 2, 3), (3, 2, 1), None):
        report = inspect_dataset(open_catalog(str(root), table), table, 0.05, bands=bands)
        assert report["problems"] == [] and report["pixels"] == 2 * 24 * 30


@pytest.mark.parametrize("empty", ["nan", "nodata"])
def test_an_image_without_data_is_a_problem_of_the_image_not_its_mask(tmp_path, empty):
    """A review: an all-NaN image was reported only as its mask's pixels "matching no class
    or the image's nodata". One without any data (NaN, or its nodata value everywhere) is
    now a problem that names the image, and is left out of the figures."""
    root = write_geotiff_dataset(tmp_path / "own", parts=2, size=(72, 80))
    table = ClassTable.from_dict(VALUE_CLASSES)
    image = sorted((root / "images").iterdir())[0]
    with rasterio.open(image) as src:
        profile, data = src.profile, src.read()
    if empty == "nan":
        profile |= {"dtype": "float32", "nodata": None}
        data = np.full(data.shape, np.nan, np.float32)
    else:
        data[:] = profile["nodata"]
    with rasterio.open(image, "w", **profile) as dst:
        dst.write(data)
    report = inspect_dataset(open_catalog(str(root), table), table, 0.05)
    name = f"images/{image.name}"
    assert report["problems"] == [
        {
            "kind": "no-data",
            "file": name,
            "message": f"{name}: the image has no data (every pixel is nodata or NaN)",
        }
    ]
    assert report["pixels"] == 72 * 80  # the other scene only
