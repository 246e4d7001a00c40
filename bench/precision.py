"""bf16 against fp32 prediction: speed and test mIoU of one model, in one run.

Issue 4 admits a faster reduced-precision path if it costs at most 0.005 of test mIoU-6.
For each precision and CPU batch size (windows per forward pass) this times
``predict_files`` over the 16 protocol test images (JPEG read and mask write included, as
bench/inference_speed.py), and scores ``aerialseg evaluate`` on them per precision. bf16
is fast only on a CPU that computes it natively (AVX512-BF16 or AMX); the result records
whether this one does.

    .venv/bin/python bench/precision.py --model src/aerialseg/assets/default-model.pt
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from common import DATA, predictor_of, scores, write_result
from inference_speed import EngineClock, test_images, timed_predict
from PIL import Image

from aerialseg.evaluation.evaluate import evaluate
from aerialseg.inference.engine import cpu_has_native_bf16, with_precision
from aerialseg.inference.predict import default_batch_size
from aerialseg.models.io import load_model

PRECISIONS = ("fp32", "bf16")
BATCH_SIZES = (1, 2, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument(
        "--repeats", type=int, default=2, help="timed runs per precision and batch size"
    )
    parser.add_argument("--name", default="precision")
    args = parser.parse_args()
    model = load_model(args.model, for_inference=True)  # as `aerialseg predict` runs it
    images = test_images()
    megapixels = sum(np.prod(Image.open(p).size) for p in images) / 1e6
    runs = [(p, b) for p in PRECISIONS for b in BATCH_SIZES]
    timings: dict[str, list[float]] = {f"{p}, batch {b}": [] for p, b in runs}
    network: dict[str, list[float]] = {f"{p}, batch {b}": [] for p, b in runs}
    with tempfile.TemporaryDirectory() as tmp:
        # Alternated, so that a slow spell of this shared machine hits all alike.
        for i in range(args.repeats):
            for precision, batch in runs:
                key = f"{precision}, batch {batch}"
                clock = EngineClock(with_precision(model.net, precision, "cpu"))
                out = Path(tmp) / f"{precision}-{batch}-{i}"
                timings[key].append(timed_predict(clock, model, images, out, batch))
                network[key].append(clock.seconds)
        quality = {
            p: scores(evaluate(predictor_of(model, precision=p), DATA, Path(tmp) / f"eval-{p}"))
            for p in PRECISIONS
        }
    best = {p: min(t) for p, t in timings.items()}
    default = {p: f"{p}, batch {default_batch_size('cpu', p)}" for p in PRECISIONS}
    write_result(
        args.name,
        {
            "benchmark": "bf16 vs fp32 prediction: 16 test images, read and write included",
            "model": args.model,
            "architecture": model.spec.model,
            "native_bf16": cpu_has_native_bf16(),
            "megapixels": round(megapixels, 2),
            "seconds": {p: [round(s, 2) for s in t] for p, t in timings.items()},
            "network_seconds": {p: [round(s, 2) for s in t] for p, t in network.items()},
            "megapixels_per_s": {p: round(megapixels / s, 3) for p, s in best.items()},
            "predict_default_batch_cpu": {p: default_batch_size("cpu", p) for p in PRECISIONS},
            # each precision at the batch size predict gives it on a CPU
            "speedup_bf16": round(best[default["fp32"]] / best[default["bf16"]], 2),
            "test": {p: q["headline"] for p, q in quality.items()},
            "per_class_iou": {p: q["per_class_iou"] for p, q in quality.items()},
            "miou6_change_bf16": round(
                quality["bf16"]["headline"]["miou6"] - quality["fp32"]["headline"]["miou6"], 4
            ),
        },
    )


if __name__ == "__main__":
    main()
