"""Prediction window and overlap: speed on the test images, quality on the validation images.

The record behind a model's default ``window`` / ``overlap``. For each pair, with the
model given: megapixels/s of ``aerialseg predict`` over the 16 test images (JPEG read and
mask write included) on PyTorch and on ONNX Runtime, and mIoU-6 on the validation split
(never the test split: the choice must not be tuned on the figures it is judged by).

    .venv/bin/python bench/windows.py --model src/aerialseg/assets/default-model.pt
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from common import DATA, predictor_of, with_windows, write_result
from inference_speed import test_images, timed_predict
from PIL import Image

from aerialseg.evaluation.evaluate import evaluate
from aerialseg.inference.engine import OnnxEngine
from aerialseg.models.export import export_onnx
from aerialseg.models.io import load_model

# (window px, overlap share): 128, 64 and 32 px of overlap on 512 px windows, 64 px on
# larger ones
PAIRS = [(512, 0.25), (512, 0.125), (512, 0.0625), (768, 0.0833), (1024, 0.0625)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--name", default="windows")
    args = parser.parse_args()
    model = load_model(args.model, for_inference=True)  # as `aerialseg predict` runs it
    images = test_images()
    megapixels = float(sum(np.prod(Image.open(p).size) for p in images)) / 1e6
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for window, overlap in PAIRS:
            model.spec = with_windows(model.spec, window, overlap)
            torch_s = timed_predict(model.net, model, images, tmp / f"torch-{window}-{overlap}")
            export_onnx(model, tmp / "model.onnx")  # the window travels in the ONNX metadata
            onnx_s = timed_predict(
                OnnxEngine(tmp / "model.onnx"), model, images, tmp / f"ort-{window}-{overlap}"
            )
            val = evaluate(
                predictor_of(model),  # fp32
                args.data,
                tmp / f"val-{window}-{overlap}",
                split_name="val",
            )
            rows.append(
                {
                    "window": window,
                    "overlap": overlap,
                    "megapixels_per_s": round(megapixels / torch_s, 3),
                    "megapixels_per_s_onnxruntime": round(megapixels / onnx_s, 3),
                    "val_miou6": round(val["miou6"], 4),
                }
            )
            print(rows[-1], flush=True)
    write_result(
        args.name,
        {
            "benchmark": "window and overlap: predict speed (test images), val mIoU-6",
            "model": args.model,
            "architecture": model.spec.model,
            "megapixels": round(megapixels, 2),
            "pairs": rows,
        },
    )


if __name__ == "__main__":
    main()
