"""--max-time bounds the whole train command; progress reads as steps and time, on a
terminal and in a log."""

from __future__ import annotations

import io
import re
import sys
import time

import pytest

from aerialseg.cli import main
from aerialseg.models.io import load_model
from aerialseg.training.progress import FINISH_SECONDS, TimeBudget, clock
from tests.training.test_run import FAST

# Epochs far longer than any budget here: only the time can end these runs.
ENDLESS = [*FAST, "samples_per_epoch=400000"]
# The bound holds to within one training step and the error of the guess of the last
# validation's cost; on this tiny data both are well under a second on an idle machine.
# Stated generously for a loaded 2-core CI machine.
SLACK_S = 6.0


def test_max_time_bounds_the_whole_command(tiny_dataset, tmp_path, capsys):
    budget = 10
    run = tmp_path / "run"
    argv = ["train", "--data", str(tiny_dataset), "--out", str(run), "--max-time", f"0:{budget}"]
    start = time.monotonic()
    assert main([*argv, *ENDLESS]) == 0
    wall = time.monotonic() - start
    out, err = capsys.readouterr()
    assert wall <= budget + SLACK_S, f"{wall:.1f} s for a {budget} s budget"
    # it trained, stopped by the budget, and validated its last weights within it
    steps = int(re.search(r": (\d+) steps, stopped by the time budget", out).group(1))
    assert steps >= 2
    model = load_model(run / "model.pt")
    assert model.meta["global_step"] == steps and model.meta["val_miou"] is not None
    assert model.config.confidence_temperature is not None
    # the end says the total, and it is the wall time measured here (to the second)
    total = re.search(r"done in (\d+:\d\d:\d\d) of the 0:00:10 budget", out).group(1)
    assert abs(sum(int(x) * 60**i for i, x in enumerate(reversed(total.split(":")))) - wall) <= 1.5

    # stderr is no terminal here: progress as plain lines, steps against the budget
    lines = [x for x in err.splitlines() if x.startswith("step ")]
    assert lines and "\r" not in err and "Epoch" not in err and "v_num" not in err
    assert all(" of 0:00:10, " in x for x in lines)
    assert re.fullmatch(r"step \d+/\d+, 0:00:\d\d of 0:00:10, loss \d\.\d{3}.*", lines[0])
    assert "val mIoU" in lines[-1]


def test_a_budget_spent_on_loading_still_gives_a_model(tiny_dataset, tmp_path, capsys):
    """One step and its validation, however small the budget: the run says it overran."""
    run = tmp_path / "run"
    argv = ["train", "--data", str(tiny_dataset), "--out", str(run), "--max-time", "0:00:01"]
    assert main([*argv, *ENDLESS]) == 0
    out = capsys.readouterr().out
    assert ": 1 steps, stopped by the time budget" in out
    assert load_model(run / "model.pt").meta["val_miou"] is not None


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


def test_the_validation_guess_gives_way_to_the_measured_one():
    budget = TimeBudget(60, time.monotonic(), pixels_per_step=1000)
    budget._val_pixels = 30_000
    assert budget.validation_guess() == 0.0  # nothing timed yet
    budget.step_seconds = [0.5, 0.2, 0.2]  # the first step is slow (warm-up): the median
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
