"""The catalog: every input form opens into scenes, read the same whatever the memory."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from rasterio.windows import Window

from aerialseg.data.catalog import LabelSpec, open_catalog
from aerialseg.data.classes import DUBAI_CLASSES, ClassTable, encode_mask
from aerialseg.data.crops import RandomCropDataset
from aerialseg.data.raster import InputError, open_input
from aerialseg.data.scenes import TRAINING_FLAGS, LabelledImage, RasterScene, Reading
from aerialseg.errors import DatasetError
from tests.helpers.geotiff import VALUE_CLASSES, write_geotiff, write_geotiff_dataset
from tests.helpers.images import zip_folder
from tests.helpers.paths import REAL_DATA, requires_real_data

VALUES = ClassTable.from_dict(VALUE_CLASSES)
ROOT = "Semantic segmentation dataset"
FOUR_BANDS = Reading(bands=(3, 2, 1), max_unknown=1.0)


def _crops(scenes, seed: int, balanced: float) -> list:
    torch.manual_seed(seed)
    ds = RandomCropDataset(scenes, 32, 6, True, (0.75, 1.5), 0.2, balanced)
    return [ds[k] for k in range(6)]


def _assert_same_crops(a, b) -> None:
    for balanced in (0.0, 0.5):
        for (i1, m1), (i2, m2) in zip(_crops(a, 3, balanced), _crops(b, 3, balanced), strict=True):
            assert torch.equal(i1, i2) and torch.equal(m1, m2)


def _as_predict_reads(root, ids, table) -> list[LabelledImage]:
    """The Dubai pairs as ``aerialseg predict`` reads an image (rasterio: GDAL's JPEG
    decoder, which is not PIL's) and the notebook read a mask (PIL, colours to ids)."""
    items = []
    for rel in ids:
        raster = open_input(root / ROOT / rel)
        values, _ = raster.read(Window(0, 0, raster.width, raster.height))
        raster.close()
        mask_rel = rel.replace("/images/", "/masks/").rsplit(".", 1)[0] + ".png"
        mask = np.array(Image.open(root / ROOT / mask_rel).convert("RGB"))
        image = torch.from_numpy(values.astype(np.uint8))
        items.append(LabelledImage(rel, image, torch.from_numpy(encode_mask(mask, table).ids)))
    return items


@requires_real_data()
def test_dubai_pairs_decode_as_predict_reads_them():
    """Training and evaluate see the pixels predict sees (PIL's JPEG decoder differs from
    GDAL's in a fifth of the values, by up to 32 levels: their scores then described
    other pixels than the files predict wrote)."""
    catalog = open_catalog(REAL_DATA, DUBAI_CLASSES)
    ids = [e.id for e in catalog.entries if e.group == "Tile 1"][:3]
    new = catalog.read(ids, Reading(max_unknown=1.0))
    old = _as_predict_reads(REAL_DATA, ids, DUBAI_CLASSES)
    for a, b in zip(new, old, strict=True):
        assert torch.equal(a.image, b.image) and torch.equal(a.mask, b.mask)
    _assert_same_crops(new, old)


@pytest.mark.parametrize("zipped", [False, True])
def test_geotiff_pairs_are_raster_scenes_read_the_same_decoded_and_streamed(tmp_path, zipped):
    root = write_geotiff_dataset(tmp_path / "ds", parts=3)
    data = zip_folder(root, tmp_path / "ds.zip") if zipped else root
    if zipped:
        shutil.rmtree(root)
    catalog = open_catalog(data, VALUES)
    ids = [e.id for e in catalog.entries]
    assert all(isinstance(catalog.scenes[i], RasterScene) for i in ids)
    decoded = catalog.read(ids, FOUR_BANDS)
    streamed = catalog.read(ids, Reading(bands=(3, 2, 1), max_unknown=1.0, cache_megabytes=0))
    assert all(isinstance(s, LabelledImage) for s in decoded)
    assert not any(isinstance(s, LabelledImage) for s in streamed)
    for a, b in zip(decoded, streamed, strict=True):
        whole = Window(0, 0, a.width, a.height)
        s = b.read(whole)
        assert torch.equal(a.image, s.image) and torch.equal(a.mask, s.mask)
        assert torch.equal(a.labels_every(8), b.labels_every(8))
    _assert_same_crops(decoded, streamed)


@pytest.mark.parametrize("bands", [1, 2, 4, 8])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_scenes_of_any_band_count_open_and_split_without_bands(tmp_path, bands, dtype):
    """Splitting and inspecting read no band values: only training chooses the bands."""
    import rasterio

    from aerialseg.data.inspect import inspect_dataset
    from aerialseg.data.splits import random_split
    from tests.helpers.geotiff import UTM40N, write_geotiff

    rng = np.random.default_rng(0)
    (tmp_path / "scenes").mkdir()
    for k in range(4):
        values = rng.integers(1, 200, (bands, 40, 50)).astype(dtype)
        write_geotiff(tmp_path / "scenes" / f"s{k}.tif", values)
    labels = tmp_path / "labels.tif"
    write_geotiff(labels, rng.integers(1, 6, (1, 40, 50)).astype(np.uint8))
    with rasterio.open(labels) as ds:
        assert ds.crs == UTM40N
    catalog = open_catalog(tmp_path / "scenes", VALUES, LabelSpec(str(labels)))
    split = random_split(catalog.entries, 0.25, 0.25)
    assert len(split.train) == 2
    report = inspect_dataset(catalog, VALUES, 0.05)
    assert report["problems"] == [] and report["pairs"] == 4
    assert report["image_modes"] == {f"{bands}x {dtype}": 4}
    with rasterio.open(tmp_path / "scenes" / "s0.tif") as ds:
        rgba = bands == 4 and ds.colorinterp[3] == rasterio.enums.ColorInterp.alpha
    if bands != 3 and not rgba:  # where pixels are read, the bands are asked for, once
        with pytest.raises(DatasetError, match="choose them with bands="):
            catalog.read(["s0.tif", "s1.tif"], Reading(flags=TRAINING_FLAGS))
        with pytest.raises(DatasetError, match="choose them with --bands"):  # evaluate's
            catalog.read(["s0.tif", "s1.tif"], Reading())
    (scene,) = catalog.read(["s0.tif"], Reading(bands=(1,) * 3))
    assert scene.image.shape == (3, 40, 50)


def test_a_class_raster_beside_its_scenes_is_no_scene(tmp_path, capsys):
    """A review: a folder (or glob) holding s1.tif, s2.tif and labels.tif, given with
    --labels labels.tif, trained on labels.tif as an image labelled by itself."""
    from tests.helpers.geotiff import write_geotiff

    rng = np.random.default_rng(0)
    folder = tmp_path / "scenes"
    folder.mkdir()
    for k in (1, 2):
        write_geotiff(folder / f"s{k}.tif", rng.integers(1, 200, (3, 40, 50)).astype(np.uint8))
    labels = folder / "labels.tif"
    write_geotiff(labels, rng.integers(1, 6, (1, 40, 50)).astype(np.uint8))
    for data in (folder, str(folder / "*.tif")):
        catalog = open_catalog(data, VALUES, LabelSpec(str(labels)))
        assert sorted(catalog.scenes) == ["s1.tif", "s2.tif"], data
        assert f"left out {labels}, the labels" in capsys.readouterr().err
    # named through another path, the same file
    catalog = open_catalog(
        folder, VALUES, LabelSpec(str(tmp_path / "scenes" / ".." / "scenes" / "labels.tif"))
    )
    assert sorted(catalog.scenes) == ["s1.tif", "s2.tif"]


# ---- the catalog's own answers (what bench/mutation.py found unguarded) ----


def _polygon_scenes(tmp_path, count=2, gap=200.0):
    """``count`` UTM scenes side by side in scenes/, polygons over the first only, in a
    GeoPackage in WGS84; the class table file."""
    from shapely.geometry import box

    from tests.helpers.geodata import (
        POLYGON_CLASSES,
        scene_transform,
        write_polygons,
        write_scene,
    )

    (tmp_path / "scenes").mkdir()
    for k in range(count):
        at = scene_transform((300_000.0 + k * gap, 2_790_000.0))
        write_scene(tmp_path / "scenes" / f"s{k}.tif", np.full((60, 80), 3, np.uint8), at)
    left, top = scene_transform() @ (0, 0)
    boxes = [(box(left + 5, top - 20, left + 25, top - 5), "Building")]
    labels = write_polygons(tmp_path / "labels.gpkg", boxes)
    return tmp_path / "scenes", labels, ClassTable.from_dict(POLYGON_CLASSES)


def test_polygon_scenes_anywhere_in_a_folder_open_with_their_ids_groups_and_files(tmp_path):
    from aerialseg.data.catalog import expand_scenes
    from aerialseg.data.splits import Split

    scenes, labels, table = _polygon_scenes(tmp_path, count=3)
    (scenes / "notes.txt").write_text("not a raster")
    catalog = open_catalog(scenes, table, LabelSpec(str(labels), "class"))
    assert list(catalog.scenes) == ["s0.tif", "s1.tif", "s2.tif"]  # polygons on s0 only
    assert catalog.path == str(scenes) and catalog.labels == LabelSpec(str(labels), "class")
    assert [e.group for e in catalog.entries] == ["."] * 3
    assert catalog.entries[1].labels.name == str(labels)
    grids = catalog.georeferences()
    assert list(grids) == ["s0.tif", "s1.tif", "s2.tif"]
    assert grids["s1.tif"][0].to_epsg() == 32640 and grids["s1.tif"][1].c == 300_200.0
    assert [g.width for g in catalog.grids()] == [80] * 3
    split = Split(train=("s0.tif",), val=("s1.tif",), test=("s2.tif",), rule="r")
    assert catalog.example_image(split) == str(scenes / "s2.tif")
    assert catalog.example_image(Split(("s0.tif",), ("s1.tif",), (), "r")) == str(scenes / "s1.tif")
    assert catalog.example_image(Split((), (), (), "r")) is None
    scenes_, parts = catalog.split_scenes(split, "val", Reading())
    assert [s.id for s in scenes_] == ["s1.tif"] and parts == [(0, None)]
    # a glob, files, a nested folder: ids relative to the folder they share
    globbed = open_catalog(str(scenes / "s*.tif"), table, LabelSpec(str(labels), "class"))
    assert list(globbed.scenes) == ["s0.tif", "s1.tif", "s2.tif"]
    (scenes / "deep").mkdir()
    shutil.copy(scenes / "s0.tif", scenes / "deep" / "d.tif")
    assert expand_scenes(str(scenes / "**" / "*.tif")) == sorted(
        [str(scenes / "deep" / "d.tif"), *(str(scenes / f"s{k}.tif") for k in range(3))]
    )
    both = [str(scenes / "s1.tif"), "https://x/a.tif"]
    assert expand_scenes(both[::-1]) == both  # kept whole, sorted
    nested = open_catalog(str(scenes / "**" / "*.tif"), table, LabelSpec(str(labels), "class"))
    assert list(nested.scenes) == ["deep/d.tif", "s0.tif", "s1.tif", "s2.tif"]
    assert nested.entries[0].group == "."  # the folder above an images/ folder: none here


def test_polygon_errors_name_the_file_and_the_fix(tmp_path, capsys):
    from shapely.geometry import box

    from tests.helpers.geodata import write_polygons

    scenes, labels, table = _polygon_scenes(tmp_path, count=1)
    with pytest.raises(DatasetError) as err:
        open_catalog(scenes / "s0.tif", table, LabelSpec(str(labels), "class", "EPSG:32633"))
    assert str(err.value) == (  # --label-crs reaches the polygons: now far away
        f"{labels}: no polygon lies on any of the 1 georeferenced image(s); check that the"
        " polygons and images cover the same place (and --label-crs)"
    )
    plain = tmp_path / "plain.tif"
    write_geotiff(plain, np.zeros((3, 20, 20), np.uint8), crs=None)
    with pytest.raises(DatasetError) as err:
        open_catalog(plain, table, LabelSpec(str(labels), "class"))
    assert str(err.value) == (
        f"{plain}: the image has no georeference, so polygons cannot be placed on it"
    )
    # data inspect's way (not strict), found by a review: it said "no polygon lies on any
    # of the 1 image(s)", as if the georeference were there and the polygons elsewhere
    with pytest.raises(DatasetError) as err:
        open_catalog(plain, table, LabelSpec(str(labels), "class"), strict=False)
    assert str(err.value).startswith(f"{plain}: the image has no georeference")
    bowtie = box(0, 0, 1, 1).union(box(1, 1, 2, 2)).convex_hull  # valid; then a bow tie
    from shapely.geometry import Polygon

    from tests.helpers.geodata import scene_transform

    left, top = scene_transform() @ (0, 0)
    twisted = Polygon([(left, top), (left + 10, top - 10), (left + 10, top), (left, top - 10)])
    write_polygons(tmp_path / "twisted.gpkg", [(twisted, "Building"), (bowtie, "Road")])
    open_catalog(scenes, table, LabelSpec(str(tmp_path / "twisted.gpkg"), "class"))
    assert capsys.readouterr().err == (
        f"{tmp_path / 'twisted.gpkg'}: repaired 1 invalid polygon(s) (self-intersecting rings"
        " and the like, with make_valid)\n"
    )


def test_class_raster_errors_and_the_pixel_size_every_form_reads_at(tmp_path):
    scenes, labels, table = _polygon_scenes(tmp_path, count=1)
    values = VALUES
    classes = tmp_path / "classes.tif"
    write_geotiff(classes, np.full((1, 60, 80), 2, np.uint8), crs=None)  # same size: placed
    catalog = open_catalog(scenes / "s0.tif", values, LabelSpec(str(classes)))
    assert catalog.path == str(scenes / "s0.tif") and catalog.labels == LabelSpec(str(classes))
    assert catalog.entries[0].labels.name == str(classes)
    write_geotiff(classes, np.full((1, 30, 80), 2, np.uint8), crs=None)
    with pytest.raises(DatasetError) as err:
        open_catalog(scenes / "s0.tif", values, LabelSpec(str(classes)))
    assert str(err.value) == (
        f"{classes}: the class raster lies on none of the 1 image(s); check that it and the"
        " images cover the same place"
    )
    for flag, spec in (
        ("--label-crs", LabelSpec(str(classes), crs="EPSG:4326")),
        ("--labelled-area", LabelSpec(str(classes), labelled_area=str(labels))),
    ):
        with pytest.raises(DatasetError) as err:
            open_catalog(scenes / "s0.tif", values, spec)
        assert str(err.value) == (
            f"{flag} describes polygon labels; {classes} is a class raster, whose pixels hold"
            " the classes and whose nodata marks where labels do not hold"
        )
    # pixel_size reaches every form's scenes and labels: 0.5 m scenes read at 1 m
    write_geotiff(classes, np.full((1, 60, 80), 2, np.uint8), transform=scene_transform_())
    for spec in (LabelSpec(str(classes)), LabelSpec(str(labels), "class")):
        (scene,) = open_catalog(scenes / "s0.tif", values if spec.is_raster else table, spec,
                                pixel_size=1.0).read(["s0.tif"], Reading())  # fmt: skip
        assert scene.mask.shape == (30, 40)
    root = write_geotiff_dataset(tmp_path / "pairs", parts=1)
    (pair,) = open_catalog(root, values, pixel_size=1.0).read(["images/scene_0.tif"], FOUR_BANDS)
    assert pair.mask.shape == (36, 40)


def scene_transform_():
    from tests.helpers.geodata import scene_transform

    return scene_transform()


def test_pairs_open_strictly_with_their_files_groups_and_tiles(tmp_path):
    from tests.helpers.images import write_dataset

    root = write_dataset(tmp_path / "ds", tiles=2, parts=3)
    (root / "Tile 1" / "masks" / "image_part_003.png").unlink()
    with pytest.raises(DatasetError, match="image_part_003.jpg: image has no mask"):
        open_catalog(root, DUBAI_CLASSES)
    catalog = open_catalog(root, DUBAI_CLASSES, strict=False)
    assert catalog.unpaired and catalog.path == str(root) and catalog.root == "."
    first = catalog.entries[0]
    assert first.group == "Tile 1" and first.example == str(root / first.id)
    assert catalog.georeferences() == {} and catalog.grids()[0].pixel is None
    (item,) = catalog.read([first.id], Reading())
    assert set(item.mask.unique().tolist()) <= {0, 1, 2, 3, 4, 5, 255}  # Dubai colours
    assert (item.mask != 255).float().mean() > 0.9
    with pytest.raises(DatasetError) as err:
        open_catalog(root, DUBAI_CLASSES, pixel_size=1.0, strict=False).read([first.id], Reading())
    assert str(err.value).startswith(
        f"{first.id}: has no georeference, so its pixel size is unknown; --pixel-size needs"
        " georeferenced rasters (GeoTIFF)"
    )


def test_scenes_are_decoded_while_they_fit_in_the_cache_to_the_byte(tmp_path):
    root = write_geotiff_dataset(tmp_path / "own", parts=2)
    catalog = open_catalog(root, VALUES)
    ids = list(catalog.scenes)
    need = 2 * 72 * 80 * (3 + 1)  # three bands and the labels, a byte each
    exact = Reading((3, 2, 1), 1.0, cache_megabytes=need / 2**20)
    assert all(isinstance(s, LabelledImage) for s in catalog.read(ids, exact))
    over = Reading((3, 2, 1), 1.0, cache_megabytes=(need - 1) / 2**20)
    assert not any(isinstance(s, LabelledImage) for s in catalog.read(ids, over))
    four = Reading((3, 2, 1, 4), 1.0, cache_megabytes=need / 2**20)  # a byte more a pixel
    assert not any(isinstance(s, LabelledImage) for s in catalog.read(ids, four))
    three = Reading(None, 1.0, cache_megabytes=need / 2**20)
    with pytest.raises(DatasetError, match="has 4 band"):  # the default three, still checked
        catalog.read(ids, three)


def test_expand_scenes_keeps_every_item_of_a_list(tmp_path):
    from aerialseg.data.catalog import expand_scenes

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for name in ("a/1.tif", "b/2.tif", "b/3.tif", "c.tif"):
        write_geotiff(tmp_path / name, np.zeros((3, 4, 4), np.uint8))
    url = "https://example.org/scene.tif?token=x[1]"  # glob characters, kept whole
    items = [str(tmp_path / "c.tif"), str(tmp_path / "a"), str(tmp_path / "b" / "*.tif"), url]
    assert expand_scenes(items) == sorted(
        [str(tmp_path / n) for n in ("c.tif", "a/1.tif", "b/2.tif", "b/3.tif")] + [url]
    )
    missing = str(tmp_path / "missing.tif")  # not a glob: kept, and refused where it is opened
    assert expand_scenes(missing) == [missing]
    with pytest.raises(DatasetError, match=r"no image rasters found"):
        expand_scenes(str(tmp_path / "none" / "*.tif"))


def test_open_catalog_says_what_image_rasters_need_and_sets_gdals_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    for data in ("https://example.org/scenes/a", str(tmp_path / "a.tif")):
        with pytest.raises(DatasetError) as err:
            open_catalog(data, VALUES)
        assert str(err.value) == (
            f"{data}: image rasters need their labels: give the polygons or the class raster"
            " with --labels FILE (or a dataset folder of images/ and masks/)"
        )
    import os

    assert os.environ["GDAL_CACHEMAX"] == "128"


def test_labelled_blocks_and_regions_follow_the_labelled_area(tmp_path):
    from shapely.geometry import box

    from aerialseg.data.splits import Split
    from tests.helpers.geodata import scene_transform, write_area

    scenes, labels, table = _polygon_scenes(tmp_path, count=2)
    left, top = scene_transform() @ (0, 0)
    # two polygons on s0: one past its right edge (no region), one from its corner
    import fiona
    from shapely.geometry import mapping

    area = tmp_path / "area.gpkg"
    schema = {"geometry": "Polygon", "properties": {}}
    with fiona.open(area, "w", driver="GPKG", crs="EPSG:32640", schema=schema) as sink:
        for geom in (
            box(left + 100, top - 10, left + 110, top),
            box(left, top - 5.5, left + 0.5, top),
        ):
            sink.write({"geometry": mapping(geom), "properties": {}})
    spec = LabelSpec(str(labels), "class", labelled_area=str(area))
    catalog = open_catalog(scenes, table, spec)  # s1 lies outside: the area is seen on s0
    labelled = catalog.labelled_block()
    assert labelled("s0.tif", Window(0, 0, 4, 4)) and not labelled("s0.tif", Window(40, 40, 8, 8))
    assert not labelled("s1.tif", Window(0, 0, 80, 60))
    split = Split(train=("s0.tif",), val=(), test=(), rule="r")
    regions = catalog.regions(split, "train")
    assert [(k, (w.col_off, w.row_off, w.width, w.height)) for k, w in regions] == [
        (0, (0, 0, 1, 11))
    ]
    assert open_catalog(scenes, table, LabelSpec(str(labels), "class")).labelled_block() is None
    write_area(tmp_path / "far.gpkg", box(left + 1000, top - 10, left + 1010, top))
    with pytest.raises(DatasetError, match="the labelled area overlaps none of the 2 image"):
        open_catalog(
            scenes, table, LabelSpec(str(labels), "class", None, str(tmp_path / "far.gpkg"))
        )


def test_class_raster_scenes_have_their_files_groups_and_pixel_size(tmp_path):
    from tests.helpers.geodata import scene_transform

    scenes, _, _ = _polygon_scenes(tmp_path, count=1)
    values = np.ones((1, 60, 80), np.uint8)
    values[0, 1::2, 1::2] = 5  # at 1 m: mode 1, where nearest would take the 5s
    classes = write_geotiff(tmp_path / "classes.tif", values, transform=scene_transform())
    catalog = open_catalog(scenes, VALUES, LabelSpec(str(classes)), pixel_size=1.0)
    (entry,) = catalog.entries
    assert entry.example == str(scenes / "s0.tif") and entry.group == "."
    (scene,) = catalog.read(["s0.tif"], Reading())
    assert scene.mask.shape == (30, 40) and set(scene.mask.unique().tolist()) == {0}
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"not a raster")
    with pytest.raises(DatasetError, match=f"^{broken}: cannot read the file"):
        open_catalog(scenes, VALUES, LabelSpec(str(broken)))
    write_geotiff(scenes / "s0.tif", np.zeros((2, 60, 80), np.uint8), transform=scene_transform())
    with pytest.raises(DatasetError, match=f"^{scenes / 's0.tif'}: has 2 band"):
        open_catalog(scenes, VALUES, LabelSpec(str(classes))).read(["s0.tif"], Reading())


def test_geotiff_pairs_in_tiles_keep_their_tile_and_root(tmp_path):
    root = tmp_path / "wrap" / "ds"
    write_geotiff_dataset(root / "Tile 7", parts=1)
    archive = zip_folder(tmp_path / "wrap", tmp_path / "wrap.zip")
    for data, where in ((root, "."), (archive, "wrap/ds")):
        catalog = open_catalog(data, VALUES)
        (entry,) = catalog.entries
        assert entry.id == "Tile 7/images/scene_0.tif" and entry.group == "Tile 7"
        assert catalog.root == where
    assert open_catalog(root, VALUES).entries[0].example == str(root / "Tile 7/images/scene_0.tif")
    # a zip's entry as predict reads it in place (a review: None, and no command named it)
    inside = f"/vsizip/{{{archive}}}/wrap/ds/Tile 7/images/scene_0.tif"
    assert open_catalog(archive, VALUES).entries[0].example == inside


def test_rgb_scenes_fit_the_cache_at_three_bands_and_a_label_byte(tmp_path):
    scenes, labels, table = _polygon_scenes(tmp_path, count=1)
    catalog = open_catalog(scenes, table, LabelSpec(str(labels), "class"))
    need = 60 * 80 * (3 + 1)
    assert isinstance(
        catalog.read(["s0.tif"], Reading(cache_megabytes=need / 2**20))[0], LabelledImage
    )
    over = Reading(cache_megabytes=(need - 1) / 2**20)
    assert not isinstance(catalog.read(["s0.tif"], over)[0], LabelledImage)


def test_inspect_counts_a_large_scenes_labels_on_a_sample_each_standing_for_its_pixels(
    tmp_path, monkeypatch
):
    import aerialseg.data.scenes as scenes_module
    from aerialseg.data.inspect import inspect_dataset

    scenes, _, _ = _polygon_scenes(tmp_path, count=1)
    values = np.full((1, 60, 80), 2, np.uint8)
    values[0, :, :20] = 3
    from tests.helpers.geodata import scene_transform

    classes = write_geotiff(tmp_path / "classes.tif", values, transform=scene_transform())
    catalog = open_catalog(scenes, VALUES, LabelSpec(str(classes)))
    whole = inspect_dataset(catalog, VALUES, 0.05)
    monkeypatch.setattr(scenes_module, "COUNTED_PIXELS", 60 * 80 // 9)  # every 3rd: 20 x 26
    sampled = inspect_dataset(open_catalog(scenes, VALUES, LabelSpec(str(classes))), VALUES, 0.05)
    assert whole["pixels"] == 60 * 80 and sampled["pixels"] == 20 * 27 * 9
    assert [round(c["share"], 2) for c in whole["classes"]] == [0.0, 0.75, 0.25, 0.0, 0.0]
    assert [round(c["share"], 1) for c in sampled["classes"]] == [0.0, 0.7, 0.3, 0.0, 0.0]
    assert whole["image_grids"] == {"EPSG:32640, 0.5 x 0.5": 1} and whole["pixel_sizes"] == {
        "0.5": 1
    }
    assert whole["mask_modes"] == {"1x uint8": 1} and whole["tiles"] == {
        ".": {"pairs": 1, "sizes": {"80x60": 1}}
    }


def test_a_split_block_past_its_image_is_refused_before_reading(tmp_path):
    """A block split made for another image (or pixel size) named windows the reader then
    clipped or could not read: scores of other pixels than named, or a network error."""
    from aerialseg.data.splits import blocks_split

    scenes, labels, table = _polygon_scenes(tmp_path, count=1)
    catalog = open_catalog(scenes, table, LabelSpec(str(labels), "class"))
    inside = blocks_split({"train": [("s0.tif", Window(0, 0, 80, 60))], "val": [], "test": []}, "r")
    assert catalog.split_scenes(inside, "train", Reading())[1] == [(0, Window(0, 0, 80, 60))]
    for window in (Window(70, 0, 16, 16), Window(0, 50, 16, 16), Window(500, 500, 8, 8)):
        split = blocks_split({"train": [("s0.tif", window)], "val": [], "test": []}, "r")
        with pytest.raises(DatasetError) as err:
            catalog.split_scenes(split, "train", Reading())
        box = [window.col_off, window.row_off, window.width, window.height]
        assert str(err.value) == (
            f"s0.tif: the split's block {box} reaches past the image (80 x 60 px); the split"
            " was made for another image or pixel size"
        )


def test_inspect_with_polygons_lists_every_unreadable_image(tmp_path, capsys):
    """With polygon labels, the first image whose header failed stopped the catalog, so
    inspect named one broken file of several; class rasters listed them all."""
    from aerialseg.cli import main

    scenes, labels, table = _polygon_scenes(tmp_path, count=2)
    (scenes / "b.tif").write_bytes((scenes / "s0.tif").read_bytes()[:300])  # truncated
    (scenes / "c.tif").write_text("not a raster")
    write_geotiff(scenes / "d.tif", np.zeros((3, 20, 20), np.uint8), crs=None)
    classes = tmp_path / "classes.yaml"
    import yaml

    from tests.helpers.geodata import POLYGON_CLASSES

    classes.write_text(yaml.safe_dump(POLYGON_CLASSES))
    argv = ["data", "inspect", str(scenes), "--labels", str(labels), "--label-field", "class"]
    main([*argv, "--classes", str(classes), "--json"])
    import json

    report = json.loads(capsys.readouterr().out)
    named = " ".join(p["message"] for p in report["problems"])
    assert all(name in named for name in ("b.tif", "c.tif", "d.tif")), named
    assert "s0.tif" not in named and "s1.tif" not in named
    with pytest.raises(DatasetError, match="b.tif"):  # training stops at the first
        open_catalog(scenes, table, LabelSpec(str(labels), "class"))


def test_a_rotated_scene_opens_with_its_corner_polygons_and_splits_by_blocks(tmp_path):
    """On a grid rotated 45°, the box of two corners is a line: the catalog found no
    polygon on the scene, and inspect read the labels as all background."""
    from affine import Affine
    from shapely.geometry import box

    from aerialseg.data.blocks import block_split
    from tests.helpers.geodata import (
        ORIGIN,
        PIXEL,
        POLYGON_CLASSES,
        UTM,
        class_ids_of,
        write_polygons,
        write_scene,
    )

    transform = Affine.translation(*ORIGIN) @ Affine.rotation(45) @ Affine.scale(PIXEL, -PIXEL)
    x, y = transform @ (8, 8)  # one polygon, near the top-left corner only
    boxes = [(box(x - 2, y - 2, x + 2, y + 2), "Building")]
    truth = class_ids_of(boxes, 96, 96, transform)
    scene = write_scene(tmp_path / "rot.tif", truth, transform)
    polygons = write_polygons(tmp_path / "b.gpkg", boxes, crs=UTM)
    table = ClassTable.from_dict(POLYGON_CLASSES)
    catalog = open_catalog(scene, table, LabelSpec(str(polygons), field="class"))
    [read] = catalog.read(["rot.tif"], Reading())
    np.testing.assert_array_equal(read.read(Window(0, 0, 96, 96)).mask.numpy(), truth)
    # its pixel is 0.5 m wide, not the transform's a (0.35): 16 m blocks are 32 px
    [grid] = catalog.grids()
    assert grid.pixel == pytest.approx(PIXEL)
    blocks = block_split(catalog.grids(), "16m", 0, 0.25, 0.25, seed=0)
    assert {(w.width, w.height) for part in blocks.values() for _, w in part} == {(32, 32)}


def test_polygons_in_degrees_land_where_their_edges_run_and_a_world_area_is_cut(tmp_path):
    """A review: polygons were moved corner by corner. A WGS84 box of 56-58°E, 24-25°N
    labelled every pixel of a UTM scene on the 25°N parallel at 57°E (its top edge became a
    chord 372 m north of the parallel), and a labelled area round the globe became a line
    in UTM, which left every pixel out."""
    import fiona
    from affine import Affine
    from rasterio.crs import CRS
    from rasterio.warp import transform as reproject_points
    from shapely.geometry import Polygon, mapping

    from tests.helpers.geodata import POLYGON_CLASSES, UTM, write_scene

    wgs84 = CRS.from_epsg(4326)
    (_, north), *_ = zip(*reproject_points(wgs84, UTM, [57.0], [25.0]), strict=True)
    at = Affine(10, 0, 500_000 - 320, 0, -10, north + 320)  # 64 px of 10 m across 25°N
    write_scene(tmp_path / "scene.tif", np.full((64, 64), 3, np.uint8), at)
    schema = {"geometry": "Polygon", "properties": {"class": "str"}}

    def degrees_box(path, west, south, east, north):
        with fiona.open(path, "w", driver="GPKG", crs=wgs84.to_wkt(), schema=schema) as dst:
            ring = [(west, south), (east, south), (east, north), (west, north), (west, south)]
            dst.write({"geometry": mapping(Polygon(ring)), "properties": {"class": "Building"}})
        return str(path)

    labels = degrees_box(tmp_path / "box.gpkg", 56, 24, 58, 25)
    world = degrees_box(tmp_path / "world.gpkg", -180, -90, 180, 90)
    table = ClassTable.from_dict(POLYGON_CLASSES)
    for area in (None, world):
        catalog = open_catalog(
            tmp_path / "scene.tif", table, LabelSpec(labels, "class", None, area)
        )
        ids = catalog.scenes["scene.tif"].labels.read(Window(0, 0, 64, 64)).ids
        cols, rows = np.meshgrid(np.arange(64) + 0.5, np.arange(64) + 0.5)
        xs, ys = at.c + at.a * cols.ravel(), at.f + at.e * rows.ravel()
        _, lats = reproject_points(UTM, wgs84, xs, ys)
        south = (np.array(lats) < 25).reshape(64, 64)  # the pixel centres inside the box
        assert 0.4 < south.mean() < 0.6
        assert (ids == np.where(south, table.id_of("Building"), table.id_of("Land"))).all()


def test_a_vrt_mosaic_is_refused_with_how_to_make_it_a_scene(tmp_path, capsys):
    """The docs listed VRT mosaics as scenes; the one raster opener refuses them (a VRT can
    name any file), in words that said only "damaged or not an image"."""
    from aerialseg.cli import main
    from tests.helpers.hostile import vrt_of

    scenes, labels, table = _polygon_scenes(tmp_path, count=1)
    (scenes / "mosaic.vrt").write_text(vrt_of(scenes / "s0.tif", bands=1, side=60))
    table_file = tmp_path / "classes.json"
    table_file.write_text(json.dumps(table.to_dict()))
    argv = ["data", "inspect", str(scenes), "--labels", str(labels), "--label-field", "class"]
    assert main([*argv, "--classes", str(table_file)]) == 2
    assert (
        "mosaic.vrt: cannot read the file (not recognized as being in a supported file format);"
        " it is damaged, or not a GeoTIFF, PNG or JPEG (convert a VRT or another format with"
        " gdal_translate -of COG): replace it or remove it from the dataset"
    ) in capsys.readouterr().out
    with pytest.raises(InputError) as err:
        open_input(scenes / "mosaic.vrt")
    assert str(err.value).endswith(
        "mosaic.vrt: not an image aerialseg can read (JPEG, PNG, TIFF, GeoTIFF; convert another"
        " raster format, a VRT too, with gdal_translate -of COG)"
    )


def test_a_block_split_is_read_on_the_runs_grid_or_refused_where_it_cannot_be(tmp_path):
    """A review of the split's grids: a split file of an earlier release (no grid) was
    read on a resampled grid as it was; a run refused a split whose train blocks vanished
    on coarser pixels even when scoring test only; --keep moved an earlier round's blocks
    onto another grid and dealt them anew."""
    from affine import Affine

    from aerialseg.data.splits import blocks_split
    from tests.helpers.geotiff import TRANSFORM

    root = write_geotiff_dataset(tmp_path / "own", parts=1)  # 80 x 72 px of 0.5 m
    table = ClassTable.from_dict(VALUE_CLASSES)
    sid = "images/scene_0.tif"
    parts = {
        "train": [(sid, Window(0, 0, 1, 40))],  # no whole 1 m pixel
        "val": [(sid, Window(0, 41, 40, 31))],
        "test": [(sid, Window(42, 0, 38, 40))],
    }
    path = tmp_path / "split.json"
    blocks_split(parts, "r").save(path)  # as an earlier release wrote it
    native, metre = open_catalog(str(root), table), open_catalog(str(root), table, None, 1.0)
    assert native.split(path).blocks == blocks_split(parts, "r").blocks
    own = open_catalog(str(root), table, None, 0.5)  # pixel_size= the scene's own: no change
    assert own.split(path).blocks == blocks_split(parts, "r").blocks
    # scoring takes a split of test blocks alone; training needs train and val blocks
    blocks_split({"train": [], "val": [], "test": parts["test"]}, "r").save(path)
    assert own.split(path, for_training=False, needed=("test",)).parts("test") == parts["test"]
    with pytest.raises(DatasetError, match="leaves no training or no validation blocks"):
        own.split(path)
    with pytest.raises(DatasetError) as err:
        metre.split(path, for_training=False, needed=("test",))
    assert str(err.value) == (
        f"{sid}: the split file records no grid for its blocks (an earlier release wrote it),"
        " and the scene is read resampled to pixel size 1: make the split again with"
        " aerialseg data split"
    )
    blocks_split(parts, "r", {sid: TRANSFORM}).save(path)
    scored = metre.split(path, for_training=False, needed=("test",))
    assert scored.blocks["test"] == ((sid, Window(21, 0, 19, 20)),) and not scored.blocks["train"]
    with pytest.raises(DatasetError) as err:
        metre.split(path)
    assert str(err.value) == (
        "the split's train blocks hold no whole pixel at this pixel size: make larger blocks"
        " (data split --block-size) or read finer pixels"
    )
    with pytest.raises(DatasetError) as err:
        metre.split(path, for_training=False, needed=(), convert=False)
    assert str(err.value) == (
        f"{path}: cut on another grid of {sid} than this split's: give the --pixel-size it was"
        " cut with (none: the scenes' own)"
    )
    assert native.split(path, needed=(), convert=False).blocks == blocks_split(parts, "r").blocks
    assert Affine(*metre.split(path, False, ()).grids[sid]) == Affine(
        1, 0, 300_000, 0, -1, 2_800_000
    )


@pytest.mark.timeout(60, method="thread")  # the defect was a hang, past signals
def test_a_glob_takes_files_only_and_a_fifo_named_as_a_scene_is_refused_not_waited_on(
    tmp_path,
):
    """A review: a FIFO named fifo.tif among a glob's matches, or named itself, blocked
    inspect for ever in GDAL's open (past Ctrl-C); a folder named dir.tif was 'damaged'."""
    import os

    from aerialseg.data.catalog import expand_scenes

    scenes, labels, table = _polygon_scenes(tmp_path, count=1)
    os.mkfifo(tmp_path / "scenes" / "fifo.tif")
    (tmp_path / "scenes" / "dir.tif").mkdir()
    assert expand_scenes(f"{scenes}/*.tif") == [f"{scenes}/s0.tif"]
    fifo = str(tmp_path / "scenes" / "fifo.tif")
    with pytest.raises(DatasetError, match="fifo.tif: not a file"):
        open_catalog(fifo, table, LabelSpec(str(labels), "class"))


def test_a_folder_predicted_into_itself_gives_no_scene_of_its_outputs(tmp_path, capsys):
    """A review: after 'predict scenes/*.tif --out scenes', s0_classes.tif was inspected,
    and would be trained on, as a scene of its own."""
    from aerialseg.data.catalog import expand_scenes

    scenes, _, _ = _polygon_scenes(tmp_path, count=2)
    for kind in ("classes", "confidence"):
        (scenes / f"s0_{kind}.tif").write_bytes((scenes / "s0.tif").read_bytes())
    (scenes / "x_classes.tif").write_bytes((scenes / "s0.tif").read_bytes())  # no x.tif
    expected = [f"{scenes}/s0.tif", f"{scenes}/s1.tif", f"{scenes}/x_classes.tif"]
    assert expand_scenes(str(scenes)) == expected
    assert "left out 2 file(s) that are predict's outputs" in capsys.readouterr().err
    assert expand_scenes(f"{scenes}/*.tif") == expected
    assert expand_scenes(f"{scenes}/s0_classes.tif") == [f"{scenes}/s0_classes.tif"]  # named


def test_a_scene_in_degrees_past_180_gets_the_labels_cut_at_the_antimeridian(tmp_path):
    """A review: a scene in EPSG:4326 written across the antimeridian (longitudes 179.99 to
    180.01, as GDAL writes one) lost the labels of its eastern half, which a GeoJSON holds
    at -180..-179.99 (RFC 7946 cuts polygons there); the same for one from -180.01."""
    import rasterio
    from affine import Affine

    from tests.helpers.geodata import POLYGON_CLASSES

    def box(west, east):
        ring = [[west, -16.51], [east, -16.51], [east, -16.49], [west, -16.49], [west, -16.51]]
        return {"type": "Polygon", "coordinates": [ring]}

    cut = [(box(179.99, 180.0), "Water"), (box(-180.0, -179.99), "Road")]
    features = [{"type": "Feature", "geometry": g, "properties": {"class": c}} for g, c in cut]
    labels = tmp_path / "cut.geojson"
    labels.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    table = ClassTable.from_dict(POLYGON_CLASSES)
    for name, west in (("east.tif", 179.99), ("west.tif", -180.01)):
        at = Affine(0.0002, 0, west, 0, -0.0002, -16.49)
        profile = dict(driver="GTiff", width=100, height=100, count=3, dtype="uint8",
                       crs="EPSG:4326", transform=at)  # fmt: skip
        with rasterio.open(tmp_path / name, "w", **profile) as dst:
            dst.write(np.full((3, 100, 100), 90, np.uint8))
        catalog = open_catalog(tmp_path / name, table, LabelSpec(str(labels), "class", None, None))
        ids = catalog.scenes[name].labels.read(Window(0, 0, 100, 100)).ids
        assert (ids[:, :50] == table.id_of("Water")).all(), name
        assert (ids[:, 50:] == table.id_of("Road")).all(), name


def test_labels_digitised_past_180_degrees_are_read_as_cut_at_the_antimeridian(tmp_path):
    """Labels drawn over a scene in degrees that runs past 180 (QGIS keeps the scene's own
    179.99..180.01) were refused, and so were suggest's tasks of such a scene, which its
    printed next command reads (a review). They are cut at ±180, as RFC 7946 has them, and
    read over scenes on either side: here 360 degrees east and west of the scene too."""
    import rasterio
    from affine import Affine

    from tests.helpers.geodata import POLYGON_CLASSES

    def box(west, east):
        ring = [[west, -16.51], [east, -16.51], [east, -16.49], [west, -16.49], [west, -16.51]]
        return {"type": "Polygon", "coordinates": [ring]}

    table = ClassTable.from_dict(POLYGON_CLASSES)
    for west in (179.99, -180.01):
        drawn = [(box(west, west + 0.01), "Water"), (box(west + 0.01, west + 0.02), "Road")]
        features = [
            {"type": "Feature", "geometry": g, "properties": {"class": c}} for g, c in drawn
        ]
        labels = tmp_path / f"drawn{west}.geojson"
        labels.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
        for scene_west in (179.99, -180.01):
            at = Affine(0.0002, 0, scene_west, 0, -0.0002, -16.49)
            profile = dict(driver="GTiff", width=100, height=100, count=3, dtype="uint8",
                           crs="EPSG:4326", transform=at)  # fmt: skip
            name = f"s{scene_west}.tif"
            with rasterio.open(tmp_path / name, "w", **profile) as dst:
                dst.write(np.full((3, 100, 100), 90, np.uint8))
            spec = LabelSpec(str(labels), "class", None, None)
            ids = (
                open_catalog(tmp_path / name, table, spec)
                .scenes[name]
                .labels.read(Window(0, 0, 100, 100))
                .ids
            )
            assert (ids[:, :50] == table.id_of("Water")).all(), (west, scene_west)
            assert (ids[:, 50:] == table.id_of("Road")).all(), (west, scene_west)
