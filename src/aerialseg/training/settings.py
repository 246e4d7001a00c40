"""The settings reference, generated from the one definition of the settings.

Each ``TrainConfig`` field carries its help (``setting(default, help)`` in
training/config.py); this module lists them with each field's type and default, for
``aerialseg train --help`` / ``--list-settings`` and the docs.
"""

from __future__ import annotations

import textwrap
import typing
from dataclasses import MISSING, dataclass, fields
from typing import Any, Literal

from aerialseg.training.config import PRESETS, TrainConfig


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


def settings() -> list[Setting]:
    """Every setting of a run, in TrainConfig's order."""
    hints = typing.get_type_hints(TrainConfig)
    return [
        Setting(
            f.name,
            _kind(hints[f.name]),
            f.default if f.default is not MISSING else None,
            f.metadata.get("help", ""),
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
        lines += _indented(s.meaning, width)
    lines.append("")
    lines += textwrap.wrap("presets (--preset NAME; settings given after it apply over it):", width)
    for name, preset in PRESETS.items():
        lines.append(f"  {name}")
        lines += _indented(preset.about, width)
        for key, (value, why) in preset.settings.items():
            lines += _indented(f"{key}={_value(value)}: {why}", width, "        ")
    return "\n".join(lines)


def _indented(text: str, width: int, indent: str = "      ") -> list[str]:
    return textwrap.wrap(
        text, width, initial_indent=indent, subsequent_indent=indent + "  ", break_on_hyphens=False
    )


def settings_table() -> str:
    """The settings as a Markdown table (docs/training-runs.md carries one)."""
    rows = ["| setting | default | type | meaning |", "| --- | --- | --- | --- |"]
    for s in settings():
        meaning = s.meaning.replace("|", "\\|")
        kind = s.kind.replace("|", "\\|")
        rows.append(f"| `{s.name}` | `{_value(s.default)}` | {kind} | {meaning} |")
    return "\n".join(rows)
