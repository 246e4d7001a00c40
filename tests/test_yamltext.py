"""YAML as users write it: a key given twice is an error, not the last one silently."""

import pytest
import yaml

from aerialseg.errors import ConfigError, parse_reason
from aerialseg.training.config import resolve_config
from aerialseg.yamltext import load_yaml


def test_a_key_given_twice_is_refused_where_it_is():
    with pytest.raises(yaml.YAMLError) as caught:
        load_yaml("lr: 0.001\ncrop_size: 256\nlr: 0.5\n")
    assert parse_reason(caught.value) == "line 3, column 1: 'lr' is given twice"
    with pytest.raises(yaml.YAMLError, match="'name' is given twice"):
        load_yaml("classes:\n  - {name: a, name: b}\n")


def test_merge_keys_and_plain_data_read_as_pyyaml_reads_them():
    text = "base: &b {lr: 0.1, crop_size: 3}\nrun:\n  <<: *b\n  lr: 0.5\n"
    assert load_yaml(text) == yaml.safe_load(text)
    assert load_yaml(text)["run"] == {"lr": 0.5, "crop_size": 3}  # its own key wins
    listed = "- {image: a, label: b}\n- {image: c, label: d}\n"
    assert load_yaml(listed) == yaml.safe_load(listed)
    with pytest.raises(yaml.YAMLError):  # still safe: no Python objects
        load_yaml("!!python/object/apply:os.system ['true']")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        # it trained at the second lr without a word
        ("lr: 0.001\nlr: 0.5\n", "line 2, column 1: 'lr' is given twice"),
        # PyYAML's own message quotes the text over six lines
        ("lr: [1, 2\ncrop_size: 3\n", "line 2, column 10: expected ',' or ']', but got ':'"),
    ],
)
def test_a_config_that_is_not_yaml_is_one_line_that_says_where(tmp_path, text, where):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        resolve_config("default", path)
    assert str(caught.value) == f"config {path} is not valid YAML: {where}"
