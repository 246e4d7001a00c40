"""What a run shows while it trains, and the wall-clock budget of the whole command.

``TimeBudget`` stops training early enough that the last validation and the files written
after it still fit in ``max_time``, counted from the command's start (loading included).
``TrainingProgress`` replaces Lightning's bar ("Epoch 0/59 ... v_num"): steps, time
against the budget, loss and validation mIoU; on a terminal one line redrawn in place
(tqdm), elsewhere (a log file, a cluster job) a plain line every few seconds.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO

import lightning as L
from lightning.pytorch.callbacks import ProgressBar, Timer
from tqdm import tqdm

# Seconds the run needs after its last validation: merging the metrics, the plot, fitting
# the temperature, writing model.pt (about 2 s for a small network on 2 CPU cores).
FINISH_SECONDS = 4.0
# A validation predicts every pixel once more than training crops do (windows overlap,
# edges are padded); forward only, about a third of a training step's cost per pixel.
# Before the first validation is timed its cost is guessed from the steps, with margin.
FORWARD_SHARE = 1 / 3
GUESS_MARGIN = 1.5


def clock(seconds: float) -> str:
    """0:01:05 for 65 s."""
    seconds = max(int(round(seconds)), 0)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _timer(trainer: L.Trainer) -> Timer | None:
    callbacks = trainer.callbacks  # type: ignore[attr-defined]  # set by Trainer.__init__
    return next((c for c in callbacks if isinstance(c, Timer)), None)


def _val_pixels(trainer: L.Trainer) -> int:
    val_set = getattr(trainer.datamodule, "val_set", None)  # type: ignore[attr-defined]
    return getattr(val_set, "pixels", 0)


def total_steps(trainer: L.Trainer) -> int | None:
    """The optimiser steps the run will take: max_steps, or its epochs' (None: not known
    before the first epoch counts its batches)."""
    if trainer.max_steps and trainer.max_steps > 0:
        return trainer.max_steps
    batches = trainer.num_training_batches
    if trainer.max_epochs and trainer.max_epochs > 0 and batches not in (0, math.inf):
        return max(1, int(trainer.max_epochs * batches // trainer.accumulate_grad_batches))
    return None


def run_fraction(trainer: L.Trainer, budget: TimeBudget | None) -> float:
    """How far the run is, 0 to 1: steps or training time (``budget``'s share, earlier
    attempts' included), whichever is further along. The progress bar shows it, and the
    cosine schedule follows it, so a resumed run goes on down its curve."""
    total = total_steps(trainer)
    share = trainer.global_step / total if total else 0.0
    if budget is not None:
        share = max(share, budget.progress())
    return min(share, 1.0)


class TimeBudget(L.Callback):
    """Ends training when the time left is what the last validation and the files need.

    The budget counts from ``started`` (a ``time.monotonic()``, the command's start), and
    a resumed run's earlier training time (Lightning's Timer, restored from the
    checkpoint) counts against it too. Lightning validates when a callback stops training
    (``should_stop``), so that validation runs within the budget; where it would not fit,
    it is skipped. At least one step is taken, so that a budget spent on loading still
    gives a model.
    """

    def __init__(self, seconds: float, started: float, pixels_per_step: int):
        self.seconds, self.started = seconds, started
        self.pixels_per_step = pixels_per_step
        self.deadline = started + seconds
        self.spent_before = 0.0  # training time of earlier attempts
        self.train_started = started
        self.step_seconds: list[float] = []
        self.val_seconds: float | None = None  # the last validation's, measured
        self._step_start = self._val_start = 0.0
        self.stopped = False
        self.skipped_validation = False
        self._warmed_up = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        timer = _timer(trainer)
        self.spent_before = timer.time_elapsed("train") if timer else 0.0
        self.deadline = self.started + self.seconds - self.spent_before
        self.train_started = time.monotonic()
        self._val_pixels = _val_pixels(trainer)

    def validation_guess(self) -> float:
        """Seconds the next validation will take: the last one's, else a guess."""
        if self.val_seconds is not None:
            return self.val_seconds
        if not self.step_seconds or not self.pixels_per_step:
            return 0.0
        step = sorted(self.step_seconds)[len(self.step_seconds) // 2]  # median
        per_pixel = step / self.pixels_per_step * FORWARD_SHARE
        return per_pixel * self._val_pixels * GUESS_MARGIN

    def reserve(self) -> float:
        """Seconds kept for the end: the last validation and the files."""
        return self.validation_guess() + FINISH_SECONDS

    def training_left(self) -> float:
        return self.deadline - self.reserve() - time.monotonic()

    def progress(self) -> float:
        """Share of the training time spent (what the cosine schedule follows)."""
        spent = self.spent_before + time.monotonic() - self.train_started
        return min(spent / max(spent + max(self.training_left(), 0.0), 1e-9), 1.0)

    def on_train_batch_start(self, *_: Any) -> None:
        self._step_start = time.monotonic()

    def _stop_if_out_of_time(self, trainer: L.Trainer) -> None:
        # Rank 0's clock decides for all (as Lightning's Timer does): ranks that disagreed
        # would wait for each other forever.
        if trainer.strategy.broadcast(self.training_left() <= 0) and not trainer.should_stop:
            self.stopped = trainer.should_stop = True
            # The last validation runs only where it fits. With the budget spent (on
            # loading, or by a step far slower than the others) the run ends now instead,
            # and ships the best validated weights, else the last ones unvalidated.
            fits = self.deadline - time.monotonic() >= self.validation_guess()
            if not trainer.strategy.broadcast(fits):
                trainer.limit_val_batches = 0
                self.skipped_validation = True

    def on_train_batch_end(self, trainer: L.Trainer, *_: Any) -> None:
        seconds = time.monotonic() - self._step_start
        if self._warmed_up:  # the first step, 2-100x slower (kernels built, caches), is not one
            self.step_seconds = [*self.step_seconds[-19:], seconds]
        self._warmed_up = True
        self._stop_if_out_of_time(trainer)

    def on_validation_start(self, trainer: L.Trainer, *_: Any) -> None:
        self._val_start = time.monotonic()

    def on_validation_end(self, trainer: L.Trainer, *_: Any) -> None:
        if trainer.sanity_checking:
            return
        self.val_seconds = time.monotonic() - self._val_start
        # No time for one more step and its validation: stop here, this one was the last.
        self._stop_if_out_of_time(trainer)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class TrainingProgress(ProgressBar):
    """Steps, time against the budget, loss and val mIoU; see the module's docstring."""

    def __init__(
        self,
        budget: TimeBudget | None = None,
        started: float | None = None,
        every: float = 5.0,
        stream: TextIO | None = None,
    ):
        super().__init__()
        self.budget = budget
        self.started = started if started is not None else time.monotonic()
        self.every = every
        self.stream = stream
        self._enabled = True
        self._bar: tqdm | None = None
        self._last = -math.inf
        self._validating: tuple[int, int] | None = None
        self.best: float | None = None
        self.last_miou: float | None = None
        self.loss: float | None = None
        self._printed = ""

    # Lightning's ProgressBar interface
    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def out(self) -> TextIO:
        return self.stream or sys.stderr

    def print(self, *args: Any, **kwargs: Any) -> None:
        if self._bar is not None:
            self._bar.clear()
        print(*args, file=self.out, **kwargs)

    def text(self, trainer: L.Trainer) -> str:
        """The progress line (without a bar)."""
        total = total_steps(trainer)
        parts = [f"step {trainer.global_step}" + (f"/{total}" if total else "")]
        elapsed = time.monotonic() - self.started
        if self.budget is not None:
            parts.append(
                f"{clock(elapsed + self.budget.spent_before)} of {clock(self.budget.seconds)}"
            )
        else:
            parts.append(clock(elapsed))
        if self.loss is not None:
            parts.append(f"loss {self.loss:.3f}")
        if self.last_miou is not None:
            parts.append(f"val mIoU {self.last_miou:.3f} (best {self.best:.3f})")
        if self._validating is not None:
            done, count = self._validating
            parts.append(f"validating image {done}/{count}")
        return ", ".join(parts)

    def _show(self, trainer: L.Trainer, force: bool = False) -> None:
        if not self._enabled or not trainer.is_global_zero:
            return
        now = time.monotonic()
        if self._bar is None and _is_terminal(self.out):
            self._bar = tqdm(
                total=1000, file=self.out, bar_format="train |{bar:24}| {postfix}", leave=True
            )
        if self._bar is not None:
            if force or now - self._last >= 0.2:
                self._bar.n = int(1000 * run_fraction(trainer, self.budget))
                self._bar.set_postfix_str(self.text(trainer), refresh=True)
                self._last = now
        elif force or now - self._last >= self.every:
            self._line(self.text(trainer))
            self._last = now

    def _line(self, text: str) -> None:
        if text != self._printed:  # the end repeats no line
            print(text, file=self.out, flush=True)
            self._printed = text

    def on_train_start(self, trainer: L.Trainer, *_: Any) -> None:
        # a resumed run's best is its earlier attempts' too, as its summary says (a review)
        score = getattr(trainer.checkpoint_callback, "best_model_score", None)
        self.best = float(score) if score is not None else None

    def on_train_batch_end(self, trainer: L.Trainer, _module: Any, outputs: Any, *_: Any) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None:  # smoothed over about ten steps
            value = float(loss)
            self.loss = value if self.loss is None else 0.9 * self.loss + 0.1 * value
        self._show(trainer)

    def on_validation_epoch_start(self, trainer: L.Trainer, *_: Any) -> None:
        if not trainer.sanity_checking:
            self._validating = (0, int(sum(trainer.num_val_batches)))
            self._show(trainer)

    def on_validation_batch_end(self, trainer: L.Trainer, *_: Any) -> None:
        if self._validating is not None:
            self._validating = (self._validating[0] + 1, self._validating[1])
            self._show(trainer)

    def on_validation_end(self, trainer: L.Trainer, *_: Any) -> None:
        # after the module's on_validation_epoch_end has logged val_miou
        if trainer.sanity_checking:
            return
        self._validating = None
        miou = trainer.callback_metrics.get("val_miou")
        if miou is not None:
            self.last_miou = float(miou)
            self.best = self.last_miou if self.best is None else max(self.best, self.last_miou)
        self._show(trainer, force=True)

    def on_train_end(self, trainer: L.Trainer, *_: Any) -> None:
        if self._bar is not None:
            self._bar.n = int(1000 * run_fraction(trainer, self.budget))
            self._bar.set_postfix_str(self.text(trainer), refresh=True)
            self._bar.close()
            self._bar = None
        elif self._enabled and trainer.is_global_zero:
            self._line(self.text(trainer))
