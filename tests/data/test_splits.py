import json

import pytest

from aerialseg.data.source import DatasetSource
from aerialseg.data.splits import file_split, make_split, rule_split
from aerialseg.errors import DatasetError
from tests.conftest import REAL_DATA, SPLIT_JSON, requires_real_data


@requires_real_data()
def test_rule_gives_the_protocol_test_split():
    split = rule_split(DatasetSource(REAL_DATA).pairs)
    assert sorted(split.test) == sorted(json.loads(SPLIT_JSON.read_text())["test"])
    assert len(split.val) == 8 and all("image_part_005" in i for i in split.val)
    assert len(split.train) == 48
    assert not set(split.train) & set(split.test) and not set(split.train) & set(split.val)


@requires_real_data()
def test_shared_split_file_equals_the_rule():
    pairs = DatasetSource(REAL_DATA).pairs
    assert file_split(pairs, SPLIT_JSON).test == rule_split(pairs).test


def test_split_file_with_own_val(tiny_dataset, tmp_path):
    pairs = DatasetSource(tiny_dataset).pairs
    f = tmp_path / "s.json"
    f.write_text(
        json.dumps(
            {
                "test": ["Tile 1/images/image_part_001.jpg"],
                "val": ["Tile 2/images/image_part_001.jpg"],
            }
        )
    )
    split = make_split(pairs, f)
    assert split.test == ("Tile 1/images/image_part_001.jpg",)
    assert split.val == ("Tile 2/images/image_part_001.jpg",)
    assert len(split.train) == 16


@pytest.mark.parametrize(
    "content, message",
    [
        ("{", "not valid JSON"),
        ('{"train": []}', "needs a 'test' list"),
        ('{"test": ["Tile 9/images/x.jpg"]}', "not in the dataset"),
        (
            '{"test": ["Tile 1/images/image_part_005.jpg"],'
            ' "val": ["Tile 1/images/image_part_005.jpg"]}',
            "both",
        ),
    ],
)
def test_bad_split_files(tiny_dataset, tmp_path, content, message):
    f = tmp_path / "s.json"
    f.write_text(content)
    with pytest.raises(DatasetError, match=message):
        make_split(DatasetSource(tiny_dataset).pairs, f)


def test_split_is_saved_and_reloaded(tiny_dataset, tmp_path):
    pairs = DatasetSource(tiny_dataset).pairs
    split = rule_split(pairs)
    split.save(tmp_path / "split.json")
    again = file_split(pairs, tmp_path / "split.json")
    assert (again.train, again.val, again.test) == (split.train, split.val, split.test)


def test_split_file_with_own_train_subset(tiny_dataset, tmp_path):
    pairs = DatasetSource(tiny_dataset).pairs
    chosen = ["Tile 1/images/image_part_001.jpg", "Tile 2/images/image_part_003.jpg"]
    f = tmp_path / "s.json"
    f.write_text(json.dumps({"test": ["Tile 1/images/image_part_002.jpg"], "train": chosen}))
    split = make_split(pairs, f)
    assert split.train == tuple(chosen)
    # val still defaults to the rule's images, and nothing else trains
    assert split.val and all("image_part_005" in i for i in split.val)
    assert len(split.train) + len(split.val) + len(split.test) < len(pairs)


@pytest.mark.parametrize(
    "train, message",
    [
        (["Tile 9/images/x.jpg"], "'train' names 1 image"),
        (["Tile 1/images/image_part_002.jpg"], "in 'train' and 'test' or 'val'"),
        (["Tile 1/images/image_part_005.jpg"], "in 'train' and 'test' or 'val'"),
        ("Tile 1/images/image_part_001.jpg", "'train' must be a list"),
        ([], "leaves no training"),
    ],
)
def test_bad_train_lists(tiny_dataset, tmp_path, train, message):
    f = tmp_path / "s.json"
    f.write_text(json.dumps({"test": ["Tile 1/images/image_part_002.jpg"], "train": train}))
    with pytest.raises(DatasetError, match=message):
        make_split(DatasetSource(tiny_dataset).pairs, f)
