"""Compare training recipes on the validation images only, at a fixed number of steps.

Choosing a recipe is tuning, which PROTOCOL.md forbids on the test images: each recipe
trains for the same number of optimiser steps (the cosine schedule spans them, so every
run anneals fully) and is scored on the validation split (``image_part_005`` of every tile)
with ``aerialseg evaluate``. Writes bench/results/recipe-NAME.json per recipe, what did
not help included.

    .venv/bin/python bench/recipes.py --steps 600 lite0 lite0-ds2
    .venv/bin/python bench/recipes.py --steps 1500 --tag 1500steps lite0-crop384
    .venv/bin/python bench/recipes.py --steps 500 --seed 1 --tag seed1 lite0  # run spread
"""

from __future__ import annotations

import argparse
import time

from common import DATA, REPO, aerialseg, evaluate_run, val_curve, write_result

# name -> config overrides on the default preset
LITE0 = ["model=fpn-effnet-lite0"]
LITE2 = ["model=fpn-effnet-lite2"]
HALF = ["downsample=2", "crop_size=512", "window=1024"]  # half resolution, same windows
RECIPES: dict[str, list[str]] = {
    "lite0": LITE0,
    "lite0-ds2": [*LITE0, *HALF],
    "lite2": LITE2,
    "lite2-ds2": [*LITE2, *HALF],
    "lite2-ds2-scale": [*LITE2, *HALF, "scale_range=[0.67,1.5]"],
    "lite2-ds2-lovasz": [*LITE2, *HALF, "dice_weight=0", "lovasz_weight=1"],
    "lite0-ds2-scale": [*LITE0, *HALF, "scale_range=[0.67,1.5]"],
    "lite0-ds2-lovasz": [*LITE0, *HALF, "dice_weight=0", "lovasz_weight=1"],
    "unet-lite2-ds2": ["model=unet-effnet-lite2", *HALF],
    # the U-Net answers at its input's resolution, so at half resolution its scores sit on
    # 1/2 of the native grid (the half-resolution FPN's on 1/8), for a quarter of the
    # native U-Net's compute
    "unet-lite0-ds2": ["model=unet-effnet-lite0", *HALF],
    "unet-lite2-ds2-slim": ["model=unet-effnet-lite2", *HALF, "decoder_channels=[128,64,32,16,8]"],
    "lite0-lovasz": [*LITE0, "dice_weight=0", "lovasz_weight=1"],
    "lite0-scale": [*LITE0, "scale_range=[0.67,1.5]"],
    # Unlabeled (0.5 % of pixels, a sixth of mIoU-6) weighted up in the cross-entropy
    "lite0-unlabeled5": [*LITE0, "class_weights=[1,1,1,1,1,5]"],
    "lite0-enc-lr0.2": [*LITE0, "encoder_lr_factor=0.2"],
    # more context per crop: 2.25x the pixels of a 256 px crop per sample
    "lite0-crop384": [*LITE0, "crop_size=384"],
    # stronger colour jitter (factors 0.6-1.4, not 0.8-1.2): the tiles differ in colour
    "lite0-jitter0.4": [*LITE0, "color_jitter=0.4"],
    # stochastic depth in the encoder: a regulariser, the model fits its own images far
    # better than new ones (fit_gap.json)
    "lite0-droppath0.2": [*LITE0, "drop_path=0.2"],
    # outlines in the masks are uncertain by a few px and the model errs on nearly half of
    # the pixels beside them, on its training images too (error_sources.json): leave
    # them out of the loss
    "lite0-bignore1": [*LITE0, "boundary_ignore=1"],
    "lite0-bignore2": [*LITE0, "boundary_ignore=2"],
    # regularisers against the gap between the model's own images and new ones
    # (fit_gap.json): CutMix boxes from other crops, and softened cross-entropy targets
    "lite0-cutmix0.5": [*LITE0, "cutmix=0.5"],
    "lite0-cutmix1": [*LITE0, "cutmix=1"],
    "lite0-ls0.1": [*LITE0, "label_smoothing=0.1"],
    # the optimiser's own settings, never swept before: AdamW at lr 1e-3 and weight decay
    # 1e-4 were taken over from the first runs
    "lite0-lr2e-3": [*LITE0, "lr=2e-3"],
    "lite0-lr5e-4": [*LITE0, "lr=5e-4"],
    "lite0-wd0.05": [*LITE0, "weight_decay=0.05"],
    "lite0-lr4e-3": [*LITE0, "lr=4e-3"],
    # a lighter decoder (pyramid 64, head 32, not 128 and 64): half the decoder's cost, for
    # hosts where the default misses 2 MP/s
    "lite0-fpn64": [*LITE0, "decoder_channels=[64,32]"],
    # focal loss in place of the cross-entropy, a lever the issue names for small classes
    "lite0-focal2": [*LITE0, "focal_gamma=2"],
    # crops cut around a pixel of a class drawn uniformly (nnU-Net's oversampling), so
    # Unlabeled and Vegetation are seen as often as Land: half of the crops, or all
    "lite0-balanced0.5": [*LITE0, "class_balanced=0.5"],
    "lite0-balanced1": [*LITE0, "class_balanced=1"],
    # the Dice term's weight in the loss (default 1), never varied: none, or twice
    "lite0-dice0": [*LITE0, "dice_weight=0"],
    "lite0-dice2": [*LITE0, "dice_weight=2"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", choices=sorted(RECIPES))
    parser.add_argument("--steps", type=int, default=600, help="optimiser steps per recipe")
    parser.add_argument(
        "--val-every", type=int, default=1, help="epochs between validations (they cost time)"
    )
    parser.add_argument(
        "--tag", help="appended to the result name (recipe-NAME-TAG), e.g. for other --steps"
    )
    parser.add_argument(
        "--seed", type=int, help="training seed (default: the preset's); runs differ by it"
    )
    parser.add_argument("--data", default=str(DATA))
    args = parser.parse_args()
    for name in args.names:
        run_dir = REPO / "runs" / f"recipe-{name}-{time.strftime('%Y%m%d-%H%M%S')}"
        overrides = [*RECIPES[name], f"max_steps={args.steps}", f"val_every={args.val_every}"]
        overrides += [f"seed={args.seed}"] if args.seed is not None else []
        train_s = aerialseg(["train", "--data", args.data, "--out", str(run_dir), *overrides])
        metrics = evaluate_run(run_dir, args.data, "val")
        write_result(
            f"recipe-{name}-{args.tag}" if args.tag else f"recipe-{name}",
            {
                "benchmark": "training recipe, scored on the validation split only",
                "recipe": name,
                "overrides": overrides,
                "steps": args.steps,
                "train_seconds": round(train_s, 1),
                "val_curve": val_curve(run_dir),
                "val": metrics["headline"],
                "val_per_class_iou": metrics["per_class_iou"],
            },
        )


if __name__ == "__main__":
    main()
