"""Does ``predict --confidence`` mean what it says? Pixel accuracy by confidence.

For every labelled pixel of a split, the model's confidence (its blended probability of
the class it gave, in percent, at the model's confidence temperature, as ``predict
--confidence`` writes it) is set beside whether the class was right; the same figures at
temperature 1 (the network's own probabilities) are kept beside them under ``raw``.
Reports, per confidence band, the share of pixels and their accuracy; the expected
calibration error (ECE: the pixel-weighted gap between confidence and accuracy
over ten equal bands); and the accuracy left when only the most confident pixels are kept
(selective prediction: how far a user can trust a confidence threshold). fp32, PROTOCOL.md's
labelled pixels. Writes bench/results/confidence.json.

    .venv/bin/python bench/confidence.py                  # the bundled default model
    .venv/bin/python bench/confidence.py runs/X/model.pt --name X --splits val
"""

from __future__ import annotations

import argparse

import numpy as np
from common import BUNDLED, DATA, REPO, decoded_scenes, predictor_of, write_result
from tqdm import tqdm

from aerialseg.data.source import DatasetSource
from aerialseg.data.splits import SPLIT_NAMES, make_split
from aerialseg.evaluation.calibration import ConfidenceTally
from aerialseg.models.io import load_model

BANDS = [(0, 50), (50, 70), (70, 80), (80, 90), (90, 95), (95, 101)]  # percent, [low, high)
COVERAGES = (0.5, 0.8, 0.9, 1.0)


def summarise(tally: ConfidenceTally) -> dict:
    pixels, correct = tally.pixels, tally.correct
    total = pixels.sum()
    bands = {}
    for low, high in BANDS:
        n, right = pixels[low:high].sum(), correct[low:high].sum()
        bands[f"{low}-{min(high, 100)} %"] = {
            "share_of_pixels": round(float(n / total), 4),
            "accuracy": round(float(right / n), 4) if n else None,
        }
    # the most confident pixels first: accuracy of the top share of them
    from_top_pixels, from_top_correct = np.cumsum(pixels[::-1]), np.cumsum(correct[::-1])
    selective = {}
    for coverage in COVERAGES:
        k = min(int(np.searchsorted(from_top_pixels, coverage * total)), len(pixels) - 1)
        selective[f"{coverage:.0%} most confident"] = {
            "confidence_at_least": int(100 - k),
            "share_of_pixels": round(float(from_top_pixels[k] / total), 4),
            "accuracy": round(float(from_top_correct[k] / from_top_pixels[k]), 4),
        }
    return {
        "pixels": int(total),
        "pixel_accuracy": round(float(correct.sum() / total), 4),
        "mean_confidence": round(tally.mean_confidence(), 4),
        "expected_calibration_error": round(tally.calibration_error(), 4),
        "by_confidence": bands,
        "selective": selective,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help="model.pt (default: the bundled model)")
    parser.add_argument("--name", help="suffix of the result file")
    parser.add_argument("--splits", nargs="+", choices=SPLIT_NAMES, default=["val", "test"])
    parser.add_argument("--data", default=str(DATA))
    args = parser.parse_args()

    model = load_model(args.model or BUNDLED, for_inference=True)
    cfg, classes = model.spec, model.classes
    predictor = predictor_of(model)  # fp32, as predict --precision fp32 runs it
    source = DatasetSource(args.data)
    split = make_split(source.pairs, None)
    results = {}
    temperatures = {"calibrated": cfg.confidence_temperature or 1.0, "raw": 1.0}
    for split_name in args.splits:
        tallies = {kind: ConfidenceTally() for kind in temperatures}
        ids = split.ids(split_name)
        for item in tqdm(decoded_scenes(args.data, ids, classes, cfg.max_unknown), desc=split_name):
            probs = predictor.predict_image(item.image.float(), probabilities=True).probs
            for kind, temperature in temperatures.items():
                tallies[kind].add(probs, item.mask.long(), temperature)
        results[split_name] = {
            "images": len(ids),
            **summarise(tallies["calibrated"]),
            "raw": summarise(tallies["raw"]),
        }
        print(split_name, results[split_name])
    write_result(
        f"confidence-{args.name}" if args.name else "confidence",
        {
            "benchmark": "pixel accuracy by predict --confidence, and its calibration (fp32)",
            "model": args.model or str(BUNDLED.relative_to(REPO)),
            "model_config": cfg.model,
            "confidence_temperature": temperatures["calibrated"],
            "splits": results,
        },
    )


if __name__ == "__main__":
    main()
