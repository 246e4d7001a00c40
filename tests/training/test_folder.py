"""A run folder: held by one train at a time, and resumable wherever it was moved."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
import torch

from aerialseg.errors import ConfigError
from aerialseg.training.folder import MovableCheckpoint, check_own_folder, held


def _hold_in_another_process(run_dir: Path, started, release) -> None:
    with held(run_dir):
        started.set()
        release.wait(30)


def test_a_run_folder_is_held_by_one_process_at_a_time(tmp_path):
    """A review: two trains into one --out both ran and wrote into each other's files."""
    run_dir = tmp_path / "run"
    context = multiprocessing.get_context("spawn")
    started, release = context.Event(), context.Event()
    other = context.Process(target=_hold_in_another_process, args=(run_dir, started, release))
    other.start()
    try:
        assert started.wait(60)
        with pytest.raises(ConfigError) as err, held(run_dir):
            pass
        assert str(err.value) == (
            f"{run_dir} is in use by another aerialseg train; wait for it to end, or choose"
            " another --out"
        )
        with held(tmp_path / "another run"):  # another folder is free
            pass
        # a link to the folder is the folder (a review: two runs wrote into one so)
        (tmp_path / "alias").symlink_to(run_dir)
        with pytest.raises(ConfigError, match="in use by another"), held(tmp_path / "alias"):
            pass
        (tmp_path / "alias").unlink()
    finally:
        release.set()
        other.join(60)
    with held(run_dir), held(tmp_path / "another run"):  # released when the holder ended
        pass
    with held(run_dir):  # and by this process, once its run is over
        assert (tmp_path / ".run.aerialseg-lock").is_file()  # beside it, on its file system
    # nothing is left, and nothing is made in --out itself before the run writes there
    assert list(tmp_path.iterdir()) == []
    blocker = tmp_path / "a file"
    blocker.write_text("")
    with (
        pytest.raises(
            ConfigError,
            match=f"--out .*a file/run: cannot create it .{blocker} is a file, not a folder",
        ),
        held(blocker / "run"),
    ):
        pass


def test_a_checkpoints_record_follows_its_folder(tmp_path):
    """Lightning dropped the best's score when the folder's path changed (moved, renamed,
    copied): the next validation replaced a better best.ckpt, and a copy's model.pt was
    built from the original folder's best."""
    old, new = tmp_path / "a" / "checkpoints", tmp_path / "b" / "checkpoints"
    recorded = MovableCheckpoint(dirpath=old, filename="best", monitor="val_miou", mode="max")
    recorded.best_model_score = torch.tensor(0.61)
    recorded.best_model_path = str(old / "best.ckpt")
    recorded.last_model_path = str(old / "best.ckpt")
    recorded.best_k_models = {str(old / "best.ckpt"): torch.tensor(0.61)}
    state = recorded.state_dict()
    moved = MovableCheckpoint(dirpath=new, filename="best", monitor="val_miou", mode="max")
    moved.load_state_dict(state)
    assert float(moved.best_model_score) == pytest.approx(0.61)
    assert moved.best_model_path == str(new / "best.ckpt") == moved.last_model_path
    assert list(moved.best_k_models) == [str(new / "best.ckpt")]
    here = MovableCheckpoint(dirpath=old, filename="best", monitor="val_miou", mode="max")
    here.load_state_dict(state)  # in place: as Lightning reads it
    assert here.best_model_path == str(old / "best.ckpt")


def test_a_new_run_goes_into_a_folder_of_nothing_but_a_runs_files(tmp_path):
    """A review: train --out . replaced the user's config.yaml (the --config file itself)
    and metrics.csv there without a word."""
    check_own_folder(tmp_path / "new")  # not there yet
    run = tmp_path / "run"
    run.mkdir()
    check_own_folder(run)  # empty
    for name in ("config.yaml", "split.json", "logs", ".x.aerialseg-1.tmp"):
        (run / name).write_text("")  # what a run killed before its first checkpoint left
    check_own_folder(run)
    for name in ("ds", "notes.txt", "a.tif", "b.tif"):
        (run / name).write_text("")
    with pytest.raises(ConfigError) as err:
        check_own_folder(run)
    assert str(err.value) == (
        f"--out {run} holds files that are not a run's (a.tif, b.tif, ds and 1 more): a run"
        " writes config.yaml, metrics.csv and more there; name a new or empty folder"
    )
