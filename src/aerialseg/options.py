"""Options read from a typed function: the one definition behind its three faces.

A public function's signature gives each option's name, type and default, its Google
docstring's ``Args:`` the help. ``cli.parser`` makes the command-line flags from them and
``api.app`` the HTTP query parameters, so an option is written once (STYLE.md, "one
definition, many faces"). Reading them imports nothing heavy: ``aerialseg --help`` stays
quick.
"""

from __future__ import annotations

import builtins
import collections.abc
import contextvars
import functools
import inspect
import math
import numbers
import os
import re
import shlex
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np

from aerialseg.errors import CONTROLS


class Positive:
    """``Annotated[float, Positive()]``: only a value above 0 makes sense (a size)."""


PositiveFloat = Annotated[float, Positive()]


@dataclass(frozen=True)
class Option:
    name: str
    help: str
    kind: type  # str, int, float or bool: what one value is read as
    default: Any = inspect.Parameter.empty  # empty: required
    choices: tuple | None = None  # a Literal's values
    many: bool = False  # a sequence of kind
    positional: bool = False  # positional-or-keyword in Python
    positive: bool = False

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty


class _Namespace(dict):
    """Globals for evaluating annotations: names imported only for type checkers
    (``ClassTable``) evaluate to a stand-in class of their name, read as text."""

    def __init__(self, module: types.ModuleType):
        super().__init__(vars(module))

    def __missing__(self, name: str) -> Any:
        return getattr(builtins, name, None) or _stand_in(name)


@functools.cache
def _stand_in(name: str) -> type:
    """A class standing for one that only type checkers import (``ClassTable``): a value
    is of it where its class, or a base, has the name."""
    return type(name, (), {"stand_in": True})


def _hints(function: Any) -> dict[str, Any]:
    namespace = _Namespace(sys.modules[function.__module__])
    found = {}
    for name, parameter in inspect.signature(function).parameters.items():
        annotation = parameter.annotation
        found[name] = eval(annotation, {}, namespace) if isinstance(annotation, str) else annotation
    return found


def docstring_args(function: Any) -> dict[str, str]:
    """The ``Args:`` section of a Google docstring: name -> its text on one line."""
    found: dict[str, str] = {}
    section, name = False, None
    for line in (inspect.getdoc(function) or "").splitlines():
        if not line.strip():
            continue
        if re.match(r"^\S", line):
            section, name = line.strip() == "Args:", None
        elif section and (entry := re.match(r"^ {4}(\w+)( \(.*\))?: (.*)", line)):
            name = entry.group(1)
            found[name] = entry.group(3)
        elif section and name:
            found[name] += " " + line.strip()
    return found


def description(function: Any) -> tuple[str, str]:
    """A docstring's first line and the paragraphs after it up to its sections."""
    text = inspect.getdoc(function) or ""
    first, _, rest = text.partition("\n")
    body = re.split(r"\n\n(?:Args|Returns|Raises|Examples?):\n", rest)[0]
    return first, body.strip()


def plain(text: str) -> str:
    """Docstring markup as a terminal shows it: ``auto`` -> auto."""
    return text.replace("``", "")


def flag_name(name: str) -> str:
    """A parameter's command-line flag: ``label_crs`` -> ``--label-crs``."""
    return "--" + name.replace("_", "-")


def as_flags(values: Mapping[str, Any]) -> list[str]:
    """Option values as the command-line arguments that give them, for a command to print:
    a switch (off by default) where True, nothing where None or False, a list of numbers
    as one ``--bands 4,3,2``, else the flag and the value as text, a path as given."""
    argv: list[str] = []
    for name, value in values.items():
        if value is True:
            argv.append(flag_name(name))
        elif isinstance(value, list | tuple) and all(isinstance(v, int) for v in value):
            argv += [flag_name(name), ",".join(map(str, value))]
        elif value is not None and value is not False:
            argv += [flag_name(name), str(value)]
    return argv


# How the commands aerialseg prints write their options; any other word that starts with
# a dash is a value (a path such as -run, a number such as -1)
FLAG = re.compile(r"--[a-z][a-z0-9-]*")


def command_line(argv: list[Any]) -> str:
    """A command for a user to run as printed: its words shell-quoted, and a value that
    starts with a dash, which argparse would read as an option, joined to its flag
    (``--out=-run``) or, a positional path, as ``./-run`` (a review: the printed evaluate
    of a run in ./-run failed with 'expected one argument')."""
    words: list[str] = []
    for word in map(str, argv):
        if word.startswith("-") and not FLAG.fullmatch(word):
            if words and FLAG.fullmatch(words[-1]):
                words[-1] += f"={word}"
                continue
            word = f"./{word}"
        words.append(word)
    return " ".join(map(_quoted, words))


def _quoted(word: str) -> str:
    """``word`` shell-quoted; one with control characters in bash's $'...', which writes
    each as its escape: quoted as it is, a name's ESC would reach the terminal."""
    if not CONTROLS.search(word):
        return shlex.quote(word)
    escaped = word.replace("\\", "\\\\").replace("'", "\\'")
    return "$'" + CONTROLS.sub(lambda m: _escape(m.group()), escaped) + "'"


def _escape(char: str) -> str:
    """A character as bash's $'...' writes it: \\xHH for ASCII, else \\uHHHH (UTF-8)."""
    return f"\\x{ord(char):02x}" if ord(char) < 0x80 else f"\\u{ord(char):04x}"


def _read(name: str, hint: Any) -> dict[str, Any]:
    """kind, choices, many and positive of one annotation."""
    positive = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        # str | Path | Model | None: the first is what a command line gives; a sequence
        # among them (str | Path | Sequence[str | Path]) takes many
        members = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = next((m for m in members if _is_sequence(m)), members[0])
    if typing.get_origin(hint) is Annotated:  # PositiveFloat, alone or in a union
        positive = any(isinstance(m, Positive) for m in hint.__metadata__)
        hint = typing.get_args(hint)[0]
    if typing.get_origin(hint) is Literal:
        values = typing.get_args(hint)
        return {"kind": type(values[0]), "choices": values, "positive": positive}
    if _is_sequence(hint):
        (item,) = typing.get_args(hint)[:1] or (str,)
        return {**_read(name, item), "many": True}
    if hint in (bool, int, float):
        return {"kind": hint, "positive": positive}
    return {"kind": str}


def _is_sequence(hint: Any) -> bool:
    origin = typing.get_origin(hint)
    return origin in (list, tuple, collections.abc.Sequence)


def options(function: Any, skip: tuple[str, ...] = ()) -> list[Option]:
    """The options of ``function``, in its order, but ``skip`` (Python-only ones: objects,
    callbacks) and ``*args``/``**kwargs``. A parameter without help is an error here, so
    that no option reaches a user unexplained."""
    helps = docstring_args(function)
    hints = _hints(function)
    found = []
    for name, parameter in inspect.signature(function).parameters.items():
        if (
            name in skip
            or name == "self"
            or parameter.kind
            in (
                parameter.VAR_POSITIONAL,
                parameter.VAR_KEYWORD,
            )
        ):
            continue
        if name not in helps:
            raise TypeError(f"{function.__qualname__}: parameter {name!r} has no Args: entry")
        found.append(
            Option(
                name,
                helps[name],  # with its markup: the CLI names options as flags
                default=parameter.default,
                positional=parameter.kind is parameter.POSITIONAL_OR_KEYWORD,
                **_read(name, hints[name]),
            )
        )
    return found


# Whether the command line called: messages name its flags (--bands). A Python caller's
# name the function's parameters (bands=); cli.main sets it around a command.
ON_COMMAND_LINE: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "aerialseg_on_command_line", default=False
)
_FLAG = re.compile(r"--([a-z][a-z0-9-]*)(?: ([^\s,;:()]+))?")


def in_python_terms(message: str, function: Any) -> str:
    """``message``, written with the command line's flags, as a Python caller of
    ``function`` names them: ``--resume`` as ``resume=True``, ``--bands 1,2`` as
    ``bands=1,2``, ``--out`` as ``out=``. A flag that is no parameter of ``function``, or
    inside a command line the message quotes ("aerialseg train --resume"), is kept."""
    known = {option.name: option for option in options(function)}

    def spoken(match: re.Match[str]) -> str:
        option = known.get(match[1].replace("-", "_"))
        if option is None or "aerialseg " in re.split(r"['`]", message[: match.start()])[-1]:
            return match[0]
        value = match[2]
        if option.kind is bool:
            return f"{option.name}=True" + (f" {value}" if value else "")
        if value and (not value[0].isalpha() or any(c in value for c in "./")):
            return f"{option.name}={value}"
        return f"{option.name}=" + (f" {value}" if value else "")

    return _FLAG.sub(spoken, message)


def speaks_python(function: Any) -> Any:
    """``function`` raising AerialsegError in its Python caller's terms (in_python_terms)
    where no command line called it (a review: Python callers were told to pass
    --resume)."""
    from aerialseg.errors import AerialsegError

    @functools.wraps(function)
    def called(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except AerialsegError as err:
            if not ON_COMMAND_LINE.get() and err.args and isinstance(err.args[0], str):
                err.args = (in_python_terms(err.args[0], function), *err.args[1:])
            raise

    return called


def _one_value_error(option: Option, value: Any) -> str | None:
    """What is wrong with one value of ``option``, or None."""
    if option.choices is not None:
        if value not in option.choices or type(value) is not type(option.choices[0]):
            return f"give one of {', '.join(map(repr, option.choices))}"
        return None
    if option.kind is bool:
        # numpy's too: what a mask's any() or a comparison of numpy values gives
        return None if isinstance(value, bool | np.bool_) else "give True or False"
    if option.kind in (int, float):
        number = numbers.Integral if option.kind is int else numbers.Real  # numpy's too
        if isinstance(value, bool) or not isinstance(value, number):
            return "give a whole number" if option.kind is int else "give a number"
        if option.positive and not (math.isfinite(value) and float(value) > 0):
            return "give a number above 0"
    return None  # text, paths and objects: checked where they are used


def check_arguments(function: Any, values: Mapping[str, Any], skip: tuple[str, ...] = ()) -> None:
    """The Python face's check of what a caller passed, by the same definition the flags
    come from: a choice among its Literal's values, True or False for a switch, numbers
    for numbers (a string "false" would be a true switch, "jpg" a silent default), text,
    paths and objects of the types annotated, and no empty text (a script's unset
    variable, which as a path would be the current folder). Raises ConfigError naming
    the first wrong argument; None passes where it is the default. What text and paths
    say is left to the code that uses them."""
    from aerialseg.errors import ConfigError, shown

    hints = _hints(function)
    for option in options(function, skip):
        if option.name not in values:
            continue
        value = values[option.name]
        if value is None and option.default is None:
            continue
        if option.kind is str and option.choices is None:
            _check_text(function, option.name, hints[option.name], value)
            continue
        if option.many:
            # a list, a tuple or a numpy array (no Sequence, but sized and iterable); not
            # a set, whose order is not the one written, nor an iterator, used up here
            listed = isinstance(value, collections.abc.Sized) and isinstance(
                value, collections.abc.Iterable
            )
            unordered = isinstance(value, collections.abc.Set)
            if isinstance(value, str | bytes | collections.abc.Mapping) or unordered or not listed:
                why = " (a set has no order)" if unordered else ""
                raise ConfigError(f"{option.name}={shown(value)}: give a list{why}, e.g. [4, 3, 2]")
            wrong = next((e for v in value if (e := _one_value_error(option, v))), None)
        else:
            wrong = _one_value_error(option, value)
        if wrong:
            raise ConfigError(f"{option.name}={shown(value)}: {wrong}")


def _check_text(function: Any, name: str, hint: Any, value: Any) -> None:
    """ConfigError where a text, path or object option's value is not of its annotated
    type, or is empty text."""
    from aerialseg.errors import ConfigError, shown

    items = value if isinstance(value, list | tuple) else [value]
    if any(isinstance(item, str) and not item.strip() for item in items):
        path = _fits(hint, Path())  # "--out $DIR" with DIR unset: not the current folder
        raise ConfigError(
            f"{name}={shown(value)}: empty; "
            + ("name a file or folder" if path else "give a value")
        )
    if not _fits(hint, value):
        written = inspect.signature(function).parameters[name].annotation
        raise ConfigError(f"{name}={shown(value)} ({type(value).__name__}): give {written}")


def _fits(hint: Any, value: Any) -> bool:
    """Whether ``value`` is of the annotation ``hint``, as far as it can be told here (a
    callable's signature or a mapping's contents cannot)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(member, value) for member in typing.get_args(hint))
    if origin is Annotated:
        return _fits(typing.get_args(hint)[0], value)
    if origin is Literal:
        return value in typing.get_args(hint)
    if _is_sequence(hint):
        (item,) = typing.get_args(hint)[:1] or (Any,)
        return isinstance(value, list | tuple) and all(_fits(item, v) for v in value)
    if hint is type(None):
        return value is None
    if hint in (int, float):
        number = numbers.Integral if hint is int else numbers.Real
        return isinstance(value, number) and not isinstance(value, bool)
    if isinstance(hint, type) and issubclass(hint, os.PathLike):  # Path: any path object
        return isinstance(value, os.PathLike)
    if getattr(hint, "stand_in", False):  # a class only type checkers import: by name
        return any(kind.__name__ == hint.__name__ for kind in type(value).__mro__)
    return isinstance(value, hint) if isinstance(hint, type) else True
