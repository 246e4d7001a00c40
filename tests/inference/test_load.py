"""load_predictor: from a model the user names to a Predictor, on each engine and device."""

from __future__ import annotations

import pytest
import torch

import aerialseg.inference.load as load
from aerialseg.errors import AerialsegError, ConfigError
from aerialseg.inference.engine import FlipTTA, OnnxEngine, resolve_precision
from aerialseg.inference.load import load_predictor, resolve_device
from aerialseg.models.export import export_onnx
from aerialseg.models.io import load_model


@pytest.mark.parametrize("gpu", [True, False])
def test_devices_resolve_to_a_gpu_only_where_there_is_one(monkeypatch, gpu):
    monkeypatch.setattr(load.torch.cuda, "is_available", lambda: gpu)
    assert resolve_device("auto") == ("cuda" if gpu else "cpu")
    assert resolve_device("cpu") == "cpu"
    if gpu:
        assert resolve_device("cuda") == "cuda"
    else:
        with pytest.raises(AerialsegError) as err:
            resolve_device("cuda")
        assert str(err.value) == "--device cuda: no CUDA GPU is available here; use --device cpu"


def test_a_model_file_loads_folded_on_the_cpu_with_its_options(tiny_model):
    predictor = load_predictor(tiny_model)  # every default
    assert predictor.device == "cpu" and predictor.path == tiny_model
    assert predictor.precision == resolve_precision("auto", "cpu")
    assert not predictor.tta and predictor.batch_size is None
    assert predictor.meta == load_model(tiny_model).meta
    net = predictor.engine if predictor.precision == "fp32" else predictor.engine.engine
    assert isinstance(net, torch.nn.Module) and not net.training
    norms = (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)
    assert not any(isinstance(m, norms) for m in net.modules())  # folded into convolutions
    chosen = load_predictor(tiny_model, precision="fp32", tta=True, batch_size=3)
    assert isinstance(chosen.engine, FlipTTA) and chosen.tta and chosen.batch_size == 3
    assert chosen.precision == "fp32"


def test_an_onnx_file_runs_on_the_cpu_with_its_options(tiny_model, tmp_path):
    onnx = tmp_path / "tiny.onnx"
    export_onnx(load_model(tiny_model), onnx)
    predictor = load_predictor(onnx, batch_size=2)
    assert isinstance(predictor.engine, OnnxEngine) and predictor.device == "cpu"
    assert (predictor.batch_size, predictor.meta, predictor.path) == (2, {}, onnx)
    assert load_predictor(onnx, tta=True).tta
    for kwargs, message in (
        ({"device": "cuda"}, "--engine onnx runs on the CPU; use --device cpu"),
        ({"precision": "bf16"}, "--precision bf16 runs on PyTorch; use --engine torch"),
    ):
        for model, engine in ((onnx, "torch"), (tiny_model, "onnx")):
            with pytest.raises(AerialsegError) as err:
                load_predictor(model, engine=engine, **kwargs)
            assert str(err.value) == message
    # a review: an export named in capitals was written, then refused as no PyTorch file
    shouted = tmp_path / "TINY.ONNX"
    shouted.write_bytes(onnx.read_bytes())
    assert isinstance(load_predictor(shouted).engine, OnnxEngine)


@pytest.mark.parametrize("batch", [0, -2, 2.5, True])
def test_a_batch_size_is_checked_before_the_model_loads(batch, tmp_path):
    """A review: suggest took batch_size=0 without a word."""
    with pytest.raises(ConfigError, match="give a whole number of windows from 1"):
        load_predictor(tmp_path / "no such model.pt", batch_size=batch)
