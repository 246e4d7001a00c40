"""The ``aerialseg`` command. Each subcommand is a thin function over the library.

User errors (bad data, bad config, bad model file) print one line on stderr and exit 2;
anything else is a bug and keeps its traceback.
"""

import sys

from aerialseg.cli.parser import build_parser
from aerialseg.errors import AerialsegError

EXIT_USER_ERROR = 2


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
