"""YAML as users write it (configs, class tables, manifests), read safely and strictly; and
JSON with the same refusal of a key given twice.

Two things of PyYAML are changed, by hand because it has no option for either, and
ruamel.yaml, which has both, would be a second YAML library:

- It keeps the last of two equal keys in a mapping, so ``lr: 0.001`` followed further
  down by ``lr: 0.5`` trained at 0.5 without a word. A key given twice is refused.
- It reads YAML 1.1, whose plain scalars surprise: ``max_time: 1:30:00`` is the number
  5400 (base 60), ``scheduler: off`` is false, a class named ``no`` or ``NO`` is false and
  ``010`` is 8. Plain scalars are resolved as YAML 1.2's core schema does instead:
  true/false, decimal, ``0o``/``0x`` and float numbers, null; anything else is text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Hashable
from typing import Any

import yaml

from aerialseg.errors import parse_reason

_CORE_SCHEMA = {  # YAML 1.2.2, 10.3.2 "Tag Resolution" of the core schema
    "tag:yaml.org,2002:bool": (r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    "tag:yaml.org,2002:int": (r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    "tag:yaml.org,2002:float": (
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+0123456789.",
    ),
}
_KEPT_TAGS = {"tag:yaml.org,2002:null", "tag:yaml.org,2002:merge"}
# Keys whose plain value is text as typed even where it reads as a number: a class named
# 01 or 0x1F was the number 1 or 31, and legends and polygon matching said so (a review)
TEXT_KEYS = {"name"}


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema scalars that refuses a key given twice in one
    mapping."""

    yaml_implicit_resolvers = {  # PyYAML's null and merge (<<) only; the rest below
        first: [(tag, regexp) for tag, regexp in resolvers if tag in _KEPT_TAGS]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        merges = [value for key, value in node.value if key.tag == "tag:yaml.org,2002:merge"]
        _check_merges(merges)
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base`: its keys are defaults the mapping's own override
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # SafeLoader refuses it below, in its own words
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        for key_node, value_node in node.value:
            plain = isinstance(value_node, yaml.ScalarNode) and value_node.style is None
            named = isinstance(key_node, yaml.ScalarNode) and key_node.value in TEXT_KEYS
            if named and plain and value_node.tag in _CORE_SCHEMA:
                value_node.tag = "tag:yaml.org,2002:str"
        return super().construct_mapping(node, deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        text = str(self.construct_scalar(node))
        if text.startswith(("0o", "0x")):
            return int(text[2:], 8 if text[1] == "o" else 16)
        return int(text, 10)  # 010 is ten, as in YAML 1.2, not 1.1's eight


def _check_merges(merges: list[yaml.Node]) -> None:
    """Refuse ``<<`` given twice in one mapping, or a key in two of the mappings one ``<<``
    merges: which wins is read either way (PyYAML took the last, the merge spec says the
    first; a review), like a key given twice."""
    if len(merges) > 1:
        raise yaml.constructor.ConstructorError(
            None, None, "'<<' is given twice", merges[1].start_mark
        )
    merged = merges[0].value if merges and isinstance(merges[0], yaml.SequenceNode) else []
    keys: set = set()
    for mapping in merged:
        for key, _ in mapping.value if isinstance(mapping, yaml.MappingNode) else []:
            if isinstance(key, yaml.ScalarNode) and key.value in keys:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key.value!r} is given in two merged mappings", key.start_mark
                )
            keys.add(key.value if isinstance(key, yaml.ScalarNode) else None)


for _tag, (_pattern, _first) in _CORE_SCHEMA.items():
    _StrictLoader.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))
_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)


class _QuotingDumper(yaml.SafeDumper):
    """SafeDumper that quotes text which YAML 1.1 or the 1.2 core schema would read as
    anything else: PyYAML's own left '1e3', '0o17' and '08' bare (1.1 text, 1.2 numbers),
    so a run's config.yaml did not read back as written."""


for _tag, (_pattern, _first) in _CORE_SCHEMA.items():
    _QuotingDumper.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))


def dump_yaml(data: Any) -> str:
    """``data`` as YAML that ``load_yaml`` (and YAML 1.1 readers) read back as it is, keys
    in their order."""
    return yaml.dump(data, Dumper=_QuotingDumper, sort_keys=False)


def load_yaml(text: str) -> Any:
    """``text`` as YAML (safe: plain data only; plain scalars as YAML 1.2 reads them);
    raises yaml.YAMLError, a key given twice in a mapping included, and a value past what
    Python reads (an int of 4,300 digits: ValueError) or nesting past its recursion limit."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader
    except ValueError as err:
        raise yaml.YAMLError(parse_reason(err)) from None
    except RecursionError:
        raise yaml.YAMLError("nested too deep") from None


def load_json(text: str | bytes) -> Any:
    """``text`` as JSON, a key given twice in an object refused as in YAML (json keeps the
    last: a class table's second ``mask_color`` won without a word). Raises ValueError."""
    return json.loads(text, object_pairs_hook=_once_each)


def _once_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise ValueError(f"the key {key[:80]!r} is given twice in one object")
        found[key] = value
    return found
