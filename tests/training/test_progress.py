"""--max-time bounds the whole train command; progress reads as steps and time, on a
terminal and in a log."""

from __future__ import annotations

import io
import re
import sys
import time
import types

import pytest

from aerialseg.cli import main
from aerialseg.models.io import load_model
from aerialseg.training.progress import FINISH_SECONDS, TimeBudget, clock
from tests.helpers.models import FAST

# Epochs far longer than any budget here: only the time can end these runs.
ENDLESS = [*FAST, "samples_per_epoch=400000"]
# The bound holds to within one training step and the error of the guess of the last
# validation's cost; on this tiny data both are well under a second on an idle machine,
# but the first step (kernels built) takes seconds on a loaded 2-core one: stated for that.
SLACK_S = 10.0


def test_max_time_bounds_the_whole_command(tiny_dataset, tmp_path, capsys):
    budget = 15
    run = tmp_path / "run"
    argv = ["train", "--data", str(tiny_dataset), "--out", str(run), "--max-time", f"0:{budget}"]
    start = time.monotonic()
    assert main([*argv, *ENDLESS]) == 0
    wall = time.monotonic() - start
    out, err = capsys.readouterr()
    assert wall <= budget + SLACK_S, f"{wall:.1f} s for a {budget} s budget"
    # it trained until the budget stopped it, and validated its last weights within it
    # where that fitted (on an idle machine it does; a loaded one may leave no time)
    steps = int(re.search(r": (\d+) steps, stopped by the time budget", out).group(1))
    model = load_model(run / "model.pt")
    assert steps >= 2 and model.meta["global_step"] == steps
    if model.meta["val_miou"] is not None:
        assert model.spec.confidence_temperature is not None
    else:
        assert "not validated (the budget left no time for it)" in out
    # the end says the total, and it is the wall time measured here (to the second)
    total = re.search(r"done in (\d+:\d\d:\d\d) of the 0:00:15 budget", out).group(1)
    assert abs(sum(int(x) * 60**i for i, x in enumerate(reversed(total.split(":")))) - wall) <= 1.5

    # stderr is no terminal here: progress as plain lines, steps against the budget
    lines = [x for x in err.splitlines() if x.startswith("step ")]
    assert lines and "\r" not in err and "Epoch" not in err and "v_num" not in err
    assert all(" of 0:00:15, " in x for x in lines)
    assert re.fullmatch(r"step \d+/\d+, 0:00:\d\d of 0:00:15, loss \d\.\d{3}.*", lines[0])
    assert ("val mIoU" in lines[-1]) is (model.meta["val_miou"] is not None)


def test_a_budget_spent_on_loading_still_gives_a_model(tiny_dataset, tmp_path, capsys):
    """One step, however small the budget, but no validation or calibration that the
    budget has no time for: the run says so, and by how much it overran."""
    run = tmp_path / "run"
    argv = ["train", "--data", str(tiny_dataset), "--out", str(run), "--max-time", "0"]
    start = time.monotonic()
    assert main([*argv, *ENDLESS]) == 0
    wall = time.monotonic() - start
    out = capsys.readouterr().out
    assert ": 1 steps, stopped by the time budget" in out and "of the 0:00:00 budget" in out
    assert "not validated (the budget left no time for it)" in out
    assert "confidence not calibrated (no time left)" in out
    model = load_model(run / "model.pt")
    assert model.meta["val_miou"] is None and model.spec.confidence_temperature is None
    assert wall <= SLACK_S


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_one_bar_shows_steps_and_budget(tiny_dataset, tmp_path, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    argv = ["train", "--data", str(tiny_dataset), "--out", str(tmp_path / "run"), *FAST]
    assert main([*argv, "max_epochs=2", "--max-time", "00:05:00"]) == 0
    shown = terminal.getvalue()
    assert "\r" in shown  # redrawn in place
    final = shown.split("\r")[-1]
    assert final.startswith("train |") and "step 4/4, " in final and " of 0:05:00" in final
    assert "val mIoU" in final and "Epoch" not in shown and "v_num" not in shown


class FakeTrainer:
    """What TimeBudget reads of a trainer: one process, so rank 0 decides alone."""

    def __init__(self) -> None:
        self.should_stop = False
        self.limit_val_batches = 1.0
        self.strategy = types.SimpleNamespace(broadcast=lambda value: value)


@pytest.mark.parametrize(("left", "validates"), [(4.5, True), (0.5, False)])
def test_training_stops_in_time_for_the_last_validation(left, validates, monkeypatch):
    """With 1 s of validation and 4 s of files to come, training stops once 5 s are left,
    and validates if that still fits; past that (a slow step), it ends unvalidated."""
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    budget = TimeBudget(60, started=50.0, pixels_per_step=1000)
    budget.val_seconds = 1.0
    trainer = FakeTrainer()
    budget.on_train_batch_start(trainer)
    now[0] = 110.0 - FINISH_SECONDS - 1.0 - 0.5  # 5.5 s left: one more step
    budget.on_train_batch_end(trainer)
    assert not trainer.should_stop
    budget.on_train_batch_start(trainer)
    now[0] = 110.0 - left
    budget.on_train_batch_end(trainer)
    assert trainer.should_stop and budget.stopped
    assert (trainer.limit_val_batches > 0) is validates
    assert budget.skipped_validation is not validates


def test_the_validation_guess_gives_way_to_the_measured_one():
    budget = TimeBudget(60, time.monotonic(), pixels_per_step=1000)
    budget._val_pixels = 30_000
    assert budget.validation_guess() == 0.0  # nothing timed yet
    budget.step_seconds = [0.5, 0.2, 0.2]  # a step slower than the others: the median
    # 30 images' worth of pixels at a third of a training pixel's cost, 1.5x margin
    assert budget.validation_guess() == pytest.approx(0.2 * 30 / 3 * 1.5)
    budget.val_seconds = 1.25
    assert budget.reserve() == pytest.approx(1.25 + FINISH_SECONDS)


def test_clock():
    assert [clock(s) for s in (0, 59.6, 65, 3600 * 2 + 61)] == [
        "0:00:00",
        "0:01:00",
        "0:01:05",
        "2:01:01",
    ]


def test_a_resumed_runs_best_counts_its_earlier_attempts():
    """A review: after --resume the bar's "best" was this attempt's, below the run's best
    that the summary gives."""
    import torch

    from aerialseg.training.progress import TrainingProgress

    progress = TrainingProgress(stream=io.StringIO())
    progress.disable()  # no line drawn: what it would show is read below
    resumed = types.SimpleNamespace(
        checkpoint_callback=types.SimpleNamespace(best_model_score=torch.tensor(0.7)),
        sanity_checking=False,
        callback_metrics={"val_miou": torch.tensor(0.5)},
    )
    progress.on_train_start(resumed)
    progress.on_validation_end(resumed)
    assert progress.last_miou == 0.5 and progress.best == pytest.approx(0.7)
    fresh = types.SimpleNamespace(**{**vars(resumed), "checkpoint_callback": None})
    progress.on_train_start(fresh)
    progress.on_validation_end(fresh)
    assert progress.best == 0.5
