"""A run folder as one run's own: held by one train at a time, and movable.

Two ``train`` commands into one ``--out`` both passed the "already holds a run" check
while they loaded their data, then wrote into each other's checkpoints. A run holds its
folder with an advisory lock (``flock``, released however the process ends) on a hidden
file beside it, ``.NAME.aerialseg-lock``: on the run's own file system, so that runs with
other temporary folders (a cluster job's TMPDIR, another container) see it too, and
nothing is written into ``--out`` before the run's data is checked. The file is removed
when the run ends.

Lightning's ModelCheckpoint records its folder's absolute path, and drops the record of
the best checkpoint when a resumed run's folder has another one (a folder moved, renamed
or copied): the next validation then replaced a better best.ckpt, and a copy's model.pt
was rebuilt from the original folder's.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint

from aerialseg.errors import ConfigError
from aerialseg.files import missing_folders, remove_empty

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not held there
    fcntl = None  # type: ignore[assignment]


# What a run writes into its folder: a folder holding only these (and hidden files) is a run
# that ended before its first checkpoint, which a new run may start over in
RUN_FILES = {"config.yaml", "classes.json", "split.json", "metrics.csv", "training.png"}
RUN_FILES |= {"logs", "checkpoints", "mlruns", "model.pt"}


def check_own_folder(run_dir: Path) -> None:
    """Refuse a new run into a folder holding anything else: the run would write its
    config.yaml, metrics.csv, ... over a user's files of those names (a review: --out .
    replaced the config.yaml that --config named)."""
    if not run_dir.is_dir():
        return
    others = sorted(p.name for p in run_dir.iterdir() if p.name not in RUN_FILES)
    others = [name for name in others if not name.startswith(".")]
    if others:
        listed = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise ConfigError(
            f"--out {run_dir} holds files that are not a run's ({listed}): a run writes"
            " config.yaml, metrics.csv and more there; name a new or empty folder"
        )


@contextlib.contextmanager
def held(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir`` for this run; ConfigError where another process holds it. The lock
    is named by the folder's real path: a link to it, or ``--out .`` inside it, is the same
    folder (a review: two runs wrote into one through a symbolic link)."""
    if fcntl is None:
        yield
        return
    real = Path(os.path.realpath(run_dir))
    path = real.parent / f".{real.name}.aerialseg-lock"
    made = missing_folders(path.parent)
    lock = _locked(path, run_dir)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)  # before the unlock: a waiting run opens a new file
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
        remove_empty(made)  # a run refused before it wrote leaves no folder behind


def _locked(path: Path, run_dir: Path):
    """The lock file at ``path``, opened and locked by this process."""
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = path.open("a")
        except OSError as err:
            blocker = next((p for p in path.parents if p.is_file()), None)
            why = f"{blocker} is a file, not a folder" if blocker is not None else err.strerror
            raise ConfigError(f"--out {run_dir}: cannot create it ({why})") from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise ConfigError(
                f"{run_dir} is in use by another aerialseg train; wait for it to end, or"
                " choose another --out"
            ) from None
        # the holder before may have ended and removed the file after it was opened here:
        # then the lock is on a file no one else will open, and the new one is the one
        try:
            if os.stat(path).st_ino == os.fstat(lock.fileno()).st_ino:
                return lock
        except FileNotFoundError:
            pass
        lock.close()


class MovableCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose record of its checkpoints follows its folder: paths under the
    folder a checkpoint recorded are read as paths under this one."""

    def _generate_state_key(self, **kwargs: Any) -> str:
        # ModelCheckpoint's key: the checkpoints of runs written before this class read
        # alike (Lightning matches a callback's saved state by its class name)
        return f"ModelCheckpoint{kwargs!r}"

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        recorded = state_dict.get("dirpath")
        if recorded and self.dirpath and Path(recorded) != Path(self.dirpath):
            state_dict = _moved(state_dict, Path(recorded), Path(self.dirpath))
        super().load_state_dict(state_dict)


def _moved(state: dict[str, Any], old: Path, new: Path) -> dict[str, Any]:
    def move(path):
        if not path or not Path(path).is_relative_to(old):
            return path
        return str(new / Path(path).relative_to(old))

    moved = dict(state, dirpath=str(new))
    for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
        if key in moved:
            moved[key] = move(moved[key])
    moved["best_k_models"] = {move(k): v for k, v in (state.get("best_k_models") or {}).items()}
    return moved
