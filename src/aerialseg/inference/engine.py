"""Engines: what turns a (N, bands, h, w) float batch in 0..255 into (N, C, h, w) logits.

PyTorch (the SegmentationNet itself), ONNX Runtime, a bf16 autocast wrapper over the
PyTorch one, and a flip test-time-augmentation wrapper over any. They share the interface
the sliding window needs: call + ``stride``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from aerialseg.errors import ModelFileError, library_reason
from aerialseg.models.export import read_metadata
from aerialseg.models.io import check_model_file


class OnnxEngine:
    """An exported model on onnxruntime; spec and classes travel in the ONNX metadata."""

    def __init__(self, path: str | Path):
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise ModelFileError(
                "--engine onnx needs onnxruntime: pip install 'aerialseg[export]'"
            ) from err
        check_model_file(Path(path))
        options = ort.SessionOptions()
        options.log_severity_level = 4  # its errors are raised, and said in one line here
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # noqa: BLE001 - any load failure of a user's file
            raise ModelFileError(f"{path}: not an ONNX model ({library_reason(err)})") from None
        try:
            info = read_metadata(self.session.get_modelmeta().custom_metadata_map)
        except (KeyError, TypeError, ValueError) as err:
            raise ModelFileError(f"{path}: its aerialseg metadata is damaged ({err})") from None
        if info is None:
            raise ModelFileError(f"{path}: an ONNX model, but not one exported by aerialseg")
        self.spec, self.classes, self.stride = info
        self.input_name = self.session.get_inputs()[0].name
        self._check_network(path)

    def _check_network(self, path: str | Path) -> None:
        """Refuse metadata that the network contradicts, from one small pass (a review: a
        class table one class short loaded and predicted a class id it has no name for;
        a stride the network does not have failed in onnxruntime at the first image).
        Sides of one and two strides: a stride that is not a multiple of the network's
        leaves one of them unfit."""
        side = self.stride
        probe = torch.zeros(1, self.spec.in_channels, side, 2 * side)
        try:
            out = self(probe)
        except Exception as err:  # noqa: BLE001 - onnxruntime's errors have no common base
            raise ModelFileError(
                f"{path}: its aerialseg metadata does not fit its network (bands"
                f" {self.spec.in_channels}, stride {self.stride}: {library_reason(err)})"
            ) from None
        expected = (1, self.classes.num_classes, side, 2 * side)
        if tuple(out.shape) != expected:
            raise ModelFileError(
                f"{path}: its network gives {out.shape[1]} class score(s) of"
                f" {out.shape[2]} x {out.shape[3]} px for a {side} x {2 * side} px input;"
                f" its aerialseg metadata names {self.classes.num_classes} classes"
            )

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input_name: batch.cpu().numpy().astype(np.float32)})[0]
        return torch.from_numpy(out)


PRECISIONS = ("auto", "fp32", "bf16")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX); elsewhere oneDNN
    emulates it, slower than fp32."""
    # torch exposes these checks only as private helpers; absent ones count as no.
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def resolve_precision(precision: str, device: str | torch.device) -> str:
    """``auto`` -> ``bf16`` on a CPU that computes bf16 natively, else ``fp32``.

    On such a CPU (AMD Zen 4/5, Intel Sapphire Rapids) the default model predicted the 16
    test images 1.23x faster in bf16 (two windows a pass against fp32's one), test
    mIoU-6 0.6015 against 0.6012 (bench/results/precision.json). GPUs stay fp32 under
    ``auto``: not measured yet.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    return "bf16" if torch.device(device).type == "cpu" and cpu_has_native_bf16() else "fp32"


class Bf16Engine:
    """Runs a PyTorch engine under bf16 autocast; logits come back as float32, so the
    softmax and the blending of windows stay in full precision."""

    precision = "bf16"

    def __init__(self, engine, device: str | torch.device):
        self.engine = engine
        self.stride = engine.stride
        self.device_type = torch.device(device).type

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            return self.engine(batch).float()


def engine_precision(engine) -> str:
    """What ``engine`` computes in: ``bf16`` for a Bf16Engine (TTA-wrapped or not)."""
    return getattr(engine, "precision", "fp32")


def with_precision(net, precision: str, device: str | torch.device):
    """The engine that runs ``net`` (a PyTorch network) in ``precision`` on ``device``."""
    if resolve_precision(precision, device) == "bf16":
        return Bf16Engine(net, device)
    return net


class FlipTTA:
    """Averages logits over the identity, horizontal and vertical flips."""

    def __init__(self, engine):
        self.engine = engine
        self.stride = engine.stride
        self.precision = engine_precision(engine)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        out = self.engine(batch)
        out = out + self.engine(batch.flip(-1)).flip(-1)
        out = out + self.engine(batch.flip(-2)).flip(-2)
        return out / 3
