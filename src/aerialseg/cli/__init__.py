"""The ``aerialseg`` command. Each subcommand is a thin function over the library.

User errors (bad data, bad config, bad model file) print one line on stderr and exit 2, and
so does an output that cannot be written (a full disk, a vanished or read-only output
folder); anything else is a bug and keeps its traceback.
"""

import argparse
import sys
import time
from pathlib import Path

# The process's start, as near as the package can see it: what train --max-time counts from.
STARTED = time.monotonic()

from aerialseg.cli.parser import build_parser  # noqa: E402
from aerialseg.errors import AerialsegError  # noqa: E402
from aerialseg.files import write_failure  # noqa: E402

EXIT_USER_ERROR = 2


def output_folder(args: argparse.Namespace) -> Path | None:
    """The folder a command writes into: ``--out`` (a folder, or a file for ``data
    split``), ``export``'s ``--onnx`` file; None for commands that write nothing."""
    target = getattr(args, "onnx", None) or getattr(args, "out", None)
    if target is None:
        return None
    target = Path(target)
    return target.parent if target.suffix else target


def main(argv: list[str] | None = None) -> int:
    # A console command counts from the process's start; main([...]) called in a running
    # process (tests, notebooks) from the call.
    started = STARTED if argv is None else time.monotonic()
    args = build_parser().parse_args(argv)
    args.started = started
    try:
        return args.func(args)
    except AerialsegError as err:
        print(f"aerialseg: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("aerialseg: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        folder = output_folder(args)
        reason = write_failure(err, folder) if folder is not None else None
        if reason is None:
            raise
        print(f"aerialseg: error: {reason}", file=sys.stderr)
        return EXIT_USER_ERROR
