"""The published protocol beside ours: the same recipe scored on held-out 256 px patches of
the training images and on held-out whole images (issue 19).

The best published figures on the Dubai set (MNET mIoU 0.794, its U-Net 0.751) split 256
px patches of the same images between training and test. That split is made here with
``aerialseg data split --block-size 256 --buffer 0`` (test 0.2 of the blocks, val 0.1 of
them for model choice, the rest train), and the default recipe trained the same number
of steps on it and on the protocol's held-out-image split (PROTOCOL.md), each scored on
its own test part with ``aerialseg evaluate`` in fp32. Equal steps, not equal time, so a
busy host changes how long it takes, not what it measures.

    nice .venv/bin/python bench/patch_protocol.py --steps 600
"""

from __future__ import annotations

import argparse
import json
import time

from common import DATA, REPO, aerialseg, evaluate_run, val_curve, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600, help="training steps of each run")
    parser.add_argument("--seed", type=int, default=0, help="which block split")
    args = parser.parse_args()
    folder = REPO / "runs" / f"bench-patch-protocol-{time.strftime('%Y%m%d-%H%M%S')}"
    folder.mkdir(parents=True)
    blocks = folder / "blocks.json"
    shares = ["--val", "0.1", "--test", "0.2", "--seed", str(args.seed)]
    aerialseg(["data", "split", str(DATA), "--out", str(blocks), "--block-size", "256",
               "--buffer", "0", *shares])  # fmt: skip
    split = json.loads(blocks.read_text())["blocks"]
    results = {}
    for name, split_args in (("patches", ["--split", str(blocks)]), ("held_out_images", [])):
        run = folder / name
        seconds = aerialseg(["train", "--data", str(DATA), "--out", str(run), *split_args,
                             f"max_steps={args.steps}", "max_epochs=1000"])  # fmt: skip
        scored = evaluate_run(run, str(DATA), "test", blocks if name == "patches" else None)
        results[name] = {
            "train_seconds": round(seconds),
            "test": scored,
            "val_curve": val_curve(run),
        }
        print(name, scored["headline"], flush=True)
    write_result(
        "patch_protocol",
        {
            "benchmark": "default recipe on held-out 256 px patches (the published protocol)"
            " against held-out whole images (PROTOCOL.md), same steps",
            "steps": args.steps,
            "block_split": {
                "command": f"aerialseg data split DATA --block-size 256 --buffer 0 --val 0.1"
                f" --test 0.2 --seed {args.seed}",
                "blocks": {k: len(v) for k, v in split.items()},
            },
            "published": {"MNET miou": 0.794, "U-Net miou": 0.751},
            "results": results,
            "miou6_gap_patches_minus_images": round(
                results["patches"]["test"]["headline"]["miou6"]
                - results["held_out_images"]["test"]["headline"]["miou6"],
                4,
            ),
        },
    )


if __name__ == "__main__":
    main()
