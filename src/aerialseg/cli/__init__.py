"""The ``aerialseg`` command. Each subcommand is a thin function over the library.

User errors (bad data, bad config, bad model file) print one line on stderr and exit 2, and
so does an output that cannot be written (a full disk, a vanished or read-only output
folder); anything else is a bug and keeps its traceback.
"""

import argparse
import sys
from pathlib import Path

from aerialseg.cli.parser import build_parser
from aerialseg.errors import AerialsegError
from aerialseg.files import write_failure

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
    args = build_parser().parse_args(argv)
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
