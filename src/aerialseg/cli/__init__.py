"""The ``aerialseg`` command. Each subcommand is a thin function over the library.

User errors (bad data, bad config, bad model file) print one line on stderr and exit 2;
anything else is a bug and keeps its traceback.
"""

import sys
import time

# The process's start, as near as the package can see it: what train --max-time counts from.
STARTED = time.monotonic()

from aerialseg.cli.parser import build_parser  # noqa: E402
from aerialseg.errors import AerialsegError  # noqa: E402

EXIT_USER_ERROR = 2


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
