import json
import re
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rasterio.windows import Window

from aerialseg.cli import main
from aerialseg.data.source import DatasetSource, Pair
from aerialseg.data.splits import file_split, make_split, random_split, rule_split
from aerialseg.errors import DatasetError
from tests.helpers.paths import REAL_DATA, SPLIT_JSON, requires_real_data


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


# Synthetic twins of the two tests above: the Dubai layout (8 tiles of image_part_001 to
# image_part_009), so that a checkout without ../shared still guards the protocol's rule.
DUBAI_LAYOUT = [
    Pair(f"Tile {t}/images/image_part_{k:03d}.jpg", f"Tile {t}/masks/image_part_{k:03d}.png")
    for t in range(1, 9)
    for k in range(1, 10)
]
# PROTOCOL.md: "image_part_002 and image_part_007 of every tile — 16 images"
PROTOCOL_TEST = sorted(
    f"Tile {t}/images/image_part_{k:03d}.jpg" for t in range(1, 9) for k in (2, 7)
)


def test_rule_gives_the_protocol_test_split_on_the_dubai_layout():
    split = rule_split(DUBAI_LAYOUT)
    assert sorted(split.test) == PROTOCOL_TEST
    assert sorted(split.val) == [f"Tile {t}/images/image_part_005.jpg" for t in range(1, 9)]
    assert len(split.train) == 48
    assert sorted(split.train + split.val + split.test) == sorted(p.id for p in DUBAI_LAYOUT)


def test_a_split_file_in_the_protocols_form_equals_the_rule(tmp_path):
    shared_form = {
        "dataset": "dubai-aerial/Semantic segmentation dataset",
        "test": PROTOCOL_TEST,
        "rule": "image_part_002 and image_part_007 of every tile",
    }
    (tmp_path / "split.json").write_text(json.dumps(shared_form))
    split, rule = file_split(DUBAI_LAYOUT, tmp_path / "split.json"), rule_split(DUBAI_LAYOUT)
    assert (split.test, split.val, split.train) == (tuple(PROTOCOL_TEST), rule.val, rule.train)


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
        ('{"test": [], "test": []}', "not valid JSON: the key 'test' is given twice in one obj"),
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
        (["Tile 9/images/x.jpg"], r"names 1 image\(s\) not in the dataset \(1 in 'train'\)"),
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


def test_random_split_is_reproducible_whole_images_from_every_group(tiny_dataset):
    pairs = DatasetSource(tiny_dataset).pairs  # 2 tiles of 9 images
    split = random_split(pairs, val=0.15, test=0.25, seed=7)
    assert split == random_split(pairs, val=0.15, test=0.25, seed=7)
    assert (len(split.test), len(split.val), len(split.train)) == (4, 3, 11)  # 18 x shares
    held = [*split.test, *split.val, *split.train]
    assert sorted(held) == sorted(p.id for p in pairs)  # each image once, whole
    group = {p.id: p.group for p in pairs}
    assert Counter(group[i] for i in split.test) == {"Tile 1": 2, "Tile 2": 2}  # dealt alike
    # another seed, another draw (2 of 9 images a tile: 1296 test sets, so five seeds all
    # drawing the same one has odds of 1 in 1296^4)
    draws = {random_split(pairs, val=0.15, test=0.25, seed=s).test for s in range(5)}
    assert len(draws) > 1
    # one image fewer in one tile leaves the other tile's test images as they were
    fewer = random_split([p for p in pairs if p.id != split.train[0]], 0.15, 0.25, seed=7)
    other = next(g for g in ("Tile 1", "Tile 2") if g != group[split.train[0]])
    assert [i for i in fewer.test if group[i] == other] == [
        i for i in split.test if group[i] == other
    ]


@pytest.mark.parametrize(
    "val, test, message",
    [(0.0, 0.2, "val above 0"), (0.5, 0.5, "sum below 1"), (0.3, 0.6, "too few")],
)
def test_random_split_refuses_shares_that_leave_nothing(tiny_dataset, val, test, message):
    pairs = DatasetSource(tiny_dataset).pairs
    if message == "too few":
        pairs = pairs[:2]
    with pytest.raises(DatasetError, match=message):
        random_split(pairs, val=val, test=test)


def test_data_split_writes_a_file_train_reads_back(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "splits" / "mine.json"
    argv = ["data", "split", str(tiny_dataset), "--out", str(out), "--test", "0.25"]
    assert main([*argv, "--seed", "3"]) == 0
    assert "--split" in capsys.readouterr().out
    pairs = DatasetSource(tiny_dataset).pairs
    assert file_split(pairs, out) == random_split(pairs, val=0.1, test=0.25, seed=3)
    assert main([*argv, "--val", "0"]) == 2  # a bad share: one line, the file untouched
    assert file_split(pairs, out) == random_split(pairs, val=0.1, test=0.25, seed=3)
    assert sorted(p.name for p in out.parent.iterdir()) == ["mine.json"]


def test_data_split_out_must_name_the_file_and_buffer_needs_blocks(tiny_dataset, tmp_path, capsys):
    """--out naming a folder was an IsADirectoryError traceback that left the blocks'
    GeoPackage behind; --out x.gpkg wrote the split JSON over the GeoPackage it named."""
    folder = tmp_path / "sdir.json"
    folder.mkdir()
    for out in (folder, tmp_path / "s.gpkg"):
        assert main(["data", "split", str(tiny_dataset), "--out", str(out)]) == 2
        assert "name the split file to write, e.g. split.json" in capsys.readouterr().err
    argv = ["data", "split", str(tiny_dataset), "--out", str(tmp_path / "s.json")]
    assert main([*argv, "--buffer", "8"]) == 2
    assert "--buffer applies to block splits" in capsys.readouterr().err
    assert main([*argv, "--keep", str(tmp_path / "old.json")]) == 2
    assert "--keep applies to block splits: give --block-size too" in capsys.readouterr().err
    assert main([*argv, "--pixel-size", "0.5"]) == 2
    assert "--pixel-size applies to block splits: give --block-size" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sdir.json"]
    assert main(argv) == 0  # a split of whole images is no block split to keep
    blocks = ["--block-size", "40", "--buffer", "0", "--keep", str(tmp_path / "s.json")]
    assert main([*argv[:-1], str(tmp_path / "t.json"), *blocks]) == 2
    assert "s.json: a split of whole images; keep a block split" in capsys.readouterr().err


def test_rule_on_other_names_points_to_data_split():
    pairs = [Pair(f"scenes/images/scene_{i}.tif", f"scenes/masks/scene_{i}.tif") for i in range(6)]
    with pytest.raises(DatasetError, match="--split .*aerialseg data split"):
        rule_split(pairs)
    assert len(random_split(pairs, val=0.2, test=0.2).train) == 4  # what it points to works


pair_sets = st.sets(
    st.tuples(st.sampled_from(["Tile 1", "Tile 2", "Tile 3", ""]), st.integers(1, 12)),
    min_size=3,
    max_size=40,
).map(
    lambda keys: [
        Pair(
            f"{g}/images/image_part_{k:03d}.jpg".lstrip("/"),
            f"{g}/masks/image_part_{k:03d}.png".lstrip("/"),
        )
        for g, k in sorted(keys)
    ]
)


@given(
    pairs=pair_sets,
    val=st.floats(0.05, 0.5),
    test=st.floats(0.0, 0.45),
    seed=st.integers(0, 2**31),
    order=st.randoms(use_true_random=False),
)
def test_random_split_is_stable_disjoint_and_complete(pairs, val, test, seed, order):
    try:
        split = random_split(pairs, val, test, seed)
    except DatasetError:  # too few images for these shares: the documented refusal
        assert len(pairs) - round(len(pairs) * test) - max(1, round(len(pairs) * val)) < 1
        return
    shuffled = list(pairs)
    order.shuffle(shuffled)
    assert random_split(shuffled, val, test, seed) == split  # the order given does not count
    parts = [set(split.train), set(split.val), set(split.test)]
    assert sum(map(len, parts)) == len(pairs) and set().union(*parts) == {p.id for p in pairs}
    assert len(split.test) == round(len(pairs) * test)
    assert len(split.val) == max(1, round(len(pairs) * val))
    for name in ("train", "val", "test"):
        assert list(split.ids(name)) == sorted(split.ids(name))


@given(pairs=pair_sets)
def test_rule_split_is_disjoint_and_goes_by_name_only(pairs):
    try:
        split = rule_split(pairs)
    except DatasetError:
        stems = {p.stem for p in pairs}
        assert stems <= {"image_part_002", "image_part_005", "image_part_007"} or (
            "image_part_005" not in stems
        )
        return
    assert set(split.test) == {p.id for p in pairs if p.stem[-3:] in ("002", "007")}
    assert set(split.val) == {p.id for p in pairs if p.stem.endswith("005")}
    assert set(split.train) == {p.id for p in pairs} - set(split.test) - set(split.val)
    backwards = rule_split(pairs[::-1])
    assert (backwards.train, backwards.val, backwards.test) == (
        split.train[::-1],
        split.val[::-1],
        split.test[::-1],
    )


def test_split_names_and_the_saved_file():
    split = rule_split(DUBAI_LAYOUT)
    assert split.ids("val") == split.val and split.ids("test") == split.test
    with pytest.raises(DatasetError) as err:
        split.ids("holdout")
    assert str(err.value) == "unknown split 'holdout'; choose one of train, val, test"
    assert list(split.to_dict()) == ["rule", "train", "val", "test"]
    assert split.rule.startswith("test: image_part_002 and image_part_007 of every tile")


def test_a_reloaded_split_keeps_its_rule_and_a_file_without_one_is_named(tmp_path):
    split = rule_split(DUBAI_LAYOUT)
    split.save(tmp_path / "split.json")
    assert file_split(DUBAI_LAYOUT, tmp_path / "split.json") == split
    (tmp_path / "mine.json").write_text(json.dumps({"test": PROTOCOL_TEST}))
    assert file_split(DUBAI_LAYOUT, tmp_path / "mine.json").rule == "from mine.json"


def test_default_validation_images_leave_out_those_held_for_test(tmp_path):
    test = [*PROTOCOL_TEST, "Tile 3/images/image_part_005.jpg"]
    (tmp_path / "s.json").write_text(json.dumps({"test": test}))
    split = file_split(DUBAI_LAYOUT, tmp_path / "s.json")
    assert "Tile 3/images/image_part_005.jpg" not in split.val and len(split.val) == 7
    assert len(split.train) == 72 - 17 - 7


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "cannot read split file {path}: No such file or directory"),
        ("[1]", "split file {path} needs a 'test' list of image paths"),
        ('{"test": [], "val": "x"}', "split file {path}: 'val' must be a list of image paths"),
        (
            '{"test": ["Tile 9/images/x.jpg"]}',
            "split file {path} names 1 image(s) not in the dataset (1 in 'test'), e.g."
            " 'Tile 9/images/x.jpg'; paths are relative to the dataset root",
        ),
        (
            '{"test": [], "train": ["a.jpg"]}',
            "split file {path} names 1 image(s) not in the dataset (1 in 'train'), e.g. 'a.jpg'",
        ),
        (  # a review: "names 2" where none of the 4 was there
            '{"test": ["t.jpg"], "val": ["v.jpg"], "train": ["a.jpg", "b.jpg"]}',
            "split file {path} names 4 image(s) not in the dataset (1 in 'test', 1 in 'val', 2"
            " in 'train'), e.g. 't.jpg'",
        ),
        ('{"test": [], "train": []}', "split file {path} leaves no training or no validation"),
        # found by a review: each was a traceback with the bug banner
        ('{"test": [{"a": 1}]}', "split file {path}: 'test' must be a list of image paths"),
        ('{"test": [["a"]]}', "split file {path}: 'test' must be a list of image paths"),
        (b"\xff\xfe{}", "split file {path} is not valid JSON"),
        *(
            (
                '{"blocks": {"test": [{"image": "x.tif", "window": WINDOW}]}}'.replace(
                    "WINDOW", window
                ),
                "split file {path}: 'blocks' must map train, val and test to lists of",
            )
            for window in (
                '["a", 0, 4, 4]',
                "[0, 0, 0, 4]",
                "[-1, 0, 4, 4]",
                "[0, 0, 4]",
                "[0, 0, 4.5, 4]",
                "[true, 0, 4, 4]",
                "[2147483647, 0, 4, 4]",  # past GDAL's largest raster
                "7",
            )
        ),  # fmt: skip
        (
            '{"blocks": {"test": [{"image": 3, "window": [0, 0, 4, 4]}]}}',
            "split file {path}: 'blocks' must map",
        ),
    ],
)
def test_split_file_errors_name_the_file_and_the_fix(tmp_path, content, message):
    path = tmp_path / "s.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(DatasetError) as err:
        file_split(DUBAI_LAYOUT, path)
    assert str(err.value).startswith(message.format(path=path))


def test_rule_and_random_split_errors_say_what_to_do():
    with pytest.raises(DatasetError) as err:
        rule_split([p for p in DUBAI_LAYOUT if p.stem == "image_part_005"])
    assert str(err.value) == (
        "the default split rule (image_part_002/005/007 of each tile) leaves no training or"
        " validation images in this dataset; pass a split file with --split ('aerialseg"
        " data split DATA --out split.json' draws one)"
    )
    with pytest.raises(DatasetError) as err:
        random_split(DUBAI_LAYOUT, val=0.0, test=0.2)
    assert str(err.value) == "val 0 and test 0.2: each in [0, 1), val above 0, sum below 1"
    with pytest.raises(DatasetError) as err:
        random_split(DUBAI_LAYOUT[:2], val=0.3, test=0.3)
    assert str(err.value) == (
        "2 image(s) are too few for val 0.3 and test 0.3: no image would be left to train on"
        " (large scenes split by blocks: --block-size)"
    )
    for val, test in [(1.0, 0.0), (0.5, -0.1), (0.2, 1.0)]:
        with pytest.raises(DatasetError, match="each in"):
            random_split(DUBAI_LAYOUT, val=val, test=test)
    assert random_split(DUBAI_LAYOUT, val=0.1, test=0.2, seed=4).rule == (
        "random: test 0.2 and val 0.1 of the images, drawn alike from each of 8 group(s),"
        " seed 4 (aerialseg data split)"
    )


def test_scoring_takes_a_split_of_only_what_it_scores(tiny_dataset, tmp_path):
    pairs = [
        Pair(id=p.id.replace("image_part_", "scene"), mask=p.mask)
        for p in DatasetSource(tiny_dataset).pairs
    ]  # names unlike the Dubai set's
    path = tmp_path / "test-only.json"
    path.write_text(json.dumps({"test": [pairs[0].id]}))
    with pytest.raises(DatasetError, match="leaves no training or no validation images"):
        make_split(pairs, path)
    split = make_split(pairs, path, for_training=False)
    assert split.test == (pairs[0].id,) and split.val == ()
    with pytest.raises(DatasetError, match="leaves no training or validation images"):
        make_split(pairs)
    rule = make_split(pairs, for_training=False)
    assert rule.test == rule.val == () and len(rule.train) == 18


def test_a_block_split_file_round_trips_and_names_its_images(tmp_path):
    from rasterio.windows import Window

    from aerialseg.data.splits import blocks_split

    pairs = [Pair("a.tif", "a.gpkg"), Pair("b.tif", "b.gpkg")]
    blocks = {
        "train": [("a.tif", Window(0, 0, 64, 64)), ("b.tif", Window(64, 0, 32, 64))],
        "val": [("a.tif", Window(64, 0, 64, 48))],
        "test": [("b.tif", Window(0, 0, 64, 64)), ("b.tif", Window(0, 64, 64, 16))],
    }
    split = blocks_split(blocks, "blocks of 64")
    assert (split.train, split.val, split.test) == (("a.tif", "b.tif"), ("a.tif",), ("b.tif",))
    assert split.parts("test") == blocks["test"] and split.parts("val") == blocks["val"]
    path = tmp_path / "blocks.json"
    split.save(path)
    saved = json.loads(path.read_text())
    assert saved["blocks"]["test"][1] == {"image": "b.tif", "window": [0, 64, 64, 16]}
    again = file_split(pairs, path)
    assert again == split and again.rule == "blocks of 64"
    # whole-image splits have one part per image, the whole of it
    plain = rule_split(DUBAI_LAYOUT)
    assert plain.parts("test") == [(i, None) for i in PROTOCOL_TEST]
    saved["blocks"]["val"][0]["image"] = "c.tif"
    path.write_text(json.dumps(saved))
    with pytest.raises(DatasetError, match="1 block.s. of images not in the dataset, e.g. 'c.tif'"):
        file_split(pairs, path)
    saved["blocks"]["val"] = [{"image": "a.tif"}]
    path.write_text(json.dumps(saved))
    with pytest.raises(DatasetError, match="'blocks' must map train, val and test"):
        file_split(pairs, path)


@pytest.mark.parametrize(
    "grids",
    [
        "a.tif",  # not a mapping
        {"a.tif": [0.5, 0, 1, 0, -0.5]},  # five numbers
        {"a.tif": [0.5, 0, 1, 0, -0.5, "2"]},
        {"a.tif": [0.5, 0, 1, 0, True, 2]},
        {"a.tif": [0.5, 0, 1e999, 0, -0.5, 2]},  # inf
        {"a.tif": [0.5, 1, 1, 0.25, 0.5, 2]},  # a pixel of no area
        # a review: a traceback each (OverflowError; NaN windows on the run's grid)
        {"a.tif": [0.5, 0, 10**400, 0, -0.5, 2]},
        {"a.tif": [1e308, 0, 0, 0, -1e308, 0]},
        {"a.tif": [0.5, 0, 1, 0, -0.5, 2e10]},  # no CRS puts the Earth there
        {"a.tif": [0.5, 0, -1.0000001e10, 0, -0.5, 2]},
        {"a.tif": [1e9, 0, 1, 0, -0.5, 2]},  # pixels of a billion CRS units
        {"a.tif": [0.5, 0, 1, 0, -1e9, 2]},
    ],
)
def test_a_block_split_keeps_the_grid_of_its_windows_and_a_bad_one_is_refused(tmp_path, grids):
    """A block split records each image's grid, so a run at another pixel size reads the
    same ground (blocks.on_grids); a grid that is not a transform is one line."""
    from affine import Affine
    from rasterio.windows import Window

    from aerialseg.data.splits import blocks_split

    pairs = [Pair("a.tif", "a.gpkg"), Pair("b.tif", "b.gpkg")]
    blocks = {
        "train": [("a.tif", Window(0, 0, 64, 64))],
        "val": [("b.tif", Window(0, 0, 64, 64))],
        "test": [],
    }
    split = blocks_split(blocks, "blocks of 64", {"a.tif": Affine(0.5, 0, 1, 0, -0.5, 2)})
    path = tmp_path / "blocks.json"
    split.save(path)
    saved = json.loads(path.read_text())
    assert saved["grids"] == {"a.tif": [0.5, 0, 1, 0, -0.5, 2]}
    assert file_split(pairs, path) == split
    saved["grids"]["z.tif"] = [1, 0, 0, 0, -1, 0]  # an image the dataset lacks: not read
    path.write_text(json.dumps(saved))
    assert file_split(pairs, path).grids == {"a.tif": (0.5, 0, 1, 0, -0.5, 2)}
    saved["grids"] = grids
    path.write_text(json.dumps(saved))
    with pytest.raises(DatasetError) as err:
        file_split(pairs, path)
    assert str(err.value) == (
        f"split file {path}: 'grids' must map image ids to the six numbers of a pixel grid's"
        " transform (a, b, c, d, e, f), as 'aerialseg data split' writes them"
    )


def test_block_split_files_take_what_their_bounds_allow(tmp_path):
    """The edges of what a split file may say: blocks of one pixel, a block ending at
    GDAL's largest raster, grids of a pixel under a billion units and origins 1e10 out."""
    pairs = [Pair("a.tif", "a.gpkg")]
    biggest = 2**31
    blocks = {
        "train": [{"image": "a.tif", "window": [0, 0, 1, 1]}],
        "val": [{"image": "a.tif", "window": [biggest - 5, biggest - 7, 5, 7]}],
        "test": [],
    }
    grids = {"a.tif": [1e9 - 1, 0, -1e10, 0, -(1e9 - 1), 1e10]}
    path = tmp_path / "edges.json"
    path.write_text(json.dumps({"blocks": blocks, "grids": grids}))
    split = file_split(pairs, path)
    assert split.parts("val")[0][1].height == 7 and split.grids == {"a.tif": tuple(grids["a.tif"])}
    scored = {"train": [], "val": [], "test": blocks["train"]}  # scoring needs no training
    path.write_text(json.dumps({"blocks": scored}))
    assert file_split(pairs, path, for_training=False).parts("test") == split.parts("train")
    for window in ([biggest - 4, 0, 5, 1], [0, biggest - 6, 1, 7]):
        blocks["val"] = [{"image": "a.tif", "window": window}]
        path.write_text(json.dumps({"blocks": blocks}))
        with pytest.raises(DatasetError, match="'blocks' must map train, val and test"):
            file_split(pairs, path)


def test_random_split_deals_groups_in_the_order_of_their_hash_seed_0_by_default(tmp_path):
    pairs = [
        Pair(f"{g}/images/{k}.jpg", f"{g}/masks/{k}.png") for g in ("A", "B", "C") for k in range(3)
    ]
    split = random_split(pairs, 0.2, 0.3)
    assert split == random_split(pairs, 0.2, 0.3, seed=0)
    # pinned (sha256 of seed and id orders them, on any machine): the first image of each
    # group to test, then the second images of the groups whose first ranks lowest
    assert split.test == ("A/images/0.jpg", "B/images/0.jpg", "C/images/2.jpg")
    assert split.val == ("B/images/1.jpg", "C/images/0.jpg")
    path = tmp_path / "split.json"
    split.save(path)
    assert path.read_text() == json.dumps(split.to_dict(), indent=2) + "\n"


def test_block_split_files_default_their_rule_and_missing_splits(tmp_path):
    pairs = [Pair("a.tif", "a.gpkg")]
    path = tmp_path / "blocks.json"
    window = {"image": "a.tif", "window": [0, 0, 8, 8]}
    path.write_text(json.dumps({"blocks": {"train": [window], "val": [window]}}))
    split = file_split(pairs, path, for_training=False)
    assert split.rule == "blocks from blocks.json" and split.parts("test") == []
    path.write_text(json.dumps({"blocks": {"train": [{"image": "a.tif"}]}}))
    with pytest.raises(DatasetError) as err:
        file_split(pairs, path)
    assert str(err.value) == (
        f"split file {path}: 'blocks' must map train, val and test to lists of"
        " {image, window: [column, row, width, height]}, whole numbers, the size from 1"
    )


def test_random_split_of_no_images_says_so():
    with pytest.raises(DatasetError, match="^0 image.s. are too few for val 0.1 and test 0.2"):
        random_split([], 0.1, 0.2)


def test_split_files_a_hand_or_an_editor_changed_are_refused_or_read(tiny_dataset, tmp_path):
    """Found by a review: an image listed twice was scored twice; "validation" was dropped
    and val taken by the name rule; a block of the test split that training also had was
    scored; an empty training part crashed; a file deeply nested was a traceback; a UTF-8
    BOM (Notepad) was refused."""
    pairs = DatasetSource(tiny_dataset).pairs
    ids = [p.id for p in pairs]
    path = tmp_path / "s.json"

    def refused(data, message: str) -> None:
        path.write_text(data if isinstance(data, str) else json.dumps(data))
        with pytest.raises(DatasetError, match=message):
            file_split(pairs, path)

    refused({"test": [ids[0], ids[0]]}, f"'test' lists '{re.escape(ids[0])}' more than once")
    refused({"test": [ids[0]], "validation": [ids[1]]}, "a list under 'validation'")
    refused("[" * 100_000 + "]" * 100_000, "is not valid JSON: nested too deep")
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"test": [ids[0]], "val": [ids[1]]}).encode())
    assert file_split(pairs, path).test == (ids[0],)
    a, b = ids[0], ids[1]

    def block(image, col):
        return {"image": image, "window": [col, 0, 32, 32]}

    leak = {"train": [block(a, 0), block(b, 0)], "val": [block(b, 40)], "test": [block(a, 16)]}
    refused({"blocks": leak}, f"blocks of '{re.escape(a)}' in 'train' and 'test' overlap")
    twice = {"train": [block(a, 0)], "val": [block(b, 0)], "test": [block(a, 40)] * 2}
    refused({"blocks": twice}, "in 'test' and 'test' overlap .or one is listed twice.")
    refused({"blocks": {"val": [block(a, 0)], "test": []}}, "leaves no training or no validation")
    halves = {"train": [block(b, 0)], "val": [block(b, 40)], "test": [block(a, 0), block(a, 16)]}
    refused({"blocks": halves}, "in 'test' and 'test' overlap")  # scored twice
    # adjacent blocks share an edge, no pixel; training may reuse validation blocks
    fine = {"train": [block(a, 0), block(a, 32)], "val": [block(a, 32)], "test": [block(a, 64)]}
    path.write_text(json.dumps({"blocks": fine}))
    assert file_split(pairs, path).parts("test") == [(a, Window(64, 0, 32, 32))]
