"""Files in the making: temporary names that say which process owns them, the sweep that
removes what killed processes left, the outputs of one input renamed as one set, and the
one-line account of a failed write.

Every output is written under a hidden temporary name and renamed when complete, so a
crash never leaves a half-written file under a final name. A process killed with -9 cannot
clean up, though: its temporary files (and GDAL's side files beside them, such as
``.ovr.tmp``) stay. Their names carry the owner: its host, an id of its boot and PID
namespace, and its PID (``.NAME.aerialseg-HOST-ID-PID.KIND``). The next run into the same
folder removes those of its own host, boot and namespace whose owner is gone; a file of
another host or container is left alone, since a PID means nothing there, and so is
anything that is not exactly such a name (a user's ``.x.aerialseg-1.tmp.bak``, any folder).
Names of releases before the host was added (``.NAME.aerialseg-PID.KIND``) are never
removed either: nothing in them says which host wrote them.

An input's outputs (class raster, its sidecars, colour mask, areas, polygons) are renamed
as one set (OutputSet): all are written under temporary names first, then a manifest
``.NAME.aerialseg-set.json`` listing the renames is put in place, the files are renamed in
order, and the manifest is removed last. A kill between two renames leaves the manifest,
and the next run into the folder (finish_sets) completes the renames before anything else,
so the folder holds the old set or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import re
import shutil
import socket
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aerialseg.errors import AerialsegError

TAG = "aerialseg"
_OWNER = r"(?P<host>[A-Za-z0-9]+)-(?P<boot>[0-9a-f]{8})-(?P<pid>\d+)"
# What aerialseg writes under a temporary name: temp_path's kinds, atomic_write's mkstemp
# (8 random characters), and the files GDAL and SQLite put beside them.
_KINDS = r"(?:tmp|step\.tif|tmp\.geojson|tmp\.gpkg|[a-z0-9_]{8}\.tmp)"
_SIDE = r"(?:\.ovr\.tmp|\.ovr|\.aux\.xml|-journal|-wal|-shm)?"


@dataclass(frozen=True)
class Leftovers:
    """What a killed process may leave in a folder: names (group ``host``, ``boot``,
    ``pid``) and whether they are folders (else plain files)."""

    pattern: re.Pattern[str]
    folders: bool = False


# `.NAME.aerialseg-OWNER.KIND`: a temporary output file, and GDAL's files beside it
LEFTOVER_FILE = Leftovers(re.compile(rf"\..+\.{TAG}-{_OWNER}\.{_KINDS}{_SIDE}"))
# `aerialseg-serve-OWNER-XXXXXXXX`: the server's folder for one upload (mkdtemp's suffix)
UPLOAD_DIR = Leftovers(re.compile(rf"{TAG}-serve-{_OWNER}-[a-z0-9_]{{8}}"), folders=True)
# `.NAME.aerialseg-set.json`: the renames of an output set under way (OutputSet)
SET_MANIFEST = re.compile(rf"\.(?P<name>.+)\.{TAG}-set\.json")
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
DISK_FULL_WORDS = ("No space left on device", "Disk quota exceeded")
# How libraries that do not raise OSError report a failed write: GDAL ("Write failed",
# "WriteEncodedTile/Strip() failed", "...writing a dirty block...") and torch's zip writer
# ("file write failed") lose the errno, so a full disk reads like this.
WRITE_FAILED_WORDS = ("Write failed", "write failed", "WriteEncoded", "writing a dirty block")


@functools.cache
def _machine() -> tuple[str, str]:
    """This host's name (letters and digits) and an id of its boot and PID namespace: a
    PID is only known alive or dead where both are the same."""
    host = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"
    ids = []
    for read in (
        lambda: Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
        lambda: str(os.stat("/proc/self/ns/pid").st_ino),  # containers: their own PIDs
    ):
        try:
            ids.append(read())
        except OSError:  # not Linux: the host name alone
            ids.append("")
    return host, hashlib.sha256("/".join(ids).encode()).hexdigest()[:8]


def owner(pid: int | None = None) -> str:
    """``HOST-ID-PID``: the process that a temporary name belongs to (default: this one)."""
    host, boot = _machine()
    return f"{host}-{boot}-{os.getpid() if pid is None else pid}"


# cgroup v2: this process's group (a line "0::/PATH") and where the groups' files lie; each
# group's memory.max ("max", or bytes) is a limit the kernel enforces by killing the
# process: Docker's and Kubernetes' at the root of their namespace, a job scheduler's
# (Slurm, systemd) in a group below it
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def physical_memory() -> int:
    """This machine's memory in bytes, or the tightest memory limit of this process's
    cgroup and those above it, where that is lower (a review: the root's alone missed a
    job scheduler's)."""
    machine = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        lines = PROC_SELF_CGROUP.read_text().splitlines()
    except OSError:  # not Linux
        return machine
    group = next((line[3:] for line in lines if line.startswith("0::")), None)
    if group is None:  # cgroup v1 only
        return machine
    limits = [machine]
    below = Path(group.strip("/"))  # "" at the root: "."
    for each in (below, *below.parents):
        try:
            text = (CGROUP_ROOT / each / "memory.max").read_text().strip()
        except OSError:  # no such group here (another namespace), or no memory controller
            continue
        if text.isdigit():
            limits.append(int(text))
    return min(limits)


def missing_folders(folder: Path) -> list[Path]:
    """``folder`` and the folders above it that do not exist yet, innermost first: what
    making it makes, for ``remove_empty`` to take back after a failure."""
    missing = []
    for each in (folder, *folder.parents):
        if each.exists():
            break
        missing.append(each)
    return missing


def remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (innermost first) while each is empty: what a failed run made
    and left empty goes, what holds anything stays."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty (something was written there), or gone already
            break


# The bytes a file name may have (ext4, XFS, Btrfs, APFS, NTFS: 255); the longest kind of
# temporary file (temp_path's "tmp.geojson", mkstemp's "XXXXXXXX.tmp"), and the longest
# name GDAL adds to one (".ovr.tmp", ".aux.xml")
NAME_MAX = 255
KIND_MAX = 12
SIDE_MAX = 8


def _hidden_stem(name: str, who: str) -> str:
    """``name`` as our temporary names of ``who`` (an owner) hold it: cut, and its hash
    added, where ``.NAME.aerialseg-WHO.KIND`` and GDAL's additions could pass NAME_MAX (a
    review: a 215-byte input name, whose outputs' names fit, failed on its temporary
    file's). The same whatever the kind, so that a prefix finds every kind."""
    fixed = len(os.fsencode(f"..{TAG}-{who}.")) + KIND_MAX + SIDE_MAX
    if len(os.fsencode(name)) + fixed <= NAME_MAX:
        return name
    digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:8]
    cut = name
    while len(os.fsencode(f"{cut}~{digest}")) + fixed > NAME_MAX:  # whole characters
        cut = cut[:-1]
    return f"{cut}~{digest}"


def temp_path(final: Path, kind: str = "tmp") -> Path:
    """Where ``final`` is written before it is renamed onto its name."""
    return final.with_name(f"{temp_prefix(final)}{kind}")


def temp_prefix(final: Path, who: str | None = None) -> str:
    """``tempfile.mkstemp``'s prefix for ``final``: the same owned form as temp_path
    (``who``: another owner's)."""
    who = who or owner()
    return f".{_hidden_stem(final.name, who)}.{TAG}-{who}."


def set_manifest_name(name: str) -> str:
    """The file that lists the renames of output set ``name`` under way."""
    return f".{_hidden_stem(name, 'set')}.{TAG}-set.json"


def upload_dir_prefix() -> str:
    return f"{TAG}-serve-{owner()}-"


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


def _owner_gone(match: re.Match[str], dead: str | None) -> bool:
    """Whether the owner named in ``match`` is gone: ``dead`` (which the caller saw die),
    or a process of this host, boot and namespace that no longer runs."""
    tag = f"{match['host']}-{match['boot']}-{match['pid']}"
    if tag == dead:
        return True
    return tag == owner(int(match["pid"])) and not process_alive(int(match["pid"]))


def sweep(folder: Path, kind: Leftovers = LEFTOVER_FILE, dead: str | None = None) -> int:
    """Remove the entries of ``folder`` that ``kind`` names whose owner is gone (see
    _owner_gone); returns the bytes freed. Files only, or folders only for a kind of
    folders; never a symlink. ``dead``: an owner() the caller knows has died (a process
    killed a moment ago may linger as a zombie that still answers as running)."""
    freed = 0
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return 0
    for entry in entries:
        match = kind.pattern.fullmatch(entry.name)
        if not match or not _owner_gone(match, dead) or entry.is_symlink():
            continue
        try:
            if kind.folders and entry.is_dir():
                freed += sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
                shutil.rmtree(entry)
            elif not kind.folders and entry.is_file():
                freed += entry.stat().st_size
                entry.unlink()
        except OSError:
            continue  # gone already, or not ours to remove: leave it
    return freed


def _kind(mode: int) -> str | None:
    """What stands at a path of lstat ``mode``, where it is not a plain file."""
    kinds = {stat.S_ISDIR: "folder", stat.S_ISLNK: "symbolic link", stat.S_ISFIFO: "pipe"}
    kinds |= {stat.S_ISSOCK: "socket", stat.S_ISCHR: "device", stat.S_ISBLK: "device"}
    return next((name for test, name in kinds.items() if test(mode)), None)


# The largest config, class table, manifest or split file read: a manifest of a million
# pairs is about 60 MB
TEXT_FILE_BYTES = 256 * 2**20


def read_bounded(path: str | os.PathLike, most: int = TEXT_FILE_BYTES) -> bytes:
    """The bytes of a user's text file (a config, class table, manifest, split), or
    OSError where it is no plain file (a FIFO blocked the read for ever, /dev/zero filled
    memory: a review) or holds more than ``most`` bytes."""
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise OSError(errno.EINVAL, "not a file")
    if info.st_size > most:
        raise OSError(errno.EFBIG, f"larger than {most // 2**20} MiB")
    with open(path, "rb") as f:
        data = f.read(most + 1)
    if len(data) > most:  # grown since its size was read: refused, not cut short
        raise OSError(errno.EFBIG, f"larger than {most // 2**20} MiB")
    return data


def gdal_name(path: str | os.PathLike) -> str:
    """A local path as GDAL must be given it: ``./`` before a relative one whose first
    part holds a colon. GDAL reads ``GTIFF_DIR:1:a.tif`` as a driver's connection string
    and opens another file (a review: predict of a file so named wrote ``a.tif``'s
    classes under its name). URLs pass unchanged."""
    text = os.fspath(path)
    absolute = os.path.isabs(text) or os.path.splitdrive(text)[0]  # C:\\data on Windows
    if not absolute and ":" in text.split("/", 1)[0] and "://" not in text:
        return f"./{text}"
    return text


def check_replaceable(final: Path) -> None:
    """Refuse a ``final`` output path where something other than a plain file stands.
    Outputs are renamed over their final names, which would replace a link (not its
    target), a pipe or a device (/dev/stdout; /dev/full, as root) with a plain file."""
    try:
        kind = _kind(os.lstat(final).st_mode)
    except FileNotFoundError:
        return
    if kind:
        raise AerialsegError(
            f"{final}: a {kind} stands where this output goes; move it, or write elsewhere"
            " with another --out"
        )


def check_apart(out: Path, outputs: list[Path], inputs: list) -> None:
    """Refuse ``outputs`` (those of ``--out out``) of which one is a file that ``inputs``
    names: an output renamed over it would destroy it (a block split's GeoPackage over the
    label polygons it was cut for). URLs, globs, folders, None and objects (a ClassTable
    given to the API) name no such file."""
    for given in inputs:
        if not isinstance(given, str | os.PathLike) or not Path(given).is_file():
            continue
        for written in outputs:
            if written.exists() and os.path.samefile(given, written):
                raise AerialsegError(
                    f"--out {out} would replace {os.fspath(given)}, an input, with"
                    f" {written.name}: name another file"
                )


@dataclass
class OutputSet:
    """The outputs of one input, named ``NAME...`` in ``folder``, renamed into place
    together (the module docstring says how). Write each output to ``temp(final)``, mark
    an earlier run's file that the new set has no place for with ``drop``, then
    ``commit()``; ``abort()`` removes the temporary files."""

    folder: Path
    name: str
    moves: dict[str, str] = field(default_factory=dict)  # final name -> temporary name
    drops: list[str] = field(default_factory=list)
    renaming: bool = False  # the manifest is in place: the set is to be completed, not undone

    @property
    def manifest(self) -> Path:
        return self.folder / set_manifest_name(self.name)

    def temp(self, final: Path, kind: str = "tmp") -> Path:
        tmp = temp_path(self._check(final), kind)
        self.moves[final.name] = tmp.name
        return tmp

    def staged(self, final: Path) -> Path:
        """Where ``final`` is until the commit: its temporary file."""
        return self.folder / self.moves[final.name]

    def drop(self, final: Path) -> None:
        if final.name in self.drops:
            return
        if final.name in self.moves:
            (self.folder / self.moves.pop(final.name)).unlink(missing_ok=True)
        self.drops.append(self._check(final).name)

    def _check(self, final: Path) -> Path:
        if final.parent != self.folder or not final.name.startswith(self.name):
            raise ValueError(f"{final} is not an output named {self.name}... in {self.folder}")
        return final

    def commit(self) -> None:
        # a folder, a link or a device where an output goes: refused before any rename, so
        # the set stays whole
        try:
            for final in self.moves:
                check_replaceable(self.folder / final)
        except AerialsegError:
            self.abort()
            raise
        record = {"owner": owner(), "moves": list(self.moves.items()), "drops": self.drops}
        record["name"] = self.name  # the manifest's own name may be cut (_hidden_stem)
        if len(self.moves) + len(self.drops) == 1:  # one rename is all or nothing anyway
            _rename_set(self.folder, self.manifest, record["moves"], self.drops)
            return
        tmp = temp_path(self.manifest)
        try:
            tmp.write_text(json.dumps(record, indent=1))
            os.replace(tmp, self.manifest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            self.abort()
            raise
        # From here on a failure leaves the manifest: the next run completes the renames.
        self.renaming = True
        _rename_set(self.folder, self.manifest, record["moves"], self.drops)

    def abort(self) -> None:
        if self.renaming:
            return
        for tmp in self.moves.values():
            (self.folder / tmp).unlink(missing_ok=True)


def _rename_set(folder: Path, manifest: Path, moves, drops) -> None:
    for final, tmp in moves:
        with contextlib.suppress(FileNotFoundError):  # renamed before the kill
            os.replace(folder / tmp, folder / final)
    for final in drops:
        (folder / final).unlink(missing_ok=True)
    manifest.unlink(missing_ok=True)


def finish_sets(folder: Path, dead: str | None = None) -> int:
    """Complete the output sets in ``folder`` that a killed process left half renamed
    (its manifest is still there); returns how many. Only sets whose owner is gone
    (_owner_gone), and only renames of that owner's temporary names onto the set's names:
    a manifest that says anything else is left alone."""
    done = 0
    try:
        entries = [e for e in Path(folder).iterdir() if SET_MANIFEST.fullmatch(e.name)]
    except OSError:
        return 0
    for entry in entries:
        try:
            record = json.loads(entry.read_text())
            match = re.fullmatch(_OWNER, record["owner"])
            moves = [(str(final), str(tmp)) for final, tmp in record["moves"]]
            drops = [str(final) for final in record["drops"]]
            # the set's name, which a cut manifest name no longer holds (older: its name)
            named = SET_MANIFEST.fullmatch(entry.name)["name"]  # type: ignore[index]
            name = str(record.get("name", named))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if match is None or not _owner_gone(match, dead):
            continue
        if (
            entry.name == set_manifest_name(name)
            and all(_output_name(f, name) for f in drops)
            and all(
                _output_name(f, name)
                # a name cut as this release cuts it, or whole as earlier ones wrote it
                and (
                    tmp.startswith(temp_prefix(Path(f), record["owner"]))
                    or tmp.startswith(f".{f}.{TAG}-{record['owner']}.")
                )
                and LEFTOVER_FILE.pattern.fullmatch(tmp)
                for f, tmp in moves
            )
        ):
            _rename_set(Path(folder), entry, moves, drops)
            done += 1
    return done


# What predict names an input's outputs after its output name: NAME_classes.tif and the like
OUTPUT_KINDS = ("classes", "confidence", "color", "overlay", "image", "polygons", "areas")


# The formats predict writes its class raster in, with GDAL's sidecar
CLASS_RASTER_SUFFIXES = (".tif", ".png", ".tif.aux.xml", ".png.aux.xml")


def earlier_outputs(folder: Path, name: str, written: Sequence[str]) -> list[Path]:
    """An earlier run's class raster of ``name`` in ``folder`` (with its sidecar) in
    another format than the one in ``written`` (file names), where this run writes one:
    a.tif, then a.png, predicted into one folder left a_classes.tif of the first beside
    the second's a_classes.png, style and areas (a review). Only the class raster: other
    names of that form may be a user's (a second review: an image of theirs named
    a_image.tif, suggest's a_classes.json), and polygons of both formats are asked for on
    purpose (docs/qgis.md). Found by name: a folder of 50,000 outputs is not listed for
    each input."""
    if not any(n.startswith(f"{name}_classes.") for n in written):
        return []
    names = (f"{name}_classes{suffix}" for suffix in CLASS_RASTER_SUFFIXES)
    return [folder / n for n in names if n not in written and os.path.isfile(folder / n)]


def outputs_among(
    paths: Sequence[str | os.PathLike],
    names: Mapping | None = None,
    out: str | os.PathLike | None = None,
) -> set:
    """Those of ``paths`` that are predict's outputs of another of them: ``NAME_classes.tif``
    and the like, where NAME is another input's output name (``names``; its file's stem by
    default) and the file is in the folder its outputs go to (``out``; its own folder by
    default). A folder predicted into itself, or a glob that reaches its outputs, would
    otherwise take the first run's outputs as inputs (a review: x_classes.tif was inspected
    and trained on as a scene)."""

    real = functools.cache(os.path.realpath)  # a path's folder, once each (50,000 inputs)
    folders = {p: real(os.path.dirname(p) or ".") for p in paths}
    into = os.path.realpath(out) if out is not None else None
    made = {
        (into or folders[p], f"{names[p] if names else Path(p).stem}_{kind}")
        for p in paths
        for kind in OUTPUT_KINDS
    }
    return {p for p in paths if (folders[p], Path(p).stem) in made}


def _output_name(name: str, stem: str) -> bool:
    return name.startswith(stem) and not any(ch in name for ch in "/\\\0")


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
