"""int8 ONNX Runtime against fp32: test mIoU and speed of one model, in one run.

Issue 4 admits int8 if it costs at most 0.005 of test mIoU-6. The model is exported as
``aerialseg export`` does, then quantised with ONNX Runtime's static quantisation (QDQ,
int8 weights per output channel, uint8 activations, convolutions only: quantising the
FPN's additions broke its dynamic upsampling), calibrated on 480 px crops of training
images (``image_part_001``, ``003``, ``004`` and ``006`` of every tile; never test or
validation images). Both are scored on the 16 test images and timed as
bench/inference_speed.py times them (the faster of two runs).

    .venv/bin/python bench/int8.py --model src/aerialseg/assets/default-model.pt
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from common import DATA, predictor_of, scores, write_result
from inference_speed import best_predict, test_images
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from PIL import Image

from aerialseg.evaluation.evaluate import evaluate
from aerialseg.inference.engine import OnnxEngine
from aerialseg.models.export import export_onnx
from aerialseg.models.io import load_model

CALIBRATION_PARTS = ("001", "003", "004", "006")  # training images of every tile
CROP = 480  # px, a multiple of the network's stride


class TrainingCrops(CalibrationDataReader):
    def __init__(self, root: Path):
        paths = sorted(
            p
            for part in CALIBRATION_PARTS
            for p in root.glob(f"Tile */images/image_part_{part}.jpg")
        )
        self.count = len(paths)
        self.batches = iter(
            {"image": np.asarray(Image.open(p).convert("RGB"))[:CROP, :CROP]
             .transpose(2, 0, 1)[None].astype(np.float32)}
            for p in paths
        )  # fmt: skip

    def get_next(self) -> dict | None:
        return next(self.batches, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--name", default="int8")
    args = parser.parse_args()
    model = load_model(args.model)
    images = test_images()
    megapixels = sum(np.prod(Image.open(p).size) for p in images) / 1e6
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        fp32_path, int8_path = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        export_onnx(model, fp32_path)
        crops = TrainingCrops(DATA / "Semantic segmentation dataset")
        quantize_static(
            str(fp32_path),
            str(int8_path),
            crops,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["Conv"],
            calibrate_method=CalibrationMethod.MinMax,
        )
        for name, path in (("fp32", fp32_path), ("int8", int8_path)):
            engine = OnnxEngine(path)
            report = evaluate(predictor_of(model, engine), DATA, Path(tmp) / f"eval-{name}")
            seconds, _ = best_predict(engine, model, images, Path(tmp) / name, 2)
            results[name] = {
                **scores(report),
                "megapixels_per_s": round(megapixels / seconds, 3),
            }
    write_result(
        args.name,
        {
            "benchmark": "int8 vs fp32 ONNX Runtime: test mIoU, 16 test images' speed",
            "model": args.model,
            "calibration_images": crops.count,
            "onnxruntime": results,
            "miou6_change_int8": round(
                results["int8"]["headline"]["miou6"] - results["fp32"]["headline"]["miou6"], 4
            ),
            "speedup_int8": round(
                results["int8"]["megapixels_per_s"] / results["fp32"]["megapixels_per_s"], 2
            ),
        },
    )


if __name__ == "__main__":
    main()
