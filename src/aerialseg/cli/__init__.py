"""The ``aerialseg`` command. Each subcommand is a thin function over the library.

User errors (bad data, bad config, bad model file) print one line on stderr and exit 2, and
so do a file the system will not read (a loop of symbolic links, no permission) and an
output that cannot be written (a full disk, a vanished or read-only output folder);
anything else is a bug: it keeps its traceback, below a line that says so.
"""

import argparse
import contextlib
import errno
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

# The process's start, as near as the package can see it: what train --max-time counts from.
STARTED = time.monotonic()

from aerialseg.cli.parser import build_parser  # noqa: E402
from aerialseg.errors import AerialsegError, printable  # noqa: E402
from aerialseg.files import temp_prefix, write_failure  # noqa: E402
from aerialseg.options import ON_COMMAND_LINE  # noqa: E402

EXIT_USER_ERROR = 2
BUG = (
    "aerialseg: this is a bug in aerialseg, not a fault of your input; please report it to"
    " the aerialseg maintainers with the command you ran and the traceback below"
)


def output_folder(args: argparse.Namespace) -> Path | None:
    """The folder a command writes into: ``--out`` (a folder, or a file for ``data
    split``), ``export``'s ``--onnx`` file; None for commands that write nothing."""
    target = getattr(args, "onnx", None) or getattr(args, "out", None)
    if target is None:
        return None
    target = Path(target)
    return target.parent if target.suffix else target


def _terminate(signum: int, frame: object) -> None:
    TERMINATED.set()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the clean-up
    raise KeyboardInterrupt  # what Ctrl-C raises: its clean-up runs, and its exit


# SIGTERM (kill, timeout, a job scheduler) ended a command at once, skipping the clean-up
# that Ctrl-C runs: half-written outputs and temporary files were left behind (a review:
# suggest's /tmp/aerialseg-suggest-* grids, about 400 MB for a 20,000 px scene). A console
# command takes it as Ctrl-C, and exits 143 where Ctrl-C exits 130.
TERMINATED = threading.Event()


def interrupted_exit(what: str = "", then: str = "") -> int:
    """Say that Ctrl-C or SIGTERM stopped ``what`` (and ``then``, what to do next); the
    exit status, 128 + the signal's number."""
    by = "terminated (SIGTERM)" if TERMINATED.is_set() else "interrupted"
    line = " ".join(filter(None, [what, by])) + (f"; {then}" if then else "")
    print(f"aerialseg: {line}", file=sys.stderr)
    return 143 if TERMINATED.is_set() else 130


def main(argv: list[str] | None = None) -> int:
    # A console command counts from the process's start; main([...]) called in a running
    # process (tests, notebooks) from the call.
    started = STARTED if argv is None else time.monotonic()
    try:
        args = parse(argv)
    except BrokenPipeError:  # --help | head
        return closed_pipe()
    # the console command's own process only, not the server, and not where it was started
    # with SIGTERM ignored
    console = argv is None and threading.current_thread() is threading.main_thread()
    serving = getattr(getattr(args, "command", None), "name", None) == "serve"
    if console and not serving and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate)
    args.started = started
    folder = output_folder(args)
    existed = folder is not None and folder.exists()  # "disappeared" only if it was there
    spoken = ON_COMMAND_LINE.set(True)  # messages name this command's flags
    try:
        return args.func(args)
    except AerialsegError as err:
        print(f"aerialseg: error: {printable(err)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return interrupted_exit()
    except BrokenPipeError:  # data inspect --json | head: the reader has all it wants
        return closed_pipe()
    except Exception as err:
        reason = write_failure(err, folder, existed) if folder is not None else None
        reason = reason or uncreatable_output(err, args) or unreadable_file(err)
        if reason is None:
            print(BUG, file=sys.stderr)
            raise
        print(f"aerialseg: error: {printable(reason)}", file=sys.stderr)
        return EXIT_USER_ERROR
    finally:
        ON_COMMAND_LINE.reset(spoken)


SETTING = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")  # train's key=value


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line; train's key=value settings anywhere among its options, in as many
    groups as given (argparse takes one run of a positional's values only)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    takes = hasattr(args, "overrides")
    settings = [token for token in extra if takes and SETTING.match(token)]
    stray = [token for token in extra if token not in settings]
    if stray:  # argparse's own one line, and exit 2
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if settings:
        args.overrides = [*args.overrides, *settings]
    return args


def closed_pipe() -> int:
    """What a command whose reader closed its output ends with: quietly, as one killed by
    SIGPIPE does (128 + 13), and with its output sent nowhere so that Python's flush at
    exit does not fail again."""
    with contextlib.suppress(AttributeError, OSError, ValueError):  # a stdout with no file
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 141


# what the file system says when a path cannot be made: a part of it is a file, the
# place is read-only or not the user's, or it lies in a folder that does not exist
UNCREATABLE = (errno.ENOTDIR, errno.EEXIST, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT)


def uncreatable_output(err: BaseException, args: argparse.Namespace) -> str | None:
    """One line for an output path the system will not make (``--out small.png/run``,
    ``/dev/null/x``, a read-only place): the flag, the path and the system's reason; None
    for any other error, or one about another path."""
    flag, target = next(
        ((f, getattr(args, f, None)) for f in ("onnx", "out") if getattr(args, f, None)),
        (None, None),
    )
    if not isinstance(err, OSError) or err.errno not in UNCREATABLE or not err.filename:
        return None
    path, named = Path(target or ""), Path(err.filename).absolute()
    # the file itself, a folder above it, or the hidden file it is written as first
    temporary = named.parent == path.absolute().parent and named.name.startswith(temp_prefix(path))
    if target is None or not (temporary or named in (path.absolute(), *path.absolute().parents)):
        return None
    blocking = next((p for p in reversed(path.parents) if p.exists() and not p.is_dir()), None)
    where = path.parent if temporary else err.filename
    why = f"{blocking} is a file, not a folder" if blocking else f"{err.strerror}: {where}"
    return f"--{flag} {target}: cannot create it ({why})"


# what the file system says of a file that is there but cannot be had; a missing file
# (ENOENT) may be a path that aerialseg itself got wrong: a bug, kept with its traceback
UNREADABLE = (errno.ELOOP, errno.EACCES, errno.EPERM, errno.EIO)


def unreadable_file(err: BaseException) -> str | None:
    """One line for a file the system refused (a loop of symbolic links, no permission, an
    I/O error): the file's name and the system's reason; else None."""
    if isinstance(err, OSError) and err.filename and err.errno in UNREADABLE:
        return f"{err.filename}: {err.strerror}"
    return None
