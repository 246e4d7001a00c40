"""The ``aerialseg`` argument parser, generated from the Python API.

Each command runs one function of ``aerialseg.public``, and that function's signature and
docstring are the command's ``--help`` (aerialseg.options reads them): ``pixel_size`` is
``--pixel-size``, a ``Literal`` gives the choices, ``bool`` a switch (``--no-areas`` for
one that is on by default), ``Sequence[int]`` numbers (``--bands 4 3 2`` or ``4,3,2``),
a positional parameter a positional argument. Below, per command, is only what a
terminal adds: Python positionals taken as flags (``--out``), a few spellings kept as
users type them, and options that are no parameter (``--json``, ``--print-config``).
"""

from __future__ import annotations

import argparse
import inspect
import math
import re
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from aerialseg import __version__, public
from aerialseg.api.serve import serve
from aerialseg.cli import commands
from aerialseg.options import Option, description, flag_name, options, plain


@dataclass(frozen=True)
class Command:
    name: str  # "predict", "data inspect"
    function: Callable
    run: Callable[[argparse.Namespace], int]
    flags: tuple[str, ...] = ()  # positional in Python, --flags on the command line
    skip: tuple[str, ...] = ()  # Python only: objects, callbacks
    spelled: Mapping[str, dict] = field(default_factory=dict)  # argparse settings kept
    extra: Callable[[argparse.ArgumentParser], None] | None = None  # terminal-only options

    def options(self) -> list[Option]:
        return options(self.function, self.skip)


def _inspect_extra(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _train_extra(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print the settings this command would train with (YAML, usable as --config) and exit",
    )
    p.add_argument(
        "--list-settings",
        action="store_true",
        help="list every setting with its default and meaning, and exit",
    )
    p.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="settings, e.g. lr=3e-4 (listed below)"
    )


def _predict_extra(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--all-outputs", action="store_true", help="colour mask, overlay and confidence too"
    )


COMMANDS = [
    Command("data inspect", public.inspect_data, commands.cmd_inspect, extra=_inspect_extra),
    Command("data split", public.split_data, commands.cmd_split, flags=("out",)),
    Command(
        "train",
        public.train,
        commands.cmd_train,
        flags=("data", "out"),
        skip=("settings", "callbacks", "transforms", "started"),
        # --print-config and --list-settings need no data; cmd_train asks for it
        spelled={"data": {"required": False, "default": None}},
        extra=_train_extra,
    ),
    Command("evaluate", public.evaluate, commands.cmd_evaluate, flags=("data",)),
    Command(
        "predict",
        public.predict_files,
        commands.cmd_predict,
        flags=("out",),
        spelled={
            "inputs": {"metavar": "INPUT"},
            "ray": {"nargs": "?", "const": "local", "metavar": "ADDRESS"},
        },
        extra=_predict_extra,
    ),
    Command("suggest", public.suggest, commands.cmd_suggest, flags=("out",)),
    Command("export", public.export, commands.cmd_export, flags=("onnx",)),
    Command(
        "serve",
        serve,
        commands.cmd_serve,
        flags=("model",),
        spelled={
            "allowed_hosts": {"option": "--allowed-host", "metavar": "HOST"},
            "cors_origins": {"option": "--cors-origin", "metavar": "ORIGIN"},
        },
    ),
]


class _Numbers(argparse.Action):
    """``--bands 4 3 2`` or ``--bands 4,3,2`` -> [4, 3, 2]."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        numbers = []
        for text in values:
            for value in filter(None, text.split(",")):
                try:
                    numbers.append(int(value))
                except ValueError:
                    # "--bands 3 2 1 scene.tif": the list takes every word up to the next flag
                    parser.error(
                        f"argument {option_string}: {value!r} is not a whole number; give"
                        f" them as {option_string} 4,3,2 or 4 3 2, and put input paths"
                        f" before {option_string} or write {option_string}=4,3,2"
                    )
        setattr(namespace, self.dest, numbers)


def _positive(name: str):
    """The flag's reader: a finite number above 0, said in the option's terms."""
    hint = "a positive size in CRS units, e.g. 0.5" if name == "pixel_size" else "a number above 0"

    def read(text: str) -> float:
        try:
            size = float(text)
        except ValueError:
            size = 0.0
        if not (size > 0 and math.isfinite(size)):
            raise argparse.ArgumentTypeError(f"{text!r}: give {hint}")
        return size

    return read


def as_typed(text: str, flags: Mapping[str, str]) -> str:
    """Docstring text as a terminal reads it: a parameter named in it (``block_size``) as
    the flag that gives it here (--block-size), other markup dropped."""
    return plain(re.sub(r"``(\w+)``", lambda m: flags.get(m[1], m[1]), text))


def _help(option: Option, flags: Mapping[str, str]) -> str:
    text = option.help.split(" In Python:")[0].rstrip(".")  # what only a Python caller can pass
    text = as_typed(text, flags)
    if option.kind is bool and option.default is True:  # --no-areas
        return "do not " + text
    # by identity: 0 == False, and a default of 0 (a seed) is one to show
    unset = any(option.default is v for v in (None, False, inspect.Parameter.empty))
    if not unset and option.default != () and "default" not in text:
        text += f" (default {option.default})"
    return text.replace("%", "%%")


def add_option(
    p: argparse.ArgumentParser, option: Option, flag: bool, spelled: dict, flags: Mapping[str, str]
) -> None:
    """One parameter as a flag (``flag``: also a positional one) or a positional;
    ``flags``: the command's flags by parameter, for its help."""
    settings: dict[str, Any] = {"help": _help(option, flags)}
    names = [spelled.pop("option", flag_name(option.name))]
    if option.kind is bool and not option.many:
        on = option.default is True
        # --areas -> --no-areas (spelled in two: tests/cli/test_messages.py reads "--no" as a flag)
        names = ["--" + "no-" + names[0][2:]] if on else names
        settings["action"] = "store_false" if on else "store_true"
    else:
        settings["type"] = _positive(option.name) if option.positive else option.kind
        if option.choices:
            settings["choices"] = option.choices
        if option.many and not flag:
            settings["nargs"] = "+"
        elif option.many and option.kind is str:
            settings["action"] = "append"  # --cors-origin A --cors-origin B
        elif option.many:
            settings |= {"nargs": "+", "action": _Numbers, "type": str, "metavar": "N"}
    if flag:
        settings |= {"dest": option.name} | ({"required": True} if option.required else {})
    if not option.required:
        default = option.default
        settings["default"] = list(default) if isinstance(default, tuple) else default
    settings |= spelled
    p.add_argument(*(names if flag else [option.name]), **settings)


SETTINGS = "(the settings)"  # train --help's epilog, filled in by _TrainHelp


class _TrainHelp(argparse.RawDescriptionHelpFormatter):
    """Lists the settings in ``train --help``, read only when help is shown: reading them
    imports the models, which every other command's start would pay for."""

    def add_text(self, text: str | None) -> None:
        if text == SETTINGS:
            from aerialseg.training.settings import format_settings

            text = format_settings()
        super().add_text(text)


def _add_command(sub: Any, command: Command) -> None:
    summary, body = description(command.function)
    summary = summary.split(": ``aerialseg")[0].rstrip(".")
    flags = {
        option.name: command.spelled.get(option.name, {}).get("option", flag_name(option.name))
        for option in command.options()
        if not option.positional or option.name in command.flags
    }
    text = " ".join(as_typed(body, flags).split())
    train = command.name == "train"
    p = sub.add_parser(
        command.name.split()[-1],
        help=summary[0].lower() + summary[1:] if summary[1:2].islower() else summary,
        description=textwrap.fill(text, 79) if train else text,  # argparse's own width
        epilog=SETTINGS if train else None,
        formatter_class=_TrainHelp if train else argparse.HelpFormatter,
    )
    for option in command.options():
        flag = not option.positional or option.name in command.flags
        add_option(p, option, flag, dict(command.spelled.get(option.name, {})), flags)
    if command.extra:
        command.extra(p)
    p.set_defaults(func=command.run, command=command)


class _OneLineParser(argparse.ArgumentParser):
    """argparse's parser whose errors are one line, with where to read more: argparse's
    own printed the whole usage first, 12 lines for a wrong --split (a review). Its
    subcommands' parsers are of this class too (add_subparsers' default)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="aerialseg",
        description="Semantic segmentation of aerial and satellite imagery.",
    )
    parser.add_argument("--version", action="version", version=f"aerialseg {__version__}")
    sub = parser.add_subparsers(dest="command_name", required=True, metavar="COMMAND")
    data = sub.add_parser("data", help="look at a dataset, split it").add_subparsers(
        dest="data_command", required=True, metavar="COMMAND"
    )
    for command in COMMANDS:
        _add_command(data if command.name.startswith("data ") else sub, command)
    return parser
