"""Score one model on its training, validation and test images: how well it fits, how far
it generalises.

A model that scores much higher on the images it trained on than on held-out ones is short
of data (or of regularisation); one that scores low on its own training images is short
of capacity, compute or clean labels. Writes bench/results/fit_gap[-NAME].json.

    .venv/bin/python bench/fit_gap.py                      # the bundled default model
    .venv/bin/python bench/fit_gap.py runs/X/model.pt --name X
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import BUNDLED, DATA, REPO, predictor_of, scores, write_result

from aerialseg.data.splits import SPLIT_NAMES
from aerialseg.evaluation.evaluate import evaluate
from aerialseg.models.io import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help="model.pt (default: the bundled model)")
    parser.add_argument("--name", help="suffix of the result file")
    parser.add_argument("--data", default=str(DATA))
    args = parser.parse_args()

    model = load_model(args.model or BUNDLED)
    predictor = predictor_of(model)  # fp32
    splits = {}
    with tempfile.TemporaryDirectory() as tmp:
        for split in SPLIT_NAMES:
            metrics = evaluate(predictor, args.data, Path(tmp) / split, split_name=split)
            splits[split] = {
                "images": len(metrics["images"]),
                **scores(metrics),
                "per_image": metrics["per_image"],
            }
            print(f"{split}: mIoU-6 {metrics['miou6']:.4f}")
    write_result(
        f"fit_gap-{args.name}" if args.name else "fit_gap",
        {
            "benchmark": "one model scored on its training, validation and test images (fp32)",
            "model": args.model or str(BUNDLED.relative_to(REPO)),
            "model_config": model.spec.model,
            "splits": splits,
        },
    )


if __name__ == "__main__":
    main()
