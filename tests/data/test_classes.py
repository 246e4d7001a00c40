import json
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from aerialseg.data.classes import (
    DUBAI_CLASSES,
    IGNORE_INDEX,
    MAX_NAME_LENGTH,
    ClassTable,
    _pack,
    check_unknown_share,
    encode_mask,
    parse_color,
    to_hex,
    unpack_hex,
)
from aerialseg.errors import ClassTableError
from tests.helpers.geotiff import VALUE_CLASSES
from tests.helpers.scenes import decoded


def rgb(*hexes: str) -> np.ndarray:
    return np.array([[parse_color(h) for h in hexes]], dtype=np.uint8)


def test_class_colours_map_to_ids_in_table_order():
    mask = rgb("#3C1098", "#8429F6", "#6EC1E4", "#FEDD3A", "#E2A929", "#9B9B9B")
    assert encode_mask(mask, DUBAI_CLASSES).ids.tolist() == [[0, 1, 2, 3, 4, 5]]


def test_classes_json_colours_are_not_the_mask_colours():
    # The archive's classes.json says Water is #50E3C2; the masks never use it.
    encoded = encode_mask(rgb("#50E3C2", "#E2A929"), DUBAI_CLASSES)
    assert encoded.ids.tolist() == [[IGNORE_INDEX, 4]]
    assert sum(encoded.unknown.values()) == 1


def test_black_is_ignored_but_not_unknown():
    encoded = encode_mask(rgb("#000000", "#000000", "#3C1098"), DUBAI_CLASSES)
    assert encoded.ids.tolist() == [[IGNORE_INDEX, IGNORE_INDEX, 0]]
    assert encoded.ignored == 2 and not encoded.unknown
    # found by a review: -1 was the reader's own nodata code, and a float fill value past
    # int64 wrapped onto it: both were ignored as declared nodata
    signed = encode_mask(np.array([[1, -1, -1, 2]], np.int16), ClassTable.from_dict(VALUE_CLASSES))
    assert signed.unknown == {-1: 2} and signed.ignored == 0
    fill = np.array([[1, 3.4028235e38, -3.4028235e38, 2]], np.float32)
    wide = encode_mask(fill, ClassTable.from_dict(VALUE_CLASSES))
    assert wide.ids.tolist() == [[0, IGNORE_INDEX, IGNORE_INDEX, 1]] and wide.ignored == 0
    ((code, count),) = wide.unknown.items()
    assert count == 2 and "an undeclared fill value" in wide.describe(code)


def test_palette_mask_reads_like_rgb(tmp_path):
    colours = rgb("#3C1098", "#6EC1E4", "#000000")[0]
    ids = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8)
    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
    Image.new("RGB", (3, 2)).save(tmp_path / "images" / "a.png")
    image = Image.fromarray(ids, mode="P")
    image.putpalette(colours.ravel().tolist())
    image.save(tmp_path / "masks" / "a.png")
    assert Image.open(tmp_path / "masks" / "a.png").mode == "P"
    (scene,) = decoded(tmp_path, ["images/a.png"], DUBAI_CLASSES)
    assert scene.mask.tolist() == [[0, 2, IGNORE_INDEX], [IGNORE_INDEX, 2, 0]]


def test_unknown_share_over_limit_names_file_and_colours():
    mask = np.repeat(rgb("#123456", "#3C1098"), 10, axis=0)  # half unknown
    encoded = encode_mask(mask, DUBAI_CLASSES)
    with pytest.raises(ClassTableError, match=r"Tile 9/masks/x.png: 50.0% .*#123456"):
        check_unknown_share(encoded, "Tile 9/masks/x.png", 0.05)
    check_unknown_share(encoded, "x", 0.6)  # under the limit: fine
    # found by a review: JPEG masks were told to change a class table that was right
    with pytest.raises(ClassTableError, match="JPEG compression changes a mask's colours"):
        check_unknown_share(encoded, "Tile 9/masks/x.jpg", 0.05)


def test_table_from_json_and_yaml_files(tmp_path):
    data = {
        "classes": [
            {"name": "a", "mask_color": "#010203"},
            {"name": "b", "mask_color": [4, 5, 6], "display_color": "#FFFFFF"},
        ],
        "ignore_colors": ["#000000"],
    }
    (tmp_path / "t.json").write_text(json.dumps(data))
    (tmp_path / "t.yaml").write_text(
        "classes:\n  - {name: a, mask_color: '#010203'}\n"
        "  - {name: b, mask_color: [4, 5, 6], display_color: '#FFFFFF'}\n"
        "ignore_colors: ['#000000']\n"
    )
    for name in ("t.json", "t.yaml"):
        table = ClassTable.from_file(tmp_path / name)
        assert table.names == ["a", "b"]
        assert encode_mask(rgb("#040506", "#010203"), table).ids.tolist() == [[1, 0]]
        assert table.display_palette().tolist() == [[1, 2, 3], [255, 255, 255]]


@pytest.mark.parametrize(
    "data, message",
    [
        ({"classes": []}, "at least one class"),
        ({"classes": [{"name": "a", "mask_color": "#12"}]}, "#RRGGBB"),
        (
            {
                "classes": [
                    {"name": "a", "mask_color": "#010101"},
                    {"name": "b", "mask_color": "#010101"},
                ]
            },
            "both have mask_color #010101",
        ),
        ({"classes": [{"name": "a", "mask_value": 1}, {"name": "b", "mask_value": 1}]}, "value"),
        ({"classes": [{"name": "a", "mask_value": -1}]}, "not a whole number"),
        ({"classes": [{"name": "a", "mask_value": "1"}]}, "not a whole number"),
        ({"classes": [{"name": "a", "mask_value": 0}], "ignore_values": [0]}, "is an ignore value"),
        # a table of the wrong shape: was an AttributeError from deep in the reader
        ({"classes": [1, 2]}, "'classes' is a list of entries"),
        ({"classes": "Building"}, "'classes' is a list of entries"),
        ({"names": []}, "'classes' is a list of entries"),
    ],
)
def test_bad_tables_are_rejected(data, message):
    with pytest.raises(ClassTableError, match=message):
        ClassTable.from_dict(data)


def test_table_round_trips_through_dict():
    assert ClassTable.from_dict(DUBAI_CLASSES.to_dict()) == DUBAI_CLASSES


def test_value_tables_map_single_band_masks():
    table = ClassTable.from_dict(VALUE_CLASSES)
    assert table.by_value and not table.by_color
    mask = np.array([[1, 2, 3, 4, 5, 0, 9]], dtype=np.uint16)
    encoded = encode_mask(mask, table)
    assert encoded.ids.tolist() == [[0, 1, 2, 3, 4, IGNORE_INDEX, IGNORE_INDEX]]
    assert encoded.ignored == 1 and encoded.unknown == {9: 1}
    with pytest.raises(ClassTableError, match=r"x.tif: 14.3% of pixels match no class value .*9"):
        check_unknown_share(encoded, "x.tif", 0.05)
    # no colours given: distinct display colours all the same, and a round trip keeps them
    assert len({tuple(c) for c in table.display_palette().tolist()}) == 5
    assert ClassTable.from_dict(table.to_dict()) == table


def test_a_label_rasters_nodata_is_ignored_not_unknown():
    values = np.ma.masked_equal(np.array([[1, 200, 200, 2]]), 200)
    encoded = encode_mask(values, ClassTable.from_dict(VALUE_CLASSES))
    assert encoded.ids.tolist() == [[0, IGNORE_INDEX, IGNORE_INDEX, 1]]
    assert encoded.ignored == 2 and not encoded.unknown


def test_a_mask_of_the_other_kind_than_the_table_says_what_to_add():
    with pytest.raises(ClassTableError, match="^m.tif: a single-band .* have a mask_value"):
        encode_mask(np.zeros((2, 2), np.uint8), DUBAI_CLASSES, "m.tif")
    with pytest.raises(ClassTableError, match="^m.png: a colour-coded .* have a mask_color"):
        encode_mask(rgb("#3C1098"), ClassTable.from_dict(VALUE_CLASSES), "m.png")


def test_a_table_can_give_both_colours_and_values():
    table = ClassTable.from_dict(
        {"classes": [{"name": "a", "mask_color": "#010203", "mask_value": 7}]}
    )
    assert encode_mask(rgb("#010203"), table).ids.tolist() == [[0]]
    assert encode_mask(np.array([[7]]), table).ids.tolist() == [[0]]


def test_class_rasters_hold_the_tables_values_or_the_ids():
    lut, nodata, dtype = DUBAI_CLASSES.raster_coding()
    assert (lut[:6].tolist(), lut[IGNORE_INDEX], nodata, dtype) == (
        [0, 1, 2, 3, 4, 5],
        255,
        255,
        "uint8",
    )
    lut, nodata, dtype = ClassTable.from_dict(VALUE_CLASSES).raster_coding()
    assert (lut[:5].tolist(), lut[IGNORE_INDEX], dtype) == ([1, 2, 3, 4, 5], 255, "uint8")
    wide = {"classes": [{"name": "a", "mask_value": 300}, {"name": "b", "mask_value": 255}]}
    lut, nodata, dtype = ClassTable.from_dict(wide).raster_coding()
    assert (lut[:2].tolist(), lut[IGNORE_INDEX], nodata, dtype) == (
        [300, 255],
        65535,
        65535,
        "uint16",
    )


rgb_triples = st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255))


@given(
    colours=st.lists(rgb_triples, min_size=1, max_size=12, unique=True),
    shape=st.tuples(st.integers(1, 12), st.integers(1, 12)),
    seed=st.integers(0, 2**32 - 1),
)
def test_colour_masks_decode_to_the_ids_they_were_painted_from(colours, shape, seed):
    table = ClassTable.from_dict(
        {"classes": [{"name": f"c{i}", "mask_color": list(c)} for i, c in enumerate(colours)]}
    )
    assert [parse_color(c.mask_color) for c in table.classes] == colours  # via #RRGGBB
    ids = np.random.default_rng(seed).integers(0, len(colours), shape).astype(np.uint8)
    mask = np.array(colours, dtype=np.uint8)[ids]
    encoded = encode_mask(mask, table)
    assert np.array_equal(encoded.ids, ids) and not encoded.unknown and encoded.ignored == 0
    assert ClassTable.from_dict(table.to_dict()) == table


def test_a_polygon_tables_background_without_a_value_is_written_as_a_free_one():
    """A review: a table for polygon labels gives its classes values but not the
    background (it is where no polygon is), and predict wrote class ids, so a 1 meant
    Road in the predictions and Building in the user's codes; it read back as no label."""
    classes = [{"name": n, "mask_value": v} for n, v in (("Building", 1), ("Road", 2))]
    table = ClassTable.from_dict({"classes": [*classes, {"name": "Land", "background": True}]})
    lut, nodata, dtype = table.raster_coding()
    assert (lut[:3].tolist(), nodata, dtype) == ([1, 2, 0], 255, "uint8")
    assert table.values == (1, 2, 0)
    written = lut[np.array([[0, 1, 2, IGNORE_INDEX]], np.uint8)].astype(dtype)
    encoded = encode_mask(np.ma.masked_equal(written, nodata), table)
    assert encoded.ids.tolist() == [[0, 1, 2, IGNORE_INDEX]] and not encoded.unknown
    # the smallest value no class and no ignore value takes
    taken = {"classes": [{"name": "Water", "mask_value": 0}, {"name": "Land", "background": True}]}
    assert ClassTable.from_dict(taken | {"ignore_values": [1]}).values == (0, 2)
    # two classes without a value: the ids, as before
    two = {"classes": [{"name": "a"}, {"name": "b", "background": True}]}
    assert ClassTable.from_dict(two).values is None
    assert ClassTable.from_dict(two).raster_coding()[0][:2].tolist() == [0, 1]


@given(
    values=st.lists(st.integers(0, 65534), min_size=1, max_size=12, unique=True),
    shape=st.tuples(st.integers(1, 12), st.integers(1, 12)),
    seed=st.integers(0, 2**32 - 1),
    background=st.booleans(),
)
def test_class_rasters_written_with_a_value_table_read_back_as_the_same_ids(
    values, shape, seed, background
):
    """What predict writes (raster_coding) and what training reads (encode_mask) agree,
    also where the background class has no value."""
    classes = [{"name": f"c{i}", "mask_value": v} for i, v in enumerate(values)]
    if background:
        classes[-1] = {"name": "ground", "background": True}
    table = ClassTable.from_dict({"classes": classes})
    values = list(table.values)
    lut, nodata, dtype = table.raster_coding()
    ids = np.random.default_rng(seed).integers(0, len(values), shape).astype(np.uint8)
    ids.flat[0] = IGNORE_INDEX  # a pixel with no input: nodata, read back as ignored
    written = lut[ids].astype(dtype)
    assert written.flat[0] == nodata and nodata not in values
    assert (dtype == "uint16") == (max(values) >= 255)
    encoded = encode_mask(np.ma.masked_equal(written, nodata), table)
    assert np.array_equal(encoded.ids, ids) and not encoded.unknown and encoded.ignored == 1


@given(rgb=rgb_triples)
def test_hex_and_triples_round_trip(rgb):
    assert parse_color(to_hex(rgb)) == rgb and parse_color(list(rgb)) == rgb
    assert unpack_hex(int(_pack(np.array(rgb, dtype=np.uint8)))) == to_hex(rgb)


def message(call, *args) -> str:
    with pytest.raises(ClassTableError) as err:
        call(*args)
    return str(err.value)


def test_colour_errors_say_which_forms_are_read():
    assert parse_color(" #3c1098 ") == (0x3C, 0x10, 0x98) and parse_color("3C1098") == (60, 16, 152)
    assert message(parse_color, "#12345") == "colour '#12345' is not of the form #RRGGBB"
    assert message(parse_color, "#12345G") == "colour '#12345G' is not of the form #RRGGBB"
    # a review: 123 was "class table entry is missing object of type 'int' has no len()",
    # and [true, false, 0] the colour (1, 0, 0)
    for bad in ([1, 2], [1, 2, 256], [-1, 0, 0], [1.0, 2, 3], 123, [True, False, 0], {1: 2}):
        assert message(parse_color, bad) == (
            f"colour {bad!r} is neither #RRGGBB nor [r, g, b] in 0..255"
        )
    assert parse_color([0, 255, 7]) == (0, 255, 7)
    # 0 and "" too (a review: 'ignore_values: 0' was read as no ignore value at all)
    for key in ("ignore_colors", "ignore_values"):
        for value, shown in ((5, "5"), (0, "0"), ("", "''")):
            table = {"classes": [{"name": "A", "mask_color": "#3C1098"}], key: value}
            said = message(ClassTable.from_dict, table)
            assert said == f"{key}: {shown} is not a list; give [...]"
        table = {"classes": [{"name": "A", "mask_color": "#3C1098"}], key: None}
        assert getattr(ClassTable.from_dict(table), key) == ()  # null: none, as absent


def test_table_errors():
    many = {"classes": [{"name": str(i), "mask_value": i} for i in range(255)]}
    assert message(ClassTable.from_dict, many) == "at most 254 classes are supported"
    assert len(ClassTable.from_dict({"classes": many["classes"][:254]}).classes) == 254
    both = {"classes": [{"name": "a", "mask_color": "#000000"}], "ignore_colors": ["#000000"]}
    assert message(ClassTable.from_dict, both) == (
        "class 'a''s mask_color #000000 is an ignore colour too"
    )
    # names alone serve polygon labels; one background at most
    names_only = ClassTable.from_dict({"classes": [{"name": "a"}, {"name": "b", "background": 1}]})
    assert not names_only.by_color and not names_only.by_value
    assert names_only.background_id == 1 and DUBAI_CLASSES.background_id is None
    two = {"classes": [{"name": "a", "background": True}, {"name": "b", "background": True}]}
    assert message(ClassTable.from_dict, two) == "at most one class can be the background"
    assert message(ClassTable.from_dict, {"classes": [{"mask_value": 1}]}) == (
        "class table entry is missing 'name'; each class needs 'name' and 'mask_color'"
        " (colour-coded masks) or 'mask_value' (single-band masks)"
    )
    for bad in (True, 65535, 2.0):
        assert message(ClassTable.from_dict, {"classes": [{"name": "a", "mask_value": bad}]}) == (
            f"class 'a': {bad!r} is not a whole number from 0 to 65534"
        )
    assert message(
        ClassTable.from_dict, {"classes": [{"name": "a", "mask_value": 1}], "ignore_values": [-2]}
    ) == ("ignore_values: -2 is not a whole number from 0 to 65534")
    assert ClassTable.from_dict({"classes": [{"name": "a", "mask_value": 65534}]}).by_value


def test_table_defaults_and_properties():
    table = ClassTable.from_dict(
        {
            "classes": [{"name": f"c{i}", "mask_value": i} for i in range(17)]
            + [{"name": "void", "mask_value": 99, "scored": False, "mask_color": "#ABCDEF"}]
        }
    )
    assert table.num_classes == 18 and table.names[:2] == ["c0", "c1"]
    colours = [c.display_color for c in table.classes]
    assert colours[0] == "#E6194B" and colours[15] == "#AAFFC3" and colours[16] == "#E6194B"
    assert colours[17] == "#ABCDEF"  # its mask colour, when it has one
    assert [c.scored for c in table.classes] == [True] * 17 + [False]
    assert table.by_value and not table.by_color and DUBAI_CLASSES.by_color
    assert not DUBAI_CLASSES.by_value


def test_table_files_that_cannot_be_read(tmp_path):
    path = tmp_path / "t.yaml"
    assert message(ClassTable.from_file, path) == (
        f"cannot read class table {path}: No such file or directory"
    )
    path.write_text("- just\n- a list\n")
    assert message(ClassTable.from_file, path) == (
        f"class table {path} must be a mapping with a 'classes' list"
    )
    path.write_text("classes: [\n")
    # one line that says where, not PyYAML's quote of the text over several
    assert message(ClassTable.from_file, path) == (
        f"class table {path} is not valid JSON/YAML: line 2, column 1: expected the node"
        " content, but found '<stream end>'"
    )
    bad_json = tmp_path / "t.json"
    bad_json.write_text("{'classes': []}")  # YAML would read it; JSON does not
    assert message(ClassTable.from_file, bad_json) == (
        f"class table {bad_json} is not valid JSON/YAML: line 1, column 2: Expecting property"
        " name enclosed in double quotes"
    )
    # a review: json kept the second of two equal keys, so Land's colour was Building's
    bad_json.write_text(
        '{"classes": [{"name": "Building", "mask_color": "#3C1098",'
        ' "mask_color": "#8429F6"}, {"name": "Land", "mask_color": "#8429F6"}]}'
    )
    assert message(ClassTable.from_file, bad_json) == (
        f"class table {bad_json} is not valid JSON/YAML: the key 'mask_color' is given twice"
        " in one object"
    )
    # a review: 1 KB of nested YAML aliases is a list of 9**7 colours, and the message
    # quoting it was a 25 MB line
    bomb = tmp_path / "bomb.yaml"
    levels = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for upper, lower in zip("bcdefgh", "abcdefg", strict=True):
        levels.append(f"{upper}: &{upper} [" + ", ".join([f"*{lower}"] * 9) + "]")
    bomb.write_text("\n".join([*levels, "classes: [{name: A, mask_color: '#3C1098'}]",
                               "ignore_colors: *h"]))  # fmt: skip
    assert message(ClassTable.from_file, bomb) == (
        f"class table {bomb}: colour [[[...], [...], [...], [...], ...], [... is neither #RRGGBB"
        " nor [r, g, b] in 0..255"
    )
    for suffix in (".json", ".yaml"):  # a review: Python's 4,300-digit limit was a trace
        big = tmp_path / f"big{suffix}"
        big.write_text('{"classes": [{"name": "a", "mask_value": ' + "9" * 5000 + "}]}")
        assert message(ClassTable.from_file, big) == (
            f"class table {big} is not valid JSON/YAML: a number of more than 4,300 digits"
        )
        deep = tmp_path / f"deep{suffix}"
        deep.write_text("[" * 100_000)
        assert message(ClassTable.from_file, deep).startswith(f"class table {deep} is ")
        assert "nested too deep" in message(ClassTable.from_file, deep)
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("classes:\n  - {name: B\u00e2timent, mask_value: 1}\n".encode("latin-1"))
    assert message(ClassTable.from_file, latin1) == f"class table {latin1} is not UTF-8 text"
    bom = tmp_path / "bom.yaml"  # as Windows editors save it
    bom.write_bytes(b"\xef\xbb\xbfclasses:\n  - {name: a, mask_value: 1}\n")
    assert list(ClassTable.from_file(bom).names) == ["a"]


def test_unknown_share_reports_the_three_commonest_and_the_limit():
    mask = rgb(*["#000001"] * 4, *["#000002"] * 3, *["#000003"] * 2, "#000004", "#3C1098")
    encoded = encode_mask(mask, DUBAI_CLASSES)
    assert encoded.describe(1) == "#000001" and not encoded.by_value
    assert message(check_unknown_share, encoded, "m.png", 0.5) == (
        "m.png: 90.9% of pixels match no class colour (most common: #000001 (36.4%),"
        " #000002 (27.3%), #000003 (18.2%)); the class table does not fit these masks: pass"
        " the right one with --classes (limit 50%, set by --max-unknown)"
    )
    check_unknown_share(encoded, "m.png", 10 / 11)  # exactly at the limit: fine
    empty = encode_mask(np.zeros((0, 3, 3), dtype=np.uint8), DUBAI_CLASSES)
    check_unknown_share(empty, "m.png", 0.0)  # no pixels: nothing to refuse


# ---- what mutation testing found unguarded (bench/mutation.py, data/classes.py) ----


def test_masks_of_the_wrong_kind_for_the_table_are_named_in_whole_sentences():
    values_only = ClassTable.from_dict({"classes": [{"name": "a", "mask_value": 1}]})
    colours_only = ClassTable.from_dict({"classes": [{"name": "a", "mask_color": "#010203"}]})
    rgb = np.zeros((2, 2, 3), np.uint8)
    text = message(encode_mask, rgb, values_only)
    assert text.startswith("mask: ") and text.endswith(
        " whose classes have a mask_color with --classes"
    )
    text = message(encode_mask, np.zeros((2, 2), np.uint8), colours_only)
    assert text.startswith("mask: ") and text.endswith(
        " colours: pass one whose classes have a mask_value with --classes"
    )


def test_encoded_ids_are_uint8_nodata_is_no_class_and_ignores_add_up():
    table = ClassTable.from_dict(
        {
            "classes": [{"name": "a", "mask_value": 255}, {"name": "b", "mask_value": 7}],
            "ignore_values": [0, 9],
        }
    )
    values = np.ma.masked_array(
        np.array([[255, 7, 0, 9]], np.uint8), mask=[[True, False, False, False]]
    )
    encoded = encode_mask(values, table)
    assert encoded.ids.dtype == np.uint8
    assert encoded.ids.tolist() == [[IGNORE_INDEX, 1, IGNORE_INDEX, IGNORE_INDEX]]  # nodata: not a
    assert encoded.ignored == 3  # the nodata pixel, one 0 and one 9
    assert encoded.describe(7) == "7"


def test_table_error_sentences_and_array_types():
    assert (
        message(ClassTable.from_dict, {"classes": []}) == "a class table needs at least one class"
    )
    two_colours = {"classes": [{"name": n, "mask_color": "#010101"} for n in "ab"]}
    assert message(ClassTable.from_dict, two_colours) == (
        "classes 'a' and 'b' both have mask_color #010101; give each class its own"
    )
    two_values = {"classes": [{"name": n, "mask_value": 3} for n in "ab"]}
    assert message(ClassTable.from_dict, two_values) == (
        "classes 'a' and 'b' both have mask_value 3; give each class its own"
    )
    both = {"classes": [{"name": "a", "mask_value": 3}], "ignore_values": [3]}
    assert message(ClassTable.from_dict, both) == "class 'a''s mask_value 3 is an ignore value too"
    assert DUBAI_CLASSES.display_palette().dtype == np.uint8


def test_a_table_whose_values_reach_255_writes_16_bits():
    # 255 is the 8-bit nodata: a class of value 255 needs 16-bit rasters
    top = ClassTable.from_dict({"classes": [{"name": "a", "mask_value": 255}]})
    lut, nodata, dtype = top.raster_coding()
    assert (nodata, dtype) == (65535, "uint16") and lut.dtype == np.uint16 and lut[0] == 255
    low = ClassTable.from_dict({"classes": [{"name": "a", "mask_value": 254}]})
    assert low.raster_coding()[1:] == (255, "uint8")


@pytest.mark.parametrize(
    "classes, expected",
    [
        (
            [{"name": "Road"}, {"name": "Water"}, {"name": "Road"}],
            "classes 'Road' and 'Road' have the same name",
        ),
        (
            [{"name": "Road"}, {"name": "Water"}, {"name": "ROAD"}],
            "classes 'Road' and 'ROAD' have the same name",
        ),
        (  # found by a review: polygon labels matched the two as one, the later took all
            [{"name": "Road"}, {"name": "Road "}],
            "classes 'Road' and 'Road ' have the same name",
        ),
        (  # a review: spacing inside a name too, as docs/own-area.md says
            [{"name": "Bare Soil"}, {"name": "bare  soil"}],
            "classes 'Bare Soil' and 'bare  soil' have the same name",
        ),
        (  # é as one character and as e + a combining accent
            [{"name": "Caf\u00e9"}, {"name": "Cafe\u0301"}],
            "classes 'Caf\u00e9' and 'Cafe\u0301' have the same name",
        ),
        (  # the same colour written two ways
            [{"name": "a", "mask_color": "#0a0B0c"}, {"name": "b", "mask_color": [10, 11, 12]}],
            "classes 'a' and 'b' both have mask_color #0A0B0C",
        ),
        (
            [{"name": "a", "mask_value": 0}, {"name": "b", "mask_value": 7}, {"name": "c",
             "mask_value": 7}],
            "classes 'b' and 'c' both have mask_value 7",
        ),
    ],
)  # fmt: skip
def test_a_name_colour_or_value_twice_is_one_line_naming_both_classes(classes, expected):
    text = message(ClassTable.from_dict, {"classes": classes})
    assert text.startswith(expected) and "\n" not in text
    with pytest.raises(ClassTableError, match=expected):  # built in code, too
        ClassTable(tuple(ClassTable.from_dict({"classes": [c]}).classes[0] for c in classes))


@pytest.mark.parametrize(
    ("name", "shown"),
    [(None, "None"), ("", "''"), ("  ", "'  '"), (True, "True"), (2.5, "2.5"), ("a\nb", "'a\\nb'")],
)
def test_a_class_needs_a_name_in_words(name, shown):
    """YAML's `name:` with nothing after it is null: str() made a class called 'None' that a
    model would carry into every legend and areas table."""
    table = {"classes": [{"name": "Land"}, {"name": name, "mask_value": 2}]}
    assert message(ClassTable.from_dict, table) == (
        f"class 2: name {shown} is not a name; give each class a name in words (letters,"
        " digits, spaces), e.g. 'Building'"
    )
    # a land-cover code is a name
    assert ClassTable.from_dict({"classes": [{"name": 11}]}).names == ["11"]


@pytest.mark.parametrize(
    ("name", "shown"), [("a\u202eb", "'a\\u202eb'"), ("\x1b[31mx", "'\\x1b[31mx'")]
)
def test_a_name_may_join_letters_but_not_turn_text_or_drive_a_terminal(name, shown):
    """A review: Persian's zero-width non-joiner and emoji joined by ZWJ were refused as
    not printable; a direction override or an escape sequence still is."""
    joined = ["ساختمان\u200cها", "👨\u200d👩\u200d👧", "\U0001f3f4\U000e0067\U000e0062\U000e007f"]
    assert ClassTable.from_dict({"classes": [{"name": n} for n in joined]}).names == joined
    table = {"classes": [{"name": "Land"}, {"name": name, "mask_value": 2}]}
    assert message(ClassTable.from_dict, table).startswith(f"class 2: name {shown} is not a name")
    # joiners alone show nothing: no name
    invisible = {"classes": [{"name": "Land"}, {"name": "\u200d \u200c", "mask_value": 2}]}
    assert message(ClassTable.from_dict, invisible).startswith("class 2: name '\\u200d")


def test_a_name_is_a_legend_line_not_a_page():
    """A review: a 3,000-character name drew a 1.5-gigapixel confusion matrix (20,000: a
    MemoryError traceback)."""
    ClassTable.from_dict({"classes": [{"name": "x" * MAX_NAME_LENGTH}]})
    long = {"classes": [{"name": "Land"}, {"name": "x" * (MAX_NAME_LENGTH + 1)}]}
    assert message(ClassTable.from_dict, long).endswith(
        f"is {MAX_NAME_LENGTH + 1} characters long; a class name has at most {MAX_NAME_LENGTH}"
    )


def test_a_yaml_name_that_reads_as_a_number_is_the_text_typed(tmp_path):
    """A review: `name: 01` made a class '1' and `name: 0x1F` one called '31'."""
    path = tmp_path / "classes.yaml"
    names = ["01", "0x1F", "1e3", "211", ".nan"]
    path.write_text("classes:\n" + "".join(f"  - name: {n}\n" for n in names))
    assert ClassTable.from_file(path).names == names


@pytest.mark.parametrize("key", ["scored", "background"])
def test_a_class_flag_is_true_or_false(key):
    """'false' in quotes is text: bool() read it as yes."""
    table = {"classes": [{"name": "Land", key: "false"}]}
    assert (
        message(ClassTable.from_dict, table) == f"class 'Land': {key}: 'false' is not true or false"
    )
    for value, expected in ((False, False), (0, False), (True, True), (1, True)):
        read = ClassTable.from_dict({"classes": [{"name": "Land", key: value}]}).classes[0]
        assert getattr(read, key) is expected


def test_a_float_class_raster_must_hold_whole_numbers():
    """A continuous raster (probabilities, NDVI) or one resampled bilinearly was truncated
    into classes: 1.7 read as class 1, 3.9 as 3, with no pixel counted unknown."""
    table = ClassTable.from_dict(VALUE_CLASSES)
    values = sorted(c.mask_value for c in table.classes)
    whole = np.array([[values[0], values[1]], [values[1], values[0]]], np.float32)
    assert (
        encode_mask(whole, table).ids.tolist()
        == encode_mask(whole.astype(np.uint8), table).ids.tolist()
    )
    nodata = np.ma.masked_invalid(np.array([[values[0], np.nan]], np.float32))
    assert encode_mask(nodata, table).ids[0, 0] == 0  # NaN as declared nodata is no fraction
    continuous = whole + np.float32(0.7)
    continuous[0, 0] = values[0]
    assert message(encode_mask, continuous, table, "ndvi.tif") == (
        f"ndvi.tif: holds values that are not whole numbers (e.g. {values[1] + 0.7:g}; 3 of"
        " the 4 pixels read); a class raster holds each class's mask_value: is this a"
        " continuous raster, or one resampled bilinearly?"
    )


def test_a_class_flag_of_another_number_is_refused():
    table = {"classes": [{"name": "Land", "scored": 2}]}
    assert message(ClassTable.from_dict, table) == "class 'Land': scored: 2 is not true or false"


@pytest.mark.parametrize("name", ["Tile 9/masks/x.jpeg", "x.JPG", "x.Jpeg"])
def test_jpeg_masks_of_any_spelling_are_told_to_use_png(name):
    encoded = encode_mask(np.repeat(rgb("#123456", "#3C1098"), 10, axis=0), DUBAI_CLASSES)
    assert message(check_unknown_share, encoded, name, 0.05) == (
        f"{name}: 50.0% of pixels match no class colour (most common: #123456 (50.0%));"
        " JPEG compression changes a mask's colours and values: save masks as PNG or TIFF"
        " (limit 5%, set by --max-unknown)"
    )


def test_one_pixel_that_is_not_a_whole_number_is_the_example():
    table = ClassTable.from_dict(VALUE_CLASSES)
    value = sorted(c.mask_value for c in table.classes)[0]
    mask = np.full((2, 2), value, np.float32)
    mask[1, 1] = 0.5
    assert "not whole numbers (e.g. 0.5; 1 of the 4 pixels read)" in message(
        encode_mask, mask, table, "x.tif"
    )
    # a review: read first as the header check's one pixel, it said "1 of the 1 pixels"
    assert "not whole numbers (e.g. 0.5); a class raster" in message(
        encode_mask, mask[1:, 1:], table, "x.tif"
    )


def test_names_that_differ_by_case_are_one_line_that_says_how_names_match():
    table = {"classes": [{"name": "Road", "mask_value": 1}, {"name": "road ", "mask_value": 2}]}
    assert message(ClassTable.from_dict, table) == (
        "classes 'Road' and 'road ' have the same name (names are matched in any case,"
        " spacing and Unicode form); rename or merge one"
    )


@pytest.mark.parametrize("data", [[{"name": "a"}], {"classes": "a"}, {"classes": ["a"]}, None])
def test_a_table_that_is_not_a_mapping_of_entries_says_its_form(data):
    assert message(ClassTable.from_dict, data) == (
        "a class table is a mapping whose 'classes' is a list of entries, each with 'name' and"
        " 'mask_color' (colour-coded masks) or 'mask_value' (single-band masks)"
    )


def test_a_table_file_saved_with_a_byte_order_mark_is_read(tmp_path):
    """Windows Notepad writes one; json.loads refused the file."""
    for suffix in (".json", ".yaml"):
        path = tmp_path / f"classes{suffix}"
        path.write_text(json.dumps({"classes": [{"name": "Land", "mask_value": 1}]}), "utf-8-sig")
        assert ClassTable.from_file(path).names == ["Land"]


def test_a_class_is_found_by_its_name_as_names_are_compared():
    table = ClassTable.from_dict(
        {"classes": [{"name": n, "mask_value": v} for v, n in enumerate(["Land", "Road", "Café"])]}
    )
    assert [table.id_of(n) for n in ("Land", " road", "CAFE\u0301", "Water")] == [0, 1, 2, None]


def test_unknown_values_are_named_as_the_raster_holds_them():
    """Whole numbers as digits (not 9.0), an int64 raster's large values too; only a float
    raster's fill values past int64 are one code of their own."""
    table = ClassTable.from_dict(VALUE_CLASSES)
    known = sorted(c.mask_value for c in table.classes)[0]
    for unknown, shown in ((9, "9"), (2**62 + 5, str(2**62 + 5))):
        assert unknown not in [c.mask_value for c in table.classes]
        mask = np.array([[known, unknown]], np.int64)
        text = message(check_unknown_share, encode_mask(mask, table), "x.tif", 0.05)
        assert f"(most common: {shown} (50.0%))" in text, text
    fill = np.array([[known, 3.4e38]], np.float32)
    text = message(check_unknown_share, encode_mask(fill, table), "x.tif", 0.05)
    assert "(most common: a value of 5e+18 or more (an undeclared fill value?) (50.0%))" in text


def test_nodata_that_is_no_number_is_encoded_without_a_warning():
    """NaN (declared nodata) was cast to int64 with numpy's 'invalid value' warning."""
    table = ClassTable.from_dict(VALUE_CLASSES)
    known = sorted(c.mask_value for c in table.classes)[0]
    mask = np.ma.masked_invalid(np.array([[known, np.nan, np.inf]], np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encoded = encode_mask(mask, table)
    assert encoded.ids.tolist() == [[0, IGNORE_INDEX, IGNORE_INDEX]] and encoded.ignored == 2


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (
            "classes:\n  - {name: Water, mask_value: 3, score: false}\n",
            "class 'Water' has the key 'score', which is not one: did you mean 'scored'? the"
            " keys are name, mask_color, display_color, scored, mask_value, background",
        ),
        (
            "classes:\n  - {name: Water, mask_value: 3}\nignore_value: [4]\n",
            "the table has the key 'ignore_value', which is not one: did you mean"
            " 'ignore_values'? the keys are classes, ignore_colors, ignore_values",
        ),
        (
            "classes:\n  - {name: Water, mask_value: 3, shape: polygon}\n",
            "class 'Water' has the key 'shape', which is not one: the keys are name,"
            " mask_color, display_color, scored, mask_value, background",
        ),
    ],
)
def test_a_key_a_table_file_may_not_have_is_named_with_the_file(tmp_path, table, expected):
    """A review: 'score: false' and 'ignore_value: [3]' were left unread without a word:
    Water was scored, and 3 not ignored. Errors name the file, too."""
    path = tmp_path / "classes.yaml"
    path.write_text(table)
    assert message(ClassTable.from_file, path) == f"class table {path}: {expected}"
