"""Files in the making: temporary names that say which process owns them, the sweep that
removes what killed processes left, and the one-line account of a failed write.

Every output is written under a hidden temporary name and renamed when complete, so a
crash never leaves a half-written file under a final name. A process killed with -9 cannot
clean up, though: its temporary files (and GDAL's side files beside them, such as
``.ovr.tmp``) stay. Their names carry the owner's PID, so the next run into the same folder
removes those whose owner is gone, and never another live run's.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path

TAG = "aerialseg"
# `.NAME.aerialseg-PID.KIND...`: a temporary output file, and GDAL's files beside it
LEFTOVER_FILE = re.compile(rf"^\..+\.{TAG}-(\d+)\.")
# `aerialseg-serve-PID-XXXX`: the server's folder for one upload, in the system temp folder
UPLOAD_DIR = re.compile(rf"^{TAG}-serve-(\d+)-")
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
DISK_FULL_WORDS = ("No space left on device", "Disk quota exceeded")
# How libraries that do not raise OSError report a failed write: GDAL ("Write failed",
# "WriteEncodedTile/Strip() failed", "...writing a dirty block...") and torch's zip writer
# ("file write failed") lose the errno, so a full disk reads like this.
WRITE_FAILED_WORDS = ("Write failed", "write failed", "WriteEncoded", "writing a dirty block")


def temp_path(final: Path, kind: str = "tmp") -> Path:
    """Where ``final`` is written before it is renamed onto its name."""
    return final.with_name(f".{final.name}.{TAG}-{os.getpid()}.{kind}")


def temp_prefix(final: Path) -> str:
    """``tempfile.mkstemp``'s prefix for ``final``: the same owned form as temp_path."""
    return f".{final.name}.{TAG}-{os.getpid()}."


def upload_dir_prefix() -> str:
    return f"{TAG}-serve-{os.getpid()}-"


def process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sweep(folder: Path, pattern: re.Pattern[str] = LEFTOVER_FILE, owner_gone: bool = False) -> int:
    """Remove the entries of ``folder`` that ``pattern`` names (its group 1: the owner's
    PID) whose owner is no longer running; returns the bytes freed. ``owner_gone``: the
    caller knows the owner died (a process killed a moment ago may linger as a zombie
    that still answers as running)."""
    freed = 0
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return 0
    for entry in entries:
        match = pattern.match(entry.name)
        if not match or (not owner_gone and process_alive(int(match.group(1)))):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                freed += sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
                shutil.rmtree(entry)
            else:
                freed += entry.stat().st_size
                entry.unlink()
        except OSError:
            continue  # gone already, or not ours to remove: leave it
    return freed


def _chain(err: BaseException):
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__  # type: ignore[assignment]


def write_failure(err: BaseException, folder: Path, existed: bool = True) -> str | None:
    """One line for an error that means ``folder`` cannot take the output (a full disk, the
    folder removed or made read-only while the command ran), else None. ``existed``: the
    folder was there when the command started; if not, it "disappeared" only where the
    error names a file in it (the command made it, then it went)."""
    for link in _chain(err):
        code = getattr(link, "errno", None)
        text = str(link)
        if code in DISK_FULL or any(words in text for words in DISK_FULL_WORDS):
            return (
                f"{folder}: no space left on the disk that holds it; free some space there,"
                " or write to another folder, then run the command again"
            )
        if code == errno.EROFS:
            return f"{folder}: the disk is read-only; write to another folder"
    if not folder.exists() and (existed or _names_a_file_in(err, folder)):
        return (
            f"{folder}: the output folder disappeared while the command ran; create it"
            " (or choose another), then run the command again"
        )
    if folder.exists() and any(
        words in str(link) for link in _chain(err) for words in WRITE_FAILED_WORDS
    ):
        free = _size(shutil.disk_usage(folder).free)
        return (
            f"{folder}: writing there failed, most likely a full disk ({free} free now"
            " that the partial files are removed); free some space there, or write to another"
            " folder, then run the command again"
        )
    return None


def _names_a_file_in(err: BaseException, folder: Path) -> bool:
    prefixes = {f"{folder}{os.sep}", f"{os.path.abspath(folder)}{os.sep}"}
    texts = [f"{link} {getattr(link, 'filename', None) or ''}" for link in _chain(err)]
    return any(prefix in text for prefix in prefixes for text in texts)


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
