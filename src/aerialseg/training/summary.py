"""The lines a run ends with: how long it took, how good the model is, what was written,
and the commands to run next, ready to copy."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aerialseg.data.catalog import LabelSpec
from aerialseg.options import as_flags, command_line
from aerialseg.training.progress import clock


@dataclass
class RunOutcome:
    run_dir: Path
    data: str
    seconds: float  # the whole command's wall time
    budget: float | None  # max_time in seconds
    steps: int
    stopped_by: str  # why training ended, in words
    best_miou: float | None  # the shipped weights' validation mIoU
    best_step: int | None
    miou_name: str  # "mIoU over all 6 classes"
    temperature: float | None
    calibrated_on: str  # "2 validation image(s)", "4 validation block(s)"
    logger: str
    out_of_time: bool = False  # the budget left no time to validate or calibrate
    # how the data was read (data_options): a command over the same data needs them
    data_options: dict[str, Any] = field(default_factory=dict)
    held_out: str = "test"  # the split's part to score: test, else val (--test 0), else train


def data_options(labels: LabelSpec | None, resize_masks: bool) -> dict[str, Any]:
    """How a run read its data, as the options of ``train`` and ``evaluate`` that say it,
    with their values as given."""
    found: dict[str, Any] = {}
    if labels is not None:
        found = {
            "labels": labels.path,
            "label_field": labels.field,
            "label_crs": labels.crs,
            "labelled_area": labels.labelled_area,
        }
    return found | {"resize_masks": resize_masks}


def _files(outcome: RunOutcome) -> list[tuple[str, str]]:
    run = outcome.run_dir
    found = [
        ("model.pt", "the best weights with their settings and classes: predict, evaluate, serve"),
        ("checkpoints/", _checkpoints(run / "checkpoints")),
        ("metrics.csv", "loss, validation mIoU and learning rate by step"),
        ("training.png", "loss and validation mIoU curves"),
        ("config.yaml", "the settings (usable as --config), classes.json, split.json"),
    ]
    if outcome.logger == "tensorboard":
        found.append(("logs/", "TensorBoard event files, one folder per attempt"))
    if outcome.logger == "mlflow":
        found.append(("mlruns/", "MLflow file store (experiment 'aerialseg')"))
    return [(name, what) for name, what in found if (run / name.rstrip("/")).exists()]


def _checkpoints(folder: Path) -> str:
    """What a run's checkpoints folder holds (a run that ended before its first
    validation has no best.ckpt)."""
    best = "best.ckpt, and " if (folder / "best.ckpt").exists() else ""
    return f"{best}last.ckpt that --resume continues from"


def next_commands(outcome: RunOutcome, image: str | None) -> list[str]:
    """The commands to run next, shell-quoted; ``evaluate`` with every option that says
    how the run read its data (the class table is the model's)."""
    q = shlex.quote
    run, model = outcome.run_dir, str(outcome.run_dir / "model.pt")
    evaluate = ["aerialseg", "evaluate", model, "--data", outcome.data]
    evaluate += ["--split-file", str(run / "split.json"), *as_flags(outcome.data_options)]
    if outcome.held_out != "test":  # evaluate's default part, which this split lacks
        evaluate += ["--split", outcome.held_out]
    predict = ["aerialseg", "predict", image or "YOUR_IMAGE.tif", "--model", model]
    predict += ["--out", str(run / "predictions")]
    unseen = "" if outcome.held_out != "train" else "  # no image held out: training scores"
    commands = [command_line(evaluate) + unseen, command_line(predict)]
    if outcome.logger == "tensorboard":
        # one string: a flag of another program is named with it (test_messages.py)
        tensorboard = "tensorboard --logdir".split()  # noqa: SIM905
        commands.append(command_line([*tensorboard, run / "logs"]))
    if outcome.logger == "mlflow":
        uri = (run / "mlruns").resolve().as_uri()
        commands.append(
            f"MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri {q(uri)}"
            "  # the UI needs the full mlflow package"
        )
    return commands


def format_summary(outcome: RunOutcome, image: str | None) -> str:
    budget = f" of the {clock(outcome.budget)} budget" if outcome.budget is not None else ""
    lines = [
        f"done in {clock(outcome.seconds)}{budget}: {outcome.steps} steps,"
        f" stopped by {outcome.stopped_by}"
    ]
    why = "the budget left no time for it" if outcome.out_of_time else "training ended first"
    if outcome.best_miou is not None:
        lines.append(
            f"best validation {outcome.miou_name} {outcome.best_miou:.4f}"
            f" (step {outcome.best_step}); model.pt holds those weights"
        )
        if outcome.out_of_time and (outcome.best_step or 0) < outcome.steps:
            lines.append(f"steps after {outcome.best_step} were not validated ({why})")
    else:
        lines.append(f"not validated ({why}); model.pt holds the last weights")
    if outcome.temperature is not None:
        lines.append(
            f"confidence temperature {outcome.temperature:g}, fitted on {outcome.calibrated_on}"
        )
    elif outcome.out_of_time:
        lines.append(
            "confidence not calibrated (no time left): predict --confidence reports the"
            " network's own probabilities"
        )
    lines.append(f"written to {outcome.run_dir}/:")
    files = _files(outcome)
    width = max(len(name) for name, _ in files) if files else 0
    lines += [f"  {name.ljust(width)}  {what}" for name, what in files]
    lines.append("next:")
    lines += [f"  {command}" for command in next_commands(outcome, image)]
    return "\n".join(lines)
