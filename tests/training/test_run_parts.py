"""training/run.py's parts that need no training run: the trainer it builds, its
checkpoints, metrics, weight average, calibration, and what it says and refuses."""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import logging
import math
import os
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.callbacks import (
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
    Timer,
)
from lightning.pytorch.loggers import CSVLogger

from aerialseg.data.classes import DUBAI_CLASSES
from aerialseg.data.scenes import LabelledImage
from aerialseg.errors import ConfigError
from aerialseg.evaluation.calibration import TemperatureSample
from aerialseg.models.io import load_model
from aerialseg.models.network import gflops_per_megapixel
from aerialseg.training import run
from aerialseg.training.config import resolve_config
from aerialseg.training.module import SegmentationTask
from aerialseg.training.progress import TimeBudget
from tests.helpers.models import FAST, write_tiny_model


def _config(*settings: str):
    return resolve_config("default", None, [*FAST, *settings])


def test_the_network_line_names_its_weights_size_and_cost():
    cfg = _config()
    task = SegmentationTask(cfg.to_dict(), DUBAI_CLASSES.to_dict())
    count = sum(p.numel() for p in task.net.parameters())
    assert count < 1_000_000
    line = run.describe_network(task.net, cfg)
    gflops = f"{gflops_per_megapixel(task.net):.0f}"
    assert line == (
        f"network: seed-unet, from scratch, {count / 1e3:.1f} K parameters, {gflops} GFLOPs"
        " per megapixel"
    )
    assert ", from my.pt, " in run.describe_network(task.net, _config("init_from=my.pt"))
    lite = resolve_config("default", None, ["model=fpn-effnet-lite0", "pretrained=false"])
    net = SegmentationTask(lite.to_dict(), DUBAI_CLASSES.to_dict()).net
    millions = sum(p.numel() for p in net.parameters()) / 1e6
    assert f"from scratch, {millions:.1f} M parameters" in run.describe_network(net, lite)
    # a million parameters exactly: written in millions
    million = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 1))  # 24 parameters
    million.register_parameter("rest", torch.nn.Parameter(torch.zeros(1_000_000 - 24)))
    assert ", 1.0 M parameters, " in run.describe_network(million, lite)
    million.rest = torch.nn.Parameter(torch.zeros(1_050_000 - 24))  # 1.05 M: rounded up
    assert ", 1.1 M parameters, " in run.describe_network(million, lite)
    imagenet = dataclasses.replace(lite, pretrained=True)
    assert "fpn-effnet-lite0, ImageNet encoder," in run.describe_network(net, imagenet)
    seed = dataclasses.replace(cfg, pretrained=True)  # the seed U-Net has no ImageNet weights
    assert ", from scratch, " in run.describe_network(task.net, seed)


def test_a_checkpoint_is_written_whole_or_not_at_all(tmp_path):
    io = run.AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 3, "weights": torch.ones(2)}, path)
    assert torch.load(path, weights_only=True)["step"] == 3
    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever pickling raises
        io.save_checkpoint({"step": 4, "unsavable": lambda: 0}, path)
    assert torch.load(path, weights_only=True)["step"] == 3  # the old one stands
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary left


def _metrics(folder: Path, rows: list[dict]) -> None:
    folder.mkdir(parents=True)
    with (folder / "metrics.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=sorted({k for row in rows for k in row}))
        writer.writeheader()
        writer.writerows(rows)


def test_attempts_metrics_merge_in_version_order_each_epoch_once(tmp_path):
    assert run.merge_metrics(tmp_path) is None  # no log yet
    logs = tmp_path / "logs"
    _metrics(logs / "version_2", [{"epoch": "3", "val_miou": "0.6"}])
    _metrics(logs / "version_10", [{"epoch": "4", "val_miou": "0.7", "lr": "0.1"}])
    first = [{"epoch": "2", "val_miou": "0.4"}, {"epoch": "3", "val_miou": "0.5"}, {"step": "9"}]
    _metrics(logs / "version_1", first)
    merged = run.merge_metrics(tmp_path)
    assert merged == tmp_path / "metrics.csv"
    with merged.open(newline="") as f:
        rows = list(csv.DictReader(f))
    # version 2 began again at epoch 3: version 1's epoch 3 gives way; 10 comes after 2
    assert [(r["epoch"], r["val_miou"]) for r in rows] == [
        ("2", "0.4"), ("", ""), ("3", "0.6"), ("4", "0.7")
    ]  # fmt: skip
    assert rows[1]["step"] == "9" and rows[3]["lr"] == "0.1"
    assert list(rows[0]) == ["epoch", "lr", "step", "val_miou"]


def test_an_interrupted_attempts_metrics_with_rows_longer_than_their_header_merge(tmp_path):
    """Ctrl-C can stop Lightning's CSV logger after a row with a new column and before
    the header that names it: the merge keeps the named values and drops the rest."""
    folder = tmp_path / "logs" / "version_0"
    folder.mkdir(parents=True)
    (folder / "metrics.csv").write_text("epoch,step\n0,1\n0,2,0.5\n")
    with run.merge_metrics(tmp_path).open(newline="") as f:  # type: ignore[union-attr]
        rows = list(csv.DictReader(f))
    assert rows == [{"epoch": "0", "step": "1"}, {"epoch": "0", "step": "2"}]


def test_the_weight_average_warms_up_to_its_decay():
    averaged, current = torch.tensor([10.0]), torch.tensor([0.0])
    for n, decay in ((0, 0.1), (8, 0.5), (1000, 0.99)):
        found = run.warm_ema(averaged, current, torch.tensor(n), decay=0.99)
        assert float(found) == pytest.approx(10 * decay)
    assert float(run.warm_ema(averaged, current, torch.tensor(0), decay=0.05)) == pytest.approx(0.5)
    ema = run.WarmEMA(0.9)
    assert ema.should_update(step_idx=5) and ema.should_update(step_idx=0)
    assert not ema.should_update(epoch_idx=1)


def test_deterministic_algorithms_where_the_run_is_on_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert run._on_cpu(_config("accelerator=cpu")) and run._on_cpu(_config("accelerator=auto"))
    assert not run._on_cpu(_config("accelerator=gpu"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert not run._on_cpu(_config("accelerator=auto"))
    assert run._on_cpu(_config("accelerator=cpu"))


@pytest.mark.parametrize(
    ("logger", "package"), [("tensorboard", "tensorboard"), ("mlflow", "mlflow")]
)
def test_a_tracker_that_is_missing_is_named_before_anything_runs(logger, package, monkeypatch):
    found = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == package else found(name)
    )
    with pytest.raises(ConfigError) as err:
        run.check_logger(_config(f"logger={logger}"))
    assert str(err.value) == (
        f"logger={logger} needs {package}: pip install 'aerialseg[tracking]' (or logger=csv)"
    )
    run.check_logger(_config("logger=csv"))
    other = "mlflow" if logger == "tensorboard" else "tensorboard"
    if found(other) is not None:
        run.check_logger(_config(f"logger={other}"))


def test_the_csv_log_and_the_chosen_tracker_beside_it(tmp_path):
    (only,) = run._loggers(_config("logger=csv"), tmp_path)
    assert isinstance(only, CSVLogger) and Path(only.log_dir).parent == tmp_path / "logs"
    if importlib.util.find_spec("tensorboard"):
        csv_log, board = run._loggers(_config("logger=tensorboard"), tmp_path)
        assert type(board).__name__ == "TensorBoardLogger"
        assert board.log_dir == csv_log.log_dir  # the same logs/version_N folder
    if importlib.util.find_spec("mlflow"):
        _, flow = run._loggers(_config("logger=mlflow"), tmp_path / "run")
        assert type(flow).__name__ == "MLFlowLogger"
        assert flow._tracking_uri == (tmp_path / "run" / "mlruns").resolve().as_uri()
        assert flow._experiment_name == "aerialseg" and flow._run_name == "run"


def test_the_trainer_keeps_best_and_last_stops_early_and_averages(tmp_path):
    extra = TimeBudget(60, 0.0, 1)
    cfg = _config("early_stop_patience=4", "ema_decay=0.9", "max_time=00:01:00", "max_steps=7",
                  "max_epochs=3", "val_every=2")  # fmt: skip
    trainer = run._trainer(cfg, tmp_path, [extra])
    kinds = [type(c) for c in trainer.callbacks]
    best, last = [c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)]
    assert (best.dirpath, best.filename, best.monitor, best.mode) == (
        str(tmp_path / "checkpoints"), "best", "val_miou", "max"
    )  # fmt: skip
    assert (last.filename, last.monitor, best.save_top_k, last.save_top_k) == ("last", None, 1, 1)
    (early,) = [c for c in trainer.callbacks if isinstance(c, EarlyStopping)]
    assert (early.monitor, early.mode, early.patience, early.strict) == (
        "val_miou",
        "max",
        4,
        False,
    )
    assert LearningRateMonitor in kinds and Timer in kinds and run.WarmEMA in kinds
    assert kinds.index(run.WarmEMA) < kinds.index(TimeBudget)  # the extras see the average
    assert extra in trainer.callbacks
    assert (trainer.max_steps, trainer.max_epochs, trainer.check_val_every_n_epoch) == (7, 3, 2)
    assert trainer.num_sanity_val_steps == 0 and trainer.log_every_n_steps == 1
    assert isinstance(trainer.strategy.checkpoint_io, run.AtomicCheckpointIO)
    assert trainer.default_root_dir == str(tmp_path)
    plain = run._trainer(_config("ema_decay=0"), tmp_path / "b", [])
    assert not any(isinstance(c, (run.WarmEMA, Timer)) for c in plain.callbacks)
    assert type(plain.strategy).__name__ == "SingleDeviceStrategy"


def test_initial_weights_come_from_a_model_file_or_the_bundled_one(
    tiny_model, tmp_path, monkeypatch
):
    cfg = _config()
    task = SegmentationTask(cfg.to_dict(), DUBAI_CLASSES.to_dict())
    said = run.initial_weights(task, str(tiny_model))
    assert str(tiny_model) in said
    source = load_model(tiny_model).net.state_dict()
    assert all(torch.equal(v, source[k]) for k, v in task.net.state_dict().items())
    monkeypatch.setattr("aerialseg.models.io.bundled_model_path", lambda: tiny_model)
    assert "default" in run.initial_weights(task, "default")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a model")
    with pytest.raises(ConfigError, match=r"^init_from: .*broken\.pt"):
        run.initial_weights(task, str(broken))


class Foreign:
    """An object that a checkpoint of aerialseg never holds: its class is code to run."""


def test_rank_zero_is_the_first_process_or_the_only_one(monkeypatch):
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    monkeypatch.setattr(rank_zero_only, "rank", 1, raising=False)
    assert not run._rank_zero()
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    assert run._rank_zero()
    monkeypatch.delattr(rank_zero_only, "rank")
    assert run._rank_zero()  # before Lightning numbers the processes: a single one


def test_a_checkpoint_holding_code_is_refused_before_it_is_resumed(tmp_path):
    """A checkpoint is read as weights only: one that would run code as it loads (a
    pickled class) is refused, as a damaged one is."""
    (tmp_path / "checkpoints").mkdir()
    last = tmp_path / "checkpoints" / "last.ckpt"
    torch.save({"state_dict": {}, "payload": Foreign()}, last)
    with pytest.raises(ConfigError) as err:
        run.check_checkpoint(last, tmp_path)
    assert str(err.value) == (
        f"{last}: the checkpoint holds objects other than weights, which could run code as"
        " they load; aerialseg writes none: refused"
    )
    # a pickle that is damaged, not foreign: the reader refuses it too, as damaged
    torch.save({"state_dict": {}}, last)
    with zipfile.ZipFile(last) as whole:
        parts = {name: whole.read(name) for name in whole.namelist()}
    with zipfile.ZipFile(last, "w") as damaged:
        for name, data in parts.items():
            damaged.writestr(name, b"\x80\x02garbage" if name.endswith("data.pkl") else data)
    with pytest.raises(ConfigError, match="the checkpoint is damaged"):
        run.check_checkpoint(last, tmp_path)
    # the other checkpoint is named only where there is one: a run too short to validate
    # has no best.ckpt, and --resume-from best then found nothing to resume
    with pytest.raises(ConfigError) as err:
        run.check_checkpoint(last, tmp_path)
    assert str(err.value).endswith("); start again with another --out")
    (tmp_path / "checkpoints" / "best.ckpt").write_bytes(b"")
    with pytest.raises(ConfigError) as err:
        run.check_checkpoint(last, tmp_path)
    assert str(err.value).endswith(
        "); resume from the other checkpoint with --resume-from best, or start again with"
        " another --out"
    )


def test_a_run_folder_is_checked_before_anything_is_read(tmp_path):
    """train() refuses a folder that holds a run (without resume) and one that has none
    to resume, naming the folder, before it reads any data."""
    out = tmp_path / "my run"
    nowhere = tmp_path / "no data"
    with pytest.raises(ConfigError) as err:
        run.train(_config(), nowhere, out, classes=DUBAI_CLASSES, resume=True)
    assert str(err.value) == f"{out}: nothing to resume (no checkpoints/last.ckpt)"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "last.ckpt").write_bytes(b"a run")
    with pytest.raises(ConfigError) as err:
        run.train(_config(), nowhere, out, classes=DUBAI_CLASSES)
    expected = f"{out} already holds a run; pass --resume to continue it or choose another --out"
    assert str(err.value) == expected
    # found by a review: a finished run whose checkpoints were deleted was trained over
    (out / "checkpoints" / "last.ckpt").unlink()
    (out / "model.pt").write_bytes(b"a model")
    with pytest.raises(ConfigError, match="already holds a model .model.pt. that this run would"):
        run.train(_config(), nowhere, out, classes=DUBAI_CLASSES)
    assert (out / "model.pt").read_bytes() == b"a model"


def test_the_runs_seed_is_set_before_its_data_is_read(tmp_path, monkeypatch):
    """seed= seeds every random stream first: the data and the network that follow
    are drawn from it (here the data is missing, so the run stops just after)."""
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(0)
    monkeypatch.delenv("PL_SEED_WORKERS", raising=False)
    said: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = said.append  # type: ignore[method-assign]
    logging.getLogger("lightning.fabric.utilities.seed").addHandler(handler)
    with pytest.raises(Exception, match="no data"):
        run.train(
            _config("seed=123"), tmp_path / "no data", tmp_path / "run", classes=DUBAI_CLASSES
        )
    logging.getLogger("lightning.fabric.utilities.seed").removeHandler(handler)
    assert torch.equal(torch.rand(4), expected)
    assert os.environ["PL_SEED_WORKERS"] == "1"  # data loader workers are seeded from it too
    assert not said  # Lightning's "Seed set to 123" is not the user's business


def test_resume_needs_a_checkpoint_that_loads(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    last, best = folder / "last.ckpt", folder / "best.ckpt"
    with pytest.raises(ConfigError) as err:
        run.check_checkpoint(last, tmp_path)
    assert str(err.value) == f"{tmp_path}: nothing to resume (no checkpoints/last.ckpt)"
    torch.save({"step": 1}, best)
    with pytest.raises(ConfigError, match="resume from it with --resume-from best$"):
        run.check_checkpoint(last, tmp_path)
    run.check_checkpoint(best, tmp_path)
    last.write_bytes(b"damaged")
    with pytest.raises(ConfigError, match=r"damaged .* with --resume-from best, or start again"):
        run.check_checkpoint(last, tmp_path)
    best.write_bytes(b"damaged")
    with pytest.raises(ConfigError, match="with --resume-from last, or"):
        run.check_checkpoint(best, tmp_path)


def test_the_summary_says_what_stopped_the_run():
    early = EarlyStopping(monitor="val_miou", patience=5)

    def trainer(step=3, max_steps=-1, stopped_epoch=0):
        early.stopped_epoch = stopped_epoch
        return SimpleNamespace(
            callbacks=[early], max_steps=max_steps, global_step=step, max_epochs=9
        )

    budget = TimeBudget(60, 0.0, 1)
    assert run._stop_reason(trainer(), None) == "max_epochs=9"
    assert run._stop_reason(trainer(step=10, max_steps=10), None) == "max_steps=10"
    assert run._stop_reason(trainer(step=9, max_steps=10), None) == "max_epochs=9"
    said = "early stopping (no val mIoU gain in 5 validation(s))"
    assert run._stop_reason(trainer(stopped_epoch=4, step=10, max_steps=10), budget) == said
    budget.stopped = True
    assert run._stop_reason(trainer(stopped_epoch=4), budget) == "the time budget (max_time)"


def test_the_temperature_is_fitted_on_validation_unless_set_or_none(tiny_model, capsys):
    model = load_model(tiny_model)
    model.spec = dataclasses.replace(model.spec, confidence_temperature=None)  # not fitted yet
    torch.manual_seed(0)
    mask = torch.randint(0, 6, (48, 48))
    items = [LabelledImage("a", (torch.rand(3, 48, 48) * 255).to(torch.uint8), mask)]
    datamodule = SimpleNamespace(val_set=SimpleNamespace(items=items))
    spec, images = run.calibrated(model, datamodule)  # the images predicted again
    assert images == 1 and spec.confidence_temperature is not None
    assert spec.confidence_temperature == round(spec.confidence_temperature, 4)
    assert "calibrating confidence: 1/1 images" in capsys.readouterr().err  # not a terminal
    # out of time: the first image only (the summary says how many)
    twice = SimpleNamespace(val_set=SimpleNamespace(items=items * 2))
    assert run.calibrated(model, twice)[1] == 2
    assert run.calibrated(model, twice, None, time.monotonic() - 1)[1] == 1
    capsys.readouterr()
    sample = TemperatureSample()
    # logits that lean to the true class, noisy: a temperature inside (0.05, 20), with more
    # than 4 decimals before rounding
    logits = torch.nn.functional.one_hot(mask, 6).permute(2, 0, 1) * 2 + torch.randn(6, 48, 48)
    sample.add(torch.softmax(logits, 0), mask)
    fitted, images = run.calibrated(model, datamodule, sample)
    assert 0.05 < sample.fit() < 20 and sample.fit() != round(sample.fit(), 4)
    assert images == 1 and fitted.confidence_temperature == round(sample.fit(), 4)
    assert capsys.readouterr().err == ""  # no image predicted
    assert run.calibrated(model, SimpleNamespace(val_set=None)) == (model.spec, 0)
    preset = dataclasses.replace(
        model, spec=dataclasses.replace(model.spec, confidence_temperature=1.5)
    )
    assert run.calibrated(preset, datamodule) == (preset.spec, 0)
    unlabelled = [LabelledImage("b", items[0].image, torch.full((48, 48), 255))]
    empty = SimpleNamespace(val_set=SimpleNamespace(items=unlabelled))
    assert run.calibrated(model, empty) == (model.spec, 0)
    assert not math.isnan(spec.confidence_temperature)


def test_lightnings_service_tips_are_dropped_and_nothing_else():
    tips = run._NoServiceTips()

    def record(text: str) -> logging.LogRecord:
        return logging.LogRecord("lightning", logging.INFO, __file__, 1, text, None, None)

    assert not tips.filter(record("💡 Tip: For seamless cloud logging, try installing ..."))
    assert tips.filter(record("GPU available: False, used: False"))
    assert tips.filter(record("a line that mentions 💡 Tip later"))
    lightning = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    assert any(isinstance(f, run._NoServiceTips) for f in lightning.filters)


def test_more_than_one_process_trains_with_ddp(tmp_path):
    """Devices times nodes above one is a DDP run, on either factor; one is a single device.
    (The DDP run itself is tested in test_ddp, marked slow.)"""
    from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy

    for devices, nodes, kind in ((2, 1, DDPStrategy), (1, 2, DDPStrategy), (1, 1, None)):
        cfg = _config(f"devices={devices}", f"num_nodes={nodes}", "precision=bf16-mixed")
        trainer = run._trainer(cfg, tmp_path, [])
        assert (trainer.num_devices, trainer.num_nodes) == (devices, nodes)
        assert trainer.precision == "bf16-mixed"
        if kind is None:
            assert isinstance(trainer.strategy, SingleDeviceStrategy), trainer.strategy
        else:
            assert type(trainer.strategy) is kind, (devices, nodes, trainer.strategy)


def test_a_cpu_run_is_deterministic_and_prints_no_model_summary(tmp_path):
    """describe_network() prints the model in one line; Lightning's table would repeat it.
    On a CPU deterministic algorithms cost nothing, so a seed repeats a run exactly."""
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(False)
    try:
        trainer = run._trainer(_config(), tmp_path, [])
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(before)
    assert not [c for c in trainer.callbacks if "ModelSummary" in type(c).__name__]


def test_a_resume_may_not_reshape_what_the_checkpoint_holds(tmp_path):
    """Each network setting and the bands, named with their old and new values; the
    recipe may change; a run folder without a readable config leaves it to the checkpoint."""
    saved = _config("base_width=4", "bands=[1,2,3]", "crop_size=64")
    saved.save(tmp_path / "config.yaml")
    run.check_same_network(_config("base_width=4", "bands=[1,2,3]", "lr=0.5"), tmp_path)
    run.check_same_network(_config("base_width=4", "lr=0.5"), tmp_path)  # None: bands 1-3
    changes = {
        "model=fpn-effnet-lite0": "model seed-unet -> fpn-effnet-lite0",
        "base_width=8": "base_width 4 -> 8",
        "downsample=2": "downsample 1 -> 2",
        "optimizer=adam": "optimizer adamw -> adam",
        "bands=[1,2,3,4]": "bands [1, 2, 3] -> [1, 2, 3, 4]",
        # a review: the first convolution learned on red first; swapped, it was resumed
        "bands=[3,2,1]": "bands [1, 2, 3] -> [3, 2, 1]",
    }
    for setting, change in changes.items():
        with pytest.raises(ConfigError) as error:
            run.check_same_network(_config(setting, "crop_size=64"), tmp_path)
        assert str(error.value) == (
            f"--resume continues {tmp_path}'s network as it was; {change} cannot change: drop"
            " those settings, or start a new run with another --out"
        ), setting
    with pytest.raises(ConfigError, match="; base_width 4 -> 8, downsample 1 -> 2 cannot"):
        run.check_same_network(_config("base_width=8", "downsample=2", "crop_size=64"), tmp_path)
    # a review: the architecture's own widths, written out, are no change (a resume of a
    # run whose config.yaml lists them, or given them again, was refused)
    unet = ("model=unet-effnet-lite0", "crop_size=64")
    _config(*unet).save(tmp_path / "config.yaml")
    run.check_same_network(_config(*unet, "decoder_channels=[256,128,64,32,16]"), tmp_path)
    with pytest.raises(ConfigError, match="decoder_channels .256, 128, 64, 32, 16. -> .256, 128"):
        run.check_same_network(_config(*unet, "decoder_channels=[256,128,64,32,32]"), tmp_path)
    for broken in ("model: [", "- a list", "lr: [1"):  # unreadable or not a config
        (tmp_path / "config.yaml").write_text(broken)
        run.check_same_network(_config("base_width=8"), tmp_path)
    (tmp_path / "config.yaml").unlink()
    run.check_same_network(_config("base_width=8"), tmp_path)


def test_settings_this_machine_or_class_table_cannot_run_are_one_line(tmp_path, monkeypatch):
    names = ", ".join(DUBAI_CLASSES.names)
    with pytest.raises(ConfigError) as error:
        run.check_settings_here(_config("class_weights=[1,2]"), DUBAI_CLASSES, resume=False)
    assert str(error.value) == f"class_weights has 2 weight(s) for 6 classes ({names})"
    run.check_settings_here(_config("class_weights=[1,1,1,1,1,1]"), DUBAI_CLASSES, False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in ("gpu", "cuda"):
        with pytest.raises(ConfigError) as error:
            run.check_settings_here(_config(f"accelerator={name}"), DUBAI_CLASSES, False)
        assert str(error.value) == (
            f"accelerator={name}: this machine has no CUDA GPU that torch can use; give"
            " accelerator=auto or cpu"
        )
    run.check_settings_here(_config("accelerator=cpu"), DUBAI_CLASSES, False)
    assert run.usable_cores() >= 1
    monkeypatch.delattr(os, "sched_getaffinity")  # macOS, Windows: every core (a review)
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    assert run.usable_cores() == 3
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # "undetermined": one core
    assert run.usable_cores() == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert run.usable_cores() == 2
    run.check_settings_here(_config("accelerator=cpu", "devices=2"), DUBAI_CLASSES, False)
    run.check_settings_here(_config("accelerator=auto", "devices=2"), DUBAI_CLASSES, False)
    with pytest.raises(ConfigError) as error:  # 64 processes on 2 cores
        run.check_settings_here(_config("accelerator=auto", "devices=3"), DUBAI_CLASSES, False)
    assert str(error.value) == (
        "devices=3: this machine gives the run 2 CPU core(s); give at most that many processes"
    )
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    run.check_settings_here(_config("accelerator=gpu", "devices=2"), DUBAI_CLASSES, False)
    for name in ("gpu", "cuda", "auto"):
        with pytest.raises(ConfigError) as error:
            run.check_settings_here(_config(f"accelerator={name}", "devices=4"), DUBAI_CLASSES, 0)
        assert str(error.value) == "devices=4: this machine has 2 GPU(s)"
    missing = tmp_path / "nope.pt"
    with pytest.raises(ConfigError) as error:
        run.check_settings_here(_config(f"init_from={missing}"), DUBAI_CLASSES, False)
    assert str(error.value) == f"init_from: {missing}: no such model file"
    run.check_settings_here(_config(f"init_from={missing}"), DUBAI_CLASSES, True)  # unused


def test_init_from_that_cannot_start_the_run_is_one_line_before_data_is_read(tmp_path):
    """A review: a 4-band model into a 3-band run was a size mismatch traceback, and
    another architecture was told only after the unlabelled images were pseudo-labelled."""
    four = write_tiny_model(tmp_path / "four.pt", ["bands=[1,2,3,4]"])
    with pytest.raises(ConfigError) as error:
        run.check_settings_here(_config(f"init_from={four}"), DUBAI_CLASSES, False)
    assert str(error.value) == (
        "init_from: that model reads 4 bands and this run 3; only an RGB model's first layer"
        " is adapted to other bands: choose 4 bands with bands="
    )
    run.check_settings_here(_config(f"init_from={four}", "bands=[4,3,2,1]"), DUBAI_CLASSES, 0)
    rgb = write_tiny_model(tmp_path / "rgb.pt")  # RGB to any bands: adapted
    run.check_settings_here(_config(f"init_from={rgb}", "bands=[4,3,2,1]"), DUBAI_CLASSES, 0)
    with pytest.raises(ConfigError, match="that model is a seed-unet, this run trains a fpn"):
        run.check_settings_here(
            _config(f"init_from={rgb}", "model=fpn-effnet-lite0"), DUBAI_CLASSES, False
        )
    default = _config("init_from=default", "model=fpn-effnet-lite0", "base_width=32")
    run.check_settings_here(default, DUBAI_CLASSES, False)  # the bundled model's kind
    (tmp_path / "there.pt").write_bytes(b"weights")
    with pytest.raises(ConfigError, match="init_from: .*there.pt: not an aerialseg model"):
        run.check_settings_here(_config(f"init_from={tmp_path / 'there.pt'}"), DUBAI_CLASSES, 0)


def test_a_run_its_limits_ended_is_refused_by_each_limit(tmp_path):
    """What a checkpoint says of its run, read as Lightning 2 writes it: its steps, its
    epochs done, and early stopping's validations without gain; a checkpoint that lacks
    them (hand-made, or of another Lightning) is a run that has not started."""

    def checkpoint(steps=None, epochs=None, waited=None, last_batch=None) -> dict:
        saved: dict = {}
        if steps is not None:
            saved["global_step"] = steps
        if epochs is not None:
            progress = {"current": {"processed": epochs}}
            saved["loops"] = {"fit_loop": {"epoch_progress": progress}}
            if last_batch is not None:  # whether the last epoch reached its last batch
                batches = {"is_last_batch": last_batch}
                saved["loops"]["fit_loop"]["epoch_loop.batch_progress"] = batches
        if waited is not None:
            saved["callbacks"] = {"EarlyStopping{'monitor': 'val_miou'}": {"wait_count": waited}}
        return saved

    def refusal(saved: dict, *settings: str) -> str | None:
        try:
            run.check_not_finished(saved, _config(*settings), tmp_path)
        except ConfigError as err:
            return str(err).split(": it reached ")[1]
        return None

    assert refusal(checkpoint(steps=4), "max_steps=4") == (
        "max_steps=4 (4 steps); to train on, raise it, e.g. --resume max_steps=8"
    )
    assert refusal(checkpoint(steps=3), "max_steps=4") is None
    assert refusal(checkpoint(steps=1, epochs=1), "max_steps=1", "max_epochs=1").startswith(
        "max_steps=1 (1 steps)"
    )
    assert refusal(checkpoint(epochs=1), "max_epochs=1", "max_steps=-1").startswith(
        "max_epochs=1 (1 epochs)"
    )
    assert refusal(checkpoint(epochs=2), "max_epochs=2", "max_steps=-1") == (
        "max_epochs=2 (2 epochs); to train on, raise it, e.g. --resume max_epochs=4"
    )
    assert refusal(checkpoint(epochs=1), "max_epochs=2", "max_steps=-1") is None
    # a review: an epoch that max_steps cut short counts as processed (Lightning resumes at
    # the next), which 'reached max_epochs=1 (1 epochs)' after 2 steps of 16 left untold;
    # as Lightning 2.6 writes them (a run of 2 steps of 8, one of 2 whole epochs)
    cut = checkpoint(steps=2, epochs=1, last_batch=False)
    assert refusal(cut, "max_steps=4", "max_epochs=1") == (
        "max_epochs=1 (1 epochs, the last cut short by max_steps; a resumed run starts the"
        " next); to train on, raise it, e.g. --resume max_epochs=2"
    )
    whole = checkpoint(steps=2, epochs=2, last_batch=True)
    assert refusal(whole, "max_steps=-1", "max_epochs=2") == (
        "max_epochs=2 (2 epochs); to train on, raise it, e.g. --resume max_epochs=4"
    )
    assert refusal(checkpoint(waited=3), "early_stop_patience=3") == (
        "early_stop_patience=3 (3 validation(s) without gain); to train on, raise it, e.g."
        " --resume early_stop_patience=6"
    )
    assert refusal(checkpoint(waited=2), "early_stop_patience=3") is None
    for empty in ({}, {"loops": {}}, {"loops": {"fit_loop": {}}}):
        assert refusal(empty, "max_steps=1", "max_epochs=1", "early_stop_patience=1") is None
