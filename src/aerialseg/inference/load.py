"""``load_predictor``: the one way from a model the user names to a ``Predictor``.

A model file, a Lightning checkpoint or an exported ``.onnx``, or the bundled model; run
on PyTorch (batch norms folded into the convolutions, bf16 where asked) or on ONNX Runtime
(a ``.pt`` is exported for the run first). ``predict``, ``evaluate``, ``serve``, the Ray
workers and ``aerialseg.load_model`` all load here.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import torch

from aerialseg.errors import AerialsegError
from aerialseg.inference.engine import OnnxEngine, with_precision
from aerialseg.inference.predict import Predictor, check_batch_size
from aerialseg.models.io import is_onnx_file, load_model, model_path


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` where a CUDA GPU is available, else ``cpu``.

    Raises:
        AerialsegError: ``cuda`` was asked for on a machine without a CUDA GPU.
    """
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise AerialsegError("--device cuda: no CUDA GPU is available here; use --device cpu")
    return name


def exported_engine(path: Path) -> OnnxEngine:
    """An ONNX Runtime engine over the model file ``path``, exported and checked in a
    temporary folder: what ``predict --engine onnx`` runs on a .pt file. The export costs
    a few seconds per run; ``aerialseg export`` keeps it for reuse."""
    from aerialseg.models.export import export_onnx

    with tempfile.TemporaryDirectory(prefix="aerialseg-onnx-") as tmp:
        onnx = Path(tmp) / "model.onnx"
        export_onnx(load_model(path), onnx)  # ONNX Runtime folds batch norms itself
        return OnnxEngine(onnx)  # the session holds the graph; the file may go


def load_predictor(
    model: str | os.PathLike | None = None,
    *,
    engine: str = "torch",
    device: str = "auto",
    precision: str = "auto",
    tta: bool = False,
    batch_size: int | None = None,
) -> Predictor:
    """A predictor over ``model``: a model file, ``.ckpt`` or ``.onnx``; None or
    ``"default"``: the bundled model.

    Args:
        engine: ``onnx`` runs ONNX Runtime on the CPU (an ``.onnx`` file always does).
        device: ``auto`` picks a CUDA GPU where there is one (the CPU for ONNX Runtime).
        precision: ``auto`` runs bf16 on CPUs that compute it natively, else fp32.
        tta: average over flips (3x the compute).
        batch_size: windows per forward pass; None: ``default_batch_size``.

    Raises:
        ModelFileError: the file is not an aerialseg model.
        AerialsegError: an engine, device and precision that do not go together.
    """
    check_batch_size(batch_size)  # before the model is loaded
    path = model_path(model)
    if engine == "onnx" or is_onnx_file(path):
        if device not in ("auto", "cpu"):
            raise AerialsegError("--engine onnx runs on the CPU; use --device cpu")
        if precision == "bf16":
            raise AerialsegError("--precision bf16 runs on PyTorch; use --engine torch")
        if is_onnx_file(path):
            onnx = OnnxEngine(path)
        else:
            print(f"exporting {path.name} to ONNX for this run", file=sys.stderr)
            onnx = exported_engine(path)
        predictor = Predictor(onnx, onnx.spec, onnx.classes, "cpu", batch_size, {}, path)
    else:
        where = resolve_device(device)
        loaded = load_model(path, device=where, for_inference=True)
        run = with_precision(loaded.net, precision, where)
        predictor = Predictor(
            run, loaded.spec, loaded.classes, where, batch_size, loaded.meta, path
        )
    return predictor.with_options(tta=tta)
