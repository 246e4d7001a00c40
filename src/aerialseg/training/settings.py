"""The settings reference, generated from the one definition of the settings.

``TrainConfig``'s field comments (training/config.py) say what each setting means; this
module reads them from the source, beside each field's type and default, for
``aerialseg train --help`` / ``--list-settings`` and the docs. Comments rather than
``field(metadata=...)``: the class stays as readable as a YAML file, and a setting
without a comment fails tests/training/test_settings.py.
"""

from __future__ import annotations

import ast
import inspect
import io
import textwrap
import tokenize
import typing
from dataclasses import MISSING, dataclass, fields
from typing import Any, Literal

from aerialseg.training import config as config_module
from aerialseg.training.config import TrainConfig


@dataclass(frozen=True)
class Setting:
    name: str
    kind: str  # "int", "float", "one of: a, b", ...
    default: Any
    meaning: str


def _kind(hint: Any) -> str:
    origin = typing.get_origin(hint)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if origin is Literal:
        return "one of: " + ", ".join(map(str, typing.get_args(hint)))
    if origin is list:
        return f"list of {_kind(args[0])}"
    if args and len(args) < len(typing.get_args(hint)):  # X | None
        return f"{_kind(args[0])} or null"
    return getattr(hint, "__name__", str(hint))


def _comments() -> dict[str, str]:
    """Each field's comment: the comment lines right above it, then the one beside it."""
    source = inspect.getsource(config_module)
    by_line: dict[int, str] = {}
    code_lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            by_line[token.start[0]] = token.string.lstrip("#").strip()
        elif token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            code_lines.add(token.start[0])
    tree = ast.parse(source)
    cls = next(
        node
        for node in tree.body
        if isinstance(node, ast.ClassDef) and node.name == TrainConfig.__name__
    )
    found: dict[str, str] = {}
    for node in cls.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above: list[str] = []
        line = node.lineno - 1
        while line in by_line and line not in code_lines:
            above.insert(0, by_line[line])
            line -= 1
        beside = [by_line[node.end_lineno]] if node.end_lineno in by_line else []
        found[node.target.id] = " ".join(above + beside)
    return found


def settings() -> list[Setting]:
    """Every setting of a run, in TrainConfig's order."""
    hints = typing.get_type_hints(TrainConfig)
    comments = _comments()
    return [
        Setting(
            f.name,
            _kind(hints[f.name]),
            f.default if f.default is not MISSING else None,
            comments.get(f.name, ""),
        )
        for f in fields(TrainConfig)
    ]


def _value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def format_settings(width: int = 79) -> str:
    """The settings as text: one entry per setting, its meaning wrapped below it."""
    lines = [
        "settings (key=value after the options, or keys of a --config YAML file; the defaults"
        " below are the default preset's, 'train --print-config --preset seed' shows another's):"
    ]
    lines = textwrap.wrap(lines[0], width)
    for s in settings():
        lines.append(f"  {s.name}={_value(s.default)}  ({s.kind})")
        lines += textwrap.wrap(
            s.meaning,
            width,
            initial_indent="      ",
            subsequent_indent="      ",
            break_on_hyphens=False,
        )
    return "\n".join(lines)


def settings_table() -> str:
    """The settings as a Markdown table (docs/training-runs.md carries one)."""
    rows = ["| setting | default | type | meaning |", "| --- | --- | --- | --- |"]
    for s in settings():
        meaning = s.meaning.replace("|", "\\|")
        kind = s.kind.replace("|", "\\|")
        rows.append(f"| `{s.name}` | `{_value(s.default)}` | {kind} | {meaning} |")
    return "\n".join(rows)
