"""Test-time levers, scored on the validation images: input scales, flips, a second model.

Flip TTA gained 0.004 test mIoU-6 for 3x the compute (README). This scores what else
needs no training: averaging class probabilities over input scales (the network sees
roads and buildings larger or smaller than in training), and averaging two trained models
(by default the bundled Lite0 FPN and a Lite2 FPN run). Validation images only, so that
nothing is chosen on the test images (PROTOCOL.md). Writes bench/results/test_time.json.

    .venv/bin/python bench/test_time.py --second runs/bench-fpn-lite2-60min-DATE/model.pt
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import BUNDLED, DATA, REPO, predictor_of, scores, write_result

from aerialseg.evaluation.evaluate import evaluate
from aerialseg.inference.engine import FlipTTA
from aerialseg.models.io import load_model


def _round_to(value: float, multiple: int) -> int:
    return max(multiple, round(value / multiple) * multiple)


class ScaleTTA:
    """Averages class probabilities over input scales; returns their log, which the sliding
    window's softmax turns back into the average."""

    def __init__(self, engine, scales: tuple[float, ...]):
        self.engine, self.scales, self.stride = engine, scales, engine.stride

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        h, w = batch.shape[-2:]
        total = 0
        for s in self.scales:
            size = (_round_to(h * s, self.stride), _round_to(w * s, self.stride))
            x = batch if size == (h, w) else F.interpolate(batch, size, mode="bilinear")
            probs = self.engine(x).softmax(1)
            if size != (h, w):
                probs = F.interpolate(probs, (h, w), mode="bilinear")
            total = total + probs
        return (total / len(self.scales)).log()


class Ensemble:
    """Averages the class probabilities of several engines (log, as ScaleTTA)."""

    def __init__(self, *engines):
        self.engines = engines
        self.stride = max(e.stride for e in engines)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return torch.stack([e(batch).softmax(1) for e in self.engines]).mean(0).log()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model.pt (default: the bundled model)")
    parser.add_argument("--second", help="a second model.pt for the ensemble rows")
    parser.add_argument("--data", default=str(DATA))
    args = parser.parse_args()

    model = load_model(args.model or BUNDLED, for_inference=True)
    net = model.net
    variants = {
        "plain": net,
        "flips": FlipTTA(net),
        "scales 1, 1.25": ScaleTTA(net, (1.0, 1.25)),
        "scales 1, 1.5": ScaleTTA(net, (1.0, 1.5)),
        "scales 0.75, 1, 1.25": ScaleTTA(net, (0.75, 1.0, 1.25)),
        "scales 0.75, 1": ScaleTTA(net, (0.75, 1.0)),
    }
    if args.second:
        second = load_model(args.second, for_inference=True).net
        variants["second model alone"] = second
        variants["ensemble of both"] = Ensemble(net, second)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, engine) in enumerate(variants.items()):
            start = time.perf_counter()
            metrics = evaluate(
                predictor_of(model, engine), args.data, Path(tmp) / str(i), split_name="val"
            )
            seconds = time.perf_counter() - start
            rows[name] = {"seconds": round(seconds, 1), **scores(metrics)}
            print(f"{name}: val mIoU-6 {metrics['miou6']:.4f} in {seconds:.0f} s")
    write_result(
        "test_time",
        {
            "benchmark": "test-time scales, flips and a two-model ensemble, val split, fp32",
            "model": args.model or str(BUNDLED.relative_to(REPO)),
            "second": args.second,
            "variants": rows,
        },
    )


if __name__ == "__main__":
    main()
