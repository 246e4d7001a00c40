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


def test_a_config_with_a_setting_twice_is_one_line(tmp_path):
    """It trained at the second lr without a word."""
    path = tmp_path / "c.yaml"
    path.write_text("lr: 0.001\nlr: 0.5\n")
    with pytest.raises(ConfigError) as caught:
        resolve_config("default", path)
    assert str(caught.value) == (
        f"config {path} is not valid YAML: line 2, column 1: 'lr' is given twice"
    )
