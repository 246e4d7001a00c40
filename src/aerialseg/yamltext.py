"""YAML as users write it (configs, class tables, manifests), read safely and strictly.

PyYAML keeps the last of two equal keys in a mapping, so ``lr: 0.001`` followed further
down by ``lr: 0.5`` trained at 0.5 without a word. Hand-written because PyYAML has no
option for it, and ruamel.yaml, which refuses them, would be a second YAML library.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import yaml


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
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
        return super().construct_mapping(node, deep)


def load_yaml(text: str) -> Any:
    """``text`` as YAML (safe: plain data only); raises yaml.YAMLError, a key given twice
    in a mapping included."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader
