"""The Python API (aerialseg/public.py): what ``import aerialseg`` gives, the same results as
the commands, which call it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import rasterio

import aerialseg
from aerialseg.cli import main
from aerialseg.data.classes import DUBAI_CLASSES
from aerialseg.data.raster import InputError
from aerialseg.errors import ConfigError, ModelFileError
from aerialseg.models.io import load_model as load_file
from tests.conftest import VALUE_CLASSES, rgb_scene, write_geotiff

TINY = {
    "model": "seed-unet",
    "pretrained": False,
    "base_width": 4,
    "crop_size": 32,
    "window": 64,
    "batch_size": 4,
    "samples_per_epoch": 8,
    "accelerator": "cpu",
}


def test_import_is_cheap_and_names_the_api():
    code = "import sys, aerialseg; print('torch' in sys.modules, aerialseg.load_model.__module__)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "aerialseg.public"]
    assert {"load_model", "predict_files", "train", "evaluate"} <= set(dir(aerialseg))
    with pytest.raises(AttributeError, match="no_such_thing"):
        aerialseg.no_such_thing  # noqa: B018


def test_bundled_model_predicts_a_file_as_the_command_does(geotiff, tmp_path, capsys):
    model = aerialseg.load_model(device="cpu", precision="fp32")
    assert model.class_names == DUBAI_CLASSES.names and model.path.name == "default-model.pt"
    result = model.predict(geotiff, probabilities=True, confidence=True)
    assert result.class_ids.shape == (150, 200) and result.class_ids.dtype == np.uint8
    assert result.probabilities is not None and result.confidence is not None
    assert result.probabilities.shape == (6, 150, 200)
    np.testing.assert_allclose(result.probabilities.sum(0), 1, atol=1e-5)
    assert np.array_equal(result.probabilities.argmax(0), result.class_ids)
    assert np.array_equal(result.confidence, result.probabilities.max(0))
    # the probabilities are the calibrated ones predict --confidence reports
    args = ["predict", str(geotiff), "--out", str(tmp_path), "--confidence"]
    assert main([*args, "--device", "cpu", "--precision", "fp32"]) == 0
    with rasterio.open(tmp_path / "scene_classes.tif") as src:
        assert np.array_equal(src.read(1), result.class_ids)
    with rasterio.open(tmp_path / "scene_confidence.tif") as src:
        percent = src.read(1).astype(int)
    assert np.abs(percent - np.round(100 * result.confidence)).max() <= 1
    # a class id per pixel with no calibration asked: nothing else is computed
    plain = model.predict(geotiff)
    assert plain.probabilities is None and plain.confidence is None
    assert np.array_equal(plain.class_ids, result.class_ids)


def test_an_array_predicts_as_its_file(geotiff):
    model = aerialseg.load_model(device="cpu", precision="fp32")
    with rasterio.open(geotiff) as src:
        array = src.read().transpose(1, 2, 0)  # (H, W, bands), as PIL images come
    from_array = model.predict(array, confidence=True)
    from_file = model.predict(geotiff, confidence=True)
    assert np.array_equal(from_array.class_ids, from_file.class_ids)
    assert from_array.valid.all()
    with pytest.raises(InputError, match=r"shape \(150, 200, 4\).*\(height, width, 3\)"):
        model.predict(np.zeros((150, 200, 4), np.uint8))


def test_a_files_band_hint_is_the_keyword_the_method_takes(tmp_path):
    """Model.predict takes bands=[...], not the command's --bands."""
    model = aerialseg.load_model(device="cpu", precision="fp32")
    gray = write_geotiff(tmp_path / "gray.tif", rgb_scene(20, 20)[:1])
    with pytest.raises(InputError, match=r"choose them with bands=, e.g. bands=\[1,1,1\]$"):
        model.predict(gray)


def test_many_windows_match_the_command(tiny_model, tmp_path):
    """A scene larger than the model's 64 px window: the in-memory sliding window of
    Model.predict gives the row-band stream's result that predict writes."""
    scene = write_geotiff(tmp_path / "big.tif", rgb_scene(150, 230, seed=3))
    model = aerialseg.load_model(tiny_model, device="cpu", precision="fp32")
    result = model.predict(scene, confidence=True)
    summary = aerialseg.predict_files(
        scene, tmp_path / "o", model=tiny_model, device="cpu", precision="fp32", confidence=True
    )
    written = summary.done[str(scene)]
    assert {"classes", "confidence"} <= set(written)
    with rasterio.open(written["classes"]) as src:
        assert np.array_equal(src.read(1), result.class_ids)
    assert len(np.unique(result.class_ids)) > 1  # a real map, not one class everywhere


def test_nodata_is_marked(tmp_path):
    image = rgb_scene(80, 90)
    image[:, :, :10] = 0
    scene = write_geotiff(tmp_path / "nd.tif", image, nodata=0)
    result = aerialseg.load_model(device="cpu").predict(scene, confidence=True)
    assert not result.valid[:, :10].any() and result.valid[:, 10:].all()
    assert (result.class_ids[:, :10] == 255).all() and (result.class_ids[:, 10:] < 6).all()
    assert result.confidence is not None
    assert np.isnan(result.confidence[:, :10]).all()
    assert np.isfinite(result.confidence[:, 10:]).all()


def test_predict_files_skips_a_bad_input_and_loaded_models_are_reused(tiny_model, tmp_path):
    good = write_geotiff(tmp_path / "good.tif", rgb_scene(70, 70))
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff")
    model = aerialseg.load_model(tiny_model, device="cpu")
    summary = aerialseg.predict_files([good, bad], tmp_path / "o", model=model, overlay=True)
    assert set(summary.done) == {str(good)} and set(summary.failed) == {str(bad)}
    assert "not an image" in summary.failed[str(bad)]
    assert summary.done[str(good)]["overlay"].is_file()
    # all inputs failed: no empty folder is left behind
    assert not aerialseg.predict_files(bad, tmp_path / "none", model=model).done
    assert not (tmp_path / "none").exists()


def test_load_model_errors_are_one_line(tmp_path):
    not_a_model = tmp_path / "x.pt"
    not_a_model.write_text("hello")
    with pytest.raises(ModelFileError, match="not an aerialseg model file"):
        aerialseg.load_model(not_a_model)


def test_train_takes_typed_settings_and_evaluate_scores_it(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("AERIALSEG_MAX_STEPS", "3")
    path = aerialseg.train(
        tiny_dataset, tmp_path / "run", settings={**TINY, "max_epochs": 4}, max_time="00:05:00"
    )
    assert path == tmp_path / "run" / "model.pt"
    saved = load_file(path)
    assert saved.config.base_width == 4 and saved.config.max_time == "00:05:00"
    last = load_file(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert saved.config.max_steps == 3 and last.meta["global_step"] == 3  # the cap held

    by_path = aerialseg.evaluate(path, tiny_dataset, out=tmp_path / "e1", device="cpu")
    loaded = aerialseg.load_model(path, device="cpu", precision="fp32")
    by_model = aerialseg.evaluate(loaded, tiny_dataset, out=tmp_path / "e2", split="val")
    assert by_path["split"] == "test" and by_model["split"] == "val"
    assert by_path["headline"] == ["miou6", "miou5", "pixel_accuracy", "mean_dice"]
    saved_report = json.loads((tmp_path / "e1" / "metrics.json").read_text())
    assert saved_report["miou6"] == by_path["miou6"]
    cli_out = tmp_path / "e3"
    assert main(["evaluate", str(path), "--data", str(tiny_dataset), "--out", str(cli_out)]) == 0
    assert json.loads((cli_out / "metrics.json").read_text())["miou6"] == by_path["miou6"]


def test_training_config_and_errors(tmp_path):
    cfg = aerialseg.training_config(settings={"bands": [3, 2, 1, 4], "lr": 3e-4})
    assert cfg.in_channels == 4 and cfg.lr == 3e-4
    assert aerialseg.training_config(preset="seed").model == "seed-unet"
    with pytest.raises(ConfigError, match="unknown config key 'no_such'"):
        aerialseg.training_config(settings={"no_such": 1})
    with pytest.raises(aerialseg.public.AerialsegError, match="nothing to resume"):
        aerialseg.train(tmp_path, tmp_path / "run", resume=True)


def test_a_bad_step_cap_is_a_config_error(tmp_path, monkeypatch):
    table = tmp_path / "classes.json"
    table.write_text(json.dumps(VALUE_CLASSES))
    monkeypatch.setenv("AERIALSEG_MAX_STEPS", "many")
    with pytest.raises(ConfigError, match="AERIALSEG_MAX_STEPS='many'"):
        aerialseg.train(tmp_path, tmp_path / "run", classes=table, settings=TINY)
    assert not (tmp_path / "run").exists()
