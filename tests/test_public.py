"""The Python API (aerialseg/public.py): what ``import aerialseg`` gives, the same results as
the commands, which call it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import rasterio

import aerialseg
from aerialseg.cli import main
from aerialseg.data.classes import DUBAI_CLASSES
from aerialseg.data.raster import InputError
from aerialseg.errors import AerialsegError, ConfigError, ModelFileError
from aerialseg.models.io import load_model as load_file
from tests.helpers.geotiff import VALUE_CLASSES, write_geotiff
from tests.helpers.images import rgb_scene
from tests.helpers.paths import REAL_DATA

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


TILE3 = REAL_DATA / "Semantic segmentation dataset" / "Tile 3" / "images" / "image_part_002.jpg"


@pytest.mark.skipif(not TILE3.exists(), reason="needs ../shared/datasets (the Dubai set)")
@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")  # the RGBA file
def test_arrays_of_every_type_are_read_as_files_are(tmp_path):
    """On a real image: 16-bit and float arrays give the classes a file of the same data
    gives, float in 0..1 those of the 8-bit image, and NaN columns are nodata that leave
    the rest alone."""
    from PIL import Image

    model = aerialseg.load_model(device="cpu", precision="fp32")
    rgb = np.asarray(Image.open(TILE3))[:384, :512]  # (H, W, 3) uint8
    eight_bit = model.predict(rgb).class_ids
    assert model.predict(rgb / 255).class_ids.tolist() == eight_bit.tolist()
    assert model.predict((rgb / 255).astype(np.float32)).class_ids.tolist() == eight_bit.tolist()
    for array in (rgb.astype(np.uint16) * 257, rgb.astype(np.float32) * 40 + 3):
        file = write_geotiff(tmp_path / f"{array.dtype}.tif", array.transpose(2, 0, 1))
        from_array = model.predict(array).class_ids
        assert from_array.tolist() == model.predict(file).class_ids.tolist(), array.dtype
        # a stretch of 8-bit data is close to it: most pixels keep their class
        assert (from_array == eight_bit).mean() > 0.8, array.dtype
    holes = (rgb / 255).astype(np.float32)
    holes[:, 200:250] = np.nan
    holes[10, 10, 0] = np.inf
    result = model.predict(holes, confidence=True)
    assert not result.valid[:, 200:250].any() and not result.valid[10, 10]
    assert (result.class_ids[:, 200:250] == 255).all()
    assert result.confidence is not None and np.isnan(result.confidence[:, 200:250]).all()
    # the hole is what nodata in a file is: an RGBA file transparent there gives the same
    alpha = np.where(np.isfinite(holes).all(axis=2), 255, 0).astype(np.uint8)
    rgba = write_geotiff(
        tmp_path / "rgba.tif", np.dstack([rgb, alpha]).transpose(2, 0, 1), crs=None
    )
    assert result.class_ids.tolist() == model.predict(rgba).class_ids.tolist()
    # NaN no longer spreads through the network (it changed 43 % of the other pixels);
    # what remains is the network seeing a 50 px hole in a 512 px window
    agree = (result.class_ids[result.valid] == eight_bit[result.valid]).mean()
    assert agree > 0.85
    with pytest.raises(InputError, match="complex128.*pass numbers"):
        model.predict(rgb.astype(np.complex128))


@pytest.mark.skipif(not TILE3.exists(), reason="needs ../shared/datasets (the Dubai set)")
def test_arrays_as_notebooks_hold_them_read_as_the_8_bit_image(tiny_model, tmp_path):
    """Found by a review, on a real image: a 0..1 image one pixel past 1 (bicubic resampling
    overshoots) was stretched instead (18 % of pixels changed class); a list of 8-bit values
    was stretched as int64; a masked array's mask and a PIL image's alpha were ignored;
    a ragged list and bytes gave numpy's words."""
    from PIL import Image

    model = aerialseg.load_model(tiny_model, device="cpu", precision="fp32")
    rgb = np.asarray(Image.open(TILE3))[:96, :128]
    eight_bit = model.predict(rgb).class_ids
    overshoot, clipped = rgb / 255.0, rgb.copy()
    overshoot[0, 0, 0], overshoot[5, 5, 1] = 1.04, -0.03  # past 0..1: as 255 and 0
    clipped[0, 0, 0], clipped[5, 5, 1] = 255, 0
    assert (model.predict(overshoot).class_ids == model.predict(clipped).class_ids).all()
    assert (model.predict(rgb.tolist()).class_ids == eight_bit).all()
    masked = np.ma.masked_array(rgb, np.zeros_like(rgb, bool))
    masked[:40] = np.ma.masked  # numpy masks every band of those rows
    for image in (masked, masked.astype(np.float32) / 255):
        result = model.predict(image)
        assert not result.valid[:40].any() and result.valid[40:].all()
        assert (result.class_ids[:40] == 255).all()
    rgba = Image.fromarray(np.dstack([rgb, np.where(np.arange(96) < 40, 0, 255)[:, None]
                                      .repeat(128, 1).astype(np.uint8)]))  # fmt: skip
    from_pil = model.predict(rgba)
    assert not from_pil.valid[:40].any() and from_pil.valid[40:].all()
    assert (from_pil.class_ids == model.predict(masked).class_ids).all()
    # and as a file of it: the hidden values under the mask or the alpha reached the
    # network and changed the classes of valid pixels beside them (a review: 19 %)
    rgba.save(tmp_path / "rgba.png")
    assert (from_pil.class_ids == model.predict(tmp_path / "rgba.png").class_ids).all()
    palette = rgba.convert("RGB").quantize(64)  # a "P" image: its colours, not its indices
    as_rgb = model.predict(np.asarray(palette.convert("RGB"))).class_ids
    assert (model.predict(palette).class_ids == as_rgb).all()
    # other colour spaces as the RGB they show (a review: YCbCr, HSV and LAB were read as
    # if their bands were R, G and B, silently); bilevel as grey
    photo = Image.fromarray(rgb)
    for mode in ("YCbCr", "HSV", "LAB", "CMYK", "RGBX"):
        other = photo.convert(mode)
        as_shown = model.predict(np.asarray(other.convert("RGB"))).class_ids
        assert (model.predict(other).class_ids == as_shown).all(), mode
    for bad, said in (
        ([[1, 2, 3], [1, 2]], "a list numpy cannot read as an array"),
        (TILE3.read_bytes(), "a bytes (a file's contents): pass the file's path"),
        (rgb.transpose(2, 0, 1), "has its bands first: transpose it to (1, 2, 0)"),
    ):
        with pytest.raises(aerialseg.InputError, match=re.escape(said)):
            model.predict(bad)
    with pytest.raises(aerialseg.AerialsegError, match="tta='yes'"):
        model.predict(rgb, tta="yes")


def test_a_files_band_hint_is_the_keyword_the_method_takes(tmp_path):
    """Model.predict takes bands=[...], not the command's --bands."""
    model = aerialseg.load_model(device="cpu", precision="fp32")
    gray = write_geotiff(tmp_path / "gray.tif", rgb_scene(20, 20)[:1])
    with pytest.raises(InputError, match=r"choose them with bands=, e.g. bands=\[1,1,1\]$"):
        model.predict(gray)
    # a review: "" was read as Path(""), which is ".", said to be "not a file"
    with pytest.raises(InputError, match=r"^'': an empty path; name an image file$"):
        model.predict("")


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
    # and with another overlap, which predict takes and Model.predict lacked (a review)
    overlapped = model.predict(scene, overlap=0.0)  # the tiny model's own is 0.5
    again = aerialseg.predict_files(
        scene, tmp_path / "o2", model=model, overlap=0.0, device="cpu", precision="fp32"
    )
    with rasterio.open(again.done[str(scene)]["classes"]) as src:
        assert np.array_equal(src.read(1), overlapped.class_ids)
    assert not np.array_equal(overlapped.class_ids, result.class_ids)


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
    with pytest.raises(ConfigError, match=r"^path=3 \(int\): give str \| Path \| None$"):
        aerialseg.load_model(3)
    # a review: fp16 was taken for an .onnx file, and mps was torch's RuntimeError
    with pytest.raises(ConfigError, match="precision='fp16': give one of 'auto', 'fp32'"):
        aerialseg.load_model(not_a_model.with_suffix(".onnx"), precision="fp16")
    with pytest.raises(ConfigError, match="device='mps': give one of 'auto', 'cpu', 'cuda'"):
        aerialseg.load_model(not_a_model, device="mps")


def test_train_takes_typed_settings_and_evaluate_scores_it(tiny_dataset, tmp_path, monkeypatch):
    from datetime import timedelta

    from aerialseg.public import default_model_path

    monkeypatch.setenv("AERIALSEG_MAX_STEPS", "3")
    path = aerialseg.train(
        tiny_dataset,
        tmp_path / "run",
        settings={**TINY, "max_epochs": 4},
        max_time=timedelta(minutes=5),
    )
    assert path == tmp_path / "run" / "model.pt"
    saved = load_file(path)
    assert saved.spec.base_width == 4 and saved.recipe["max_time"] == "00:05:00"
    last = load_file(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert last.meta["global_step"] == 3  # the cap held
    # and is not a setting of the run (a review: a --resume without the variable stopped
    # there again, unannounced)
    assert saved.recipe["max_steps"] == -1
    assert "max_steps: -1" in (tmp_path / "run" / "config.yaml").read_text()

    by_path = aerialseg.evaluate(path, tiny_dataset, out=tmp_path / "e1", device="cpu")
    loaded = aerialseg.load_model(path, device="cpu", precision="fp32")
    by_model = aerialseg.evaluate(loaded, tiny_dataset, out=tmp_path / "e2", split="val")
    assert by_path["split"] == "test" and by_model["split"] == "val"
    bundled = aerialseg.evaluate("default", tiny_dataset, out=tmp_path / "e0", device="cpu")
    assert bundled["model"] == aerialseg.load_model(default_model_path()).spec.model
    assert by_path["headline"] == ["miou6", "miou5", "pixel_accuracy", "mean_dice"]
    saved_report = json.loads((tmp_path / "e1" / "metrics.json").read_text())
    assert saved_report["miou6"] == by_path["miou6"]
    cli_out = tmp_path / "e3"
    assert main(["evaluate", str(path), "--data", str(tiny_dataset), "--out", str(cli_out)]) == 0
    assert json.loads((cli_out / "metrics.json").read_text())["miou6"] == by_path["miou6"]


def test_train_takes_callbacks_and_transforms_and_the_run_pieces_are_public(
    tiny_dataset, tmp_path, monkeypatch
):
    import lightning as L
    import torch
    from torchvision import tv_tensors

    monkeypatch.setenv("AERIALSEG_MAX_STEPS", "2")
    seen: list[tuple[tuple[int, ...], tuple[int, ...]]] = []

    def mark(image, mask):  # a user's transform: sees every training pair, after the crop
        seen.append((tuple(image.shape), tuple(mask.shape)))
        assert isinstance(image, tv_tensors.Image) and isinstance(mask, tv_tensors.Mask)
        return image * 0, mask

    class Steps(L.Callback):
        count = 0

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            Steps.count += 1
            assert float(batch[0].abs().sum()) == 0  # the transform's output was trained on

    path = aerialseg.train(
        tiny_dataset, tmp_path / "run", settings=TINY, callbacks=[Steps()], transforms=mark
    )
    assert Steps.count == 2 and len(seen) >= 2 * TINY["batch_size"]
    assert set(seen) == {((3, 32, 32), (32, 32))}  # crop_size 32
    # the pieces of that run, from the package top
    task = aerialseg.SegmentationTask(load_file(path).recipe, DUBAI_CLASSES.to_dict())
    assert isinstance(task, L.LightningModule)
    net = aerialseg.build_network("seed-unet", 6, pretrained=False, base_width=4)
    assert tuple(net(torch.zeros(1, 3, 64, 64)).shape) == (1, 6, 64, 64)
    assert issubclass(aerialseg.SegmentationDataModule, L.LightningDataModule)
    # and export as a function, as the command does it
    assert aerialseg.export(path, tmp_path / "m.onnx") < 1e-3
    assert (tmp_path / "m.onnx").is_file()
    # a loaded model too, as predict_files takes one (a review: refused); its file's
    loaded = aerialseg.load_model(path, device="cpu")
    assert aerialseg.export(loaded, tmp_path / "l.onnx") < 1e-3
    assert (tmp_path / "l.onnx").read_bytes() == (tmp_path / "m.onnx").read_bytes()
    with pytest.raises(AerialsegError, match="export takes a model loaded from a model file"):
        aerialseg.export(aerialseg.load_model(tmp_path / "m.onnx"), tmp_path / "x.onnx")
    # what is not a list of callbacks or a function is one line before anything is read
    for wrong, said in (
        ({"callbacks": 5}, "give a list of Lightning"),
        ({"callbacks": [Steps(), 5]}, r"callbacks: 5 is not a Lightning callback"),
        ({"transforms": 5}, "a function"),
        ({"started": "now"}, r"started='now': give time.monotonic\(\) when the work began"),
        ({"started": float("nan")}, "started=nan: give time.monotonic"),
        ({"settings": [("max_steps", 2)]}, "give a mapping of setting names to values"),
        ({"settings": []}, "give a mapping of setting names to values"),
    ):
        with pytest.raises(ConfigError, match=said):
            aerialseg.train(tiny_dataset, tmp_path / "bad", **({"settings": TINY} | wrong))
    assert not (tmp_path / "bad").exists()


def test_a_transform_that_breaks_the_pair_is_one_line_before_training(
    tiny_dataset, tmp_path, monkeypatch
):
    """A review: a transform returning the image alone failed in a DataLoader frame after
    loading, and torchvision's ToDtype(float32, scale=True), common in notebooks, trained
    without a word on images in 0..1 that predict then fed in 0..255."""
    import torch
    from torchvision.transforms import v2

    monkeypatch.setenv("AERIALSEG_MAX_STEPS", "2")
    for transform, said in (
        (lambda image, mask: image, r"^transforms= returned a Image, not the \(image, mask\)"),
        (
            v2.ToDtype(torch.float32, scale=True),
            r"^transforms= turned the image's torch.uint8 values into torch.float32",
        ),
        (
            v2.Resize(16),
            r"^transforms= turned a \(3, 32, 32\) image and a \(32, 32\) mask into \(3, 16,"
            r" 16\) and \(16, 16\)",
        ),
    ):
        with pytest.raises(ConfigError, match=said):
            aerialseg.train(tiny_dataset, tmp_path / "bad", settings=TINY, transforms=transform)
        assert not (tmp_path / "bad").exists()


def test_the_smoke_preset_trains_a_few_steps_and_validates_one_image(
    tiny_dataset, tmp_path, capsys
):
    path = aerialseg.train(tiny_dataset, tmp_path / "smoke", preset="smoke")
    saved = load_file(path)
    assert saved.spec.model == "fpn-effnet-lite0"  # the default recipe, cut short
    assert saved.recipe["val_images"] == 1
    assert load_file(tmp_path / "smoke" / "checkpoints" / "last.ckpt").meta["global_step"] == 4
    assert saved.meta["val_miou"] is not None  # validated, on one image
    assert saved.spec.confidence_temperature is not None
    assert "fitted on 1 validation image(s)" in capsys.readouterr().out
    # at another batch size too (a review: its max_steps=4 ended the run unvalidated)
    other = aerialseg.train(
        tiny_dataset, tmp_path / "smoke2", preset="smoke", settings={"batch_size": 2}
    )
    assert load_file(other).meta["val_miou"] is not None
    assert load_file(tmp_path / "smoke2" / "checkpoints" / "last.ckpt").meta["global_step"] == 16


def test_training_config_and_errors(tmp_path):
    cfg = aerialseg.training_config(settings={"bands": [3, 2, 1, 4], "lr": 3e-4})
    assert cfg.in_channels == 4 and cfg.lr == 3e-4
    assert aerialseg.training_config(preset="seed").model == "seed-unet"
    with pytest.raises(ConfigError, match="unknown setting 'no_such'"):
        aerialseg.training_config(settings={"no_such": 1})
    with pytest.raises(ConfigError, match="unknown setting 'max_epoch'; did you mean 'max_epochs'"):
        aerialseg.training_config(settings={"max_epoch": 1})
    with pytest.raises(aerialseg.public.AerialsegError, match="nothing to resume"):
        aerialseg.train(tmp_path, tmp_path / "run", resume=True)


def test_max_time_takes_seconds_a_timedelta_or_text():
    from datetime import timedelta

    from aerialseg.training.config import duration_text

    assert duration_text(90) == duration_text(timedelta(minutes=1.5)) == "00:01:30"
    assert duration_text(3600.2) == "01:00:01" and duration_text("00:10:00") == "00:10:00"
    for bad in (-1, "soon", True, [1]):
        with pytest.raises(ConfigError, match="max_time"):
            duration_text(bad)


def test_default_names_the_bundled_model_wherever_a_model_is_taken(tmp_path):
    from aerialseg.public import default_model_path, model_path

    assert model_path("default") == model_path(None) == default_model_path()
    assert aerialseg.load_model("default", device="cpu").path == default_model_path()


def test_a_bad_step_cap_is_a_config_error(tmp_path, monkeypatch):
    table = tmp_path / "classes.json"
    table.write_text(json.dumps(VALUE_CLASSES))
    monkeypatch.setenv("AERIALSEG_MAX_STEPS", "many")
    with pytest.raises(ConfigError, match="AERIALSEG_MAX_STEPS='many'"):
        aerialseg.train(tmp_path, tmp_path / "run", classes=table, settings=TINY)
    assert not (tmp_path / "run").exists()


def test_bad_reading_options_are_one_line_before_anything_is_written(tiny_model, tmp_path):
    """Found by a review: band 0 reached rasterio, batch_size -1 predicted no window and
    failed an assertion, pixel_size inf wrote a 1 x 1 raster of NaN transform, 0 was
    taken as 'not given', and predict_files left its folder behind."""
    model = aerialseg.load_model(tiny_model, device="cpu")
    file = write_geotiff(tmp_path / "in.tif", rgb_scene(70, 70))
    with pytest.raises(InputError, match=r"bands= 0,1,2: give band numbers \(from 1\)"):
        model.predict(file, bands=[0, 1, 2])
    for size in (0, -1, float("inf"), float("nan")):
        with pytest.raises(InputError, match="give a positive size in CRS units"):
            model.predict(file, pixel_size=size)
    for batch in (-1, 0, 2.5, "2"):
        with pytest.raises(ConfigError, match="give a whole number"):
            model.predict(rgb_scene(70, 70).transpose(1, 2, 0), batch_size=batch)
    bad = {"batch_size": -1, "overlap": 1.5, "pixel_size": float("nan"), "bands": [0, 1, 2]}
    bad |= {"min_area": float("nan"), "simplify": -1.0}  # min_area nan: math.ceil's error
    for name, value in bad.items():
        out = tmp_path / f"out-{name}"
        polygons = "gpkg" if name in ("min_area", "simplify") else None  # theirs
        with pytest.raises((InputError, ConfigError)):
            aerialseg.predict_files(file, out, model=model, vector=polygons, **{name: value})
        assert not out.exists(), name
    # Ray's options without Ray, and no workers (a review: ignored, and 0 taken)
    for ray, name, value, said in (
        (None, "ray_workers", 2, "^ray_workers= shares the work among Ray's workers: give ray="),
        (None, "ray_workers", 64, "ray_workers= shares"),  # block_megapixels' default
        (None, "block_megapixels", 8.0, "block_megapixels= shares the work among Ray's"),
        ("local", "ray_workers", 0, "^ray_workers=0: give 1 or more workers"),
    ):
        with pytest.raises(AerialsegError, match=said):
            aerialseg.predict_files(file, tmp_path / "ray", model=model, ray=ray, **{name: value})
        assert not (tmp_path / "ray").exists()


def test_an_array_takes_no_file_reading_options_and_tensors_are_arrays(tiny_model):
    import torch

    model = aerialseg.load_model(tiny_model, device="cpu")
    array = rgb_scene(70, 70).transpose(1, 2, 0)
    for options in ({"bands": [1, 2, 3]}, {"pixel_size": 0.5}):
        with pytest.raises(InputError, match="an array is taken as it is"):
            model.predict(array, **options)
    floats = torch.from_numpy(array / 255).float()
    expected = model.predict(floats.numpy()).class_ids
    assert (model.predict(floats.requires_grad_()).class_ids == expected).all()
    exact = array.astype(np.float32)  # bf16 holds the integers 0..256 exactly
    from_bf16 = model.predict(torch.from_numpy(exact).bfloat16()).class_ids
    assert (from_bf16 == model.predict(exact).class_ids).all()


def test_a_band_list_before_the_inputs_says_how_to_write_it(tmp_path, capsys):
    out = str(tmp_path / "o")
    for flags, said in (
        (["--bands", "3,2,1"], "'x.tif' is not a whole number; give them as --bands 4,3,2"),
        (["--pixel-size", "inf"], "argument --pixel-size: 'inf': give a positive size"),
    ):
        with pytest.raises(SystemExit) as exit_:  # argparse's exit, status 2
            main(["predict", "--out", out, *flags, "x.tif"])
        assert exit_.value.code == 2 and said in capsys.readouterr().err


def test_export_names_an_onnx_file_and_checks_on_an_image_smaller_than_a_stride(
    tiny_model, tmp_path
):
    """A 10 x 10 px check image was a torch error (sides not a multiple of 32); --onnx x.txt
    wrote a model nothing would load as ONNX; a folder was a traceback."""
    small = write_geotiff(tmp_path / "small.tif", rgb_scene(10, 10))
    assert aerialseg.export(tiny_model, tmp_path / "m.onnx", check_image=small) < 1e-3
    (tmp_path / "dir.onnx").mkdir()
    for bad in (tmp_path / "m.txt", tmp_path / "dir.onnx"):
        with pytest.raises(AerialsegError, match="name the file to write NAME.onnx"):
            aerialseg.export(tiny_model, bad)
    assert not (tmp_path / "m.txt").exists()


def test_an_array_the_model_cannot_take_is_named_as_the_caller_gave_it(tiny_model):
    """The message quotes the caller's own shape and dtype, and an array too large for
    memory is one line that points to the windowed path, not numpy's MemoryError."""
    model = aerialseg.load_model(tiny_model, device="cpu")
    with pytest.raises(InputError, match=r"^an array of shape \(64, 80\): the model takes"):
        model.predict(np.zeros((64, 80), np.uint8))
    with pytest.raises(InputError, match=r"^an array of <U1: pass numbers"):
        model.predict(np.array([["a"]]))
    # RGBA as numpy.asarray(PIL.Image.open(...)) gives it: the way to its alpha (a review)
    rgba = np.zeros((64, 80, 4), np.uint8)
    with pytest.raises(InputError, match=r"; if its last band is alpha, pass the PIL image, or"):
        model.predict(rgba)
    masked = np.ma.masked_array(rgba[..., :3], np.broadcast_to(rgba[..., 3:] == 0, (64, 80, 3)))
    assert not model.predict(masked).valid.any()  # the way it names works
    huge = np.broadcast_to(np.uint8(5), (200_000, 200_000, 3))  # 120 GB, held as one byte
    with pytest.raises(
        InputError,
        match=r"^an array of shape \(200000, 200000, 3\): too large to predict in memory;"
        r" predict_files \(aerialseg predict\) reads a scene window by window$",
    ):
        model.predict(huge)


def test_an_array_whose_prediction_cannot_fit_is_refused_before_it_is_read(
    tiny_model, monkeypatch, tmp_path
):
    """A review: the guard counted the float copy alone (12 bytes a pixel), where
    predicting with probabilities holds about 110; past it the CPU allocator's
    RuntimeError came out raw. Both are the one-line InputError."""
    import aerialseg.data.raster
    import aerialseg.files
    from aerialseg.data.raster import InputError

    model = aerialseg.load_model(tiny_model, device="cpu")
    image = np.zeros((1000, 1000, 3), np.uint8)  # 12 MB as floats, 100+ MB to predict
    monkeypatch.setattr(aerialseg.files, "physical_memory", lambda: 50_000_000)
    assert model.predict(image[:200, :200]).class_ids.shape == (200, 200)
    with pytest.raises(InputError, match=r"^an array of shape \(1000, 1000, 3\): too large"):
        model.predict(image, probabilities=True)
    from PIL import Image

    Image.fromarray(image).save(tmp_path / "big.png")  # a file, the same before it is read
    with pytest.raises(InputError, match=f"^{tmp_path / 'big.png'}: too large to predict"):
        model.predict(tmp_path / "big.png", confidence=True)
    monkeypatch.undo()

    def out_of_memory(*args):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:127] data. DefaultCPUAllocator: can't allocate"
            " memory: you tried to allocate 1000000000000 bytes. Error code 12"
        )

    monkeypatch.setattr(aerialseg.data.raster, "read_array", out_of_memory)
    with pytest.raises(InputError, match=r"^an array of shape \(1000, 1000, 3\): too large"):
        model.predict(image)


def test_the_memory_is_the_containers_where_its_limit_is_lower(tmp_path, monkeypatch):
    """The tightest memory.max of this process's cgroup and those above it: a container's
    at the root, a job scheduler's below it (a review: the root's alone missed Slurm's)."""
    import aerialseg.files
    from aerialseg.files import physical_memory

    root, proc = tmp_path / "cgroup", tmp_path / "cgroup.txt"
    monkeypatch.setattr(aerialseg.files, "CGROUP_ROOT", root)
    monkeypatch.setattr(aerialseg.files, "PROC_SELF_CGROUP", proc)
    job = root / "system.slice" / "slurm" / "job_7"
    job.mkdir(parents=True)
    proc.write_text("0::/system.slice/slurm/job_7\n")
    machine = physical_memory()  # no limit anywhere
    assert machine == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    (root / "memory.max").write_text("max\n")
    (job / "memory.max").write_text(f"{2**30}\n")
    assert physical_memory() == 2**30  # the job's, below the root
    (root / "system.slice" / "memory.max").write_text(f"{2**29}\n")
    assert physical_memory() == 2**29  # a tighter one above it
    (job / "memory.max").write_text(f"{machine * 2}\n")
    (root / "system.slice" / "memory.max").write_text("max\n")
    assert physical_memory() == machine  # a limit above the machine's memory
    proc.write_text("12:memory:/docker/abc\n")  # cgroup v1 alone: the machine's
    assert physical_memory() == machine


def test_a_truncated_pil_image_is_one_line(tiny_model, tmp_path):
    """A review: a JPEG cut short, opened with PIL, raised PIL's OSError from numpy."""
    from PIL import Image

    half = tmp_path / "half.jpg"
    half.write_bytes(TILE3.read_bytes()[:30_000])
    model = aerialseg.load_model(tiny_model)
    with pytest.raises(InputError, match=r"half.jpg: the image is truncated or damaged \("):
        model.predict(Image.open(half))
    assert model.predict(Image.open(TILE3)).class_ids.shape == (658, 682)
    closed = Image.open(TILE3)
    closed.close()
    with pytest.raises(InputError, match=r"image_part_002.jpg: the image is unreadable \(Op"):
        model.predict(closed)


def test_an_array_too_wide_for_row_bands_is_refused_as_a_file_of_its_width_is(
    tiny_model, monkeypatch
):
    """A review: a (1, 12,000,000, 3) array (36 MB) would have taken some 21 GB predicted
    in rows of one window, and been killed by the system; a file of that width is refused
    by predict_files. Model.predict refuses it as predict_files does: by width, from the
    window, bands and classes (the limit made small here); a tall one is predicted."""
    from aerialseg.inference import run

    model = aerialseg.load_model(tiny_model, device="cpu")
    per_column = model.spec.window * (2 * 3 + len(model.class_names)) * 4
    monkeypatch.setattr(run, "MAX_ROW_BAND_BYTES", 1000 * per_column)
    thin = np.broadcast_to(np.uint8(90), (1, 1001, 3))
    with pytest.raises(InputError, match=r"^the array: the image is 1,001 px wide: .* 1,000 px"):
        model.predict(thin)
    assert model.predict(thin[:, :1000]).class_ids.shape == (1, 1000)
    assert model.predict(thin.transpose(1, 0, 2)).class_ids.shape == (1001, 1)


@pytest.mark.parametrize("call", ["predict_files", "train"])
def test_an_empty_output_folder_is_refused(tmp_path, monkeypatch, call):
    """--out "$DIR" with DIR unset: nothing is written into the current folder."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AerialsegError, match=r"^out='( )?': empty; name a file or folder$"):
        if call == "predict_files":
            aerialseg.predict_files("missing.tif", " ")
        else:
            aerialseg.train(data="missing", out="")
    assert list(tmp_path.iterdir()) == []


def test_every_command_checks_its_arguments_by_its_definition(tmp_path):
    """Found by a review: tta='false' turned test-time augmentation on, format='jpg' wrote
    PNG, engine='tf' ran torch, and strings for numbers were tracebacks deep inside; the
    definition the flags come from now checks a Python caller's values too."""
    predict = aerialseg.predict_files
    cases = [
        (predict, {"tta": "false"}, "tta='false': give True or False"),
        (predict, {"format": "jpg"}, "format='jpg': give one of 'auto', 'tif', 'png'"),
        (aerialseg.predict_files, {"engine": "tf"}, "engine='tf': give one of 'torch', 'onnx'"),
        (aerialseg.predict_files, {"bands": "4,3,2"}, "bands='4,3,2': give a list, e.g. [4, 3, 2]"),
        (aerialseg.predict_files, {"bands": [4, "3"]}, "bands=[4, '3']: give a whole number"),
        (aerialseg.predict_files, {"min_area": "5"}, "min_area='5': give a number"),
        (predict, {"block_megapixels": 0}, "block_megapixels=0: give a number above 0"),
        (aerialseg.inspect_data, {"max_unknown": "0.1"}, "max_unknown='0.1': give a number"),
        (aerialseg.split_data, {"val": "0.1", "out": "s.json"}, "val='0.1': give a number"),
        (aerialseg.suggest, {"count": "2"}, "count='2': give a whole number"),
    ]  # fmt: skip
    for function, given, message in cases:
        first = {"data": "d"} if function in (aerialseg.inspect_data, aerialseg.split_data) else {}
        if function is aerialseg.predict_files:
            first = {"inputs": "in.tif", "out": tmp_path / "o"}
        if function is aerialseg.suggest:
            first = {"scenes": "in.tif", "out": tmp_path / "t.gpkg"}

        with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
            function(**first, **given)
    assert not list(tmp_path.iterdir())
    # numpy's numbers are numbers, a numpy array is a list, and None stands for a default
    # of None
    with pytest.raises(AerialsegError, match="no input images found"):
        aerialseg.predict_files([], tmp_path / "o", bands=np.array([3, 2, 1]))
    with pytest.raises(AerialsegError, match="no input images found"):
        aerialseg.predict_files([], tmp_path / "o", batch_size=np.int64(2), overlap=None)
    with pytest.raises(AerialsegError, match="no input images found"):
        aerialseg.predict_files([], tmp_path / "o", tta=np.bool_(True))


PATHS = "str | Path | Sequence[str | Path]"
ZEROS = "array([[0., 0., 0.], [0., 0., 0.]])"  # on one line


@pytest.mark.parametrize(
    ("function", "given", "message"),
    [
        # a review: a set's order is not the one written ({4, 3, 2} read as 2, 3, 4), and
        # a generator was used up by the check
        ("predict_files", {"bands": {4, 3, 2}}, "bands={2, 3, 4}: give a list (a set has no"),
        ("predict_files", {"bands": iter([4, 3, 2])}, "bands=<list_iterator object at "),
        # a review: paths of the wrong type were TypeErrors deep inside, and empty ones the
        # current folder, predicted, inspected or split as it was
        ("predict_files", {"inputs": ""}, "inputs='': empty; name a file or folder"),
        ("predict_files", {"inputs": ["a.tif", " "]}, "inputs=['a.tif', ' ']: empty; name a"),
        ("predict_files", {"inputs": np.zeros((2, 3))}, f"inputs={ZEROS} (ndarray): give {PATHS}"),
        ("predict_files", {"inputs": None}, f"inputs=None (NoneType): give {PATHS}"),
        ("predict_files", {"out": None}, "out=None (NoneType): give str | Path"),
        ("inspect_data", {"data": ""}, "data='': empty; name a file or folder"),
        ("inspect_data", {"classes": {"classes": []}}, "classes={'classes': []} (dict): give str"),
        ("split_data", {"data": "\t"}, "data='\\t': empty; name a file or folder"),
        ("suggest", {"scenes": ""}, "scenes='': empty; name a file or folder"),
        ("suggest", {"label_crs": ""}, "label_crs='': empty; give a value"),
        ("evaluate", {"data": ""}, "data='': empty; name a file or folder"),
    ],
)  # fmt: skip
def test_paths_and_lists_are_of_their_annotated_types(tmp_path, function, given, message):
    first = {
        "predict_files": {"inputs": "in.tif", "out": tmp_path / "o"},
        "inspect_data": {"data": "d"},
        "split_data": {"data": "d", "out": tmp_path / "s.json"},
        "suggest": {"scenes": "in.tif", "out": tmp_path / "t.gpkg"},
        "evaluate": {"model": "m.pt", "data": "d"},
    }[function]
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}"):
        getattr(aerialseg, function)(**{**first, **given})
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("--workers 0", "--workers 0: give 1 or more"),
        ("--port 99999", "--port 99999: give 0 to 65535"),
        ("--max-queue -5", "--max-queue -5: give 0 or more"),
        ("--max-side 0", "--max-side 0: give 1 or more"),
        ("--body-timeout -1", "argument --body-timeout: '-1': give a number above 0"),
        ("--max-upload-mb nan", "argument --max-upload-mb: 'nan': give a number above 0"),
    ],
)
def test_serve_refuses_a_limit_that_would_refuse_every_request(tiny_model, capsys, flag, message):
    """Each started a server that answered every upload 503 or 408, or failed with a
    traceback once the model had loaded; now one line before anything loads."""
    with pytest.raises(SystemExit) if "argument" in message else contextlib.nullcontext():
        assert main(["serve", "--model", str(tiny_model), *flag.split()]) == 2
    assert message in capsys.readouterr().err


def test_a_loaded_model_runs_where_it_was_loaded_or_says_so(tiny_model, tmp_path):
    """A review: predict_files and suggest with a loaded Model took device='cuda' and ran on
    the CPU without a word; suggest's negative seed was numpy's error after predicting."""
    model = aerialseg.load_model(tiny_model, device="cpu", precision="fp32")
    for function, first in (
        (aerialseg.predict_files, {"inputs": "in.tif", "out": tmp_path / "o"}),
        (aerialseg.suggest, {"scenes": "in.tif", "out": tmp_path / "t.gpkg"}),
    ):
        for name, asked, loaded in (("device", "cuda", "cpu"), ("precision", "bf16", "fp32")):
            with pytest.raises(ConfigError) as err:
                function(**first, model=model, **{name: asked})
            assert str(err.value) == (
                f"{name}={asked!r}: the model was loaded for {loaded}; load it with"
                f" load_model(..., {name}={asked!r}), or pass its path"
            )
    # as it was loaded, or auto: it runs (and says what is wrong with the input)
    summary = aerialseg.predict_files("in.tif", tmp_path / "o", model=model, device="cpu")
    assert "in.tif" in next(iter(summary.failed)) and not summary.done
    with pytest.raises(aerialseg.AerialsegError, match="^seed=-1: give 0 or more$"):
        aerialseg.suggest("in.tif", tmp_path / "t.gpkg", model=model, seed=-1)
    assert not list(tmp_path.iterdir())


def test_a_prediction_of_a_georeferenced_file_says_where_its_grid_lies(tiny_model, tmp_path):
    """A review: predict(path, pixel_size=1.0) of a 0.5 m scene returned class ids of half
    its size, and nothing to place them on a map by. The prediction carries the grid's CRS
    and transform: the file's, or the resampled one; an array has none."""
    from affine import Affine

    from tests.helpers.geotiff import TRANSFORM, UTM40N

    path = write_geotiff(tmp_path / "scene.tif", rgb_scene(100, 120))
    model = aerialseg.load_model(tiny_model, device="cpu")
    native = model.predict(path)
    assert native.class_ids.shape == (100, 120)
    assert native.crs == UTM40N and native.transform == TRANSFORM
    coarse = model.predict(path, pixel_size=1.0)
    assert coarse.class_ids.shape == (50, 60) and coarse.crs == UTM40N
    assert coarse.transform == Affine(1.0, 0.0, 300_000.0, 0.0, -1.0, 2_800_000.0)
    with rasterio.open(path) as ds:
        plain = model.predict(ds.read().transpose(1, 2, 0))
    assert (plain.crs, plain.transform) == (None, None)
    assert np.array_equal(plain.class_ids, native.class_ids)


def test_split_data_takes_a_class_table_object_and_refuses_an_out_that_is_an_input(tmp_path):
    """classes= takes a ClassTable as well as a file; the check that no output replaces
    an input (added for files) raised TypeError on the object before it read the data."""
    from tests.helpers.images import write_dataset

    data = write_dataset(tmp_path / "ds", tiles=1)
    found = aerialseg.split_data(data, tmp_path / "s.json", classes=DUBAI_CLASSES, test=0.2)
    assert (
        sum(found[k] for k in ("train", "val", "test")) == 9
        and found["bands"] is None
        and (tmp_path / "s.json").is_file()
    )
    table = tmp_path / "classes.json"
    table.write_text(json.dumps(DUBAI_CLASSES.to_dict()))
    with pytest.raises(AerialsegError, match=r"^out=.*classes.json would replace .*classes"):
        aerialseg.split_data(data, table, classes=table)
    assert json.loads(table.read_text()) == DUBAI_CLASSES.to_dict()


def test_errors_name_the_python_parameters_and_the_command_lines_flags(
    tiny_dataset, tiny_model, tmp_path, capsys
):
    """A review: Python callers were told to "pass --resume" or to fix "--bands". Each
    face now names its own options; a command line that a message quotes is kept."""
    from aerialseg.options import in_python_terms

    model = aerialseg.load_model(tiny_model)
    with pytest.raises(AerialsegError, match=r"^onnx=\S*m\.onx: name the file to write"):
        aerialseg.export(model, tmp_path / "m.onx")
    with pytest.raises(InputError, match=r"^bands=0,1,2: give band numbers \(from 1\)"):
        aerialseg.predict_files([str(tmp_path / "x.tif")], tmp_path / "o", bands=[0, 1, 2])
    run = tmp_path / "run"
    aerialseg.train(tiny_dataset, run, settings=TINY)
    with pytest.raises(ConfigError, match="; pass resume=True to continue it or choose another"):
        aerialseg.train(tiny_dataset, run, settings=TINY)
    argv = ["predict", str(tmp_path / "x.tif"), "--out", str(tmp_path / "o"), "--bands", "0,1,2"]
    assert main(argv) == 2
    assert "--bands 0,1,2: give band numbers" in capsys.readouterr().err
    assert in_python_terms("run 'aerialseg train --resume' or --resume", aerialseg.train) == (
        "run 'aerialseg train --resume' or resume=True"
    )
