"""Fine-tuning: the finetune preset, frozen batch-norm statistics, the early stop."""

from __future__ import annotations

import typing

import torch

from aerialseg.cli import main
from aerialseg.data.classes import DUBAI_CLASSES
from aerialseg.public import PresetName
from aerialseg.training.config import PRESETS, TrainConfig, resolve_config
from aerialseg.training.module import SegmentationTask
from tests.helpers.models import FAST


def test_every_preset_is_named_in_the_api_and_listed_with_its_reasons(capsys):
    assert typing.get_args(PresetName) == tuple(PRESETS)
    assert main(["train", "--list-settings"]) == 0
    listed = " ".join(capsys.readouterr().out.split())  # wrapping undone
    for name, preset in PRESETS.items():
        assert f" {name} {' '.join(preset.about.split())}" in listed
        for key, (value, why) in preset.settings.items():
            shown = str(value).lower() if isinstance(value, bool) else value
            assert f"{key}={shown}: {' '.join(why.split())}" in listed
    tuned = resolve_config("finetune", overrides=["init_from=my.pt"])
    assert (tuned.init_from, tuned.early_stop_patience, tuned.samples_per_epoch) == (
        "my.pt",
        5,
        160,
    )
    assert tuned.max_time == "00:10:00" and TrainConfig().freeze_bn is False


def _task(freeze_bn: bool) -> SegmentationTask:
    config = resolve_config(overrides=[*FAST, f"freeze_bn={str(freeze_bn).lower()}"])
    return SegmentationTask(config.to_dict(), DUBAI_CLASSES.to_dict())


def _norms(task: SegmentationTask) -> list[torch.nn.modules.batchnorm._BatchNorm]:
    found = [m for m in task.net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert found, "the network has batch norms"
    return found


def test_frozen_batch_norms_keep_their_statistics_and_learn_scale_and_shift():
    torch.manual_seed(0)
    batch = torch.rand(2, 3, 32, 32) * 255
    for freeze in (True, False):
        task = _task(freeze).train()
        assert task.training and task.net.training
        before = [n.running_mean.clone() for n in _norms(task)]
        task.net(batch).sum().backward()
        moved = [
            not torch.equal(n.running_mean, b) for n, b in zip(_norms(task), before, strict=True)
        ]
        assert not any(moved) if freeze else all(moved)
        assert all(not n.training for n in _norms(task)) == freeze
        assert all(n.weight.grad is not None for n in _norms(task))  # scale still learns
    assert all(not n.training for n in _norms(_task(True).eval()))


def test_a_run_stops_when_validation_stops_improving_and_says_so(tiny_dataset, tmp_path, capsys):
    # a learning rate that changes nothing: validation mIoU stays where it starts
    still = ["lr=1e-30", "ema_decay=0", "freeze_bn=true", "early_stop_patience=2"]
    run = tmp_path / "run"
    argv = ["train", "--data", str(tiny_dataset), "--out", str(run), *FAST, *still]
    assert main([*argv, "max_epochs=50"]) == 0
    out = capsys.readouterr().out
    assert "stopped by early stopping (no val mIoU gain in 2 validation(s))" in out
    assert "steps" in out and (run / "model.pt").exists()
    steps = torch.load(run / "checkpoints/last.ckpt", weights_only=True)["global_step"]
    assert steps == 3 * 2  # three epochs of two steps: the first, then two without a gain
