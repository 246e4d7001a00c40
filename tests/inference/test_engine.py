"""Engines: bf16 autocast and the choice of precision."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from aerialseg.cli import main
from aerialseg.inference.engine import (
    Bf16Engine,
    cpu_has_native_bf16,
    resolve_precision,
    with_precision,
)
from aerialseg.models.network import SegmentationNet
from tests.helpers.models import BatchRecorder
from tests.helpers.paths import REAL_DATA, requires_real_data

# bf16 keeps 8 significant bits: 1 + 2^-10 is 1 there, not in fp32.
JUST_ABOVE_ONE = 1 + 2**-10


def scaling_net(factor: float) -> SegmentationNet:
    """A 1x1 convolution multiplying channel 0 by ``factor``; input passes unnormalised."""
    conv = nn.Conv2d(3, 2, 1, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0] = factor
    return SegmentationNet(conv, [0.0] * 3, [1.0] * 3, 1).eval()


def test_bf16_engine_computes_in_bf16_and_returns_float32():
    net = scaling_net(JUST_ABOVE_ONE)
    x = torch.ones(1, 3, 4, 4)
    with torch.inference_mode():
        full = net(x)
        reduced = Bf16Engine(net, "cpu")(x)
    assert full[0, 0, 0, 0].item() == JUST_ABOVE_ONE
    assert reduced.dtype == torch.float32
    assert reduced[0, 0, 0, 0].item() == 1.0
    assert Bf16Engine(net, "cpu").stride == net.stride


def test_with_precision_wraps_only_for_bf16():
    net = scaling_net(2.0)
    assert with_precision(net, "fp32", "cpu") is net
    assert isinstance(with_precision(net, "bf16", "cpu"), Bf16Engine)


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_bf16_only_on_a_cpu_that_computes_it_natively(monkeypatch, native):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert cpu_has_native_bf16() is native
    assert resolve_precision("auto", "cpu") == ("bf16" if native else "fp32")
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    # GPUs are not measured yet: auto keeps them in fp32.
    assert resolve_precision("auto", "cuda") == "fp32"
    with pytest.raises(ValueError, match="fp16"):
        resolve_precision("fp16", "cpu")


def test_onnx_engine_refuses_bf16(tiny_model, tmp_path, capsys):
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(image)
    args = ["predict", str(image), "--model", str(tiny_model), "--out", str(tmp_path / "o")]
    assert main([*args, "--engine", "onnx", "--precision", "bf16"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--engine torch" in err
    assert not (tmp_path / "o").exists()


@requires_real_data()
def test_bf16_predicts_a_real_image_as_fp32_does(tmp_path):
    """The bundled model on a held-out image: bf16 changes almost no class."""
    image = REAL_DATA / "Semantic segmentation dataset" / "Tile 2" / "images" / "image_part_002.jpg"
    maps = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        assert main(["predict", str(image), "--out", str(out), "--precision", precision]) == 0
        maps[precision] = np.asarray(Image.open(out / "image_part_002_classes.png"))
    width, height = Image.open(image).size
    assert maps["fp32"].shape == maps["bf16"].shape == (height, width)
    agree = (maps["fp32"] == maps["bf16"]).mean()
    assert agree > 0.99


@pytest.mark.parametrize("precision, batch", [("fp32", 1), ("bf16", 2)])
def test_cpu_predicts_two_windows_a_pass_in_bf16_one_in_fp32(tmp_path, precision, batch):
    from aerialseg.data.classes import DUBAI_CLASSES
    from aerialseg.inference.engine import FlipTTA, engine_precision
    from aerialseg.inference.predict import Predictor
    from aerialseg.inference.run import PredictOptions, predict_files
    from aerialseg.training.config import resolve_config

    image = tmp_path / "wide.png"
    Image.fromarray(np.full((64, 256, 3), 90, np.uint8)).save(image)
    cfg = resolve_config("default", None, ["window=64", "overlap=0"])  # 4 windows in a row
    net = BatchRecorder()
    engine = with_precision(net, precision, "cpu")
    assert engine_precision(FlipTTA(engine)) == precision
    predictor = Predictor(engine, cfg.spec, DUBAI_CLASSES)
    summary = predict_files(predictor, [image], tmp_path / "o", PredictOptions())
    assert summary.done and net.batches == [batch] * (4 // batch)
