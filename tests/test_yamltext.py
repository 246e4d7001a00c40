"""YAML as users write it: a key given twice is an error, not the last one silently."""

import pytest
import yaml

from aerialseg.errors import ConfigError, parse_reason
from aerialseg.training.config import resolve_config
from aerialseg.yamltext import dump_yaml, load_yaml


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


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1:30:00", "1:30:00"),  # YAML 1.1: 5400, which max_time then refused as '5400'
        ("off", "off"),  # 1.1: false
        ("NO", "NO"),  # 1.1: false (a class or country named NO)
        ("2024-01-01", "2024-01-01"),  # 1.1: a date
        ("010", 10),  # 1.1: eight
        ("0o10", 8),
        ("0x1F", 31),
        ("1e-3", 0.001),  # 1.1: the text '1e-3'
        ("-.inf", float("-inf")),
        ("true", True),
        ("False", False),
        ("~", None),
        ("'off'", "off"),
    ],
)
def test_plain_scalars_read_as_yaml_1_2_core_schema_reads_them(text, value):
    assert load_yaml(f"a: {text}\n") == {"a": value}


def test_a_config_reads_a_duration_and_a_word_as_written(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("max_time: 1:30:00\n")
    assert resolve_config("default", path).max_time == "1:30:00"
    path.write_text("scheduler: off\n")
    with pytest.raises(ConfigError, match="scheduler='off' is not one of: cosine, plateau"):
        resolve_config("default", path)


@pytest.mark.parametrize("text", ["1e3", "0o17", "08", "on", "0x10", "1:30", "NO", "~", "text"])
def test_what_is_written_reads_back_as_written_by_either_yaml(text):
    """A review: PyYAML's dump left '1e3', '0o17' and '08' bare (text to YAML 1.1), which
    load_yaml read back as numbers, so a run with such a text setting could not resume."""
    data = {"unlabelled": text, "lr": 1e-3, "bands": [3, 2, 1], "init_from": None}
    written = dump_yaml(data)
    assert load_yaml(written) == data == yaml.safe_load(written)


def test_a_run_config_with_number_like_text_resumes_as_saved(tmp_path):
    saved = resolve_config(overrides=["max_time=08", "unlabelled=1e5", "init_from=my.pt"])
    saved.save(tmp_path / "config.yaml")
    again = resolve_config(config_file=tmp_path / "config.yaml")
    assert (again.max_time, again.unlabelled) == ("08", "1e5")


def test_a_key_that_is_a_list_or_mapping_is_yamls_error_not_a_crash():
    """A review: the check for class names (TEXT_KEYS) hashed a list key: TypeError."""
    for text in ("? [a]\n: 1\n", "{[a]: 1}", "? {b: 1}\n: 2\n"):
        with pytest.raises(yaml.YAMLError):
            load_yaml(text)


def test_a_merge_that_could_be_read_two_ways_is_refused():
    """A review: two '<<' in one mapping, or one key in two merged mappings, took the last
    without a word (the merge spec says the first)."""
    for text, said in (
        ("a: 1\n<<: {lr: 0.01}\n<<: {lr: 0.05}\n", "'<<' is given twice"),
        ("<<: [{lr: 0.01}, {lr: 0.05}]\n", "'lr' is given in two merged mappings"),
    ):
        with pytest.raises(yaml.YAMLError, match=said):
            load_yaml(text)
    assert load_yaml("b: &b {lr: 1}\nx:\n  <<: *b\n  lr: 2\n")["x"] == {"lr": 2}
    assert load_yaml("<<: [{a: 1}, {b: 2}]\n") == {"a": 1, "b": 2}


def test_numbers_written_as_text_in_python_settings_are_read_as_a_setting_is():
    """A review: settings={'lr': '1_0'} trained at 10 (float() reads '1_0' and other
    scripts' digits), lr=1e300 was inf inside Adam, and a list of pairs was a TypeError."""
    assert resolve_config(settings={"lr": "3e-4", "seed": 7}).lr == 3e-4
    for value in ("1_0", "١٠", "x"):
        with pytest.raises(ConfigError, match="must be a number"):
            resolve_config(settings={"lr": value})
    with pytest.raises(ConfigError, match="lr must be above 0 and at most 10"):
        resolve_config(overrides=["lr=1e300"])
    with pytest.raises(ConfigError, match="num_nodes must be positive"):
        resolve_config(overrides=["num_nodes=100000000000000000000"])
    with pytest.raises(ConfigError, match="give a mapping of setting names to values"):
        resolve_config(settings=[("lr", 0.1)])  # type: ignore[arg-type]
    # the defaults print as they read back (cache_megabytes 4096 came back 4096.0)
    from aerialseg.training.config import TrainConfig

    printed = dump_yaml(TrainConfig().to_dict())
    assert dump_yaml(resolve_config(settings=load_yaml(printed)).to_dict()) == printed
