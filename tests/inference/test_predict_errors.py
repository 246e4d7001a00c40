"""predict on bad input: one line, non-zero exit, no partial output under a final name."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from aerialseg.cli import main
from tests.conftest import rgb_scene, write_geotiff


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


def test_truncated_jpeg_says_why_in_one_clean_sentence(tmp_path, base, capsys):
    from PIL import Image

    path = tmp_path / "photo.jpg"
    Image.fromarray(rgb_scene(200, 240).transpose(1, 2, 0)).save(path, quality=90)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    err = fails(["predict", str(path), *base], capsys, "photo.jpg", "Premature end of JPEG file")
    assert "previous exception" not in err and "GDAL_ERROR_ON" not in err


def test_non_finite_values_are_nodata(tmp_path, base, capsys):
    """One NaN in a float raster without a nodata tag: that pixel is nodata, the others are
    stretched and predicted as if it were not there."""
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
