"""A run folder as one run's own: held by one train at a time, and movable.

Two ``train`` commands into one ``--out`` both passed the "already holds a run" check
while they loaded their data, then wrote into each other's checkpoints. A run holds its
folder with an advisory lock (``flock``, released however the process ends) on a file
named after the folder's path in the system's temporary folder, so that nothing is
written into ``--out`` before the run's data is checked.

Lightning's ModelCheckpoint records its folder's absolute path, and drops the record of
the best checkpoint when a resumed run's folder has another one (a folder moved, renamed
or copied): the next validation then replaced a better best.ckpt, and a copy's model.pt
was rebuilt from the original folder's.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint

from aerialseg.errors import ConfigError

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not held there
    fcntl = None  # type: ignore[assignment]


@contextlib.contextmanager
def held(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir`` for this run; ConfigError where another process holds it."""
    if fcntl is None:
        yield
        return
    key = hashlib.sha256(os.fsencode(run_dir.resolve())).hexdigest()[:24]
    locks = Path(tempfile.gettempdir()) / f"aerialseg-runs-{os.getuid()}"  # each user's own
    locks.mkdir(mode=0o700, exist_ok=True)
    with (locks / f"{key}.lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"{run_dir} is in use by another aerialseg train; wait for it to end, or"
                " choose another --out"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


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
