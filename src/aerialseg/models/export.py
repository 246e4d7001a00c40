"""Export a model to ONNX (dynamic batch, height and width) and check it against PyTorch.

Uses the TorchScript-based exporter (``dynamo=False``): with torch 2.14 the torch.export
based one died during decompositions on this U-Net, while the TorchScript one exports it
with dynamic height and width and matches PyTorch to ~3e-4 in logits.

The model's spec and classes travel in the ONNX metadata (``METADATA_KEY``), read back by
``read_metadata``; inference/engine.py's OnnxEngine runs the file.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch

from aerialseg.data.classes import ClassTable
from aerialseg.errors import AerialsegError
from aerialseg.files import sweep
from aerialseg.models.io import LoadedModel, atomic_write
from aerialseg.models.spec import ModelSpec

OPSET = 17
TOLERANCE = 1e-3  # max abs difference of class probabilities, ONNX Runtime vs PyTorch
METADATA_KEY = "aerialseg"


def sample_image(size: int = 256, seed: int = 0, bands: int = 3) -> np.ndarray:
    """A deterministic stand-in check image, used when no real one is given."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(size // 32, size // 32, bands)).astype(np.uint8)
    return np.kron(base, np.ones((32, 32, 1), dtype=np.uint8))


def _onnx_export(model: LoadedModel, tmp: str) -> None:
    import onnx

    net = model.net.cpu().eval()
    dummy = torch.zeros(1, net.in_channels, 2 * net.stride, 2 * net.stride)
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        # The FPN head's GroupNorm checks in Python that it normalises more than one value;
        # the tracer warns that the check is frozen, which is harmless for any input size.
        warnings.filterwarnings(
            "ignore", "Converting a tensor to a Python boolean", torch.jit.TracerWarning
        )
        torch.onnx.export(
            net,
            (dummy,),
            tmp,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": axes, "logits": axes},
            opset_version=OPSET,
            dynamo=False,
        )
    proto = onnx.load(tmp)
    info = {
        "spec": model.spec.to_dict(),
        "config": model.recipe,  # to explain the model; never read back
        "classes": model.classes.to_dict(),
        "stride": net.stride,
        "input": (
            f"float32 NCHW, {net.in_channels} bands (spec bands; null: RGB) in 0..255;"
            " H, W multiples of stride"
        ),
    }
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(info)
    onnx.save(proto, tmp)


def read_metadata(meta: dict[str, str]) -> tuple[ModelSpec, ClassTable, int] | None:
    """(spec, classes, stride) from an ONNX model's custom metadata; None where aerialseg
    did not export it. Files exported before the spec existed hold the training config.

    Raises:
        ValueError, KeyError: the metadata is damaged.
    """
    if METADATA_KEY not in meta:
        return None
    try:
        info = json.loads(meta[METADATA_KEY])
    except RecursionError:  # JSON nested deeper than Python's stack
        raise ValueError("nested too deeply") from None
    if not isinstance(info, dict):
        raise ValueError(f"{type(info).__name__}, not a mapping")
    spec = ModelSpec.from_dict(info.get("spec") or info["config"])
    stride = info["stride"]  # what the network's input sides must be multiples of
    if isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride <= spec.window:
        raise ValueError(f"stride={stride!r} is not a whole number of pixels up to the window")
    return spec, ClassTable.from_dict(info["classes"]), stride


def _onnx_logits(path: str, x: torch.Tensor) -> torch.Tensor:
    """``x`` through the ONNX model at ``path`` on ONNX Runtime's CPU."""
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"image": x.numpy().astype(np.float32)})[0])


def export_onnx(
    model: LoadedModel, path: str | Path, check_image: np.ndarray | None = None
) -> float:
    """Write ``path`` and return the max abs probability difference on the check image;
    raises (and leaves no file) if it exceeds TOLERANCE."""
    path = Path(path)
    image = check_image if check_image is not None else sample_image(bands=model.net.in_channels)
    stride = model.net.stride
    # a whole number of strides, at least one: an image smaller than that is padded
    grow = [(0, max(0, stride - side)) for side in image.shape[:2]]
    image = np.pad(image, [*grow, (0, 0)], mode="edge")
    h, w = (side // stride * stride for side in image.shape[:2])
    x = torch.from_numpy(np.ascontiguousarray(image[:h, :w])).permute(2, 0, 1)[None].float()

    result: dict[str, float] = {}

    def write_checked(tmp: str) -> None:
        _onnx_export(model, tmp)
        with torch.no_grad():
            expected = model.net.cpu()(x).softmax(1)
        got = _onnx_logits(tmp, x).softmax(1)
        diff = float((expected - got).abs().max())
        result["diff"] = diff
        if not diff <= TOLERANCE:  # NaN too
            raise AerialsegError(
                f"the ONNX export differs from PyTorch by {diff:.2e} (more than {TOLERANCE:g})"
                " on the check image: not kept"
            )

    if path.parent.is_dir():  # what an export killed here left (its .tmp file)
        sweep(path.parent)
    atomic_write(path, write_checked)
    return result["diff"]
