"""Fine-tuning on a new region: from the bundled model against from ImageNet weights, with
4 and 16 training images, each for the same wall-clock budget (issue 19).

The Dubai tiles stand for regions. Test: the protocol's two test images of one tile
(``--test-tile``), which no run trains on. Training and validation images are drawn, by
seed, from the other tiles' training images (PROTOCOL.md's train split): 4 or 16 to train
on, 2 more to choose the checkpoint. Each run is ``aerialseg train --max-time BUDGET``
(loading, validation and calibration inside the budget) with ``init_from`` the bundled
model or the default ImageNet encoder, then ``aerialseg evaluate`` in fp32 on the test
images.

Caveat: the bundled model was trained on the protocol's training images of every tile,
the test tile's included, so the region is new to the ImageNet runs only; its test images
are new to all.

    nice .venv/bin/python bench/transfer.py --budget 00:10:00
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time

from common import BUNDLED, DATA, REPO, aerialseg, evaluate_run, write_result

from aerialseg.data.source import DatasetSource
from aerialseg.data.splits import rule_split


def draw(ids: list[str], seed: int) -> list[str]:
    return sorted(ids, key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="00:10:00", help="wall clock of each run")
    parser.add_argument("--test-tile", default="Tile 3")
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pairs = DatasetSource(DATA).pairs
    protocol = rule_split(pairs)
    test = [i for i in protocol.test if i.startswith(args.test_tile + "/")]
    others = draw([i for i in protocol.train if not i.startswith(args.test_tile + "/")], args.seed)
    val = others[:2]
    folder = REPO / "runs" / f"bench-transfer-{time.strftime('%Y%m%d-%H%M%S')}"
    folder.mkdir(parents=True)
    results: dict = {}
    for size in args.sizes:
        train = others[2 : 2 + size]
        split = folder / f"split-{size}.json"
        split.write_text(json.dumps({"train": train, "val": val, "test": test}, indent=2))
        for start, settings in (
            ("bundled", [f"init_from={BUNDLED}"]),
            ("imagenet", []),
        ):
            run = folder / f"{start}-{size}"
            seconds = aerialseg(["train", "--data", str(DATA), "--split", str(split),
                                 "--out", str(run), "--max-time", args.budget,
                                 *settings])  # fmt: skip
            scored = evaluate_run(run, str(DATA), "test", split)
            results[f"{start}, {size} images"] = {"seconds": round(seconds), **scored}
            print(start, size, scored["headline"], flush=True)
    zero_shot = folder / "bundled-as-is"
    aerialseg(["evaluate", str(BUNDLED), "--data", str(DATA), "--split-file",
               str(folder / f"split-{args.sizes[0]}.json"), "--out", str(zero_shot),
               "--precision", "fp32"])  # fmt: skip
    results["bundled, not fine-tuned"] = json.loads((zero_shot / "metrics.json").read_text())
    results["bundled, not fine-tuned"] = {
        k: results["bundled, not fine-tuned"][k] for k in ("miou6", "miou5", "pixel_accuracy")
    }
    write_result(
        "transfer",
        {
            "benchmark": "fine-tuning on a held-out region: from the bundled model against"
            " from ImageNet, same wall-clock budget",
            "budget": args.budget,
            "test_tile": args.test_tile,
            "test_images": test,
            "val_images": val,
            "train_images": {size: others[2 : 2 + size] for size in args.sizes},
            "caveat": "the bundled model was trained on the protocol's training images of"
            " every tile, the test tile's included",
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
