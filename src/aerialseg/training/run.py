"""``aerialseg train``: a run folder with config, split, classes, checkpoints, logs, plot.

Run folder::

    config.yaml  split.json  classes.json       what was trained, on what
    checkpoints/best.ckpt  checkpoints/last.ckpt  chosen by validation mIoU / for --resume
    model.pt                                     the best weights as a self-describing model file
    logs/version_N/metrics.csv                   one per attempt (a resume adds one)
    metrics.csv  training.png                    all attempts merged, and their plot
"""

from __future__ import annotations

import contextlib
import csv
import functools
import importlib.util
import json
import logging
import os
import pickle
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, ParamSpec

import lightning as L
import torch
import yaml
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import (
    EarlyStopping,
    LearningRateMonitor,
    Timer,
    WeightAveraging,
)
from lightning.pytorch.loggers import CSVLogger, Logger
from lightning.pytorch.plugins.io import TorchCheckpointIO
from tqdm import tqdm

from aerialseg.data.catalog import LabelSpec, open_catalog
from aerialseg.data.classes import ClassTable
from aerialseg.errors import ConfigError, ModelFileError, library_reason
from aerialseg.evaluation.calibration import TemperatureSample, fit_on_images
from aerialseg.evaluation.metrics import metric_label
from aerialseg.evaluation.plots import plot_training
from aerialseg.files import sweep
from aerialseg.inference.predict import Predictor
from aerialseg.models.io import (
    LoadedModel,
    atomic_write,
    load_model,
    model_path,
    save_model,
)
from aerialseg.models.names import DEFAULT_DECODER_CHANNELS
from aerialseg.models.network import gflops_per_megapixel
from aerialseg.models.spec import ModelSpec
from aerialseg.models.transfer import check_source
from aerialseg.models.transfer import init_from as init_from_model
from aerialseg.training.config import TrainConfig, parse_duration
from aerialseg.training.datamodule import SegmentationDataModule
from aerialseg.training.folder import MovableCheckpoint, check_own_folder, held
from aerialseg.training.module import SegmentationTask, early_stopping_state
from aerialseg.training.progress import FINISH_SECONDS, TimeBudget, TrainingProgress
from aerialseg.training.pseudo import LABELLING_SHARE, pseudo_labelled
from aerialseg.training.summary import RunOutcome, data_options, format_summary
from aerialseg.yamltext import load_yaml


class _NoServiceTips(logging.Filter):
    """Drops Lightning's tips to install its cloud logging and model-registry services:
    printed on every run, and no help on an air-gapped machine."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("💡 Tip")


# rank_zero_info() logs through this logger.
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_NoServiceTips())


P = ParamSpec("P")


def _rank_zero() -> bool:
    """Whether this process is the first of a (DDP) run; Lightning sets the rank at launch."""
    return getattr(rank_zero_only, "rank", 0) == 0


def calibrated(
    model: LoadedModel,
    datamodule: SegmentationDataModule,
    sample: TemperatureSample | None = None,
    until: float | None = None,
) -> tuple[ModelSpec, int]:
    """The model's spec with the confidence temperature fitted on the validation images
    (evaluation/calibration.py), and how many images it was fitted on; unchanged without
    any, or if the user set one. ``sample``: the pixels the model's own validation drew,
    else the images are predicted again (with progress, until ``until``)."""
    items = datamodule.val_set.items if datamodule.val_set is not None else []
    if model.spec.confidence_temperature is not None or not items:
        return model.spec, 0
    if sample is not None and sample.images:
        temperature, images = sample.fit(), sample.images
    else:
        terminal = sys.stderr.isatty()
        with tqdm(
            total=len(items),
            desc="calibrating confidence",
            unit="image",
            file=sys.stderr,
            disable=not terminal,
        ) as bar:
            done = [0]

            def step(count: int) -> None:
                done[0] = count
                bar.update(count - bar.n)
                if not terminal:  # a log: a line an image (seconds to a minute each)
                    print(f"calibrating confidence: {count}/{len(items)} images", file=sys.stderr)

            predictor = Predictor(model.net, model.spec, model.classes)
            temperature = fit_on_images(predictor, items, until=until, progress=step)
            images = done[0]
    if temperature is None:
        return model.spec, 0
    return replace(model.spec, confidence_temperature=round(temperature, 4)), images


def describe_network(net: torch.nn.Module, cfg: TrainConfig) -> str:
    """One line on the network a run trains, in place of Lightning's module table (whose
    rows are mostly the loss functions, and whose FLOPs column reads 0)."""
    count = sum(p.numel() for p in net.parameters())
    params = f"{count / 1e6:.1f} M" if count >= 1_000_000 else f"{count / 1e3:.1f} K"
    if cfg.init_from:
        weights = f"from {cfg.init_from}"
    elif cfg.pretrained and cfg.model != "seed-unet":
        weights = "ImageNet encoder"
    else:
        weights = "from scratch"
    return (
        f"network: {cfg.model}, {weights}, {params} parameters,"
        f" {gflops_per_megapixel(net):.0f} GFLOPs per megapixel"
    )


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint under a temporary name and renames it when complete."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        atomic_write(
            path,
            lambda tmp: super(AtomicCheckpointIO, self).save_checkpoint(
                checkpoint, tmp, storage_options
            ),
        )


def merge_metrics(run_dir: Path) -> Path | None:
    """Every attempt's metrics.csv, in order, into run_dir/metrics.csv. A resumed attempt
    starts again at the epoch its checkpoint ended before, so an earlier attempt's rows of
    that epoch and later ones (work the interruption threw away) give way to its own: each
    epoch is listed once, as the run that went on computed it."""
    parts = sorted(
        (run_dir / "logs").glob("version_*/metrics.csv"),
        key=lambda p: int(p.parent.name.split("_")[1]),
    )
    rows: list[dict[str, str]] = []
    for part in parts:
        with part.open(newline="") as f:
            # an attempt stopped while its logger added a column leaves rows longer than the
            # header: DictReader keys their extra values None, which name no column
            attempt = [{k: v for k, v in row.items() if k is not None} for row in csv.DictReader(f)]
        epochs = [int(row["epoch"]) for row in attempt if row.get("epoch")]
        if epochs:
            rows = [row for row in rows if not row.get("epoch") or int(row["epoch"]) < min(epochs)]
        rows.extend(attempt)
    if not rows:
        return None
    keys = sorted({k for row in rows for k in row})
    out = run_dir / "metrics.csv"

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(out, write)
    return out


class WarmEMA(WeightAveraging):
    """Exponential moving average of the weights whose decay grows towards ``decay``:
    min(decay, (1 + n) / (10 + n)) at the n-th update, as TensorFlow's and timm's model EMA
    do. Lightning's EMAWeightAveraging has a fixed decay, which in a short run keeps the
    average close to the random start (after 150 steps, 0.995 ** 150 = 47 % of it)."""

    def __init__(self, decay: float):
        super().__init__(avg_fn=partial(warm_ema, decay=decay))

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return step_idx is not None  # after every optimiser step


def warm_ema(
    averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor, *, decay: float
) -> torch.Tensor:
    n = float(num_averaged)
    d = min(decay, (1 + n) / (10 + n))
    return d * averaged + (1 - d) * current


def _on_cpu(cfg: TrainConfig) -> bool:
    """Deterministic algorithms are cheap on CPU; on GPUs some ops have none."""
    return cfg.accelerator == "cpu" or (cfg.accelerator == "auto" and not torch.cuda.is_available())


def check_logger(cfg: TrainConfig) -> None:
    """Fail before anything is loaded or written if the chosen logger is not installed."""
    needs = {"tensorboard": ("tensorboard", "tensorboard"), "mlflow": ("mlflow", "mlflow")}
    if cfg.logger in needs:
        module, package = needs[cfg.logger]
        if importlib.util.find_spec(module) is None:
            raise ConfigError(
                f"logger={cfg.logger} needs {package}: pip install 'aerialseg[tracking]'"
                " (or logger=csv)"
            )


def _loggers(cfg: TrainConfig, run_dir: Path) -> list[Logger]:
    """The CSV log (metrics.csv, training.png come from it), and the chosen tracker beside
    it: TensorBoard in the same logs/version_N folder, or an MLflow file store in
    run_dir/mlruns. Both offline."""
    csv_logger = CSVLogger(save_dir=run_dir, name="logs")
    loggers: list[Logger] = [csv_logger]
    if cfg.logger == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(
            TensorBoardLogger(
                save_dir=run_dir, name="logs", version=csv_logger.version, default_hp_metric=False
            )
        )
    elif cfg.logger == "mlflow":
        from lightning.pytorch.loggers import MLFlowLogger

        # MLflow 3 keeps its file store (a folder, nothing to set up) only on request; a
        # database store would need SQLAlchemy and a migration step.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        loggers.append(
            MLFlowLogger(
                experiment_name="aerialseg",
                run_name=run_dir.name,
                tracking_uri=(run_dir / "mlruns").resolve().as_uri(),
            )
        )
    return loggers


def _trainer(cfg: TrainConfig, run_dir: Path, extra_callbacks: list) -> L.Trainer:
    ckpt_dir = run_dir / "checkpoints"
    callbacks = [
        MovableCheckpoint(
            dirpath=ckpt_dir,
            filename="best",
            monitor="val_miou",
            mode="max",
            save_top_k=1,
            enable_version_counter=False,
        ),
        # Lightning's save_last only writes alongside a new best; resume needs every epoch,
        # validated or not (a review: with val_every past the epochs run, none was written
        # and the finished run had no model)
        MovableCheckpoint(
            dirpath=ckpt_dir,
            filename="last",
            save_top_k=1,
            enable_version_counter=False,
            save_on_train_epoch_end=True,
        ),
        # Not strict: a run whose max_steps end before its first validation has no
        # val_miou to judge, and keeps its last weights.
        EarlyStopping(
            monitor="val_miou", mode="max", patience=cfg.early_stop_patience, strict=False
        ),
        LearningRateMonitor(logging_interval="epoch"),
    ]
    if cfg.ema_decay:
        # Swaps the average in for validation and checkpoints, and keeps it at the end.
        # Before the extra callbacks, so that they see this step's average.
        callbacks.append(WarmEMA(cfg.ema_decay))
    if cfg.max_time:
        # Counts training time, kept in checkpoints (a resume continues the budget), for
        # TimeBudget; the limit itself is TimeBudget's, which counts the whole command.
        callbacks.append(Timer(duration=None, verbose=False))
    callbacks += extra_callbacks
    strategy = "ddp" if cfg.devices * cfg.num_nodes > 1 else "auto"
    return L.Trainer(
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        strategy=strategy,
        precision=cfg.precision,  # type: ignore[arg-type]
        max_epochs=cfg.max_epochs,
        max_steps=cfg.max_steps,
        check_val_every_n_epoch=cfg.val_every,
        callbacks=callbacks,
        logger=_loggers(cfg, run_dir),
        enable_model_summary=False,  # describe_network() prints one line instead
        plugins=[AtomicCheckpointIO()],
        deterministic=_on_cpu(cfg) or None,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
        default_root_dir=run_dir,
    )


def _source_model(init_from: str) -> LoadedModel:
    """The model ``init_from`` names (a model file, or "default")."""
    path = model_path(init_from)  # a file, a run folder, or "default"
    try:
        return load_model(path)
    except ModelFileError as err:
        raise ConfigError(f"init_from: {err}") from None


def initial_weights(task: SegmentationTask, init_from: str) -> str:
    """Load ``init_from`` (a model file, or "default") into the task's network; returns a
    line saying what was carried over."""
    source = _source_model(init_from)
    transfer = init_from_model(task.net, task.cfg.model, task.classes, source)
    return transfer.describe(init_from)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the run (Lightning turns it into an exit of its own)."""


def check_checkpoint(path: Path, run_dir: Path) -> dict:
    """A checkpoint to resume from exists and loads, or one line says what to do instead;
    returns it (memory-mapped)."""
    best = path.with_name("best.ckpt")
    if not path.is_file() and path != best and best.is_file():
        raise ConfigError(
            f"{run_dir}: no checkpoints/{path.name} to resume from, but the run has"
            " checkpoints/best.ckpt: resume from it with --resume-from best"
        )
    if not path.is_file():
        raise ConfigError(f"{run_dir}: nothing to resume (no checkpoints/{path.name})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # noqa: BLE001 - any failure to read it means it is damaged
        if isinstance(err, pickle.UnpicklingError) and "Unsupported global" in str(err):
            # torch's weights-only reader met a class: code that would run as it loads
            raise ConfigError(
                f"{path}: the checkpoint holds objects other than weights, which could run"
                " code as they load; aerialseg writes none: refused"
            ) from None
        other = path.with_name("best.ckpt" if path.stem == "last" else "last.ckpt")
        instead = (  # the other checkpoint only where there is one (a run too short to
            # validate has no best.ckpt)
            f"resume from the other checkpoint with --resume-from {other.stem}, or "
            if other.is_file()
            else ""
        )
        raise ConfigError(
            f"{path}: the checkpoint is damaged ({library_reason(err)}); {instead}start"
            " again with another --out"
        ) from None


def _model_written_after(model: Path, checkpoint: dict) -> bool:
    """Whether ``model`` (a run's model.pt) was written after the training ``checkpoint``
    holds. A run stopped between its training and model.pt has none, or an earlier
    attempt's, of fewer steps (a second review); a model.pt of before "trained_steps"
    counts as written after, as such runs were taken to be."""
    if not model.is_file():
        return False
    try:
        meta = torch.load(model, map_location="cpu", weights_only=True, mmap=True)["meta"]
        steps = meta.get("trained_steps")
    except Exception:  # a damaged model.pt: the resume writes a new one
        return False
    return steps is None or int(steps) >= int(checkpoint.get("global_step", 0))


def check_not_finished(checkpoint: dict, cfg: TrainConfig, run_dir: Path) -> None:
    """Refuse to resume a run its limits have ended: it would train nothing (or, stopped
    early, one epoch to stop again) and yet fit its confidence again and rewrite model.pt
    (a review: the temperature changed, and the run's evaluation no longer matched its
    model file)."""
    steps = int(checkpoint.get("global_step", 0))
    loops = checkpoint.get("loops", {}).get("fit_loop", {})
    epochs = int(loops.get("epoch_progress", {}).get("current", {}).get("processed", 0))
    # an epoch max_steps ended before its last batch counts as processed; Lightning resumes
    # at the next (a review: 'reached max_epochs=1' read as false after 2 steps of 16)
    cut = loops.get("epoch_loop.batch_progress", {}).get("is_last_batch") is False
    waited = int((early_stopping_state(checkpoint) or {}).get("wait_count", 0))
    # every limit it reached, each with a value past it: raising one alone was refused for
    # the next (a review: max_steps=8 suggested, then max_epochs=2)
    reached, more = [], []
    if cfg.max_steps > 0 and steps >= cfg.max_steps:
        reached.append(f"max_steps={cfg.max_steps} ({steps} steps)")
        more.append(f"max_steps={steps + cfg.max_steps}")
    if epochs >= cfg.max_epochs:  # at least 1: the config refuses others
        short = ", the last cut short by max_steps; a resumed run starts the next" * cut
        reached.append(f"max_epochs={cfg.max_epochs} ({epochs} epochs{short})")
        more.append(f"max_epochs={epochs + cfg.max_epochs}")
    if waited >= cfg.early_stop_patience:  # it would stop at its next validation
        reached.append(
            f"early_stop_patience={cfg.early_stop_patience} ({waited} validation(s) without gain)"
        )
        more.append(f"early_stop_patience={waited + cfg.early_stop_patience}")
    if not reached:
        return
    them = "them" if len(reached) > 1 else "it"
    raise ConfigError(
        f"{run_dir} is finished: it reached {' and '.join(reached)}; to train on, raise {them},"
        f" e.g. --resume {' '.join(more)}"
    )


# Settings a checkpoint's tensors (the network's, the optimiser's) are shaped by: a resumed
# run cannot change them.
NETWORK_SETTINGS = (
    "model",
    "base_width",
    "decoder_channels",
    "downsample",
    "optimizer",
    "encoder_lr_factor",  # its parameter groups (a review: 1 -> 0.1 broke every --resume)
)


def check_same_network(cfg: TrainConfig, run_dir: Path) -> None:
    """Refuse overrides that reshape what the run's checkpoint holds, before its config
    is rewritten: the run then stays resumable as it was."""
    try:
        saved = TrainConfig.from_dict(load_yaml((run_dir / "config.yaml").read_text("utf-8")))
    except (OSError, ValueError, yaml.YAMLError):  # none, or unreadable: the checkpoint says
        return
    changed = []
    for name in NETWORK_SETTINGS:
        before, after = (_network_value(config, name, cfg.model) for config in (saved, cfg))
        if before != after:
            changed.append(f"{name} {before} -> {after}")
    # the first convolution learned on these bands in this order (a review: [3,2,1] ->
    # [1,2,3] resumed, training on swapped inputs); None reads bands 1-3
    if (saved.bands or [1, 2, 3]) != (cfg.bands or [1, 2, 3]):
        changed.append(f"bands {saved.bands} -> {cfg.bands}")
    if changed:
        raise ConfigError(
            f"--resume continues {run_dir}'s network as it was; {', '.join(changed)} cannot"
            " change: drop those settings, or start a new run with another --out"
        )


def _network_value(cfg: TrainConfig, name: str, model: str):
    """A network setting as ``model`` is built from it: no decoder_channels is that
    architecture's own widths (a review: writing those out refused the resume)."""
    value = getattr(cfg, name)
    if name == "decoder_channels" and value is None:
        return DEFAULT_DECODER_CHANNELS.get(model)
    return value


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity, where the system has one: a
    container's or a job's share; else every core)."""
    if hasattr(os, "sched_getaffinity"):  # Linux only: not macOS or Windows
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def check_settings_here(cfg: TrainConfig, classes: ClassTable, resume: bool) -> None:
    """Settings that need the class table or this machine, checked before data is read."""
    if cfg.class_weights is not None and len(cfg.class_weights) != classes.num_classes:
        raise ConfigError(
            f"class_weights has {len(cfg.class_weights)} weight(s) for {classes.num_classes}"
            f" classes ({', '.join(classes.names)})"
        )
    if cfg.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"accelerator={cfg.accelerator}: this machine has no CUDA GPU that torch can use;"
            " give accelerator=auto or cpu"
        )
    cores = usable_cores()
    if _on_cpu(cfg) and cfg.devices > cores:
        raise ConfigError(  # each is a process with its own copy of the model and data
            f"devices={cfg.devices}: this machine gives the run {cores} CPU core(s); give at"
            " most that many processes"
        )
    on_cuda = cfg.accelerator in ("gpu", "cuda") or not _on_cpu(cfg) and cfg.accelerator == "auto"
    if on_cuda and cfg.devices > torch.cuda.device_count():
        raise ConfigError(
            f"devices={cfg.devices}: this machine has {torch.cuda.device_count()} GPU(s)"
        )
    path = cfg.init_from
    if path and not resume:  # said before images are read or pseudo-labelled (a missing
        # file too: load_model says so)
        check_source(_source_model(path), cfg.model, cfg.spec.in_channels)


def _holding_out(run: Callable[P, Path]) -> Callable[P, Path]:
    """``run`` (train) holding its ``out`` folder: one train a folder at a time (the first
    process of a DDP run holds it for all)."""

    @functools.wraps(run)
    def holding(*args: P.args, **kwargs: P.kwargs) -> Path:
        out = Path(kwargs["out"] if "out" in kwargs else args[2])  # type: ignore[arg-type]
        with held(out) if _rank_zero() else contextlib.nullcontext():
            return run(*args, **kwargs)

    return holding


@_holding_out
def train(
    cfg: TrainConfig,
    data: str | Path,
    out: str | Path,
    *,
    split_file: str | None = None,
    classes: ClassTable,
    labels: LabelSpec | None = None,
    resume: bool = False,
    resume_from: str = "last",
    extra_callbacks: list | None = None,
    extra_transform: Callable | None = None,
    started: float | None = None,
) -> Path:
    """Train into ``out`` and return the path of the best model file.

    With ``resume`` the run folder's last checkpoint (``resume_from="best"``: its best) is
    continued; cfg should then be the saved config (with any overrides), and ``classes``
    and the split are read back from it. ``started``: the ``time.monotonic()`` that
    ``max_time`` counts from (the command's start); None: now. ``labels``: ``data`` is
    image rasters labelled by these polygons or this class raster (data/catalog.py).
    """
    started = time.monotonic() if started is None else started
    run_dir = Path(out)
    last = run_dir / "checkpoints" / "last.ckpt"
    start = run_dir / "checkpoints" / f"{resume_from}.ckpt"
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--out {run_dir}: a file; give the run folder to write")
    if resume:
        checkpoint = check_checkpoint(start, run_dir)
        # one stopped after training but before model.pt (a review: its printed resume
        # was refused as finished) ends now: its last phase writes model.pt
        if _model_written_after(run_dir / "model.pt", checkpoint):
            check_not_finished(checkpoint, cfg, run_dir)
        check_same_network(cfg, run_dir)
    elif last.exists():
        raise ConfigError(
            f"{run_dir} already holds a run; pass --resume to continue it or choose another --out"
        )
    elif (run_dir / "model.pt").exists():  # a finished run whose checkpoints were removed
        raise ConfigError(
            f"{run_dir} already holds a model (model.pt) that this run would replace; choose"
            " another --out"
        )
    else:
        check_own_folder(run_dir)
    check_settings_here(cfg, classes, resume)
    check_logger(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    catalog = open_catalog(data, classes, labels, cfg.pixel_size, pixel_flag="pixel_size=")
    split = catalog.split(run_dir / "split.json" if resume else split_file)
    budget_s = parse_duration(cfg.max_time) if cfg.max_time else None
    labelling_until = started + budget_s * LABELLING_SHARE if budget_s is not None else None
    pseudo = pseudo_labelled(cfg, classes, labelling_until)  # unlabelled=: self-training
    datamodule = SegmentationDataModule(catalog, split, cfg, extra_transform, pseudo)
    if _rank_zero() and not sys.stderr.isatty():
        # A log gets one line instead of the bars' redraws; on stdout, so that a bad image's
        # error stays the one line on stderr.
        print(f"loading {len(split.train)} training and {len(split.val)} validation images")
    datamodule.setup("fit")  # every image decoded and checked before anything is written
    padding = datamodule.crop_padding_note()  # and crops that would be mostly padding
    task = SegmentationTask(cfg.to_dict(), classes.to_dict())
    transfer = None
    if cfg.init_from and not resume:  # a resumed run's checkpoint holds its weights
        transfer = initial_weights(task, cfg.init_from)  # before writing: it may not fit
    if _rank_zero():
        run_dir.mkdir(parents=True, exist_ok=True)
        for folder in (run_dir, run_dir / "checkpoints"):
            sweep(folder)  # checkpoints half-written by a run killed before this one
        atomic_write(run_dir / "config.yaml", lambda tmp: cfg.save(Path(tmp)))
        atomic_write(
            run_dir / "classes.json",
            lambda tmp: Path(tmp).write_text(json.dumps(classes.to_dict(), indent=2)),
        )
        atomic_write(run_dir / "split.json", lambda tmp: split.save(Path(tmp)))
    if _rank_zero():
        print(describe_network(task.net, cfg), flush=True)
        if transfer:
            print(transfer, flush=True)
        if padding:
            print(padding, flush=True)
    budget = None
    if budget_s is not None:
        side = cfg.crop_size if cfg.input_mode == "crop" else cfg.resize_to
        budget = TimeBudget(budget_s, started, cfg.batch_size * side * side)
    progress = TrainingProgress(budget, started)
    callbacks = [*([budget] if budget else []), progress, *(extra_callbacks or [])]
    trainer = _trainer(cfg, run_dir, callbacks)
    with warnings.catch_warnings():
        # Lightning 2.6 still uses the LeafSpec that torch 2.14 deprecates; nothing a
        # user can act on.
        warnings.filterwarnings("ignore", r".*isinstance\(treespec, LeafSpec\)", FutureWarning)
        # A run that ends before its first validation (a few max_steps, a spent budget)
        # says so in its summary; Lightning's "could not find the monitored key ...
        # HINT: Did you call log" is about code the user did not write.
        warnings.filterwarnings("ignore", r".*could not find the monitored key")
        try:
            trainer.fit(task, datamodule=datamodule, ckpt_path=str(start) if resume else None)
        except SystemExit:  # how Lightning ends a run that Ctrl-C stopped
            if trainer.interrupted:
                raise TrainingInterrupted from None
            raise
    if trainer.interrupted:
        raise TrainingInterrupted
    model_path = run_dir / "model.pt"
    if trainer.is_global_zero:
        merge_metrics(run_dir)
        plot_training(run_dir / "metrics.csv", run_dir / "training.png")
        checkpoints = trainer.checkpoint_callback
        best = Path(checkpoints.best_model_path or last)  # type: ignore[union-attr]
        loaded = load_model(best)
        score = checkpoints.best_model_score  # type: ignore[union-attr]
        sample, present = None, None
        # pixels from the validation of these very weights (not when they were validated
        # before a resume)
        kept = task.best_sample
        if kept is not None and score is not None and abs(kept[0] - float(score)) < 1e-6:
            sample, present = kept[1], task.best_present
        until = budget.deadline - FINISH_SECONDS if budget else None
        out_of_time = until is not None and sample is None and time.monotonic() >= until
        calibration_parts = 0
        if not out_of_time:  # else predict --confidence reports the network's probabilities
            loaded.spec, calibration_parts = calibrated(loaded, datamodule, sample, until)
        unit = "block(s)" if split.blocks is not None else "image(s)"
        meta = {
            **loaded.meta,
            "val_miou": float(score) if score is not None else None,
            "split": split.to_dict(),
            "trained_on": os.fspath(data),
            "trained_steps": trainer.global_step,  # what a resume compares (see below)
        }
        # the recipe as the run's config.yaml has it, with the fitted temperature
        recipe = {**loaded.recipe, "confidence_temperature": loaded.spec.confidence_temperature}
        save_model(model_path, loaded.net, loaded.spec, loaded.classes, meta, recipe=recipe)
        outcome = RunOutcome(
            run_dir=run_dir,
            data=os.fspath(data),
            # of a budget: the earlier attempts' training too, as the progress line counts
            seconds=time.monotonic() - started + (budget.spent_before if budget else 0.0),
            budget=budget_s,
            steps=trainer.global_step,
            stopped_by=_stop_reason(trainer, budget),
            best_miou=float(score) if score is not None else None,
            best_step=loaded.meta.get("global_step"),
            miou_name=metric_label(f"miou{classes.num_scored}", classes.num_classes, present),
            temperature=loaded.spec.confidence_temperature,
            calibrated_on=f"{calibration_parts} validation {unit}",
            logger=cfg.logger,
            out_of_time=out_of_time or bool(budget and budget.skipped_validation),
            data_options=data_options(labels, cfg.resize_masks),
            held_out=next((part for part in ("test", "val") if split.parts(part)), "train"),
        )
        print(format_summary(outcome, catalog.example_image(split)), flush=True)
    return model_path


def _stop_reason(trainer: L.Trainer, budget: TimeBudget | None) -> str:
    early = next((c for c in trainer.callbacks if isinstance(c, EarlyStopping)), None)  # type: ignore[attr-defined]
    if budget is not None and budget.stopped:
        return "the time budget (max_time)"
    if early is not None and early.stopped_epoch:
        return f"early stopping (no val mIoU gain in {early.patience} validation(s))"
    if trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps:
        return f"max_steps={trainer.max_steps}"
    return f"max_epochs={trainer.max_epochs}"
