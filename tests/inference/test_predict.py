"""predict: georeference, seamless windows, nodata, outputs, shards, many inputs."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from PIL import Image
from rasterio.windows import Window
from torch import nn

from aerialseg.cli import main
from aerialseg.data.classes import DUBAI_CLASSES, ClassTable
from aerialseg.data.raster import open_input
from aerialseg.errors import AerialsegError, ConfigError
from aerialseg.inference.load import load_predictor
from aerialseg.inference.predict import (
    CONFIDENCE_NODATA,
    NODATA,
    ArrayRaster,
    Predictor,
    band_starts,
    check_overlap,
    default_batch_size,
    with_temperature,
)
from aerialseg.inference.run import expand_inputs, output_names
from aerialseg.models.io import load_model, save_model
from aerialseg.models.network import SegmentationNet
from aerialseg.training.config import resolve_config
from tests.helpers.geotiff import write_geotiff
from tests.helpers.images import rgb_scene
from tests.helpers.models import BatchRecorder
from tests.helpers.paths import SAMPLE


def predictor_of(engine, cfg, batch_size: int = 4, device: str = "cpu") -> Predictor:
    """A predictor of ``engine`` with the windows of the training config ``cfg``."""
    return Predictor(engine, cfg.spec, DUBAI_CLASSES, device, batch_size)


def predict_rows(engine, raster, cfg, *, batch_size=4, device="cpu", **kw):
    return predictor_of(engine, cfg, batch_size, device).rows(raster, **kw)


def probabilities(engine, image: torch.Tensor, settings: list[str]) -> torch.Tensor:
    """The blended probabilities of a whole image in memory."""
    cfg = resolve_config("default", None, settings)
    return predictor_of(engine, cfg).predict_image(image, probabilities=True).probs


def predict_whole(net, image: torch.Tensor) -> torch.Tensor:
    """One pass over the whole image (a window as large as it)."""
    return probabilities(net, image, [f"window={32 * -(-max(image.shape[-2:]) // 32)}"])


# The trained tiny model's classes with and without flip TTA agree on 99.9 % of the scene's
# pixels; a view flipped back the wrong way would move whole regions. (The untrained one's
# agree on 70 %: its random features are not flip-symmetric.)
TTA_AGREEMENT = 0.95


def predict(*args) -> int:
    """``aerialseg predict ARGS --device cpu``; paths may be given as Path objects."""
    return main(["predict", *map(str, args), "--device", "cpu"])


def read(path):
    with rasterio.open(path) as src:
        return src.read(1), src.profile, src.colormap(1) if src.count == 1 else None


def test_georeference_is_kept(tiny_model, geotiff, tmp_path, capsys):
    assert predict(geotiff, "--model", tiny_model, "--out", tmp_path / "o") == 0
    out = tmp_path / "o" / "scene_classes.tif"
    with rasterio.open(geotiff) as src, rasterio.open(out) as dst:
        assert dst.crs == src.crs and dst.transform == src.transform
        assert (dst.width, dst.height) == (src.width, src.height)
        assert dst.xy(37, 123) == src.xy(37, 123)
        assert dst.nodata == NODATA and dst.profile["tiled"] and dst.compression is not None
        colours = dst.colormap(1)
    assert colours[0][:3] == (0xD0, 0x02, 0x1B)  # Building's display colour: opens coloured in QGIS
    assert not list((tmp_path / "o").glob(".*"))  # no step or temporary file left


@pytest.mark.parametrize("height, width", [(150, 200), (40, 300), (300, 40)])
def test_row_bands_equal_in_memory_windows_and_whole_image(height, width):
    """Streaming row bands give the in-memory image's result, bit for bit, which itself
    matches one whole-image pass: no seams at window or band edges."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 6, 3, padding=1))
    net = SegmentationNet(model, [0.0] * 3, [255.0] * 3, 1).eval()
    cfg = resolve_config("default", None, ["window=64", "overlap=0.5"])
    image = rgb_scene(height, width)

    class Raster:  # the RasterInput interface over an array
        def __init__(self):
            self.height, self.width = height, width

        def read(self, win):
            r, c = win.row_off, win.col_off
            data = image[:, r : r + win.height, c : c + win.width].astype(np.float32)
            return data, np.ones(data.shape[1:], bool)

    tensor = torch.from_numpy(image).float()
    with torch.no_grad():
        whole = predict_whole(net, tensor).argmax(0).numpy()
        in_memory = predictor_of(net, cfg).predict_image(tensor, probabilities=True)
        sliding_probs, sliding = in_memory.probs, in_memory.ids
        ids = np.full((height, width), 99, np.uint8)
        confidence = np.full((height, width), 255, np.uint8)
        next_row = 0
        for band in predict_rows(net, Raster(), cfg, confidence=True):
            w = band.window
            assert w.row_off == next_row and w.width == width  # contiguous, full-width bands
            ids[w.row_off : w.row_off + w.height] = band.ids
            confidence[w.row_off : w.row_off + w.height] = band.confidence
            next_row += w.height
    assert next_row == height
    assert np.array_equal(ids, sliding)
    assert (ids == whole).mean() > 0.995
    # the confidence is the blended probability of the class chosen, in percent
    expected = 100 * sliding_probs.max(0).values.numpy()
    assert np.abs(confidence - expected).max() <= 0.51
    # the class chosen is the likeliest: no other class's probability is above it
    runner_up = 100 * sliding_probs.topk(2, dim=0).values[1].numpy()
    assert (confidence >= np.floor(runner_up)).all()
    # a model's confidence temperature rescales them, as calibration fitted it
    hot = resolve_config("default", None, ["window=64", "overlap=0.5", "confidence_temperature=2"])
    with torch.no_grad():
        softened = np.concatenate(
            [b.confidence for b in predict_rows(net, Raster(), hot, confidence=True)]
        )
    expected = 100 * with_temperature(sliding_probs, 2.0).max(0).values.numpy()
    assert np.abs(softened - expected).max() <= 0.51 and (softened <= confidence).all()


@pytest.mark.parametrize("overlap", [0.5, 0.25])
def test_row_blocks_are_bit_identical_to_the_whole_run(overlap):
    """predict_rows(start=, stop=) over blocks cut at band starts gives the very bytes of
    one pass, confidences too: the windows above a block are predicted for its rows."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 6, 3, padding=1))
    net = SegmentationNet(model, [0.0] * 3, [255.0] * 3, 1).eval()
    cfg = resolve_config("default", None, ["window=64", f"overlap={overlap}"])
    image = rgb_scene(300, 90)

    class Raster:
        height, width = image.shape[1:]

        def read(self, win):
            r = win.row_off
            data = image[:, r : r + win.height, : win.width].astype(np.float32)
            return data, np.ones(data.shape[1:], bool)

    def rows(**kw):
        with torch.no_grad():
            bands = list(predict_rows(net, Raster(), cfg, confidence=True, **kw))
        return np.concatenate([b.ids for b in bands]), np.concatenate([b.confidence for b in bands])

    starts = band_starts(300, 90, cfg.spec, net.stride)
    assert len(starts) > 4
    cuts = [0, starts[2], starts[3], starts[-1], 300]  # blocks of 2, 1 and several bands
    ids, confidence = rows()
    parts = [rows(start=a, stop=b) for a, b in zip(cuts, cuts[1:], strict=False)]
    assert np.array_equal(np.concatenate([p[0] for p in parts]), ids)
    assert np.array_equal(np.concatenate([p[1] for p in parts]), confidence)
    with pytest.raises(ValueError, match="do not start and end bands"):
        rows(start=starts[1] + 1)


def conv_net(classes: int = 6) -> SegmentationNet:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, classes, 3, padding=1)
    )
    with torch.no_grad():
        model[-1].weight *= 10  # probabilities far from uniform
    return SegmentationNet(model, [0.0] * 3, [255.0] * 3, 1).eval()


def joined(bands) -> tuple[np.ndarray, np.ndarray]:
    bands = list(bands)
    return np.concatenate([b.ids for b in bands]), np.concatenate([b.confidence for b in bands])


def test_one_window_and_resize_models_predict_in_one_pass():
    net, image = conv_net(), rgb_scene(40, 50)
    valid = np.ones((40, 50), bool)
    valid[:7, :9] = False
    cfg = resolve_config("default", None, ["window=64"])
    with torch.no_grad():
        bands = list(
            predict_rows(net, ArrayRaster(image.astype(np.float32), valid), cfg, confidence=True)
        )
        probs = predict_whole(net, torch.from_numpy(image).float())
    assert len(bands) == 1
    (band,) = bands
    assert (band.window.col_off, band.window.row_off) == (0, 0)
    assert (band.window.width, band.window.height) == (50, 40)
    np.testing.assert_array_equal(band.image, image)
    np.testing.assert_array_equal(band.valid, valid)
    expected = probs.argmax(0).numpy()
    assert (band.ids[valid] == expected[valid]).all() and (band.ids[~valid] == NODATA).all()
    percent = (100 * probs.max(0).values).round().numpy()
    assert (band.confidence[valid] == percent[valid]).all()
    assert (band.confidence[~valid] == CONFIDENCE_NODATA).all()
    assert band.ids.dtype == band.confidence.dtype == np.uint8  # as the rasters store them
    # the seed model's way: the whole image squashed to resize_to, whatever its size
    squash = resolve_config("default", None, ["window=64", "input_mode=resize", "resize_to=32"])
    tall = rgb_scene(150, 70)
    with torch.no_grad():
        bands = list(predict_rows(net, ArrayRaster(tall.astype(np.float32)), squash))
        small = torch.nn.functional.interpolate(
            torch.from_numpy(tall).float()[None], size=(32, 32), mode="bilinear"
        )
        probs = net(small).softmax(1)  # resized as probabilities, as the seed did
        resized = torch.nn.functional.interpolate(probs, size=(150, 70), mode="bilinear")
    assert len(bands) == 1 and bands[0].ids.shape == (150, 70) and bands[0].confidence is None
    assert (bands[0].ids == resized[0].argmax(0).numpy()).mean() > 0.999


def test_nodata_pixels_of_a_windowed_scene():
    net, image = conv_net(), rgb_scene(150, 130)
    valid = np.ones((150, 130), bool)
    valid[40:90, 100:] = False  # across a band and a window edge
    cfg = resolve_config("default", None, ["window=64", "overlap=0.5"])
    with torch.no_grad():
        ids, percent = joined(
            predict_rows(net, ArrayRaster(image.astype(np.float32), valid), cfg, confidence=True)
        )
        probs = probabilities(net, torch.from_numpy(image).float(), ["window=64", "overlap=0.5"])
    assert (ids[~valid] == NODATA).all() and (percent[~valid] == CONFIDENCE_NODATA).all()
    assert (ids[valid] == probs.argmax(0).numpy()[valid]).mean() > 0.9999
    expected = (100 * probs.max(0).values).numpy()
    assert np.abs(percent[valid] - expected[valid]).max() <= 0.51


def test_whole_image_probabilities_are_those_of_the_rows_bit_for_bit():
    """An image in memory goes through the very loop that writes files: its probabilities
    are the rows' blended scores over their sum, and its ids the rows' ids."""
    net, image = conv_net(), rgb_scene(150, 130).astype(np.float32)
    valid = np.ones((150, 130), bool)
    valid[40:90, 100:] = False
    cfg = resolve_config("default", None, ["window=64", "overlap=0.25"])
    predictor = predictor_of(net, cfg, batch_size=3)
    whole = predictor.predict_image(image, valid, probabilities=True, confidence=True)
    bands = list(predictor.rows(ArrayRaster(image, valid), probabilities=True, confidence=True))
    assert len(bands) > 1
    assert torch.equal(whole.probs, torch.cat([b.probs for b in bands], 1))
    assert np.array_equal(whole.ids, np.concatenate([b.ids for b in bands]))
    assert np.array_equal(whole.confidence, np.concatenate([b.confidence for b in bands]))
    assert torch.allclose(whole.probs.sum(0), torch.ones(150, 130), atol=1e-6)
    # a tensor (training's validation) and an array give the same result
    as_tensor = predictor.predict_image(torch.from_numpy(image), valid, probabilities=True)
    assert torch.equal(as_tensor.probs, whole.probs) and np.array_equal(as_tensor.ids, whole.ids)
    assert whole.probs.shape == (6, 150, 130) and bands[0].image.dtype == np.float32


def test_an_image_in_memory_and_its_geotiff_give_the_same_ids(tiny_model, tmp_path):
    path = write_geotiff(tmp_path / "scene.tif", rgb_scene(700, 560))
    predictor = load_predictor(tiny_model, device="cpu", precision="fp32")
    raster = open_input(path)
    try:
        from_file = np.concatenate([b.ids for b in predictor.rows(raster)])
        values, valid = raster.read(Window(0, 0, raster.width, raster.height))
    finally:
        raster.close()
    in_memory = predictor.predict_image(values, valid)
    assert np.array_equal(in_memory.ids, from_file)


def test_windows_go_through_the_network_in_the_batches_asked():
    recorder = BatchRecorder(classes=6)
    net = SegmentationNet(recorder, [0.0] * 3, [255.0] * 3, 1).eval()
    cfg = resolve_config("default", None, ["window=64", "overlap=0"])
    image = rgb_scene(128, 320)  # 2 rows of 5 windows
    with torch.no_grad():
        list(predict_rows(net, ArrayRaster(image.astype(np.float32)), cfg))
        assert recorder.batches == [4, 1, 4, 1]  # 4 windows a pass by default
        recorder.batches.clear()
        list(predict_rows(net, ArrayRaster(image.astype(np.float32)), cfg, batch_size=2))
        assert recorder.batches == [2, 2, 1, 2, 2, 1]
        recorder.batches.clear()
        predictor_of(net, cfg, batch_size=3).predict_image(image.astype(np.float32))
        assert recorder.batches == [3, 2, 3, 2]


def test_default_batch_size():
    # bench/results/precision.json: on a CPU batching paid in bf16 only; a GPU takes 8
    assert default_batch_size("cpu") == 1 and default_batch_size("cpu", "fp32") == 1
    assert default_batch_size("cpu", "bf16") == 2
    assert default_batch_size(torch.device("cuda")) == 8 == default_batch_size("cuda", "bf16")


def test_nodata_stays_nodata(tiny_model, tmp_path):
    data = rgb_scene(100, 120)
    data[:, :30, :40] = 0
    path = write_geotiff(tmp_path / "nd.tif", data, nodata=0)
    args = ["--out", tmp_path / "o", "--all-outputs", "--precision", "fp32"]
    assert predict(path, "--model", tiny_model, *args) == 0
    ids, profile, _ = read(tmp_path / "o" / "nd_classes.tif")
    assert profile["nodata"] == NODATA
    assert (ids[:30, :40] == NODATA).all() and (ids[30:, 40:] != NODATA).all()
    with rasterio.open(tmp_path / "o" / "nd_color.tif") as src:
        colour = src.read()
        assert src.count == 4 and src.colorinterp[3] == rasterio.enums.ColorInterp.alpha
    # no data is clear, not painted black; every prediction is opaque
    assert (colour[3, :30, :40] == 0).all() and (colour[3, 30:, 40:] == 255).all()
    areas = json.loads((tmp_path / "o" / "nd_areas.json").read_text())
    assert sum(a["pixels"] for a in areas) == 100 * 120 - 30 * 40
    assert sum(a["share"] for a in areas) == pytest.approx(1.0)
    assert areas[0]["area_m2"] == pytest.approx(areas[0]["pixels"] * 0.25)  # 0.5 m pixels
    assert (tmp_path / "o" / "nd_overlay.png").is_file()
    with rasterio.open(tmp_path / "o" / "nd_confidence.tif") as src:
        confidence = src.read(1)
        assert src.nodata == 255 and src.crs.to_epsg() == 32640
    assert (confidence[:30, :40] == 255).all()
    # elsewhere, the percentages the in-memory prediction gives at the model's temperature
    predictor = load_predictor(tiny_model, device="cpu", precision="fp32", batch_size=1)
    raster = open_input(path)
    with torch.no_grad():
        bands = list(predictor.rows(raster, confidence=True))
    raster.close()
    expected = np.concatenate([b.confidence for b in bands])
    assert (expected[:30, :40] == 255).all()
    assert np.abs(confidence.astype(int) - expected).max() <= 1
    assert (confidence == expected).mean() > 0.99


def test_small_rasters_decoded_whole_predict_as_windowed_reads(tiny_model, tmp_path, monkeypatch):
    import aerialseg.data.raster as raster

    data = rgb_scene(150, 200)
    data[:, :30, :40] = 0
    path = write_geotiff(tmp_path / "nd.tif", data, nodata=0)
    assert open_input(path).whole is not None  # 30,000 px: decoded once
    assert predict(path, "--model", tiny_model, "--out", tmp_path / "whole", "--color") == 0
    monkeypatch.setattr(raster, "WHOLE_READ_PIXELS", 0)
    assert open_input(path).whole is None
    assert predict(path, "--model", tiny_model, "--out", tmp_path / "windows", "--color") == 0
    for name in ("nd_classes.tif", "nd_color.tif"):
        with (
            rasterio.open(tmp_path / "whole" / name) as a,
            rasterio.open(tmp_path / "windows" / name) as b,
        ):
            np.testing.assert_array_equal(a.read(), b.read())


def test_polygon_areas_sum_to_raster_areas(tiny_model, geotiff, tmp_path):
    import fiona

    for fmt, epsg in (("geojson", 4326), ("gpkg", 32640)):  # GeoJSON: RFC 7946's WGS 84
        out = tmp_path / fmt
        argv = ["--model", tiny_model, "--out", out, "--vector", fmt, "--min-area", "0"]
        assert predict(geotiff, *argv) == 0
        areas = {
            a["class"]: a["area_m2"] for a in json.loads((out / "scene_areas.json").read_text())
        }
        with fiona.open(out / f"scene_polygons.{fmt}") as src:
            assert src.crs.to_epsg() == epsg
            summed: dict[str, float] = {}
            for feature in src:
                name = feature["properties"]["class"]
                summed[name] = summed.get(name, 0.0) + feature["properties"]["area_m2"]
        for name, area in areas.items():
            assert summed.get(name, 0.0) == pytest.approx(area, rel=1e-6), name


def test_simplify_and_min_area_reduce_polygons(trained_model, geotiff, tmp_path):
    """--min-area merges smaller regions in the raster, so every polygon holds at least
    that area; --simplify then thins their outlines, keeping each polygon (its area moves
    a little with its outline, so the bound is checked without it)."""
    import fiona
    import shapely
    from shapely.geometry import shape

    found = {}
    for name, extra in (
        ("plain", ["--min-area", "0"]),
        ("sieved", ["--min-area", "5"]),
        ("simplified", ["--simplify", "1.0", "--min-area", "5"]),
    ):
        out = tmp_path / name
        assert (
            predict(geotiff, "--model", trained_model, "--out", out, "--vector", "geojson", *extra)
            == 0
        )
        with fiona.open(out / "scene_polygons.geojson") as src:
            found[name] = list(src)
    assert len(found["sieved"]) < len(found["plain"])
    assert all(f["properties"]["area_m2"] >= 5 for f in found["sieved"])
    assert len(found["simplified"]) == len(found["sieved"])

    def vertices(features):
        return sum(shapely.get_num_coordinates(shape(f["geometry"])) for f in features)

    assert vertices(found["simplified"]) < vertices(found["sieved"])


def test_plain_jpeg_gives_png_outputs(tiny_model, tmp_path):
    from PIL import Image

    Image.fromarray(rgb_scene(90, 110).transpose(1, 2, 0)).save(tmp_path / "photo.jpg")
    assert (
        predict(
            tmp_path / "photo.jpg", "--model", tiny_model, "--out", tmp_path / "o", "--all-outputs"
        )
        == 0
    )
    classes = Image.open(tmp_path / "o" / "photo_classes.png")
    assert classes.mode == "P" and classes.size == (110, 90)
    assert Image.open(tmp_path / "o" / "photo_overlay.png").mode == "RGB"
    areas = json.loads((tmp_path / "o" / "photo_areas.json").read_text())
    assert areas[0]["area_m2"] is None  # no georeference: pixels and shares only


def test_sixteen_bit_multiband_with_bands(tiny_model, tmp_path):
    rng = np.random.default_rng(0)
    data = rgb_scene(80, 96).astype(np.uint16) * 40
    data = np.concatenate([data, rng.integers(0, 10_000, (1, 80, 96), dtype=np.uint16)])
    path = write_geotiff(tmp_path / "ms.tif", data)
    raster = open_input(path, (3, 2, 1))
    rgb, valid = raster.read(rasterio.windows.Window(0, 0, 96, 80))
    raster.close()
    assert rgb.min() >= 0 and rgb.max() <= 255 and valid.all()
    # 2nd..98th percentile stretch: about 2 % of pixels saturate at each end.
    assert 0.005 < (rgb[0] == 255).mean() < 0.05
    assert predict(path, "--model", tiny_model, "--out", tmp_path / "o", "--bands", "3,2,1") == 0
    assert (tmp_path / "o" / "ms_classes.tif").is_file()


def test_sharded_runs_equal_a_single_run(tiny_model, tmp_path):
    (tmp_path / "in").mkdir()
    for i in range(3):
        write_geotiff(tmp_path / "in" / f"s{i}.tif", rgb_scene(70, 90, seed=i))
    base = ["--model", str(tiny_model), "--device", "cpu"]
    assert predict(tmp_path / "in", "--out", tmp_path / "all", *base) == 0
    for k in range(2):
        assert (
            predict(tmp_path / "in" / "*.tif", "--out", tmp_path / "sh", "--shard", f"{k}/2", *base)
            == 0
        )
    for i in range(3):
        single = read(tmp_path / "all" / f"s{i}_classes.tif")[0]
        assert np.array_equal(single, read(tmp_path / "sh" / f"s{i}_classes.tif")[0])


def test_tta_keeps_shape_and_mostly_agrees(trained_model, geotiff, tmp_path):
    assert predict(geotiff, "--model", trained_model, "--out", tmp_path / "a") == 0
    assert predict(geotiff, "--model", trained_model, "--out", tmp_path / "b", "--tta") == 0
    plain, tta = (
        read(tmp_path / "a" / "scene_classes.tif")[0],
        read(tmp_path / "b" / "scene_classes.tif")[0],
    )
    assert plain.shape == tta.shape and not np.array_equal(plain, tta)
    # averaging flipped views changes some boundary pixels, not the map
    assert (plain == tta).mean() > TTA_AGREEMENT


def test_onnx_export_and_engine_match_pytorch(trained_model, geotiff, tmp_path, capsys):
    onnx_path = tmp_path / "m.onnx"
    argv = ["export", str(trained_model), "--onnx", str(onnx_path), "--check-image", str(geotiff)]
    assert main(argv) == 0
    assert "max |p_onnx - p_torch|" in capsys.readouterr().out
    # fp32 on both sides: "auto" is bf16 on a CPU with AVX512-BF16 (0.6 % of pixels apart)
    fp32 = ["--precision", "fp32"]
    assert predict(geotiff, "--model", trained_model, "--out", tmp_path / "t", *fp32) == 0
    assert (
        predict(geotiff, "--model", onnx_path, "--engine", "onnx", "--out", tmp_path / "x", *fp32)
        == 0
    )
    torch_ids = read(tmp_path / "t" / "scene_classes.tif")[0]
    onnx_ids = read(tmp_path / "x" / "scene_classes.tif")[0]
    assert (torch_ids == onnx_ids).mean() > 0.999


def test_onnx_engine_on_a_pt_model_exports_it_for_the_run(
    tiny_model, geotiff, tmp_path, capsys, monkeypatch
):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    onnx_path = tmp_path / "m.onnx"
    assert main(["export", str(tiny_model), "--onnx", str(onnx_path)]) == 0
    assert predict(geotiff, "--model", onnx_path, "--out", tmp_path / "file") == 0
    assert (
        predict(geotiff, "--model", tiny_model, "--engine", "onnx", "--out", tmp_path / "pt") == 0
    )
    assert "exporting" in capsys.readouterr().err
    from_file = read(tmp_path / "file" / "scene_classes.tif")[0]
    from_pt = read(tmp_path / "pt" / "scene_classes.tif")[0]
    np.testing.assert_array_equal(from_pt, from_file)
    assert list(scratch.iterdir()) == []  # the run's export is gone


@pytest.mark.parametrize("tolerance", [-1.0, float("nan")])
def test_export_rejects_a_diverging_model(tiny_model, tmp_path, monkeypatch, capsys, tolerance):
    """A review: a diverging export was a RuntimeError (a traceback, "a bug"), and the
    folders made for it stayed; a NaN difference passed."""
    import aerialseg.models.export as export

    monkeypatch.setattr(export, "TOLERANCE", tolerance)  # any difference is too much
    with pytest.raises(AerialsegError, match=r"^the ONNX export differs from PyTorch by "):
        export.export_onnx(load_model(tiny_model), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []  # nothing under the final name, no temporary
    out = tmp_path / "new dir" / "inner" / "m.onnx"
    assert main(["export", str(tiny_model), "--onnx", str(out)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # nor the folders made for it


def test_output_names_tell_inputs_of_one_name_apart(tmp_path):
    a, b = tmp_path / "Tile 6" / "images" / "x.jpg", tmp_path / "Tile 8" / "images" / "x.jpg"
    c, d = tmp_path / "y.jpg", tmp_path / "y.tif"
    names = output_names([a, b, c, d, tmp_path / "z.png"])
    assert names == {
        a: "Tile 6__images__x",
        b: "Tile 8__images__x",
        c: "y_jpg",
        d: "y_tif",
        tmp_path / "z.png": "z",
    }


def test_a_made_name_that_is_another_inputs_stem_takes_a_number(tmp_path):
    """Found by a review: x.jpg became x_jpg, the stem of x_jpg.tif beside it, and their
    areas and styles overwrote each other's."""
    jpg, tif, other = tmp_path / "x.jpg", tmp_path / "x.tif", tmp_path / "x_jpg.tif"
    names = output_names([jpg, tif, other])
    assert names == {jpg: "x_jpg", tif: "x_tif", other: "x_jpg_2"}


def test_a_folder_predicted_into_itself_leaves_out_its_outputs(tiny_model, tmp_path, capsys):
    """Found by a review: each rerun of `predict folder --out folder` predicted the last
    run's outputs too (x_classes_classes.tif, then x_classes_classes_classes.tif)."""
    write_geotiff(tmp_path / "x.tif", rgb_scene(40, 50))
    argv = ["--model", str(tiny_model), "--device", "cpu", "--out", tmp_path]
    for _ in range(2):
        assert predict(tmp_path, *argv, "--all-outputs", "--format", "tif") == 0
    written = {p.name for p in tmp_path.glob("*.tif")}
    assert not any("_classes_" in name or "_image_" in name for name in written), written
    assert "left out 4 input(s) there that are the other inputs' outputs" in capsys.readouterr().err


def test_inputs_of_one_name_do_not_overwrite_each_other(tiny_model, tmp_path):
    for folder, seed in (("a", 1), ("b", 2)):
        (tmp_path / folder).mkdir()
        write_geotiff(tmp_path / folder / "x.tif", rgb_scene(70, 90, seed=seed))
    base = ["--model", str(tiny_model), "--device", "cpu"]
    for folder in ("a", "b"):
        assert predict(tmp_path / folder / "x.tif", "--out", tmp_path / folder / "out", *base) == 0
    # two shards, one input each, into one folder: the names come from all the inputs
    for k in range(2):
        assert (
            predict(
                tmp_path / "?" / "x.tif", "--out", tmp_path / "both", "--shard", f"{k}/2", *base
            )
            == 0
        )
    written = sorted(p.name for p in (tmp_path / "both").glob("*_classes.tif"))
    assert written == ["a__x_classes.tif", "b__x_classes.tif"]
    for folder in ("a", "b"):
        alone = read(tmp_path / folder / "out" / "x_classes.tif")[0]
        assert np.array_equal(alone, read(tmp_path / "both" / f"{folder}__x_classes.tif")[0])
    assert not np.array_equal(
        read(tmp_path / "both" / "a__x_classes.tif")[0],
        read(tmp_path / "both" / "b__x_classes.tif")[0],
    )


def test_a_file_named_several_ways_is_predicted_once(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.jpg").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    found = expand_inputs(["a/x.jpg", "./a/x.jpg", str(tmp_path / "a" / "x.jpg"), "a", "a/*.jpg"])
    assert found == [Path("a/x.jpg")]
    assert output_names(found) == {Path("a/x.jpg"): "x"}


def test_a_value_table_writes_its_values_in_16_bits(tiny_model, geotiff, tmp_path):
    """A model trained on label rasters of values 100-600 writes predictions in those values
    (16-bit, nodata 65535), where the same network with the colour table writes ids."""
    loaded = load_model(tiny_model)
    table = ClassTable.from_dict(
        {
            "classes": [
                {"name": n, "mask_value": 100 * (i + 1)} for i, n in enumerate(loaded.classes.names)
            ]
        }
    )
    valued = tmp_path / "valued.pt"
    save_model(valued, loaded.net, loaded.spec, table, loaded.meta)
    assert predict(geotiff, "--model", tiny_model, "--out", tmp_path / "ids") == 0
    assert (
        # --min-area 0: no speck merged (with polygons the raster is sieved), every pixel kept
        predict(
            geotiff,
            "--model",
            valued,
            "--out",
            tmp_path / "values",
            "--vector",
            "geojson",
            "--min-area",
            "0",
        )
        == 0
    )
    with (
        rasterio.open(tmp_path / "ids" / "scene_classes.tif") as ids,
        rasterio.open(tmp_path / "values" / "scene_classes.tif") as values,
    ):
        assert values.dtypes[0] == "uint16" and values.nodata == 65535
        np.testing.assert_array_equal(values.read(1), (ids.read(1).astype(np.uint16) + 1) * 100)
        # a PNG keeps the 16-bit values; it has no palette for them
        png = tmp_path / "png"
        assert predict(geotiff, "--model", valued, "--out", png, "--format", "png") == 0
        np.testing.assert_array_equal(
            np.array(Image.open(png / "scene_classes.png")), values.read(1)
        )
        unsieved = values.read(1)
    # with the default min-area the 16-bit values are sieved as values: specks take a
    # neighbour's value, and the areas count what the raster holds
    sieved_out = tmp_path / "sieved"
    argv = ["--model", valued, "--out", sieved_out, "--vector", "gpkg"]
    assert predict(geotiff, *argv) == 0
    with rasterio.open(sieved_out / "scene_classes.tif") as src:
        sieved = src.read(1)
    assert set(np.unique(sieved)) <= {100, 200, 300, 400, 500, 600}
    assert (sieved != unsieved).any()
    rows = json.loads((sieved_out / "scene_areas.json").read_text())
    assert [r["pixels"] for r in rows] == [int((sieved == 100 * (i + 1)).sum()) for i in range(6)]
    polygons = json.loads((tmp_path / "values" / "scene_polygons.geojson").read_text())
    areas = json.loads((tmp_path / "values" / "scene_areas.json").read_text())
    predicted = {a["class"] for a in areas if a["area_m2"] > 0}
    assert {f["properties"]["class"] for f in polygons["features"]} <= predicted
    value_of = {c.name: c.mask_value for c in table.classes}
    for feature in polygons["features"]:  # the id is the value the raster holds
        props = feature["properties"]
        assert props["class_id"] == value_of[props["class"]]


def test_a_pixel_size_predicts_on_a_resampled_grid(tiny_model, geotiff, tmp_path, capsys):
    argv = ["--model", tiny_model, "--pixel-size", "1.0"]
    assert predict(geotiff, *argv, "--out", tmp_path / "o", "--vector", "geojson") == 0
    ids, profile, _ = read(tmp_path / "o" / "scene_classes.tif")
    with rasterio.open(geotiff) as src:
        assert ids.shape == (src.height // 2, src.width // 2)  # 0.5 m pixels read at 1 m
        assert profile["transform"].a == 1.0 and profile["crs"] == src.crs
        with rasterio.open(tmp_path / "o" / "scene_classes.tif") as out:
            assert out.bounds == src.bounds
        scene_m2 = src.width * src.height * 0.25
    areas = json.loads((tmp_path / "o" / "scene_areas.json").read_text())
    assert sum(a["area_m2"] for a in areas) == pytest.approx(scene_m2)

    photo = tmp_path / "photo.png"
    Image.fromarray(rgb_scene(64, 64).transpose(1, 2, 0)).save(photo)
    capsys.readouterr()
    assert predict(photo, *argv, "--out", tmp_path / "p") == 2
    assert "photo.png: has no georeference" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:  # argparse's usage error
        predict(geotiff, "--model", tiny_model, "--pixel-size", "-1", "--out", tmp_path / "n")
    assert stop.value.code == 2
    assert "--pixel-size: '-1': give a positive size" in capsys.readouterr().err


def test_prediction_on_a_fresh_thread_builds_no_autograd_graph(tmp_path):
    """The server predicts on a worker thread, where a caller's inference_mode is not in
    force: the prediction code itself must run without autograd, or every window's
    activations stay alive until the scene is done."""
    import threading

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 6, 3, padding=1))
    net = SegmentationNet(model, [0.0] * 3, [255.0] * 3, 1).eval()  # weights require grad
    outputs: list[torch.Tensor] = []

    def engine(batch: torch.Tensor) -> torch.Tensor:
        out = net(batch)
        outputs.append(out)
        return out

    engine.stride = net.stride  # type: ignore[attr-defined]
    cfg = resolve_config("default", None, ["window=64", "overlap=0.5"])
    path = tmp_path / "scene.tif"
    write_geotiff(path, rgb_scene(150, 200))
    raster = open_input(path)
    worker = threading.Thread(target=lambda: list(predict_rows(engine, raster, cfg)))
    worker.start()
    worker.join()
    raster.close()
    assert len(outputs) > 4  # several windows ran
    assert all(out.grad_fn is None and not out.requires_grad for out in outputs)


@pytest.mark.parametrize(
    "height, width, settings",
    [
        (300, 90, ["window=64", "overlap=0.5"]),
        (300, 90, ["window=64", "overlap=0.25"]),
        (200, 300, ["window=96", "overlap=0.25"]),
        (64, 64, ["window=64"]),  # one window: one band
        (64, 65, ["window=64", "overlap=0.5"]),  # wider than a window, one window high
        (65, 64, ["window=64", "overlap=0.5"]),  # taller: bands
        (300, 300, ["window=64", "input_mode=resize"]),  # squashed whole: one band
    ],
)
def test_band_starts_are_the_rows_predict_rows_starts_bands_at(height, width, settings):
    cfg = resolve_config("default", None, settings)
    net = conv_net()
    with torch.no_grad():
        bands = list(
            predict_rows(net, ArrayRaster(rgb_scene(height, width).astype(np.float32)), cfg)
        )
    starts = band_starts(height, width, cfg.spec, net.stride)
    assert starts == [b.window.row_off for b in bands]
    assert starts[0] == 0 and starts == sorted(set(starts))


class DeviceSpy(nn.Module):
    """An engine of stride 1 that notes the device each forward pass's input is on and
    answers uniform probabilities on the CPU, wherever its input was."""

    stride = 1

    def __init__(self, classes: int = 3):
        super().__init__()
        self.classes = classes
        self.devices: list[str] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.devices.append(x.device.type)
        return torch.zeros((x.shape[0], self.classes, *x.shape[-2:]))


def test_images_go_to_the_device_asked_before_the_network():
    # "meta" stands for a GPU on a CPU-only host: a tensor left on the CPU shows as "cpu"
    spy, image = DeviceSpy(), rgb_scene(20, 30)
    cfg = resolve_config("default", None, ["window=64"])
    (band,) = predict_rows(
        spy, ArrayRaster(image.astype(np.float32)), cfg, device="meta"
    )  # one window
    assert spy.devices == ["meta"] and band.ids.shape == (20, 30)
    spy.devices.clear()
    predictor_of(spy, cfg, device="meta").predict_image(torch.from_numpy(image).float())
    assert spy.devices == ["meta"]


def test_the_sample_scene_predicts_quietly_and_a_drone_scale_input_is_warned(tmp_path, capsys):
    """The shipped sample is at the bundled model's scale: no warning. The same pixels
    said to be 5 cm (a drone orthophoto) get one line naming the --pixel-size that fixes
    it, and run as printed, that warns no more."""
    from aerialseg.models.io import bundled_model_path
    from aerialseg.models.io import load_model as load_file

    assert load_file(bundled_model_path()).spec.ground_resolution == (1.0, 2.5)
    with rasterio.open(SAMPLE) as src:
        assert src.crs.to_epsg() == 32640 and src.res == (2.0, 2.0)
        crop = src.read(window=Window(0, 0, 200, 160))
    assert main(["predict", str(SAMPLE), "--out", str(tmp_path / "a"), "--device", "cpu"]) == 0
    assert "pixels of" not in capsys.readouterr().err
    drone = Affine(0.05, 0, 320_000, 0, -0.05, 2_790_000)
    fine = write_geotiff(tmp_path / "drone.tif", crop, transform=drone)
    assert main(["predict", str(fine), "--out", str(tmp_path / "b"), "--device", "cpu"]) == 0
    (line,) = [x for x in capsys.readouterr().err.splitlines() if "pixels of" in x]
    assert line.startswith("aerialseg: drone.tif has pixels of 0.05 m;") and "1-2.5 m" in line
    suggested = line.split("resample it with ")[1].split()[:2]
    assert suggested == ["--pixel-size", "1.75"]
    argv = ["predict", str(fine), "--out", str(tmp_path / "c"), "--device", "cpu", *suggested]
    assert main(argv) == 0
    assert "pixels of" not in capsys.readouterr().err


def test_an_overlap_option_is_a_share_of_the_window_up_to_half():
    for share in (None, 0, 0.125, 0.5):
        check_overlap(share)
    # 0.99 of a 512 px window is a stride of 5 px: hundreds of times the work
    for share in (0.51, 0.99, -0.1):
        with pytest.raises(ConfigError, match="from 0 to 0.5 .more predicts each pixel"):
            check_overlap(share)
    for share in (True, "0.1"):
        with pytest.raises(ConfigError, match="give a share of the window, e.g. 0.125"):
            check_overlap(share)


def test_confidence_of_a_model_without_a_fitted_temperature_is_said_to_be_raw(
    tiny_model, tmp_path, capsys
):
    """A review: a checkpoint has no fitted temperature, and its confidence rasters were
    the network's own probabilities without a word."""
    from dataclasses import replace

    loaded = load_model(tiny_model)
    raw = tmp_path / "best.pt"
    spec = replace(loaded.spec, confidence_temperature=None)
    save_model(raw, loaded.net, spec, loaded.classes, loaded.meta, recipe=loaded.recipe)
    image = tmp_path / "scene.png"
    Image.fromarray(rgb_scene(40, 48).transpose(1, 2, 0)).save(image)
    for model, confidence, said in (
        (raw, ["--confidence"], True), (tiny_model, ["--confidence"], False), (raw, [], False)
    ):  # fmt: skip
        out = tmp_path / f"out-{model.stem}-{len(confidence)}"
        assert (
            main(["predict", str(image), "--model", str(model), "--out", str(out), *confidence])
            == 0
        )
        err = capsys.readouterr().err
        assert ("has no fitted confidence temperature" in err) is said, err
        if said:
            assert f"aerialseg: {raw} has no fitted" in err
