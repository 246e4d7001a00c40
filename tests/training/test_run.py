"""The real CLI, a few steps on a tiny dataset: train -> evaluate -> reload, resume, DDP."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
import shlex
import subprocess
import sys
import time
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import rasterio
import torch
import yaml
from PIL import Image

from aerialseg.cli import main
from aerialseg.data.classes import DUBAI_CLASSES, IGNORE_INDEX
from aerialseg.data.source import DatasetSource
from aerialseg.errors import ConfigError
from aerialseg.evaluation.calibration import with_fitted_temperature
from aerialseg.files import owner
from aerialseg.inference.predict import Predictor
from aerialseg.models.io import load_model
from aerialseg.training.config import resolve_config
from aerialseg.training.progress import TimeBudget
from aerialseg.training.run import train
from tests.helpers.geotiff import VALUE_CLASSES, write_geotiff, write_geotiff_dataset
from tests.helpers.images import rgb_scene
from tests.helpers.models import FAST
from tests.helpers.scenes import decoded


# seed-unet at width 4: the pipeline is under test here, not the network.
def metric_rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def test_train_evaluate_reload(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        argv = ["train", "--data", str(tiny_dataset), "--out", str(run), *FAST, "max_epochs=2"]
        assert main(argv) == 0
    # torch's deprecation of what Lightning calls: nothing a user can act on, so not shown
    assert not [w for w in warned if "LeafSpec" in str(w.message)]
    for name in (
        "config.yaml",
        "split.json",
        "classes.json",
        "model.pt",
        "metrics.csv",
        "training.png",
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
    ):
        assert (run / name).is_file(), name
    assert not list(run.rglob("*.tmp"))
    split = json.loads((run / "split.json").read_text())
    assert len(split["test"]) == 4 and len(split["val"]) == 2 and len(split["train"]) == 12
    epochs = {row["epoch"] for row in metric_rows(run) if row.get("val_miou")}
    assert epochs == {"0", "1"}
    # the learning rate once an epoch (two steps each), not at every step
    lr_rows = [r for r in metric_rows(run) if any(k.startswith("lr") and v for k, v in r.items())]
    assert len(lr_rows) == 2
    # the summary: the steps, why it stopped, what calibrated it, the next commands
    said = capsys.readouterr()
    summary = said.out
    # calibrated on the pixels the best weights' own validation drew: none predicted again
    assert "calibrating confidence" not in said.err
    assert ": 4 steps, stopped by max_epochs=2\n" in summary
    assert "fitted on 2 validation image(s)\n" in summary
    evaluate = ["aerialseg", "evaluate", str(run / "model.pt"), "--data", str(tiny_dataset)]
    assert shlex.join(evaluate) in summary

    assert (
        main(
            [
                "evaluate",
                str(run / "model.pt"),
                "--data",
                str(tiny_dataset),
                "--out",
                str(tmp_path / "eval"),
                "--device",
                "cpu",
                "--precision",
                "fp32",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    best_step = load_model(run / "model.pt").meta["global_step"]
    assert f"(step {best_step}); model.pt holds those weights" in summary
    assert "mIoU over 5 scored classes" in summary and "Building" in out and ", fp32\n" in out
    params = sum(p.numel() for p in load_model(run / "model.pt").net.parameters())
    assert f"network: seed-unet, from scratch, {params / 1e3:.1f} K parameters, " in summary
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert {
        "miou6",
        "miou5",
        "pixel_accuracy",
        "mean_dice",
        "per_class",
        "confusion_matrix",
        "ignored_pixels",
    } <= report.keys()
    assert report["precision"] == "fp32"
    confidence = report["confidence"]  # predict --confidence at the model's temperature
    assert confidence["temperature"] == load_model(run / "model.pt").spec.confidence_temperature
    # its mean is that of predict --confidence over the test images' labelled pixels
    source = DatasetSource(tiny_dataset)
    test_items = decoded(tiny_dataset, split["test"], DUBAI_CLASSES)
    percent_sum, labelled_pixels = 0, 0
    for k, item in enumerate(test_items):
        out = tmp_path / f"confidence-{k}"
        image = source.path / source.root / item.id
        argv = ["predict", str(image), "--model", str(run / "model.pt"), "--out", str(out)]
        assert main([*argv, "--confidence", "--precision", "fp32", "--device", "cpu"]) == 0
        percent = np.asarray(Image.open(next(out.glob("*_confidence.png"))))
        labelled = item.mask.numpy() != IGNORE_INDEX
        percent_sum += int(percent[labelled].astype(np.int64).sum())
        labelled_pixels += int(labelled.sum())
    assert confidence["mean"] == pytest.approx(percent_sum / labelled_pixels / 100, abs=2e-3)
    # a gap between mean confidence and accuracy is a lower bound of the calibration error
    gap = abs(confidence["mean"] - report["pixel_accuracy"])
    assert confidence["calibration_error"] >= gap - 1e-3
    assert report["ignored_pixels"] == 4 * 80  # the black top row of each test mask
    assert report["labelled_pixels"] == 4 * 72 * 80 - report["ignored_pixels"]
    assert sum(map(sum, report["confusion_matrix"])) == report["labelled_pixels"]
    assert (tmp_path / "eval" / "confusion.png").stat().st_size > 1000
    assert (tmp_path / "eval" / "panels.png").stat().st_size > 1000

    # The model file alone reloads to the same network as the best checkpoint.
    from_file, from_ckpt = load_model(run / "model.pt"), load_model(run / "checkpoints/best.ckpt")
    x = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        assert torch.equal(from_file.net(x), from_ckpt.net(x))
    assert from_file.spec.base_width == 4 and from_file.classes == DUBAI_CLASSES
    # ... with a confidence temperature fitted on the validation images
    assert from_ckpt.spec.confidence_temperature is None
    val_items = decoded(tiny_dataset, split["val"], DUBAI_CLASSES)
    refit = with_fitted_temperature(
        Predictor(from_ckpt.net, from_ckpt.spec, from_ckpt.classes), val_items
    )
    assert from_file.spec.confidence_temperature == refit.confidence_temperature
    assert from_file.spec.confidence_temperature != 1
    # what the model file says of its run, and its recipe with the fitted temperature
    best = max(float(r["val_miou"]) for r in metric_rows(run) if r.get("val_miou"))
    assert from_file.meta["val_miou"] == pytest.approx(best)
    assert from_file.meta["split"] == split
    assert from_file.meta["trained_on"] == str(tiny_dataset)
    assert from_file.recipe["confidence_temperature"] == from_file.spec.confidence_temperature


def test_max_steps_before_the_first_validation(tiny_dataset, tmp_path, capsys, recwarn):
    """A run shorter than one epoch is never validated: it still ends with a model file,
    calibrated on the validation images predicted after the run, with progress, and
    without Lightning's hint to call log() (a review)."""
    run = tmp_path / "run"
    args = ["train", "--data", str(tiny_dataset), "--out", str(run), *FAST, "max_steps=1"]
    assert main(args) == 0
    assert not [w for w in recwarn if "could not find the monitored key" in str(w.message)]
    assert torch.load(run / "checkpoints/last.ckpt", weights_only=True)["global_step"] == 1
    model = load_model(run / "model.pt")
    assert model.meta["val_miou"] is None
    out, err = capsys.readouterr()
    assert "stopped by max_steps=1" in out and "not validated" in out
    # stderr is no terminal here: a plain line an image
    assert "calibrating confidence: 1/2 images\ncalibrating confidence: 2/2 images\n" in err
    temperature = model.spec.confidence_temperature
    assert f"confidence temperature {temperature:g}, fitted on 2 validation image(s)" in out


def test_the_time_counts_from_the_commands_start(tiny_dataset, tmp_path, capsys):
    """train(started=) is when the command began (its loading counts towards max_time):
    the summary's time is counted from it, not from the call."""
    from aerialseg.training.config import resolve_config
    from aerialseg.training.run import train

    cfg = resolve_config("default", None, [*FAST, "max_steps=1", "confidence_temperature=1"])
    an_hour_ago = time.monotonic() - 3600
    train(cfg, tiny_dataset, tmp_path / "run", classes=DUBAI_CLASSES, started=an_hour_ago)
    assert "done in 1:00:0" in capsys.readouterr().out
    # a budget spent before the run began: one step, no time left to calibrate
    cfg = resolve_config("default", None, [*FAST, "max_steps=5", "max_time=00:59:00"])
    train(cfg, tiny_dataset, tmp_path / "spent", classes=DUBAI_CLASSES, started=an_hour_ago)
    said = capsys.readouterr().out
    assert " of the 0:59:00 budget: 1 steps, stopped by the time budget (max_time)\n" in said
    assert "confidence not calibrated (no time left)" in said
    assert load_model(tmp_path / "spent" / "model.pt").spec.confidence_temperature is None


class SeesTheData(L.Callback):
    """Keeps the training set's items, and the time budget's pixels a step, as the fit
    starts."""

    def on_train_start(self, trainer, *_):
        self.items = list(trainer.datamodule.train_set.items)
        budgets = [c for c in trainer.callbacks if isinstance(c, TimeBudget)]
        self.pixels_per_step = budgets[0].pixels_per_step if budgets else None


def test_the_run_hands_the_data_its_transform_and_unlabelled_images(
    tiny_dataset, tiny_model, tmp_path, capsys, monkeypatch
):
    """train() builds its data from every argument: the caller's transform sees each
    training crop and the pseudo-labelled images of unlabelled= are among the training
    items; a log (stderr no terminal) gets one line of what is loaded, a terminal none;
    --out may be a folder whose parents are not there yet, and a checkpoint that a killed
    run left half-written there is swept. max_time reckons a step's pixels from the crop
    (or the resized image) the step trains on."""
    from aerialseg.training.config import resolve_config
    from aerialseg.training.run import train

    region = tmp_path / "region"
    region.mkdir()
    write_geotiff(region / "a.tif", rgb_scene(70, 80, seed=1))
    crops = []

    def transform(image, mask):
        crops.append(tuple(image.shape))
        return image, mask

    settings = [*FAST, "max_steps=1", f"init_from={tiny_model}", f"unlabelled={region}"]
    cfg = resolve_config("default", None, [*settings, "max_time=00:10:00"])
    sees = SeesTheData()
    out = tmp_path / "not" / "yet" / "run"
    train(cfg, tiny_dataset, out, classes=DUBAI_CLASSES, extra_callbacks=[sees],
          extra_transform=transform)  # fmt: skip
    assert crops and crops[0] == (3, 32, 32)
    assert [item.id for item in sees.items][-1] == "unlabelled:a"
    assert "\nloading 12 training and 2 validation images\n" in capsys.readouterr().out
    assert sees.pixels_per_step == 4 * 32 * 32  # batch_size crops of crop_size
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    again = tmp_path / "again"
    (again / "checkpoints").mkdir(parents=True)
    gone = subprocess.Popen(["true"])  # a process that has ended: its pid is free
    gone.wait()
    left = again / "checkpoints" / f".last.ckpt.aerialseg-{owner(gone.pid)}.tmp"
    left.write_bytes(b"half a checkpoint")
    resized = ["input_mode=resize", "resize_to=64", "max_time=00:10:00"]
    cfg = resolve_config("default", None, [*FAST, "max_steps=1", *resized])
    train(cfg, tiny_dataset, again, classes=DUBAI_CLASSES, extra_callbacks=[sees])
    assert "loading" not in capsys.readouterr().out
    assert sees.pixels_per_step == 4 * 64 * 64 and not left.exists()


def test_the_run_reads_its_scenes_at_its_pixel_size(tmp_path):
    """pixel_size=1.0 on 0.5 m GeoTIFFs: the training scenes are read at 1 m."""
    from aerialseg.data.classes import ClassTable
    from aerialseg.training.config import resolve_config
    from aerialseg.training.run import train

    root = write_geotiff_dataset(tmp_path / "own")  # 72 x 80 px of 0.5 m
    table = tmp_path / "classes.yaml"
    table.write_text(yaml.safe_dump(VALUE_CLASSES))
    split = tmp_path / "split.json"
    assert main(["data", "split", str(root), "--out", str(split), "--test", "0.25"]) == 0
    settings = [*FAST, "max_steps=1", "bands=[3,2,1]", "pixel_size=1.0"]
    cfg = resolve_config("default", None, settings)
    sees = SeesTheData()
    classes = ClassTable.from_file(table)
    train(cfg, root, tmp_path / "run", split_file=str(split), classes=classes,
          extra_callbacks=[sees])  # fmt: skip
    assert {(item.height, item.width) for item in sees.items} == {(36, 40)}


class PowerCut(L.Callback):
    def __init__(self, at_step: int):
        self.at_step = at_step

    def on_train_batch_start(self, trainer, *_):
        if trainer.global_step == self.at_step:
            raise RuntimeError("power cut")


def test_resume_after_interruption(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    cfg = resolve_config("default", None, [*FAST, "max_epochs=3"])
    # trained on a subset of the images: the resumed run must keep to it
    subset = ["Tile 1/images/image_part_001.jpg", "Tile 2/images/image_part_001.jpg"]
    split_file = tmp_path / "split.json"
    split_file.write_text(
        json.dumps({"test": ["Tile 1/images/image_part_002.jpg"], "train": subset})
    )
    with pytest.raises(RuntimeError, match="power cut"):
        train(cfg, tiny_dataset, run, split_file=str(split_file), classes=DUBAI_CLASSES,
              extra_callbacks=[PowerCut(5)])  # fmt: skip
    assert torch.load(run / "checkpoints/last.ckpt", weights_only=True)["global_step"] == 4
    assert not (run / "model.pt").exists()

    assert (
        main(["train", "--data", str(tiny_dataset), "--out", str(run)]) == 2
    )  # not without --resume
    assert main(["train", "--data", str(tiny_dataset), "--out", str(run), "--resume"]) == 0
    last = torch.load(run / "checkpoints/last.ckpt", weights_only=True)
    assert last["global_step"] == 6 and last["epoch"] == 2
    epochs = sorted({row["epoch"] for row in metric_rows(run) if row.get("val_miou")})
    assert epochs == ["0", "1", "2"]  # the first attempt's history is kept
    assert (run / "model.pt").is_file()
    assert json.loads((run / "split.json").read_text())["train"] == subset


BEST_KEY = (
    "ModelCheckpoint{'monitor': 'val_miou', 'mode': 'max', 'every_n_train_steps': 0,"
    " 'every_n_epochs': 1, 'train_time_interval': None}"
)


def test_a_run_folder_moved_before_its_resume_keeps_its_best(tiny_dataset, tmp_path):
    """A review: resumed after a move, the record of the best was dropped (its folder's
    absolute path had changed), and the run ended naming the old folder's best.ckpt."""
    cfg = resolve_config("default", None, [*FAST, "max_epochs=3"])
    with pytest.raises(RuntimeError, match="power cut"):
        train(cfg, tiny_dataset, tmp_path / "a", classes=DUBAI_CLASSES,
              extra_callbacks=[PowerCut(5)])  # fmt: skip
    before = torch.load(tmp_path / "a/checkpoints/last.ckpt", weights_only=False)
    best = before["callbacks"][BEST_KEY]  # ModelCheckpoint's key, as older runs wrote it
    (tmp_path / "a").rename(tmp_path / "moved")
    assert (
        main(["train", "--data", str(tiny_dataset), "--out", str(tmp_path / "moved"), "--resume"])
        == 0
    )
    after = torch.load(tmp_path / "moved/checkpoints/last.ckpt", weights_only=False)
    kept = after["callbacks"][BEST_KEY]
    assert kept["best_model_path"] == str((tmp_path / "moved/checkpoints/best.ckpt").resolve())
    assert float(kept["best_model_score"]) >= float(best["best_model_score"])
    assert (tmp_path / "moved" / "model.pt").is_file()


class LearningRates(L.Callback):
    def __init__(self):
        self.seen: list[float] = []

    def on_train_batch_start(self, trainer, *_):
        self.seen.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_resume_keeps_the_time_budgets_schedule(tiny_dataset, tmp_path, capsys):
    """A run resumed at 90% of its time budget goes on near the end of its cosine, and
    its summary counts the earlier attempt's time (it said 'done in 0:00:15 of the
    budget' after 28 s of it: a review)."""
    run = tmp_path / "run"
    cfg = resolve_config("default", None, [*FAST, "max_epochs=3", "max_time=00:10:00"])
    with pytest.raises(RuntimeError, match="power cut"):
        train(cfg, tiny_dataset, run, classes=DUBAI_CLASSES, extra_callbacks=[PowerCut(3)])
    ckpt_path = run / "checkpoints/last.ckpt"
    ckpt = torch.load(ckpt_path, weights_only=False)
    ckpt["callbacks"]["Timer"]["time_elapsed"]["train"] = 540.0  # 9 of the 10 minutes
    torch.save(ckpt, ckpt_path)

    rates = LearningRates()
    capsys.readouterr()
    train(cfg, tiny_dataset, run, classes=DUBAI_CLASSES, resume=True, extra_callbacks=[rates])
    assert re.search(r"done in 0:09:\d\d of the 0:10:00 budget", capsys.readouterr().out)

    # The first step runs at the rate the checkpoint saved; the next ones at 90% and on
    # (further on by this command's loading, which max_time counts too).
    def rate(progress: float) -> float:
        return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))

    assert rate(1.0) <= rates.seen[1] <= rate(0.9) * 1.001


class WeightRecorder(L.Callback):
    """The raw (not averaged) network weights after every optimiser step."""

    def __init__(self):
        self.steps: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, *_):
        self.steps.append({k: v.detach().clone() for k, v in pl_module.net.state_dict().items()})


def test_ema_weights_are_the_ones_shipped(tiny_dataset, tmp_path):
    # One epoch of two steps. The first update copies w1; the second blends with the warm-up
    # decay min(0.25, (1 + 1) / (10 + 1)) = 2 / 11.
    cfg = resolve_config("default", None, [*FAST, "max_epochs=1", "ema_decay=0.25"])
    recorder = WeightRecorder()
    model = load_model(
        train(
            cfg, tiny_dataset, tmp_path / "ema", classes=DUBAI_CLASSES, extra_callbacks=[recorder]
        )
    )
    assert len(recorder.steps) == 2
    first, second = recorder.steps
    shipped = model.net.state_dict()
    weights = [k for k, v in shipped.items() if v.is_floating_point() and k.endswith("weight")]
    assert weights
    for key in weights:
        assert not torch.equal(first[key], second[key]), key
        torch.testing.assert_close(shipped[key], 2 / 11 * first[key] + 9 / 11 * second[key])


class ShapeRecorder(L.Callback):
    """The shapes the model inside the network sees in training steps, and their losses."""

    def __init__(self):
        self.inputs: list[tuple[int, ...]] = []
        self.losses: list[float] = []

    def on_train_start(self, trainer, pl_module):
        def hook(_module, args, _output):
            if pl_module.training:
                self.inputs.append(tuple(args[0].shape))

        pl_module.net.model.register_forward_hook(hook)

    def on_train_batch_end(self, trainer, pl_module, outputs, *_):
        self.losses.append(float(outputs["loss"]))


def test_downsampled_training_with_scale_augmentation_and_lovasz(tiny_dataset, tmp_path):
    options = ["downsample=2", "crop_size=64", "scale_range=[0.5,2]", "lovasz_weight=1"]
    cfg = resolve_config("default", None, [*FAST, *options, "max_epochs=1"])
    recorder = ShapeRecorder()
    model = load_model(
        train(cfg, tiny_dataset, tmp_path / "ds", classes=DUBAI_CLASSES, extra_callbacks=[recorder])
    )
    # 64 px crops reach the model as 32 px block averages; the losses are real numbers.
    assert recorder.inputs == [(4, 3, 32, 32)] * 2
    assert all(torch.isfinite(torch.tensor(recorder.losses)))
    assert model.spec.downsample == 2 and model.recipe["lovasz_weight"] == 1
    with torch.no_grad():
        assert model.net(torch.zeros(1, 3, 64, 128)).shape == (1, 6, 64, 128)


def test_loss_adds_the_weighted_terms():
    import segmentation_models_pytorch as smp

    from aerialseg.training.module import SegmentationTask

    cfg = resolve_config("default", None, [*FAST, "dice_weight=0.5", "lovasz_weight=2"])
    task = SegmentationTask(cfg.to_dict(), DUBAI_CLASSES.to_dict())
    torch.manual_seed(0)
    logits, target = torch.randn(2, 6, 8, 8), torch.randint(0, 6, (2, 8, 8))
    target[0, 0] = 255  # ignored
    ce = torch.nn.functional.cross_entropy(logits, target, ignore_index=255)
    dice = smp.losses.DiceLoss("multiclass", ignore_index=255)(logits, target)
    lovasz = smp.losses.LovaszLoss("multiclass", ignore_index=255)(logits, target)
    assert float(lovasz) > 0
    torch.testing.assert_close(task.loss(logits, target), ce + 0.5 * dice + 2 * lovasz)
    cfg = resolve_config("default", None, [*FAST, "focal_gamma=2", "dice_weight=0.5"])
    task = SegmentationTask(cfg.to_dict(), DUBAI_CLASSES.to_dict())
    focal = smp.losses.FocalLoss("multiclass", gamma=2, ignore_index=255)(logits, target)
    assert 0 < float(focal) < float(ce)  # pixels already right weigh less
    torch.testing.assert_close(task.loss(logits, target), focal + 0.5 * dice)
    # a batch of no labelled pixel: nothing to learn, not NaN (a review: the run stopped
    # telling the user to lower lr), every term of every loss alike
    logits.requires_grad_(True)
    nothing = task.loss(logits, torch.full_like(target, 255))
    assert nothing.item() == 0.0
    nothing.backward()
    assert logits.grad is not None and not logits.grad.any()


def test_training_is_deterministic_on_cpu(tiny_dataset, tmp_path):
    # accelerator=auto, as users run it: on this GPU-less machine that is the CPU.
    auto = [o for o in FAST if not o.startswith("accelerator=")]
    states = []
    for name in ("a", "b"):
        cfg = resolve_config("default", None, [*auto, "max_epochs=1"])
        states.append(
            load_model(
                train(cfg, tiny_dataset, tmp_path / name, classes=DUBAI_CLASSES)
            ).net.state_dict()
        )
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    cfg = resolve_config("default", None, [*FAST, "max_epochs=1", "seed=7"])
    other = load_model(
        train(cfg, tiny_dataset, tmp_path / "c", classes=DUBAI_CLASSES)
    ).net.state_dict()
    assert not all(torch.equal(states[0][k], other[k]) for k in other)


def test_seed_preset_trains_on_resized_whole_images(tiny_dataset, tmp_path):
    run = tmp_path / "seed"
    assert (
        main(
            [
                "train",
                "--data",
                str(tiny_dataset),
                "--out",
                str(run),
                "--preset",
                "seed",
                "base_width=4",
                "resize_to=32",
                "max_epochs=1",
                "accelerator=cpu",
            ]
        )
        == 0
    )
    model = load_model(run / "model.pt")
    assert model.spec.input_mode == "resize" and model.recipe["scheduler"] == "plateau"


def test_ddp_on_two_cpu_processes(tiny_dataset, tmp_path):
    run = tmp_path / "ddp"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "aerialseg",
            "train",
            "--data",
            str(tiny_dataset),
            "--out",
            str(run),
            "--devices",
            "2",
            "--accelerator",
            "cpu",
            *FAST,
            "max_epochs=1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    last = torch.load(run / "checkpoints/last.ckpt", weights_only=True)
    # 8 samples per epoch, batch 4, split over 2 ranks: 1 optimizer step per epoch.
    assert last["global_step"] == 1
    assert (run / "model.pt").is_file()


def test_encoder_learns_at_its_own_rate():
    from aerialseg.training.module import SegmentationTask

    cfg = resolve_config(
        "default",
        None,
        ["model=fpn-effnet-lite0", "pretrained=false", "encoder_lr_factor=0.1", "scheduler=none"],
    )
    task = SegmentationTask(cfg.to_dict(), DUBAI_CLASSES.to_dict())
    encoder, rest = task.configure_optimizers()["optimizer"].param_groups
    assert encoder["lr"] == pytest.approx(1e-4) and rest["lr"] == pytest.approx(1e-3)
    assert {id(p) for p in encoder["params"]} == {
        id(p) for p in task.net.model.encoder.parameters()
    }
    assert len(encoder["params"]) + len(rest["params"]) == len(list(task.parameters()))


def test_lightning_service_tips_are_dropped():
    from lightning.pytorch.utilities.rank_zero import rank_zero_info

    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    logger.addHandler(handler)
    try:
        rank_zero_info("💡 Tip: For seamless cloud logging, try installing a service")
        rank_zero_info("GPU available: False, used: False")
    finally:
        logger.removeHandler(handler)
    assert [r.getMessage() for r in seen] == ["GPU available: False, used: False"]


def test_own_geotiffs_with_class_value_masks(tmp_path, capsys):
    """Users' own data: 4-band 16-bit GeoTIFFs with nodata, masks of class values, a split
    drawn by `data split`; the model keeps its bands, so predict needs no --bands."""
    root = write_geotiff_dataset(tmp_path / "own")
    table = tmp_path / "classes.yaml"
    table.write_text(yaml.safe_dump(VALUE_CLASSES))
    split = tmp_path / "split.json"
    assert main(["data", "split", str(root), "--out", str(split), "--test", "0.25"]) == 0
    argv = ["data", "inspect", str(root), "--classes", str(table), "--bands", "3,2,1", "--json"]
    capsys.readouterr()
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["mask_modes"] == {"1x uint8": 9} and report["unknown_values"] == []
    assert report["image_modes"] == {"4x uint16": 9}
    assert report["image_grids"] == {"EPSG:32640, 0.5 x 0.5": 9}
    assert [c["mask_value"] for c in report["classes"]] == [1, 2, 3, 4, 5]

    run, data = tmp_path / "run", ["--data", str(root)]
    argv = ["train", *data, "--classes", str(table), "--split", str(split), "--out", str(run)]
    assert main([*argv, *FAST, "max_epochs=1", "bands=[3,2,1]"]) == 0
    model_file = str(run / "model.pt")
    model = load_model(model_file)
    assert model.spec.bands == (3, 2, 1) and model.classes.by_value

    scene = root / "images" / "scene_0.tif"
    argv = ["predict", str(scene), "--model", model_file, "--out", str(tmp_path / "p")]
    assert main([*argv, "--vector", "geojson"]) == 0
    with rasterio.open(tmp_path / "p" / "scene_0_classes.tif") as out, rasterio.open(scene) as src:
        assert out.crs == src.crs and out.transform == src.transform
        values = out.read(1)  # in the labels' own coding: 1-5, not class ids 0-4
        assert out.nodata == 255 and (values[:, -3:] == 255).all()
        assert set(np.unique(values[:, :-3])) <= {1, 2, 3, 4, 5}
        assert out.colormap(1)[1][:3] != out.colormap(1)[2][:3]
    polygons = json.loads((tmp_path / "p" / "scene_0_polygons.geojson").read_text())
    names = {f["properties"]["class"] for f in polygons["features"]}
    assert names and names <= {"Building", "Land", "Road", "Vegetation", "Water"}

    argv = ["evaluate", model_file, *data, "--split-file", str(split), "--out", str(tmp_path / "e")]
    assert main(argv) == 0
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert list(metrics["per_class"]) == ["Building", "Land", "Road", "Vegetation", "Water"]


def test_own_geotiffs_with_near_infrared(tmp_path, capsys):
    """A model of four bands, RGB plus NIR, on a pretrained encoder: it trains, keeps its
    bands, predicts and evaluates without being told them, and exports to ONNX."""
    root = write_geotiff_dataset(tmp_path / "own")
    table = tmp_path / "classes.yaml"
    table.write_text(yaml.safe_dump(VALUE_CLASSES))
    split = tmp_path / "split.json"
    assert main(["data", "split", str(root), "--out", str(split), "--test", "0.25"]) == 0
    run, data = tmp_path / "run", ["--data", str(root), "--classes", str(table)]
    pretrained_fpn = [f for f in FAST if not f.startswith(("model=", "pretrained=", "base_w"))]
    overrides = ["model=fpn-effnet-lite0", "max_epochs=1", "bands=[3,2,1,4]"]
    argv = ["train", *data, "--split", str(split), "--out", str(run)]
    assert main([*argv, *pretrained_fpn, *overrides]) == 0
    model_file = str(run / "model.pt")
    model = load_model(model_file)
    assert model.spec.bands == (3, 2, 1, 4) and model.net.in_channels == 4

    scene = root / "images" / "scene_0.tif"
    # fp32 as ONNX Runtime computes, so both predictions can be compared below
    argv = ["predict", str(scene), "--model", model_file, "--all-outputs", "--precision", "fp32"]
    assert main([*argv, "--out", str(tmp_path / "p")]) == 0
    with rasterio.open(tmp_path / "p" / "scene_0_classes.tif") as out:
        values = out.read(1)
    assert set(np.unique(values[:, :-3])) <= {1, 2, 3, 4, 5}
    with Image.open(tmp_path / "p" / "scene_0_overlay.png") as overlay:
        assert overlay.mode == "RGB"  # the first three bands, blended with the classes

    capsys.readouterr()
    assert main([*argv, "--out", str(tmp_path / "q"), "--bands", "3,2,1"]) == 2
    assert "--bands 3,2,1: the model takes 4 band(s)" in capsys.readouterr().err
    rgb_only = tmp_path / "rgb.tif"
    with rasterio.open(scene) as src:
        profile = {**src.profile, "count": 3}
        with rasterio.open(rgb_only, "w", **profile) as dst:
            dst.write(src.read([3, 2, 1]))
    assert (
        main(["predict", str(rgb_only), "--model", model_file, "--out", str(tmp_path / "r")]) == 2
    )
    said = capsys.readouterr().err  # the model's bands, not a --bands that was never given
    assert f"{rgb_only}: the model reads bands " in said and "--bands 4" not in said
    assert "but the file has 3; choose 4 of its bands with --bands" in said

    onnx_file = tmp_path / "m.onnx"
    check = ["--check-image", str(scene)]
    assert main(["export", model_file, "--onnx", str(onnx_file), *check]) == 0
    argv = ["predict", str(scene), "--model", str(onnx_file), "--out", str(tmp_path / "o")]
    assert main(argv) == 0
    with rasterio.open(tmp_path / "o" / "scene_0_classes.tif") as out:
        assert (out.read(1) == values).mean() > 0.999

    argv = ["evaluate", model_file, "--data", str(root), "--split-file", str(split)]
    assert main([*argv, "--out", str(tmp_path / "e")]) == 0
    assert (tmp_path / "e" / "panels.png").is_file()
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert list(metrics["per_class"]) == ["Building", "Land", "Road", "Vegetation", "Water"]


def test_fine_tuning_starts_from_the_given_model(tiny_dataset, tiny_model, tmp_path, capsys):
    run, data = tmp_path / "run", ["--data", str(tiny_dataset)]
    # a learning rate too small to move anything: the weights stay the source model's
    still = ["max_steps=2", "lr=1e-12", "ema_decay=0", "scheduler=none"]
    argv = ["train", *data, "--out", str(run), *FAST, *still, f"init_from={tiny_model}"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"network: seed-unet, from {tiny_model}" in out
    assert "weights from" in out and "classes new to it" not in out
    tuned, source = load_model(run / "model.pt"), load_model(tiny_model)
    assert tuned.recipe["init_from"] == str(tiny_model)  # recorded in the model
    for key, tensor in source.net.state_dict().items():
        if not key.endswith(("running_mean", "running_var", "num_batches_tracked")):
            torch.testing.assert_close(tuned.net.state_dict()[key], tensor, atol=1e-6, rtol=0)

    argv = ["train", *data, "--out", str(tmp_path / "x"), *FAST, "init_from=missing.pt"]
    assert main(argv) == 2
    assert "init_from: missing.pt: no such model file" in capsys.readouterr().err


def test_the_bundled_model_starts_a_four_band_run(tmp_path, capsys):
    """The user story: fine-tune the bundled Dubai model on one's own RGB + NIR GeoTIFFs
    whose classes are five of its six."""
    root = write_geotiff_dataset(tmp_path / "own")
    table = tmp_path / "classes.yaml"
    table.write_text(yaml.safe_dump(VALUE_CLASSES))
    split = tmp_path / "split.json"
    assert main(["data", "split", str(root), "--out", str(split), "--test", "0.25"]) == 0
    argv = ["train", "--data", str(root), "--classes", str(table), "--split", str(split)]
    fast = [f for f in FAST if not f.startswith(("model=", "pretrained=", "base_w"))]
    overrides = ["max_steps=1", "bands=[3,2,1,4]", "init_from=default"]
    capsys.readouterr()
    assert main([*argv, "--out", str(tmp_path / "run"), *fast, *overrides]) == 0
    out = capsys.readouterr().out
    assert "weights from default:" in out and "first convolution adapted to the bands" in out
    assert "classes new to it" not in out


def test_a_run_at_one_pixel_size_predicts_at_it(tmp_path, capsys):
    """pixel_size=1.0 on 0.5 m GeoTIFFs: trained, scored and predicted on 1 m pixels."""
    root = write_geotiff_dataset(tmp_path / "own")  # 72 x 80 px of 0.5 m
    table = tmp_path / "classes.yaml"
    table.write_text(yaml.safe_dump(VALUE_CLASSES))
    split = tmp_path / "split.json"
    assert main(["data", "split", str(root), "--out", str(split), "--test", "0.25"]) == 0
    run, data = tmp_path / "run", ["--data", str(root), "--split", str(split)]
    argv = ["train", *data, "--classes", str(table), "--out", str(run), *FAST, "max_epochs=1"]
    assert main([*argv, "bands=[3,2,1]", "pixel_size=1.0"]) == 0
    model_file = str(run / "model.pt")
    assert load_model(model_file).spec.pixel_size == 1.0

    scene = root / "images" / "scene_0.tif"
    assert main(["predict", str(scene), "--model", model_file, "--out", str(tmp_path / "p")]) == 0
    with rasterio.open(tmp_path / "p" / "scene_0_classes.tif") as out:
        assert (out.width, out.height, out.transform.a) == (40, 36, 1.0)
        assert (out.read(1)[:, -1] == 255).all()  # the nodata columns stay nodata

    photo = tmp_path / "photo.png"  # no georeference: read as it is, and said so
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(photo)
    capsys.readouterr()
    assert main(["predict", str(photo), "--model", model_file, "--out", str(tmp_path / "q")]) == 0
    assert "no georeference; predicted at its own pixel size" in capsys.readouterr().err
    with Image.open(tmp_path / "q" / "photo_classes.png") as out:
        assert out.size == (64, 64)

    argv = ["evaluate", model_file, "--data", str(root), "--split-file", str(split)]
    assert main([*argv, "--out", str(tmp_path / "e")]) == 0
    report = json.loads((tmp_path / "e" / "metrics.json").read_text())
    scored = [image["labelled_pixels"] for image in report["per_image"].values()]
    assert scored and all(0 < n < 40 * 36 for n in scored)  # on the 1 m grid, not 80 x 72
    assert report["pixel_size"] == 1.0
    assert main([*argv, "--out", str(tmp_path / "n"), "--pixel-size", "0.5"]) == 0
    native = json.loads((tmp_path / "n" / "metrics.json").read_text())
    assert native["pixel_size"] == 0.5
    assert native["labelled_pixels"] > 3.5 * report["labelled_pixels"]  # 4x the pixels


def test_a_block_split_at_native_pixels_trains_and_scores_at_another_pixel_size(tmp_path, capsys):
    """A block split cut on 0.5 m pixels named windows a run at pixel_size=1.0 refused ("the
    split was made for another image or pixel size"): data split has no pixel size. The
    run reads each block's ground on its 1 m grid, and its split.json records that grid."""
    root = write_geotiff_dataset(tmp_path / "own", parts=3)  # 72 x 80 px of 0.5 m
    table = tmp_path / "classes.yaml"
    table.write_text(yaml.safe_dump(VALUE_CLASSES))
    split = tmp_path / "split.json"
    cut = ["--block-size", "12m", "--buffer", "2", "--val", "0.2", "--test", "0.2"]
    assert main(["data", "split", str(root), "--out", str(split), *cut]) == 0
    native = json.loads(split.read_text())
    run, data = tmp_path / "run", ["--data", str(root), "--split", str(split)]
    argv = ["train", *data, "--classes", str(table), "--out", str(run), *FAST, "max_steps=1"]
    assert main([*argv, "bands=[3,2,1]", "pixel_size=1.0"]) == 0
    ran = json.loads((run / "split.json").read_text())
    assert {tuple(t) for t in ran["grids"].values()} == {(1.0, 0, 300_000, 0, -1.0, 2_800_000)}
    for name in ("train", "val", "test"):  # each 24 px block of 0.5 m is 12 px of 1 m or less
        assert len(ran["blocks"][name]) == len(native["blocks"][name])
        for was, now in zip(native["blocks"][name], ran["blocks"][name], strict=True):
            c, r, w, h = was["window"]
            assert now["window"][:2] == [-(-c // 2), -(-r // 2)]  # the first whole 1 m pixel
            assert 0 < now["window"][2] <= w / 2 and 0 < now["window"][3] <= h / 2
    argv = ["evaluate", str(run / "model.pt"), "--data", str(root), "--split-file", str(split)]
    assert main([*argv, "--out", str(tmp_path / "e")]) == 0
    report = json.loads((tmp_path / "e" / "metrics.json").read_text())
    tested = sum(b["window"][2] * b["window"][3] for b in ran["blocks"]["test"])
    assert report["pixel_size"] == 1.0 and 0 < report["labelled_pixels"] <= tested
    # cut on the 1 m grid itself: its train command reads the scenes there
    capsys.readouterr()
    on_grid = tmp_path / "on-grid.json"
    assert main(["data", "split", str(root), "--out", str(on_grid), *cut, "--pixel-size", "1"]) == 0
    train = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("train with"))
    assert "pixel_size=1.0" in shlex.split(train)  # the 4-band scenes: bands= follows it
    assert json.loads(on_grid.read_text())["grids"] == ran["grids"]


def test_a_damaged_last_checkpoint_says_what_to_do(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--data", str(tiny_dataset), "--out", str(run)]
    assert main([*argv, *FAST, "max_epochs=2"]) == 0
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    capsys.readouterr()
    assert main([*argv, "--resume", "max_epochs=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert str(last) in err and "damaged" in err and "--resume-from best" in err
    assert main([*argv, "--resume-from", "best", "max_epochs=3"]) == 0
    assert torch.load(last, weights_only=True)["epoch"] == 2  # went on from the best epoch


def test_an_epoch_run_twice_is_listed_once(tmp_path):
    """A run killed in epoch 1 and resumed from the end of epoch 0 logs epoch 1 twice:
    metrics.csv keeps the resumed attempt's rows."""
    from aerialseg.training.run import merge_metrics

    logs = tmp_path / "logs"
    for version, rows in {
        0: [("0", "0", "0.9", "0.3"), ("1", "1", "0.8", ""), ("1", "2", "0.7", "")],
        1: [("1", "1", "0.75", ""), ("1", "2", "0.6", "0.4"), ("2", "3", "0.5", "0.45")],
    }.items():
        (logs / f"version_{version}").mkdir(parents=True)
        lines = ["epoch,step,train_loss,val_miou"] + [",".join(r) for r in rows]
        (logs / f"version_{version}" / "metrics.csv").write_text("\n".join(lines) + "\n")
    merge_metrics(tmp_path)
    merged = [(r["epoch"], r["step"], r["train_loss"]) for r in metric_rows(tmp_path)]
    assert merged == [("0", "0", "0.9"), ("1", "1", "0.75"), ("1", "2", "0.6"), ("2", "3", "0.5")]


def test_kill_9_between_checkpoints_then_resume_ends_as_an_uninterrupted_run(
    tiny_dataset, tmp_path
):
    settings = [*FAST, "max_epochs=4", "early_stop_patience=100"]
    whole = tmp_path / "whole"
    assert main(["train", "--data", str(tiny_dataset), "--out", str(whole), *settings]) == 0
    steps = torch.load(whole / "checkpoints/last.ckpt", weights_only=True)["global_step"]

    run = tmp_path / "killed"
    argv = [sys.executable, "-m", "aerialseg", "train", "--data", str(tiny_dataset)]
    child = subprocess.Popen([*argv, "--out", str(run), *settings], stderr=subprocess.DEVNULL)
    last = run / "checkpoints" / "last.ckpt"
    while child.poll() is None and not last.exists():
        time.sleep(0.02)
    child.kill()  # SIGKILL: no handler, no cleanup
    child.wait()
    assert child.returncode == -9, "the run ended before it could be killed"
    assert not (run / "model.pt").exists()
    killed_at = torch.load(last, weights_only=True)["global_step"]
    assert 0 < killed_at < steps

    assert main(["train", "--data", str(tiny_dataset), "--out", str(run), "--resume"]) == 0
    assert torch.load(last, weights_only=True)["global_step"] == steps
    assert (run / "model.pt").is_file()
    assert not list(run.rglob(".*.aerialseg-*"))  # nothing half-written is left


def test_the_temperature_is_fitted_on_the_shipped_weights_validation(tiny_dataset, tmp_path):
    """The pixels drawn while validating give the temperature that predicting the validation
    images again with the best checkpoint gives (every pixel of these small images is
    drawn either way), without that second pass."""
    from aerialseg.data.catalog import open_catalog
    from aerialseg.data.splits import make_split
    from aerialseg.evaluation.calibration import fit_on_images
    from aerialseg.training.datamodule import SegmentationDataModule

    cfg = resolve_config("default", None, [*FAST, "max_epochs=3"])
    run = tmp_path / "run"
    model = load_model(train(cfg, tiny_dataset, run, classes=DUBAI_CLASSES))
    best = load_model(run / "checkpoints/best.ckpt")
    catalog = open_catalog(tiny_dataset, DUBAI_CLASSES)
    datamodule = SegmentationDataModule(catalog, make_split(catalog.entries), cfg)
    datamodule.setup("fit")
    again = fit_on_images(Predictor(best.net, best.spec, best.classes), datamodule.val_set.items)
    assert model.spec.confidence_temperature == pytest.approx(again, rel=1e-3)


@pytest.mark.parametrize("logger", ["tensorboard", "mlflow"])
def test_experiment_trackers_beside_the_csv(logger, tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--data", str(tiny_dataset), "--out", str(run), *FAST, "max_epochs=2"]
    assert main([*argv, f"logger={logger}"]) == 0
    out = capsys.readouterr().out
    # the CSV and its plot are kept whatever the tracker
    assert (run / "training.png").stat().st_size > 1000
    csv_mious = [float(r["val_miou"]) for r in metric_rows(run) if r.get("val_miou")]
    assert len(csv_mious) == 2
    if logger == "tensorboard":
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        (events,) = (run / "logs" / "version_0").glob("events.out.tfevents.*")
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        logged = [e.value for e in accumulator.Scalars("val_miou")]
        assert f"tensorboard --logdir {run / 'logs'}" in out
    else:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=(run / "mlruns").resolve().as_uri())
        (found,) = client.search_runs([client.get_experiment_by_name("aerialseg").experiment_id])
        logged = [m.value for m in client.get_metric_history(found.info.run_id, "val_miou")]
        assert found.data.params["config/max_epochs"] == "2"
        assert "mlflow ui --backend-store-uri file://" in out
    assert logged == pytest.approx(csv_mious)


def test_a_tracker_that_is_not_installed_says_how_to_get_it(
    tiny_dataset, tmp_path, capsys, monkeypatch
):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a)
    )
    run = tmp_path / "run"
    argv = ["train", "--data", str(tiny_dataset), "--out", str(run), *FAST, "logger=mlflow"]
    assert main(argv) == 2
    assert (
        "logger=mlflow needs mlflow: pip install 'aerialseg[tracking]'" in capsys.readouterr().err
    )
    assert not run.exists()


def test_resume_with_only_the_best_checkpoint_names_resume_from_best(
    tiny_dataset, tmp_path, capsys
):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    resolve_config("default", None, FAST).save(run / "config.yaml")
    (run / "classes.json").write_text(json.dumps(DUBAI_CLASSES.to_dict()))
    (run / "checkpoints" / "best.ckpt").write_bytes(b"")  # checked only once chosen
    assert main(["train", "--data", str(tiny_dataset), "--out", str(run), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--resume-from best" in err, err


@pytest.mark.parametrize(
    "stop, code, word", [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated (SIGTERM)")]
)
def test_ctrl_c_says_interrupted_and_the_command_that_resumes(
    tiny_dataset, tmp_path, stop, code, word
):
    """SIGINT (Ctrl-C) to a running `train`: exit 130 and one line with a resume command
    that runs as printed; SIGTERM (a job scheduler's limit) the same, exit 143."""
    import shlex
    import signal

    run = tmp_path / "my run"  # a space: the command must quote it
    argv = [sys.executable, "-m", "aerialseg", "train", "--data", str(tiny_dataset)]
    settings = [*FAST, "max_epochs=1000", "early_stop_patience=1000"]
    child = subprocess.Popen(
        [*argv, "--out", str(run), *settings],
        stderr=subprocess.PIPE,
        text=True,
        # A shell's background job (`pytest ... &`) runs with SIGINT ignored, which a
        # child inherits and rightly honours: a terminal's Ctrl-C is what is tested here.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    last = run / "checkpoints" / "last.ckpt"
    while child.poll() is None and not last.exists():
        time.sleep(0.02)
    child.send_signal(getattr(signal, stop))
    err = child.communicate(timeout=120)[1]
    assert child.returncode == code, err
    said = [line for line in err.splitlines() if line.startswith("aerialseg:")]
    expected = f"aerialseg: train {word}; resume with: aerialseg train --data "
    assert len(said) == 1 and said[0].startswith(expected), err
    command = shlex.split(said[0].split("resume with: ")[1])
    assert command[-1] == "--resume" and command[command.index("--out") + 1] == str(run)
    epoch = torch.load(last, weights_only=True)["epoch"]
    assert main([*command[1:], f"max_epochs={epoch + 2}"]) == 0
    assert torch.load(last, weights_only=True)["epoch"] == epoch + 1


def test_settings_that_cannot_run_stop_before_anything_is_written(tiny_dataset, tmp_path):
    """Found by a review: each of these failed only after config.yaml, classes.json and
    split.json were in --out, or after every image was loaded."""
    out = tmp_path / "run"
    taken = tmp_path / "file"
    taken.write_text("mine")
    cases = [
        (taken, [], "a file; give the run folder"),
        (out, ["class_weights=[1,2]"], "class_weights has 2 weight.s. for 6 classes"),
        (out, ["init_from=/nope/model.pt"], "init_from: /nope/model.pt: no such model file"),
        (out, ["init_from=default"], "init_from"),  # the bundled FPN into a seed-unet
        # a review: a traceback (119 GB asked) after config.yaml and the rest were written
        (out, ["crop_size=100000"], "crop_size=100000: a batch of 4 crops would hold 596 GiB"),
    ]
    for where, settings, message in cases:
        cfg = resolve_config("default", None, [*FAST, "max_epochs=1", *settings])
        with pytest.raises(ConfigError, match=message):
            train(cfg, tiny_dataset, where, classes=DUBAI_CLASSES)
        assert not out.exists(), settings
    assert taken.read_text() == "mine"
    # nor the folders above --out that it made (a review: a/b/ stayed, empty)
    cfg = resolve_config("default", None, [*FAST, "max_epochs=1", "class_weights=[1,2]"])
    with pytest.raises(ConfigError, match="class_weights"):
        train(cfg, tiny_dataset, tmp_path / "a" / "b" / "run", classes=DUBAI_CLASSES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_run_stopped_by_max_steps_at_an_epochs_end_resumes_into_the_next(
    tiny_dataset, tmp_path, capsys
):
    """A review: a run stopped by max_steps on its epoch's last batch (as a Ctrl-C after
    that epoch's checkpoint leaves it) was resumed as if the next epoch were over too:
    --resume max_steps=4 max_epochs=2 trained nothing, and an interrupted run lost an
    epoch. FAST: 2 steps an epoch."""
    run = tmp_path / "run"
    argv = ["train", "--data", str(tiny_dataset), "--out", str(run)]
    assert main([*argv, *FAST, "max_steps=2"]) == 0
    earlier = (run / "model.pt").read_bytes()  # of 2 steps
    assert main([*argv, "--resume", "max_steps=4", "max_epochs=2"]) == 0
    assert main([*argv, "--resume", "max_steps=8", "max_epochs=3"]) == 0
    done = [line for line in capsys.readouterr().out.splitlines() if line.startswith("done in")]
    assert [line.split(": ", 1)[1] for line in done] == [
        "2 steps, stopped by max_steps=2",
        "4 steps, stopped by max_steps=4",
        "6 steps, stopped by max_epochs=3",
    ]
    # finished: resumed as it is, it trained nothing, yet fitted its confidence again and
    # rewrote model.pt (a review)
    shipped = (run / "model.pt").read_bytes()
    assert main([*argv, "--resume"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"aerialseg: error: {run} is finished: it reached max_epochs=3 (3 epochs); to train"
        " on, raise it, e.g. --resume max_epochs=6"
    )
    assert (run / "model.pt").read_bytes() == shipped
    # stopped after training, before model.pt was written (a Ctrl-C while it calibrated):
    # the printed resume was refused as finished (a review); it now writes model.pt
    (run / "model.pt").unlink()
    assert main([*argv, "--resume"]) == 0
    assert "6 steps, stopped by max_epochs=3" in capsys.readouterr().out  # no step more
    # and where an earlier attempt's model.pt is left, of fewer steps (a second review: a
    # resumed run stopped so was refused again)
    assert load_model(run / "model.pt").meta["trained_steps"] == 6
    (run / "model.pt").write_bytes(earlier)
    assert main([*argv, "--resume"]) == 0
    assert "6 steps, stopped by max_epochs=3" in capsys.readouterr().out
    weights = load_model(run / "model.pt").net.state_dict()
    (run / "model.pt").write_bytes(shipped)
    assert all(torch.equal(v, load_model(run / "model.pt").net.state_dict()[k])
               for k, v in weights.items())  # fmt: skip


def test_a_finished_runs_refusal_names_every_limit_it_reached_and_its_hint_runs(
    tiny_dataset, tmp_path, capsys
):
    """A review: a run that reached max_steps and max_epochs at once was told to raise
    max_steps, and the resume so raised was refused for max_epochs. FAST: 2 steps an
    epoch."""
    run = tmp_path / "run"
    argv = ["train", "--data", str(tiny_dataset), "--out", str(run)]
    assert main([*argv, *FAST, "max_steps=2", "max_epochs=1"]) == 0
    assert main([*argv, "--resume"]) == 2
    said = capsys.readouterr().err.strip().splitlines()[-1]
    assert said == (
        f"aerialseg: error: {run} is finished: it reached max_steps=2 (2 steps) and"
        " max_epochs=1 (1 epochs); to train on, raise them, e.g. --resume max_steps=4"
        " max_epochs=2"
    )
    assert main([*argv, *said.split("e.g. ")[1].split()]) == 0  # the hint, as printed
    assert ": 4 steps, stopped by " in capsys.readouterr().out


def test_a_run_stopped_early_is_resumed_only_with_more_patience(tiny_dataset, tmp_path, capsys):
    """A review: a run stopped early was resumed as it was (one epoch, to stop again, and
    model.pt rewritten), and a raised early_stop_patience had no effect, since Lightning
    restores the checkpoint's. lr=1e-30: no weight moves, so val mIoU never gains."""
    run = tmp_path / "run"
    argv = ["train", "--data", str(tiny_dataset), "--out", str(run)]
    assert main([*argv, *FAST, "lr=1e-30", "early_stop_patience=1", "max_epochs=9"]) == 0
    shipped = (run / "model.pt").read_bytes()
    assert main([*argv, "--resume"]) == 2
    out, err = capsys.readouterr()
    assert ": 4 steps, stopped by early stopping (no val mIoU gain in 1 validation(s))" in out
    assert err.strip().splitlines()[-1] == (
        f"aerialseg: error: {run} is finished: it reached early_stop_patience=1 (1"
        " validation(s) without gain); to train on, raise it, e.g. --resume early_stop_patience=2"
    )
    assert (run / "model.pt").read_bytes() == shipped
    assert main([*argv, "--resume", "early_stop_patience=3"]) == 0
    done = [line for line in capsys.readouterr().out.splitlines() if line.startswith("done in")]
    # epochs 1-2 before (the first sets the best); 2 more here, to 3 without gain
    assert done == [
        done[0].split(": ")[0] + ": 8 steps, stopped by early stopping (no val"
        " mIoU gain in 3 validation(s))"
    ]


def test_a_resume_that_would_reshape_the_network_is_refused_and_the_run_kept(
    tiny_dataset, tmp_path
):
    run = tmp_path / "run"
    first = ["train", "--data", str(tiny_dataset), "--out", str(run), *FAST, "max_epochs=1"]
    assert main(first) == 0
    saved = (run / "config.yaml").read_text()
    argv = ["train", "--data", str(tiny_dataset), "--out", str(run), "--resume", "max_epochs=2"]
    assert main([*argv, "base_width=8"]) == 2  # was a state_dict traceback, config rewritten
    assert (run / "config.yaml").read_text() == saved
    # a review: another encoder_lr_factor changed the optimiser's parameter groups, a
    # traceback, and the config rewritten made every later --resume one too
    assert main([*argv, "encoder_lr_factor=0.1"]) == 2
    assert (run / "config.yaml").read_text() == saved
    for flags in (
        ["--preset", "smoke"],
        ["--config", str(run / "config.yaml")],
        ["--split", str(run / "split.json")],  # found by a review, as --classes
        ["--classes", str(run / "classes.json")],
    ):
        assert main([*argv[:-1], *flags, argv[-1]]) == 2  # were silently ignored
    assert main(argv) == 0  # still resumable as it was


def test_a_loss_that_is_no_number_stops_the_run_in_one_line(tiny_dataset, tmp_path):
    """Found by a review: lr=1e9 trained to NaN weights, fitted a NaN temperature and
    shipped a model.pt that predicts class 0 everywhere, without a word. (Such an lr is
    refused now: inputs that are no numbers make the loss NaN here.)"""
    import aerialseg
    from aerialseg.errors import AerialsegError
    from aerialseg.training.config import parse_overrides

    def poisoned(image, mask):  # float images: those of input_mode=resize
        return image * float("nan"), mask

    run = tmp_path / "run"
    settings = parse_overrides([*FAST, "max_steps=6", "input_mode=resize", "resize_to=64"])
    with pytest.raises(AerialsegError) as err:
        aerialseg.train(tiny_dataset, run, settings=settings, transforms=poisoned)
    said = str(err.value)
    assert "the training loss is nan at step" in said and "lower lr" in said
    assert not (run / "model.pt").exists()


def test_a_run_of_fewer_epochs_than_val_every_keeps_its_last_weights(tiny_dataset, tmp_path):
    """A review: with val_every past the epochs run, no checkpoint was written at all, and
    the finished run stopped at 'checkpoints/last.ckpt: no such model file'."""
    run = tmp_path / "run"
    argv = ["train", "--data", str(tiny_dataset), "--out", str(run), *FAST]
    assert main([*argv, "max_epochs=2", "val_every=5"]) == 0
    assert (run / "model.pt").is_file()
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1
