"""predict on bad input: one line, non-zero exit, no partial output under a final name."""

from __future__ import annotations

import json
import os
import tracemalloc
import warnings

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.errors import NotGeoreferencedWarning

from aerialseg.cli import main
from aerialseg.inference import run, writers
from tests.helpers.geotiff import TRANSFORM, write_geotiff
from tests.helpers.hostile import complex_geotiff, wide_tiff
from tests.helpers.images import rgb_scene


def fails(argv, capsys, *fragments, code=2):
    assert main(argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if code == 2:  # a user error: one line says it (progress bars aside)
        said = [line for line in err.splitlines() if line.startswith("aerialseg:")]
        assert len(said) == 1, err
    for fragment in fragments:
        assert fragment in err, err
    return err


@pytest.fixture
def base(tiny_model, tmp_path):
    return ["--model", str(tiny_model), "--out", str(tmp_path / "o"), "--device", "cpu"]


def test_not_an_image(tmp_path, base, capsys):
    (tmp_path / "notes.tif").write_text("hello")
    fails(["predict", str(tmp_path / "notes.tif"), *base], capsys, "notes.tif", "not an image")
    assert not (tmp_path / "o").exists()  # the output folder it made is gone again
    (tmp_path / "o").mkdir()
    fails(["predict", str(tmp_path / "notes.tif"), *base], capsys, "not an image")
    assert (tmp_path / "o").is_dir() and not list((tmp_path / "o").iterdir())  # a user's stays


def test_empty_file(tmp_path, base, capsys):
    (tmp_path / "empty.png").write_bytes(b"")
    fails(["predict", str(tmp_path / "empty.png"), *base], capsys, "empty (0 bytes)")


def test_truncated_geotiff(tmp_path, base, capsys):
    path = write_geotiff(tmp_path / "big.tif", rgb_scene(300, 300))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    fails(["predict", str(path), *base], capsys, "big.tif")
    assert not (tmp_path / "o").exists()


def test_band_count_needs_bands(tmp_path, base, capsys):
    path = write_geotiff(tmp_path / "gray.tif", rgb_scene(40, 40)[:1])
    fails(["predict", str(path), *base], capsys, "has 1 band(s)", "--bands")
    assert main(["predict", str(path), *base, "--bands", "1,1,1"]) == 0


def test_bands_out_of_range(tmp_path, base, capsys):
    path = write_geotiff(tmp_path / "rgb.tif", rgb_scene(40, 40))
    fails(["predict", str(path), *base, "--bands", "1,2,5"], capsys, "band 5", "has 3")


def test_unwritable_output_folder(tmp_path, tiny_model, geotiff, capsys):
    (tmp_path / "file").write_text("")
    fails(
        [
            "predict",
            str(geotiff),
            "--model",
            str(tiny_model),
            "--out",
            str(tmp_path / "file" / "o"),
        ],
        capsys,
        "cannot create the folder",
    )
    # a review: the file itself as --out was "cannot create the folder (File exists)"
    argv = ["predict", str(geotiff), "--model", str(tiny_model), "--out", str(tmp_path / "file")]
    fails(argv, capsys, f"--out {tmp_path / 'file'}: a file, not a folder")


def test_model_that_is_not_a_model(tmp_path, geotiff, capsys):
    (tmp_path / "m.pt").write_bytes(b"\x00" * 100)
    fails(
        ["predict", str(geotiff), "--model", str(tmp_path / "m.pt"), "--out", str(tmp_path / "o")],
        capsys,
        "not an aerialseg model file",
    )
    (tmp_path / "m.onnx").write_bytes(b"\x00" * 100)
    fails(
        [
            "predict",
            str(geotiff),
            "--model",
            str(tmp_path / "m.onnx"),
            "--out",
            str(tmp_path / "o"),
        ],
        capsys,
        "not an ONNX model",
    )
    missing = str(tmp_path / "missing.onnx")
    fails(
        ["predict", str(geotiff), "--model", missing, "--out", str(tmp_path / "o")],
        capsys,
        "missing.onnx: no such model file",
    )


def test_no_model_and_none_bundled(tmp_path, geotiff, capsys, monkeypatch):
    import aerialseg.models.io as io

    monkeypatch.setattr(io, "BUNDLED_MODEL", "missing-model.pt")
    fails(
        ["predict", str(geotiff), "--out", str(tmp_path / "o")],
        capsys,
        "no --model given",
        "aerialseg train",
    )


def test_one_bad_file_among_many_is_skipped(tmp_path, base, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        write_geotiff(folder / f"ok{i}.tif", rgb_scene(50, 60, seed=i))
    (folder / "bad.tif").write_bytes(b"garbage")
    assert main(["predict", str(folder), *base]) == 1
    captured = capsys.readouterr()
    assert "bad.tif" in captured.err and "predicted 2 of 3 input(s); 1 failed" in captured.out
    out = tmp_path / "o"
    assert {p.name for p in out.iterdir()} == {
        f"ok{i}_{name}"
        for i in range(2)
        for name in ("classes.tif", "classes.tif.aux.xml", "classes.qml", "areas.csv", "areas.json")
    }
    with rasterio.open(out / "ok0_classes.tif") as src:
        assert np.isin(np.unique(src.read(1)), range(6)).all()


def test_an_input_whose_outputs_names_would_be_too_long_is_skipped_alone(tmp_path, base, capsys):
    """A review: a long input name stopped a folder's run with a traceback (its temporary
    file's name was too long), and the inputs after it were never tried. One whose
    outputs' own names cannot be is now one failed input; a 215-byte one is predicted."""
    folder = tmp_path / "in"
    folder.mkdir()
    names = ["a" * 215, "b" * 240, "c"]
    for i, name in enumerate(names):
        write_geotiff(folder / f"{name}.tif", rgb_scene(40, 50, seed=i))
    assert main(["predict", str(folder), *base, "--confidence"]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert "predicted 2 of 3 input(s); 1 failed" in captured.out
    assert f"{'b' * 240}.tif: the names of its outputs would be 263 bytes long" in captured.err
    made = {p.name.split("_")[0] for p in (tmp_path / "o").iterdir()}
    assert made == {"a" * 215, "c"}  # and nothing hidden is left


def test_truncated_jpeg_says_why_in_one_clean_sentence(tmp_path, base, capsys):
    from PIL import Image

    path = tmp_path / "photo.jpg"
    Image.fromarray(rgb_scene(200, 240).transpose(1, 2, 0)).save(path, quality=90)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    err = fails(["predict", str(path), *base], capsys, "photo.jpg", "Premature end of JPEG file")
    assert "previous exception" not in err and "GDAL_ERROR_ON" not in err


def test_non_finite_values_are_nodata(tmp_path, trained_model):
    """One NaN in a float raster without a nodata tag: that pixel is nodata, the others are
    stretched and predicted as if it were not there. (A trained model: the untrained one's
    near-ties flip 2.6 % of the pixels under the two pixels' influence.)"""
    base = ["--model", str(trained_model), "--out", str(tmp_path / "o"), "--device", "cpu"]
    values = rgb_scene(96, 96).astype(np.float32) * 10.0
    clean = write_geotiff(tmp_path / "clean.tif", values)
    values[:, 5, 7] = np.nan
    values[1, 50, 60] = np.inf
    spoilt = write_geotiff(tmp_path / "nan.tif", values)
    assert main(["predict", str(clean), str(spoilt), *base]) == 0
    with rasterio.open(tmp_path / "o" / "nan_classes.tif") as src:
        ids, nodata = src.read(1), src.nodata
    with rasterio.open(tmp_path / "o" / "clean_classes.tif") as src:
        clean_ids = src.read(1)
    assert ids[5, 7] == nodata and ids[50, 60] == nodata
    others = ids != nodata
    assert others.sum() == ids.size - 2
    # the same stretch and prediction elsewhere, up to the two pixels' own influence
    assert (ids[others] == clean_ids[others]).mean() > 0.99


def test_a_strip_too_wide_for_row_bands_is_refused_before_it_is_read(tmp_path, base, capsys):
    """A 125 KB TIFF of 2,000,000 x 20 px took 4 GB in the server: rows of a window's height
    across its width. Refused in one line, from its header, in a few MB."""
    path = wide_tiff(tmp_path / "strip.tif")
    tracemalloc.start()
    try:
        err = fails(["predict", str(path), *base], capsys, "strip.tif", "2,000,000 px wide")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "GiB of memory; the limit is 4 GiB" in err and peak < 50 * 2**20
    assert not (tmp_path / "o").exists()


def test_a_far_finer_pixel_size_is_refused_with_the_size_it_would_have_been(tmp_path, base, capsys):
    path = write_geotiff(tmp_path / "s.tif", rgb_scene(256, 256))  # 0.5 m pixels
    fails(
        ["predict", str(path), *base, "--pixel-size", "0.0001"],
        capsys,
        "s.tif: resampled to pixels of 0.0001 it would be 1,280,000 x 1,280,000 px",
        "--pixel-size 0.0625 or more",
    )


def test_a_model_trained_at_a_far_finer_pixel_size_says_how_to_go_around(
    tmp_path, tiny_model, capsys
):
    """A model's own pixel_size= is applied unasked: the refusal names --pixel-size."""
    import torch

    payload = torch.load(tiny_model, weights_only=True)
    payload["spec"]["pixel_size"] = 0.01  # what inference reads of a model file
    model = tmp_path / "fine.pt"
    torch.save(payload, model)
    path = write_geotiff(tmp_path / "s.tif", rgb_scene(64, 64))
    argv = ["predict", str(path), "--model", str(model), "--out", str(tmp_path / "o")]
    fails(argv, capsys, "resampled to pixels of 0.01", "--pixel-size 0.0625 or more")
    assert main([*argv, "--pixel-size", "0.5"]) == 0


def test_a_loop_of_symbolic_links_is_one_line_naming_it(tmp_path, base, capsys):
    """Not "the output folder disappeared" (no --out yet), nor a traceback (--out made)."""
    loop = tmp_path / "loop.tif"
    os.symlink(loop, loop)
    for _ in range(2):
        err = fails(["predict", str(loop), *base], capsys, "loop.tif: cannot open it")
        assert "disappeared" not in err
        (tmp_path / "o").mkdir(exist_ok=True)


@pytest.mark.parametrize("given", ["folder", "glob"])
def test_broken_links_in_a_folder_are_failed_inputs_not_left_out(tmp_path, base, capsys, given):
    """A review: a folder's dangling link and loop of links, named as images, were neither
    predicted nor counted nor named."""
    folder = tmp_path / "in"
    folder.mkdir()
    write_geotiff(folder / "good.tif", rgb_scene(40, 50))
    os.symlink(tmp_path / "unmounted" / "x.tif", folder / "dangling.tif")
    os.symlink(folder / "loop.tif", folder / "loop.tif")
    (folder / "sub.tif").mkdir()  # a folder named as an image is still no input
    named = str(folder) if given == "folder" else str(folder / "*.tif")
    assert main(["predict", named, *base]) == 1
    captured = capsys.readouterr()
    assert "predicted 1 of 3 input(s); 2 failed" in captured.out
    assert "dangling.tif: no such file" in captured.err
    assert "loop.tif: cannot open it" in captured.err


def test_complex_values_are_one_line(tmp_path, base, capsys):
    path = complex_geotiff(tmp_path / "radar.tif")
    fails(["predict", str(path), *base], capsys, "radar.tif: holds complex values (complex64")


def test_a_scene_that_a_png_cannot_hold_is_written_as_tiff(tmp_path, base, capsys, monkeypatch):
    """libpng refuses more than 1,000,000 px a side (here 100): the class raster and the
    overlay are TIFF then, even where PNG was asked, and the user is told."""
    monkeypatch.setattr(writers, "PNG_MAX_SIDE", 100)
    monkeypatch.setattr(run, "PNG_MAX_SIDE", 100)
    path = tmp_path / "photo.png"
    Image.fromarray(rgb_scene(60, 120).transpose(1, 2, 0)).save(path)
    assert main(["predict", str(path), *base, "--format", "png", "--overlay"]) == 0
    err = capsys.readouterr().err
    assert "photo.png is 120 x 60 px, more than a PNG holds (100 a side): its outputs are" in err
    names = {p.name for p in (tmp_path / "o").iterdir()}
    assert {"photo_classes.tif", "photo_overlay.tif"} <= names
    assert not any(n.endswith(".png") for n in names)


def test_a_scene_as_wide_as_a_png_holds_is_still_png(tmp_path, base, capsys, monkeypatch):
    """At exactly the limit a side (120 px) libpng still takes it: PNG, and no note."""
    monkeypatch.setattr(writers, "PNG_MAX_SIDE", 120)
    monkeypatch.setattr(run, "PNG_MAX_SIDE", 120)
    path = tmp_path / "photo.png"
    Image.fromarray(rgb_scene(60, 120).transpose(1, 2, 0)).save(path)
    assert main(["predict", str(path), *base, "--format", "png", "--overlay"]) == 0
    assert "more than a PNG holds" not in capsys.readouterr().err
    names = {p.name for p in (tmp_path / "o").iterdir()}
    assert {"photo_classes.png", "photo_overlay.png"} <= names


def test_a_transform_without_a_crs_is_kept(tmp_path, base):
    """A local grid (a site survey's): map units without a CRS stay map units."""
    path = tmp_path / "local.tif"
    profile = {"driver": "GTiff", "width": 90, "height": 70, "count": 3, "dtype": "uint8"}
    with rasterio.open(path, "w", **profile, transform=TRANSFORM) as dst:
        dst.write(rgb_scene(70, 90))
    assert main(["predict", str(path), *base, "--color"]) == 0
    for kind in ("classes", "color"):
        with rasterio.open(tmp_path / "o" / f"local_{kind}.tif") as out:
            assert out.transform == TRANSFORM and out.crs is None


def test_a_min_area_of_the_whole_scene_or_more_is_predicted_not_a_crash(tmp_path, base, capsys):
    """--min-area over a 20 x 15 m scene, and the default 4 px over a 1 px one: GDAL's
    sieve refused both ("size must be smaller than size of image"), and the first stopped
    the whole run. Both are predicted, with polygons."""
    folder = tmp_path / "in"
    folder.mkdir()
    write_geotiff(folder / "small.tif", rgb_scene(30, 40))  # 0.5 m pixels: 300 m²
    write_geotiff(folder / "one.tif", rgb_scene(1, 1))
    for min_area in ("300", "5000", None):
        out = tmp_path / f"o{min_area}"
        argv = ["predict", str(folder), *base[:2], "--out", str(out), "--device", "cpu"]
        argv += ["--vector", "gpkg", *(["--min-area", min_area] if min_area else [])]
        assert main(argv) == 0, capsys.readouterr().err
        assert "predicted 2 of 2 input(s)" in capsys.readouterr().out
        with rasterio.open(out / "one_classes.tif") as src:
            assert src.read(1).shape == (1, 1)
        assert (out / "small_polygons.gpkg").is_file() and (out / "one_polygons.gpkg").is_file()


@pytest.mark.parametrize(
    ("flag", "value"), [("--min-area", "100"), ("--min-area", "0"), ("--simplify", "2")]
)
def test_polygon_options_without_polygons_are_refused_not_ignored(
    tmp_path, base, capsys, flag, value
):
    """A review: --min-area 100 without --vector wrote a class raster byte for byte that of
    a plain predict, without a word."""
    path = write_geotiff(tmp_path / "scene.tif", rgb_scene(30, 40))
    assert main(["predict", str(path), *base, flag, value]) == 2
    name = flag.removeprefix("--").replace("-", "_")  # as the value checks name them
    assert capsys.readouterr().err == (
        f"aerialseg: error: {name}: shapes the polygons; give --vector too\n"
    )
    assert not (tmp_path / "o").exists()


def test_a_plain_image_with_polygons_is_predicted_without_a_warning(tmp_path, base, capsys):
    """Found by hand: every plain JPEG or PNG predicted with --vector printed rasterio's
    NotGeoreferencedWarning ("Dataset has no geotransform ... identity matrix"), raised
    where the class raster is sieved; a plain image has no georeference by design."""
    path = tmp_path / "plain.png"
    Image.fromarray(rgb_scene(40, 50).transpose(1, 2, 0)).save(path)
    argv = ["predict", str(path), *base, "--vector", "gpkg"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotGeoreferencedWarning)
        assert main(argv) == 0, capsys.readouterr().err
    assert (tmp_path / "o" / "plain_polygons.gpkg").is_file()


def test_an_absurd_min_area_is_refused_before_any_work(tmp_path, base, capsys):
    path = write_geotiff(tmp_path / "s.tif", rgb_scene(30, 40))
    for absurd in ("1e308", "6e14"):
        fails(
            ["predict", str(path), *base, "--vector", "gpkg", "--min-area", absurd],
            capsys,
            f"min_area {float(absurd)!r}: more than the Earth's surface (510,000,000 km²)",
        )
    assert not (tmp_path / "o").exists()


def test_a_pixel_size_coarser_than_the_scene_is_refused_not_measured(tmp_path, base, capsys):
    """--pixel-size 1000 made one 1 km pixel of a 20 x 15 m scene and reported 1 km²;
    1e308 wrote "area_m2": Infinity, which is no JSON."""
    path = write_geotiff(tmp_path / "s.tif", rgb_scene(30, 40))
    for size in ("1000", "1e308"):
        fails(
            ["predict", str(path), *base, "--pixel-size", size],
            capsys,
            "s.tif: the scene is 20 x 15 CRS units, less than one pixel of",
            "--pixel-size 15 or less",
        )
    assert not (tmp_path / "o").exists()


def test_a_palette_image_is_predicted_from_its_colours(tmp_path, base, capsys):
    """A PNG saved as "P" was refused as one band, and --bands 1,1,1 (the hint) predicted
    its palette indices as grey levels. It is predicted as the RGB it shows; --bands picks
    from that RGB."""
    picture = Image.fromarray(rgb_scene(48, 64).transpose(1, 2, 0)).convert("P")
    picture.save(tmp_path / "palette.png")
    rgb = np.asarray(picture.convert("RGB"))
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(np.ascontiguousarray(rgb[..., ::-1])).save(tmp_path / "bgr.png")
    assert main(["predict", str(tmp_path / "palette.png"), str(tmp_path / "rgb.png"), *base]) == 0
    out = tmp_path / "o"
    palette = np.asarray(Image.open(out / "palette_classes.png"))
    assert (palette == np.asarray(Image.open(out / "rgb_classes.png"))).all()
    swapped = ["--out", str(tmp_path / "b"), "--bands", "3,2,1"]
    assert main(["predict", str(tmp_path / "palette.png"), *base, *swapped]) == 0
    assert main(["predict", str(tmp_path / "bgr.png"), *base]) == 0
    swapped_ids = np.asarray(Image.open(tmp_path / "b" / "palette_classes.png"))
    assert (swapped_ids == np.asarray(Image.open(out / "bgr_classes.png"))).all()
    assert (swapped_ids != palette).any()  # the bands did change what was predicted


def test_a_geographic_scene_past_the_poles_is_skipped_naming_it(tmp_path, base, capsys):
    """Degrees of latitude past ±90 (a transform in the wrong units, a swapped axis) made
    PROJ refuse the equal-area projection the areas are measured on: a traceback that ended
    the batch. Now that input is skipped in one line, and the next one is predicted."""
    from rasterio.transform import from_origin

    image = rgb_scene(40, 50)
    past = write_geotiff(
        tmp_path / "past.tif", image, crs="EPSG:4326", transform=from_origin(10, 50, 10, 10)
    )  # rows to latitude -350
    fine = write_geotiff(tmp_path / "fine.tif", image, crs="EPSG:4326",
                         transform=from_origin(55, 25, 1e-5, 1e-5))  # fmt: skip
    assert main(["predict", str(past), str(fine), *base]) == 1
    said = capsys.readouterr()
    err = said.err + said.out
    assert "Traceback" not in err
    assert (
        f"aerialseg: skipped {past}: its georeference reaches past the poles (latitudes -350"
        " to 50): check the transform and the CRS"
    ) in err
    assert "predicted 1 of 2 input(s); 1 failed" in err
    assert (tmp_path / "o" / "fine_areas.json").is_file()
    assert not list((tmp_path / "o").glob("past*"))


def test_pixels_finer_than_their_coordinates_tell_apart_are_predicted_with_a_note(
    tmp_path, base, capsys
):
    """A review: pixels of 1e-12 m at UTM's 500,000 m measure 0 m2 in float64: the
    resolution hint divided by that area, a ZeroDivisionError traceback and an empty
    output folder. Such a scene is predicted (its areas are 0), with a note."""
    from affine import Affine

    image = rgb_scene(40, 50)
    transform = Affine(1e-12, 0, 5e5, 0, -1e-12, 28e5)
    tiny = write_geotiff(tmp_path / "tiny.tif", image, transform=transform)
    out = tmp_path / "o"
    assert main(["predict", str(tiny), "--out", str(out), "--device", "cpu"]) == 0  # bundled
    said = capsys.readouterr()
    assert "Traceback" not in said.err
    assert said.err == (
        "aerialseg: tiny.tif has pixels that measure 0 m, finer than its coordinates tell"
        " apart: check its georeference\n"
    )
    areas = json.loads((out / "tiny_areas.json").read_text())
    assert sum(row["pixels"] for row in areas) == 2000 and all(row["area_m2"] == 0 for row in areas)


def test_geojson_polygons_of_a_scene_with_no_place_on_earth_are_refused_before_it_is_predicted(
    tmp_path, base, capsys
):
    """A review: GeoJSON is WGS84, and a projected scene off its CRS's domain (x = 1e9 m
    in UTM) was a GDAL traceback once predicted (a 500 from the server, whose page always
    asks for polygons); degrees past a turn round the globe gave empty polygons."""
    from rasterio.transform import from_origin

    image = rgb_scene(40, 50)
    far = write_geotiff(tmp_path / "far.tif", image, transform=from_origin(1e9, 2.8e6, 0.5, 0.5))
    round_ = write_geotiff(
        tmp_path / "round.tif", image, crs="EPSG:4326", transform=from_origin(500, 10, 1e-5, 1e-5)
    )
    for scene, why in (
        # with GDAL's reason, or without it once GDAL no longer raises an error it repeated
        (far, "its georeference lies outside what its CRS places on Earth"),
        (round_, "its georeference goes round the globe (longitudes 500 to 500): check the"),
    ):
        out = tmp_path / scene.stem
        model = [*base[:2], *base[4:]]  # --model, --device
        assert main(["predict", str(scene), *model, "--out", str(out), "--vector", "geojson"])
        assert f"{scene.name}: {why}" in capsys.readouterr().err
        assert not out.exists() or not list(out.iterdir())
    # polygons in the scene's own CRS need no place in WGS84
    gpkg = ["--out", str(tmp_path / "g"), "--vector", "gpkg"]
    assert main(["predict", str(far), *base[:2], *base[4:], *gpkg]) == 0


def test_a_photo_that_asks_to_be_shown_turned_is_predicted_as_stored_and_says_so(
    tmp_path, base, capsys
):
    """A review: a JPEG whose EXIF says "rotate 90°" shows 60 wide x 120 tall in a photo
    viewer, while GDAL reads it 120 x 60 as stored; its outputs are as stored, and the user
    is told why they look turned against it."""
    photo = Image.fromarray(rgb_scene(60, 120).transpose(1, 2, 0))
    exif = photo.getexif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to show
    photo.save(tmp_path / "turned.jpg", exif=exif)
    photo.save(tmp_path / "plain.jpg")
    for name in ("turned", "plain"):
        assert main(["predict", str(tmp_path / f"{name}.jpg"), *base]) == 0
        assert Image.open(tmp_path / "o" / f"{name}_classes.png").size == (120, 60)
    err = capsys.readouterr().err
    assert err.count("EXIF orientation") == 1
    assert "turned.jpg: its EXIF orientation (6) asks viewers to show it turned or mirrored;" in err


def test_file_names_reach_the_terminal_as_text_not_as_its_commands(tmp_path, base, capsys):
    """A review: a file named with ESC sequences (clear the screen, set the window title)
    had them acted on from predict's lines; each is now written as its escape."""
    from aerialseg.errors import printable

    assert printable("a\x1b[2J\x07\u202eb\nc\tü") == "a\\x1b[2J\\x07\\u202eb\\nc\\tü"
    folder = tmp_path / "in"
    folder.mkdir()
    hostile = write_geotiff(folder / "e\x1b]0;pwn\x07.tif", rgb_scene(40, 40))
    write_geotiff(folder / "plain.tif", rgb_scene(40, 40))
    (folder / "bad\x1b[2J.tif").write_text("not an image")
    assert main(["predict", str(folder), *base]) == 1  # one of three failed
    said = capsys.readouterr()
    assert "\x1b]" not in said.out + said.err and "\x1b[2J" not in said.out + said.err
    assert "e\\x1b]0;pwn\\x07.tif: " in said.out and "bad\\x1b[2J.tif" in said.err
    assert (tmp_path / "o" / f"{hostile.stem}_classes.tif").is_file()  # the name as it is
    fails(["predict", str(folder / "bad\x1b[2J.tif"), *base], capsys, "bad\\x1b[2J.tif")


def test_a_second_run_of_one_name_in_another_format_leaves_no_output_of_the_first(
    tmp_path, base, capsys
):
    """A review: a.tif, then a.png, predicted into one folder left a_classes.tif (and its
    sidecars) of the first beside a_classes.png and the areas of the second. The kinds the
    second run does not write are left (they may be a user's), and so are polygons of
    the other format (a second review: qgis.md writes GeoPackage, then GeoJSON)."""
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    write_geotiff(tmp_path / "one" / "a.tif", rgb_scene(40, 50))
    Image.fromarray(rgb_scene(40, 50, seed=1).transpose(1, 2, 0)).save(tmp_path / "two" / "a.png")
    assert main(["predict", str(tmp_path / "one" / "a.tif"), *base, "--vector", "geojson"]) == 0
    out = tmp_path / "o"
    (out / "a_color.png").write_bytes(b"a user's")
    (out / "a_image.tif").write_bytes(b"a user's")  # a second review: it was removed
    (out / "a_classes.json").write_bytes(b"suggest's class table")
    first = {p.name for p in out.iterdir()}
    assert {"a_classes.tif", "a_classes.tif.aux.xml", "a_polygons.geojson"} <= first
    assert main(["predict", str(tmp_path / "two" / "a.png"), *base, "--vector", "gpkg"]) == 0
    assert {p.name for p in out.iterdir()} == {
        "a_classes.png", "a_classes.png.aux.xml", "a_classes.qml", "a_areas.csv",
        "a_areas.json", "a_polygons.gpkg", "a_polygons.qml", "a_color.png",
        "a_polygons.geojson",  # both formats of polygons are asked for on purpose (qgis.md)
        "a_image.tif", "a_classes.json",
    }  # fmt: skip
    assert (out / "a_color.png").read_bytes() == b"a user's"


def test_an_image_without_data_is_predicted_with_a_note(tmp_path, base, capsys):
    """A review: an all-NaN image finished with exit 0 and outputs all nodata, unsaid."""
    image = np.full((3, 40, 50), np.nan, np.float32)
    path = write_geotiff(tmp_path / "empty.tif", image)
    assert main(["predict", str(path), *base]) == 0
    err = capsys.readouterr().err
    assert "aerialseg: empty.tif has no data (every pixel is nodata or NaN)" in err
    with rasterio.open(tmp_path / "o" / "empty_classes.tif") as ds:
        assert (ds.read(1) == ds.nodata).all()
    assert (
        main(["predict", str(write_geotiff(tmp_path / "full.tif", rgb_scene(40, 50))), *base]) == 0
    )
    assert "has no data" not in capsys.readouterr().err
