"""Engines: what turns a (N, 3, h, w) float batch in 0..255 into (N, C, h, w) logits.

PyTorch (the SegmentationNet itself), ONNX Runtime, and a flip test-time-augmentation
wrapper over either. They share the interface the sliding window needs: call + ``stride``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from aerialseg.data.classes import ClassTable
from aerialseg.errors import ModelFileError
from aerialseg.models.export import METADATA_KEY as ONNX_METADATA_KEY
from aerialseg.training.config import TrainConfig


class OnnxEngine:
    """An exported model on onnxruntime; config and classes travel in the ONNX metadata."""

    def __init__(self, path: str | Path, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise ModelFileError(
                "--engine onnx needs onnxruntime: pip install 'aerialseg[export]'"
            ) from err
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # noqa: BLE001 - any load failure of a user's file
            raise ModelFileError(f"{path}: not an ONNX model ({str(err)[:120]})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if ONNX_METADATA_KEY not in meta:
            raise ModelFileError(f"{path}: an ONNX model, but not one exported by aerialseg")
        info = json.loads(meta[ONNX_METADATA_KEY])
        self.config = TrainConfig.from_dict(info["config"])
        self.classes = ClassTable.from_dict(info["classes"])
        self.stride = int(info["stride"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input_name: batch.cpu().numpy().astype(np.float32)})[0]
        return torch.from_numpy(out)


class FlipTTA:
    """Averages logits over the identity, horizontal and vertical flips."""

    def __init__(self, engine):
        self.engine = engine
        self.stride = engine.stride

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        out = self.engine(batch)
        out = out + self.engine(batch.flip(-1)).flip(-1)
        out = out + self.engine(batch.flip(-2)).flip(-2)
        return out / 3
