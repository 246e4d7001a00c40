"""End to end through the CLI on one's own area: a UTM scene with polygon labels in WGS84
-> block split (and its GeoPackage) -> train a few steps, streamed -> evaluate the test
blocks -> predict the scene."""

import json
import re
import shutil

import fiona
import numpy as np
import pytest
import rasterio

from aerialseg.cli import main
from tests.helpers.geodata import (
    POLYGON_CLASSES,
    class_boxes,
    class_ids_of,
    scene_transform,
    write_geojson,
    write_polygons,
    write_scene,
)
from tests.helpers.models import FAST

H, W = 256, 320


@pytest.fixture
def area(tmp_path):
    boxes = class_boxes(H, W, seed=11, count=60)
    truth = class_ids_of(boxes, H, W, scene_transform())
    scene = write_scene(tmp_path / "scene.tif", truth, scene_transform())
    labels = write_polygons(tmp_path / "labels.gpkg", boxes)
    classes = tmp_path / "classes.json"
    classes.write_text(json.dumps(POLYGON_CLASSES))
    return tmp_path, scene, labels, classes, boxes


def test_polygons_split_train_evaluate_predict(area, capsys):
    root, scene, labels, classes, _ = area
    labelled = ["--labels", str(labels), "--label-field", "class", "--classes", str(classes)]
    split = root / "split.json"
    assert (
        main(
            [
                "data",
                "split",
                str(scene),
                "--out",
                str(split),
                "--block-size",
                "64",
                "--buffer",
                "8",
                *labelled,
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "train with: aerialseg train --data" in out and "--label-field class" in out
    blocks = json.loads(split.read_text())["blocks"]
    assert sum(len(v) for v in blocks.values()) <= 20 and blocks["test"]
    with fiona.open(split.with_suffix(".gpkg")) as layer:  # the blocks, for QGIS
        rows = [(f.properties["split"], f.geometry) for f in layer]
        assert layer.crs_wkt and "32640" in layer.crs.to_string()
    assert len(rows) == sum(len(v) for v in blocks.values())
    run = root / "run"
    # cache_megabytes=0: the scene is streamed, window by window
    assert (
        main(
            [
                "train",
                "--data",
                str(scene),
                "--split",
                str(split),
                "--out",
                str(run),
                *labelled,
                *FAST,
                "max_steps=3",
                "cache_megabytes=0",
            ]
        )
        == 0
    )
    # its temperature was fitted on blocks, not images (a review: "4 validation image(s)")
    assert re.search(r"fitted on \d+ validation block\(s\)\n", capsys.readouterr().out)
    assert (run / "model.pt").is_file()
    assert (
        main(
            [
                "evaluate",
                str(run / "model.pt"),
                "--data",
                str(scene),
                "--split-file",
                str(split),
                "--labels",
                str(labels),
                "--label-field",
                "class",
                "--out",
                str(root / "eval"),
            ]
        )
        == 0
    )
    said = capsys.readouterr().out
    assert said.startswith(f"test split, {len(blocks['test'])} blocks, model ")  # not images
    report = json.loads((root / "eval" / "metrics.json").read_text())
    assert len(report["per_image"]) == len(blocks["test"]) and report["scored"] == "blocks"
    first = blocks["test"][0]
    assert f"scene.tif[{','.join(map(str, first['window']))}]" in report["per_image"]
    assert (
        main(["predict", str(scene), "--model", str(run / "model.pt"), "--out", str(root / "pred")])
        == 0
    )
    with rasterio.open(next((root / "pred").glob("scene*.tif"))) as ds:
        assert ds.crs.to_epsg() == 32640 and (ds.height, ds.width) == (H, W)


def test_two_dates_of_one_ground_share_their_blocks_and_the_split_says_so(area, capsys):
    """A review: two dates of one scene got their blocks dealt each on its own, half of
    one's test ground in the other's training blocks."""
    root, scene, labels, classes, _ = area
    dates = root / "dates"
    dates.mkdir()
    for year in ("2024", "2025"):
        shutil.copy(scene, dates / f"{year}.tif")
    split = root / "dates.json"
    argv = ["data", "split", str(dates), "--labels", str(labels), "--label-field", "class"]
    argv += ["--classes", str(classes), "--block-size", "64", "--buffer", "8"]
    assert main([*argv, "--out", str(split)]) == 0
    assert "1 scene(s) lie on another's grid (one ground at two dates" in capsys.readouterr().out
    blocks = json.loads(split.read_text())["blocks"]
    by_year = [
        {(name, tuple(part["window"])) for name in blocks for part in blocks[name]
         if part["image"].endswith(f"{year}.tif")}
        for year in ("2024", "2025")
    ]  # fmt: skip
    assert by_year[0] == by_year[1] and by_year[0]


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--label-field", "kind"], "no field 'kind'; its fields are class"),
        (["--label-field", "class", "--label-crs", "EPSG:nope"], "not a CRS GDAL knows"),
    ],
)
def test_bad_polygon_input_is_one_line_and_exit_2(area, capsys, extra, expected):
    root, scene, labels, classes, _ = area
    code = main(
        [
            "train",
            "--data",
            str(scene),
            "--labels",
            str(labels),
            "--classes",
            str(classes),
            "--out",
            str(root / "run"),
            *extra,
            *FAST,
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and expected in err and "\n" not in err
    assert not (root / "run").exists()  # nothing half-written


def test_a_geojson_in_metres_without_crs_says_how_to_fix_it(area, capsys):
    root, scene, _, classes, boxes = area
    bad = write_geojson(root / "utm.geojson", boxes, wgs84=False)
    args = [
        "data",
        "split",
        str(scene),
        "--out",
        str(root / "s.json"),
        "--block-size",
        "64",
        "--buffer",  # the default, the crop size (256), is more than half a block
        "16",
        "--labels",
        str(bad),
        "--label-field",
        "class",
        "--classes",
        str(classes),
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "not degrees" in err and "--label-crs" in err
    assert not (root / "s.json").exists()
    assert main([*args, "--label-crs", "EPSG:32640"]) == 0
    assert (root / "s.json").is_file()
    np.testing.assert_equal(len(json.loads((root / "s.json").read_text())["blocks"]), 3)


def test_a_block_split_of_plain_images_trains_and_scores_blocks(fresh_dataset, tmp_path, capsys):
    # the published protocol's kind of split: 256 px patches of the same images (here 32 px)
    split = tmp_path / "blocks.json"
    assert main(["data", "split", str(fresh_dataset), "--out", str(split), "--block-size", "32",
                 "--buffer", "0", "--val", "0.1", "--test", "0.2"]) == 0  # fmt: skip
    assert "no georeference: no GeoPackage" in capsys.readouterr().out
    blocks = json.loads(split.read_text())["blocks"]
    run = tmp_path / "run"
    assert main(["train", "--data", str(fresh_dataset), "--split", str(split), "--out",
                 str(run), *FAST, "max_steps=2"]) == 0  # fmt: skip
    assert main(["evaluate", str(run / "model.pt"), "--data", str(fresh_dataset),
                 "--split-file", str(split), "--out", str(tmp_path / "eval")]) == 0  # fmt: skip
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert len(report["per_image"]) == len(blocks["test"])
    total = sum(b["window"][2] * b["window"][3] for b in blocks["test"])
    # every pixel of the test blocks is scored or ignored, none beyond them
    labelled = sum(v["labelled_pixels"] for v in report["per_image"].values())
    assert labelled + report["ignored_pixels"] == total


def test_invalid_polygons_are_repaired_and_the_count_is_told(area, capsys):
    from shapely.geometry import Polygon

    from tests.helpers.geodata import ORIGIN, write_polygons

    root, scene, _, classes, boxes = area
    left, top = ORIGIN
    bowtie = Polygon([(left, top), (left + 20, top - 20), (left + 20, top), (left, top - 20)])
    labels = write_polygons(root / "bowtie.gpkg", [*boxes, (bowtie, "Water")])
    args = [
        "data",
        "split",
        str(scene),
        "--out",
        str(root / "s.json"),
        "--block-size",
        "64",
        "--buffer",  # the default, the crop size (256), is more than half a block
        "16",
        "--labels",
        str(labels),
        "--label-field",
        "class",
        "--classes",
        str(classes),
    ]
    assert main(args) == 0
    assert "repaired 1 invalid polygon(s)" in capsys.readouterr().err


def test_a_label_field_mixing_names_and_numbers_splits_and_a_fraction_is_one_line(area, capsys):
    root, scene, _, classes, boxes = area
    # Road's polygons say 7, its mask_value, the others their names: GDAL types the field JSON
    mixed = [(geom, 7 if name == "Road" else name) for geom, name in boxes]
    labels = write_geojson(root / "mixed.geojson", mixed)
    split = ["data", "split", str(scene), "--block-size", "64", "--buffer", "16"]
    split += ["--label-field", "class"]
    split += ["--classes", str(classes)]
    assert main([*split, "--labels", str(labels), "--out", str(root / "s.json")]) == 0
    assert (root / "s.json").is_file()
    capsys.readouterr()
    half = write_geojson(root / "half.geojson", [*mixed[:-1], (mixed[-1][0], 3.5)])
    assert main([*split, "--labels", str(half), "--out", str(root / "t.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert f"feature {len(mixed) - 1}: 'class' is 3.5" in err and "\n" not in err
    assert not (root / "t.json").exists()


@pytest.mark.parametrize("out", ["labels.json", "classes.json", "scene.tif"])
def test_a_split_whose_files_would_replace_an_input_is_refused(area, capsys, out):
    """A review: `data split --labels area1.gpkg --out area1.json --block-size ...` wrote
    the blocks' GeoPackage over the label polygons; `--out classes.json` the split over the
    class table. Refused before anything is read or written; the inputs stay whole."""
    root, scene, labels, classes, _ = area
    kept = {p: p.read_bytes() for p in (scene, labels, classes)}
    labelled = ["--labels", str(labels), "--label-field", "class", "--classes", str(classes)]
    split = ["data", "split", str(scene), "--out", str(root / out), "--block-size", "64"]
    assert main([*split, *labelled]) == 2
    replaced = {"labels.json": labels, "classes.json": classes, "scene.tif": scene}[out]
    written = "labels.gpkg" if out == "labels.json" else out
    assert capsys.readouterr().err == (
        f"aerialseg: error: --out {root / out} would replace {replaced}, an input, with"
        f" {written}: name another file\n"
    )
    assert {p: p.read_bytes() for p in kept} == kept
    assert sorted(p.name for p in root.iterdir()) == ["classes.json", "labels.gpkg", "scene.tif"]


def test_split_data_takes_a_block_size_in_pixels_as_a_number(area, tmp_path):
    """A review: split_data(block_size=256) was refused ("give str"), where suggest takes
    256; the number is the same split as its text, and the command still takes "64"."""
    import aerialseg

    _, scene, labels, classes, _ = area
    reading = dict(labels=labels, label_field="class", classes=classes, buffer=8)
    aerialseg.split_data(scene, tmp_path / "n.json", block_size=64, **reading)
    aerialseg.split_data(scene, tmp_path / "t.json", block_size="64", **reading)
    as_number, as_text = (json.loads((tmp_path / f).read_text()) for f in ("n.json", "t.json"))
    assert as_number["blocks"] == as_text["blocks"] and as_number["blocks"]["test"]
    argv = ["data", "split", str(scene), "--labels", str(labels), "--label-field", "class"]
    argv += ["--classes", str(classes), "--block-size", "64", "--buffer", "8"]
    assert main([*argv, "--out", str(tmp_path / "c.json")]) == 0
    assert json.loads((tmp_path / "c.json").read_text())["blocks"] == as_text["blocks"]
