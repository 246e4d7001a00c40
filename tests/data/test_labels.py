"""Class rasters as label sources: on the image's grid, warped onto it, or refused."""

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.warp import calculate_default_transform, reproject
from rasterio.windows import Window

from aerialseg.data.catalog import LabelSpec, open_catalog
from aerialseg.data.classes import IGNORE_INDEX, ClassTable
from aerialseg.data.labels import GridMismatchError
from aerialseg.data.scenes import TRAINING_FLAGS, Reading
from aerialseg.errors import ClassTableError, DatasetError
from tests.helpers.geotiff import (
    TRANSFORM,
    UTM40N,
    VALUE_CLASSES,
    write_geotiff,
    write_geotiff_dataset,
)
from tests.helpers.images import rgb_scene
from tests.helpers.scenes import decoded

VALUES = ClassTable.from_dict(VALUE_CLASSES)
SCENE = "images/scene_0.tif"
GREYS = ClassTable.from_dict(
    {"classes": [{"name": "a", "mask_color": "#010101"}, {"name": "b", "mask_color": "#020202"}]}
)


def _mask(root, **reading):
    (item,) = decoded(root, [SCENE], VALUES, 1.0, bands=(3, 2, 1), **reading)
    return item.mask.numpy()


def test_a_label_raster_shifted_off_the_grid_is_warped_and_colours_are_refused(tmp_path):
    root = write_geotiff_dataset(tmp_path / "own", parts=1)
    labels = np.ones((1, 72, 80), np.uint8)
    shifted = Affine(0.5, 0, 300_001.0, 0, -0.5, 2_800_000.0)  # two pixels east
    write_geotiff(root / "masks" / "scene_0.tif", labels, transform=shifted)
    ids = _mask(root)
    assert (ids[:, :2] == IGNORE_INDEX).all()  # two columns unreached
    assert (ids[2:, 2:-3] == 0).all()  # value 1: class 0 (rows 0-1, last columns: nodata)
    # colours (three bands) are not warped: a blend of colours is no class
    write_geotiff(root / "masks" / "scene_0.tif", np.ones((3, 72, 80), np.uint8), transform=shifted)
    with pytest.raises(GridMismatchError) as err:
        _mask(root)
    assert str(err.value).startswith(
        "masks/scene_0.tif: mask lies on another grid than its image (CRS or pixel origin and"
        " size differ); resample it onto the image's grid (gdalwarp with the image's extent,"
        " resolution and CRS) (run aerialseg data inspect"
    )
    # no georeference and the same size: read pixel for pixel
    write_geotiff(root / "masks" / "scene_0.tif", labels, crs=None)
    assert (_mask(root)[2:, :-3] == 0).all()


def test_what_a_class_raster_does_not_reach_is_unlabelled_not_unknown(tmp_path, capsys):
    """A review: a class raster covering half its image was refused ("50.0% of pixels match
    no class value"): the warp's fill, 0, was counted as an unknown value before the pixels
    beyond the raster were set aside. docs/data.md: what it does not reach is left out."""
    root = write_geotiff_dataset(tmp_path / "own", parts=1)
    labels = np.ones((1, 72, 80), np.uint8)  # value 1 everywhere, no nodata
    half_east = Affine(0.5, 0, TRANSFORM.c + 20.0, 0, -0.5, TRANSFORM.f)  # 40 px east
    write_geotiff(root / "masks" / "scene_0.tif", labels, transform=half_east)
    (item,) = decoded(root, [SCENE], VALUES, bands=(3, 2, 1))  # max_unknown: 5 %
    ids = item.mask.numpy()
    assert (ids[:, :40] == IGNORE_INDEX).all() and (ids[2:, 40:-3] == 0).all()
    catalog = open_catalog(root, VALUES)
    counted = catalog.scenes[SCENE].labels.every(1)
    assert counted.unknown == {} and counted.ignored == 72 * 40  # the west half


def test_a_500th_of_a_pixel_is_the_same_grid_half_a_pixel_is_not(tmp_path):
    root = write_geotiff_dataset(tmp_path / "own", parts=1)
    colours = np.ones((3, 72, 80), np.uint8)
    for shift, refused in ((0.001, False), (0.25, True)):
        moved = Affine(0.5, 0, 300_000.0 + shift, 0, -0.5, 2_800_000.0)
        write_geotiff(root / "masks" / "scene_0.tif", colours, transform=moved)
        catalog = open_catalog(root, GREYS)
        try:
            catalog.read([SCENE], Reading(bands=(3, 2, 1)))
            assert not refused, shift
        except GridMismatchError:
            assert refused, shift


def test_a_smaller_georeferenced_label_raster_is_warped_an_ungeoreferenced_one_stretched(tmp_path):
    root = write_geotiff_dataset(tmp_path / "own", parts=1)
    write_geotiff(root / "masks" / "scene_0.tif", np.ones((1, 36, 40), np.uint8))
    ids = _mask(root, resize_masks=True)
    assert (ids[2:36, :40] == 0).all() and (ids[36:] == IGNORE_INDEX).all()
    halves = np.ones((1, 36, 40), np.uint8)
    halves[:, :, 20:] = 2
    write_geotiff(root / "masks" / "scene_0.tif", halves, crs=None)
    with pytest.raises(GridMismatchError, match="mask is 40x36 but its image is 80x72"):
        _mask(root)
    ids = _mask(root, resize_masks=True)  # no grid places it: stretched over the image
    left, right = set(np.unique(ids[:, :40])), set(np.unique(ids[:, 40:]))
    assert {0} <= left <= {0, IGNORE_INDEX} and {1} <= right <= {1, IGNORE_INDEX}  # 255: nodata


def test_label_rasters_of_another_resolution_and_crs_land_on_the_image_grid(tmp_path):
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    write_geotiff(root / "images" / "a.tif", rgb_scene(80, 100))  # 0.5 m, 100 x 80 px
    # labels at 1 m, 40 x 30 px, starting 10 px right and 6 px down of the image
    left, top = TRANSFORM.c + 10 * 0.5, TRANSFORM.f - 6 * 0.5
    coarse = Affine(1.0, 0, left, 0, -1.0, top)
    values = (np.arange(30)[:, None] // 10 * 2 + np.arange(40)[None, :] // 20 + 1).astype(np.uint8)
    values[values > 5] = 5
    write_geotiff(root / "masks" / "a.tif", values[None], transform=coarse)
    (item,) = decoded(root, ["images/a.tif"], VALUES, 1.0)
    expected = np.full((80, 100), IGNORE_INDEX, np.uint8)
    expected[6:66, 10:90] = np.repeat(np.repeat(values, 2, 0), 2, 1) - 1
    np.testing.assert_array_equal(item.mask.numpy(), expected)
    # the same labels in WGS84: warped back onto the UTM grid they nearly all land home
    wgs84 = CRS.from_epsg(4326)
    bottom, right = top - 30.0, left + 40.0
    t, w, h = calculate_default_transform(UTM40N, wgs84, 40, 30, left, bottom, right, top)
    degrees = np.zeros((h, w), np.uint8)
    reproject(values, degrees, src_transform=coarse, src_crs=UTM40N, dst_transform=t,
              dst_crs=wgs84, resampling=Resampling.nearest)  # fmt: skip
    write_geotiff(root / "masks" / "a.tif", degrees[None], crs=wgs84, transform=t, nodata=0)
    (item,) = decoded(root, ["images/a.tif"], VALUES, 1.0)
    inside = expected != IGNORE_INDEX
    assert (item.mask.numpy()[inside] == expected[inside]).mean() > 0.9
    assert (item.mask.numpy()[~inside] == IGNORE_INDEX).mean() > 0.9


def test_warped_labels_keep_their_nodata_and_palettes_their_colours(tmp_path):
    root = write_geotiff_dataset(tmp_path / "own", parts=1)
    labels = np.full((1, 72, 80), 2, np.uint8)
    labels[0, :, :10] = 0  # the raster's nodata
    shifted = Affine(0.5, 0, 300_002.0, 0, -0.5, 2_800_000.0)  # four pixels east
    write_geotiff(root / "masks" / "scene_0.tif", labels, transform=shifted, nodata=0)
    ids = _mask(root)
    assert (ids[:, :14] == IGNORE_INDEX).all() and (ids[2:, 14:-3] == 1).all()
    # a palette mask off the grid: read in colours
    path = root / "masks" / "scene_0.tif"
    profile = dict(driver="GTiff", width=80, height=72, count=1, dtype="uint8",
                   crs="EPSG:32640", transform=shifted)  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.ones((1, 72, 80), np.uint8))
        dst.write_colormap(1, {0: (0, 0, 0, 255), 1: (200, 10, 10, 255)})
    red = {"name": "red", "mask_color": "#c80a0a"}
    table = ClassTable.from_dict({"classes": [red, {"name": "other", "mask_color": "#000000"}]})
    (item,) = decoded(root, [SCENE], table, 1.0, bands=(3, 2, 1))
    ids = item.mask.numpy()
    assert (ids[:, :4] == IGNORE_INDEX).all() and (ids[2:, 4:-3] == 0).all()


def test_a_palette_class_rasters_nodata_is_ignored_not_read_as_its_colour(tmp_path):
    """The palette's colours were looked up without the nodata mask: nodata pixels took
    the colour of entry 0, unknown (an error) or, where a class has it, that class."""
    root = write_geotiff_dataset(tmp_path / "own", parts=1)
    profile = dict(driver="GTiff", width=80, height=72, count=1, dtype="uint8",
                   crs="EPSG:32640", transform=TRANSFORM, nodata=0)  # fmt: skip
    labels = np.ones((1, 72, 80), np.uint8)
    labels[0, :, :20] = 0
    with rasterio.open(root / "masks" / "scene_0.tif", "w", **profile) as dst:
        dst.write(labels)
        dst.write_colormap(1, {0: (0, 0, 0, 255), 1: (200, 10, 10, 255)})
    red = {"name": "red", "mask_color": "#c80a0a"}
    table = ClassTable.from_dict({"classes": [red, {"name": "black", "mask_color": "#000000"}]})
    (item,) = decoded(root, [SCENE], table, 1.0, bands=(3, 2, 1))
    ids = item.mask.numpy()
    assert (ids[:, :20] == IGNORE_INDEX).all() and (ids[2:, 20:-3] == 0).all()  # image nodata
    # an RGB class raster's nodata too
    rgb = np.zeros((3, 72, 80), np.uint8)
    rgb[:, :, 20:] = np.array([200, 10, 10], np.uint8)[:, None, None]
    write_geotiff(root / "masks" / "scene_0.tif", rgb, nodata=0)
    (item,) = decoded(root, [SCENE], table, 1.0, bands=(3, 2, 1))
    ids = item.mask.numpy()
    assert (ids[:, :20] == IGNORE_INDEX).all() and (ids[2:, 20:-3] == 0).all()  # image nodata


def test_one_class_raster_labels_a_folder_of_scenes_and_refuses_polygon_flags(tmp_path):
    (tmp_path / "scenes").mkdir()
    # two scenes side by side; one class raster at 1 m over both
    for k in range(2):
        at = Affine(0.5, 0, TRANSFORM.c + k * 40.0, 0, -0.5, TRANSFORM.f)
        write_geotiff(tmp_path / "scenes" / f"s{k}.tif", rgb_scene(60, 80, seed=k), transform=at)
    values = np.where(np.arange(80)[None, :] < 40, 1, 3).repeat(30, 0).astype(np.uint8)
    over = Affine(1.0, 0, TRANSFORM.c, 0, -1.0, TRANSFORM.f)
    write_geotiff(tmp_path / "classes.tif", values[None], transform=over)
    catalog = open_catalog(tmp_path / "scenes", VALUES, LabelSpec(str(tmp_path / "classes.tif")))
    left, right = catalog.read(["s0.tif", "s1.tif"], Reading())
    assert (left.mask.numpy() == 0).all() and (right.mask.numpy() == 2).all()
    streamed = catalog.read(["s1.tif"], Reading(cache_megabytes=0))[0]
    assert (streamed.labels_every(4).numpy() == 2).all()
    with pytest.raises(DatasetError, match="--label-field describes polygon labels"):
        open_catalog(tmp_path / "scenes", VALUES, LabelSpec(str(tmp_path / "classes.tif"), "x"))
    far = Affine(1.0, 0, TRANSFORM.c + 10_000, 0, -1.0, TRANSFORM.f)
    write_geotiff(tmp_path / "far.tif", values[None], transform=far)
    with pytest.raises(DatasetError, match="the class raster lies on none of the 2 image"):
        open_catalog(tmp_path / "scenes", VALUES, LabelSpec(str(tmp_path / "far.tif")))


def test_geotiff_pairs_read_as_predict_reads_them_from_a_folder_and_a_zip(tmp_path):
    from aerialseg.data.inspect import inspect_dataset
    from tests.helpers.images import zip_folder

    root = write_geotiff_dataset(tmp_path / "own", parts=2)
    archive = zip_folder(root, tmp_path / "own.zip")
    (item,) = decoded(root, [SCENE], VALUES, bands=(3, 2, 1))
    image, ids = item.image.numpy(), item.mask.numpy()
    valid = ids[2:] != IGNORE_INDEX
    assert image.shape == (3, 72, 80) and (image[:, :, -3:] == 0).all()  # nodata columns
    # stretched from 16 bits: the full 8-bit range is used
    assert image[:, 2:][:, valid].min() == 0 and image[:, 2:][:, valid].max() == 255
    (zipped,) = decoded(archive, ["own/" + SCENE], VALUES, bands=(3, 2, 1))
    assert (zipped.image.numpy() == image).all() and (zipped.mask.numpy() == ids).all()
    report = inspect_dataset(open_catalog(root, VALUES), VALUES, 0.05, (3, 2, 1))
    assert report["image_modes"] == {"4x uint16": 2} and report["mask_modes"] == {"1x uint8": 2}
    assert report["image_grids"] == {"EPSG:32640, 0.5 x 0.5": 2}


def test_a_label_rasters_nodata_is_ignored_and_two_bands_are_refused(tmp_path):
    root = write_geotiff_dataset(tmp_path / "own", parts=1)
    labels = np.full((1, 72, 80), 3, np.uint8)
    labels[0, :, :10] = 255
    write_geotiff(root / "masks" / "scene_0.tif", labels, nodata=255)
    ids = _mask(root)
    assert (ids[:, :10] == IGNORE_INDEX).all() and (ids[:, 10:-3] == 2).all()
    write_geotiff(root / "masks" / "scene_0.tif", np.ones((2, 72, 80), np.uint8))
    with pytest.raises(DatasetError, match="scene_0.tif: a mask has one band .* this one 2"):
        _mask(root)


def test_colour_masks_of_16_bits_are_refused_and_16_bit_palettes_read(tmp_path):
    """A review: three uint16 bands were packed as 8-bit channels into one colour, so
    (0, 0x3C10, 0x98) read as Dubai's Building #3C1098; a uint16 palette's entries past 255
    were an IndexError."""
    root = write_geotiff_dataset(tmp_path / "own", parts=1)
    red = {"name": "red", "mask_color": "#c80a0a"}
    table = ClassTable.from_dict({"classes": [red, {"name": "blue", "mask_color": "#0a0ac8"}]})
    rgb = np.zeros((3, 72, 80), np.uint16)
    rgb[:, :, 40:] = np.array([200 * 257, 10 * 257, 10 * 257], np.uint16)[:, None, None]
    write_geotiff(root / "masks" / "scene_0.tif", rgb)
    with pytest.raises(DatasetError) as err:
        decoded(root, [SCENE], table, 1.0, bands=(3, 2, 1))
    assert str(err.value).startswith(
        "masks/scene_0.tif: a colour mask holds 8-bit bands (0-255), this one uint16: save it"
        " as 8-bit RGB (for 16-bit colours, gdal_translate -ot Byte -scale 0 65535 0 255)"
    )
    values = np.full((1, 72, 80), 300, np.uint16)
    values[0, :, 40:] = 7
    profile = dict(driver="GTiff", width=80, height=72, count=1, dtype="uint16",
                   crs="EPSG:32640", transform=TRANSFORM, photometric="palette")  # fmt: skip
    with rasterio.open(root / "masks" / "scene_0.tif", "w", **profile) as dst:
        dst.write(values)
        dst.write_colormap(1, {7: (200, 10, 10, 255), 300: (10, 10, 200, 255)})
    (item,) = decoded(root, [SCENE], table, 1.0, bands=(3, 2, 1))
    ids = item.mask.numpy()
    assert (ids[:, :40] == 1).all() and (ids[2:, 40:-3] == 0).all()  # image nodata at the edge


def test_four_band_images_need_bands_where_they_are_read(tmp_path):
    root = write_geotiff_dataset(tmp_path / "own", parts=1)
    with pytest.raises(DatasetError, match=r"scene_0.tif: has 4 band\(s\).*bands=\[1,2,3\]"):
        decoded(root, [SCENE], VALUES, flags=TRAINING_FLAGS)
    with pytest.raises(DatasetError, match=r"scene_0.tif: has 4 band\(s\).*--bands 1,2,3$"):
        decoded(root, [SCENE], VALUES)  # evaluate's flag, by default
    with pytest.raises(DatasetError, match="bands= 3,2,5 asks for band 5 but the file has 4"):
        decoded(root, [SCENE], VALUES, bands=(3, 2, 5), flags=TRAINING_FLAGS)


def test_label_rasters_read_at_a_coarser_pixel_size_take_the_most_common_class(tmp_path):
    root = write_geotiff_dataset(tmp_path / "own", parts=1)
    values = np.ones((1, 72, 80), np.uint8)
    values[0, ::2, ::2] = 5  # one 5 and three 1s a block: mode 1, mean 2
    write_geotiff(root / "masks" / "scene_0.tif", values)
    ids = _mask(root, pixel_size=1.0)
    assert ids.shape == (36, 40) and set(np.unique(ids[1:, :-2]).tolist()) == {0}
    colours = np.zeros((3, 72, 80), np.uint8)
    colours[0], colours[1], colours[2] = 1, 1, 1
    write_geotiff(root / "masks" / "scene_0.tif", colours)
    (item,) = decoded(root, [SCENE], GREYS, bands=(3, 2, 1))
    assert (item.mask.numpy()[:, :-3] == 0).all()  # colour #010101: class a


# ---- what mutation testing found unguarded (bench/mutation.py, data/labels.py) ----


def test_errors_name_the_mask_and_say_what_to_do(tmp_path):
    root = write_geotiff_dataset(tmp_path / "own", parts=1)
    mask = root / "masks" / "scene_0.tif"
    mask.write_bytes(b"not a raster at all")
    with pytest.raises(DatasetError) as err:
        _mask(root)
    assert str(err.value).startswith(
        "masks/scene_0.tif: cannot read the file (not recognized as being in a supported file"
        " format); it is damaged, or not a GeoTIFF, PNG or JPEG (convert a VRT or another format"
        " with gdal_translate -of COG): replace it or remove it from the dataset"
    )
    write_geotiff(mask, np.ones((1, 36, 40), np.uint8), crs=None)
    with pytest.raises(GridMismatchError) as err:
        _mask(root)
    assert str(err.value).startswith(
        "masks/scene_0.tif: mask is 40x36 but its image is 80x72; masks must match their image"
        " pixel for pixel; --resize-masks resamples such masks to their image's size (nearest)"
    )
    write_geotiff(mask, np.ones((1, 72, 80), np.uint8), crs=None)
    with pytest.raises(DatasetError) as err:
        _mask(root, pixel_size=1.0)
    assert str(err.value).startswith("masks/scene_0.tif: has no georeference")
    assert "--pixel-size needs georeferenced" in str(err.value)
    write_geotiff(mask, np.ones((3, 72, 80), np.uint8))  # colours, for a table of values
    with pytest.raises(ClassTableError, match="^masks/scene_0.tif: a colour-coded mask"):
        _mask(root)
    write_geotiff(mask, np.ones((1, 72, 80), np.uint8))  # values, for a table of colours
    with pytest.raises(ClassTableError, match="^masks/scene_0.tif: a single-band mask"):
        decoded(root, [SCENE], GREYS, bands=(3, 2, 1))


def test_a_damaged_tile_of_a_mask_fails_with_one_line(tmp_path):
    root = write_geotiff_dataset(tmp_path / "own", parts=1)
    mask = root / "masks" / "scene_0.tif"
    noise = np.random.default_rng(0).integers(1, 6, (1, 72, 80)).astype(np.uint8)
    write_geotiff(mask, noise)
    mask.write_bytes(mask.read_bytes()[:-2000])  # the header whole, pixels cut off
    with pytest.raises(
        DatasetError, match=r"^masks/scene_0.tif: the file is truncated or damaged \(.+\)"
    ):
        _mask(root)


def test_a_mask_is_opened_once_per_process_and_read_by_windows(tmp_path, monkeypatch):
    import aerialseg.data.labels as labels

    root = write_geotiff_dataset(tmp_path / "own", parts=1)
    opened = []
    real = labels.open_raster
    monkeypatch.setattr(labels, "open_raster", lambda *a: opened.append(a) or real(*a))
    (scene,) = open_catalog(root, VALUES).read([SCENE], Reading((3, 2, 1), 1.0, cache_megabytes=0))
    for k in range(3):
        scene.read(Window(k, k, 10, 10))
    assert len(opened) == 1


def test_shifts_of_a_hundredth_of_a_pixel_are_another_grid(tmp_path):
    root = write_geotiff_dataset(tmp_path / "own", parts=1)
    colours = np.ones((3, 72, 80), np.uint8)
    for shift, refused in ((0.004, False), (0.008, True)):  # 0.008 and 0.016 px
        moved = Affine(0.5, 0, 300_000.0 + shift, 0, -0.5, 2_800_000.0)
        write_geotiff(root / "masks" / "scene_0.tif", colours, transform=moved)
        reading = open_catalog(root, GREYS).read
        if refused:
            with pytest.raises(GridMismatchError):
                reading([SCENE], Reading(bands=(3, 2, 1)))
        else:
            reading([SCENE], Reading(bands=(3, 2, 1)))


def test_value_nodata_and_colour_channels_are_read_as_written(tmp_path):
    root = write_geotiff_dataset(tmp_path / "own", parts=1)
    labels = np.full((1, 72, 80), 3, np.uint8)
    labels[0, :, :10] = 255  # declared nodata: ignored
    write_geotiff(root / "masks" / "scene_0.tif", labels, nodata=255)
    ids = _mask(root)
    assert (ids[:, :10] == IGNORE_INDEX).all() and (ids[2:, 10:-3] == 2).all()
    colours = np.zeros((3, 72, 80), np.uint8)
    colours[0], colours[1], colours[2] = 1, 2, 3
    colours[:, :, :40] = 2  # #020202 on the left, #010203 (no class) on the right
    write_geotiff(root / "masks" / "scene_0.tif", colours)
    (item,) = decoded(root, [SCENE], GREYS, 1.0, bands=(3, 2, 1))
    ids = item.mask.numpy()
    assert (ids[:, :40] == 1).all() and (ids[:, 40:] == IGNORE_INDEX).all()


def test_a_tall_streamed_class_raster_is_counted_strip_by_strip(tmp_path):
    from aerialseg.data.inspect import inspect_dataset

    (tmp_path / "scenes").mkdir()
    h, w = 1100, 30  # three strips of rows
    write_geotiff(tmp_path / "scenes" / "s.tif", rgb_scene(h, w))
    values = np.full((1, h, w), 2, np.uint8)
    values[0, ::3] = 0  # ignored (ignore_values)
    values[0, 1::7] = 9  # no class
    write_geotiff(tmp_path / "classes.tif", values)
    catalog = open_catalog(tmp_path / "scenes", VALUES, LabelSpec(str(tmp_path / "classes.tif")))
    (streamed,) = catalog.read(["s.tif"], Reading(max_unknown=1.0, cache_megabytes=0))
    (whole,) = catalog.read(["s.tif"], Reading(max_unknown=1.0))
    assert torch.equal(streamed.labels_every(8), whole.labels_every(8))
    report = inspect_dataset(catalog, VALUES, 1.0)
    expected = {v: int((values == v).sum()) for v in (0, 9)}
    assert report["ignore_color_pixels"] == expected[0]
    assert report["unknown_values"] == [{"value": "9", "pixels": expected[9]}]
    assert report["unknown_colors"] == []


def test_an_rgba_colour_mask_is_read_by_its_first_three_bands_window_by_window(tmp_path):
    root = write_geotiff_dataset(tmp_path / "own", parts=1)
    rgba = np.zeros((4, 72, 80), np.uint8)
    rgba[:3, :, :40] = np.array([1, 2, 3], np.uint8)[:, None, None]  # class a
    rgba[:3, :, 40:] = 2  # class b
    rgba[3] = 255
    write_geotiff(root / "masks" / "scene_0.tif", rgba)
    table = ClassTable.from_dict(
        {
            "classes": [
                {"name": "a", "mask_color": "#010203"},
                {"name": "b", "mask_color": "#020202"},
            ]
        }
    )
    catalog = open_catalog(root, table)
    (scene,) = catalog.read([SCENE], Reading((3, 2, 1), 1.0, cache_megabytes=0))
    part = scene.read(Window(30, 10, 20, 5)).mask.numpy()
    assert (part[:, :10] == 0).all() and (part[:, 10:] == 1).all()


def test_class_raster_values_that_mean_no_class_are_never_hidden(tmp_path):
    """Found by a review: a signed raster's undeclared -1 was ignored as nodata (-1 was the
    reader's own nodata code); a nodata value that is a class's mask_value left that class
    out of training without a word."""
    root = write_geotiff_dataset(tmp_path / "own", parts=1)
    path = root / "masks" / "scene_0.tif"
    signed = np.full((1, 72, 80), 3, np.int16)
    signed[0, :, :30] = -1
    write_geotiff(path, signed)
    with pytest.raises(ClassTableError, match=r"match no class value \(most common: -1"):
        decoded(root, [SCENE], VALUES, bands=(3, 2, 1))  # --max-unknown 0.05
    assert (_mask(root)[:, :30] == IGNORE_INDEX).all()  # --max-unknown 1: left out
    write_geotiff(path, np.full((1, 72, 80), 1, np.uint8), nodata=1)  # 1 is Building
    with pytest.raises(DatasetError, match="nodata value 1 is the mask_value of class 'Building'"):
        _mask(root)


def test_a_rotated_class_raster_labels_only_its_footprint_and_rgba_alpha_is_nodata(tmp_path):
    """Found by a review: the warped raster's extent was its bounding box, so on a rotated
    grid the pixels beyond its corners were read as the warp's fill, 0, a class value; and
    an RGBA colour mask's transparent pixels were read as labels."""
    root = write_geotiff_dataset(tmp_path / "own", parts=1)
    path = root / "masks" / "scene_0.tif"
    turned = TRANSFORM * Affine.translation(40, -20) * Affine.rotation(30)
    write_geotiff(path, np.full((1, 72, 80), 2, np.uint8), transform=turned)
    zero = {"name": "Zero", "mask_value": 0}  # the warp's fill would read as this class
    table = ClassTable.from_dict({"classes": [zero, *VALUE_CLASSES["classes"]]})
    (item,) = decoded(root, [SCENE], table, 1.0, bands=(3, 2, 1))
    ids = item.mask.numpy()
    assert not (ids == 0).any()  # nothing outside the footprint is a class
    assert (ids == 2).mean() > 0.3 and (ids == IGNORE_INDEX).mean() > 0.2
    rgba = np.zeros((4, 72, 80), np.uint8)
    rgba[:3] = np.array([1, 2, 3], np.uint8)[:, None, None]
    rgba[3, :, :40] = 255  # the right half transparent
    write_geotiff(path, rgba)
    one = ClassTable.from_dict({"classes": [{"name": "a", "mask_color": "#010203"}]})
    (item,) = decoded(root, [SCENE], one, 1.0, bands=(3, 2, 1))
    ids = item.mask.numpy()
    assert (ids[:, 40:] == IGNORE_INDEX).all() and (ids[2:, :40] == 0).all()
    # a fourth band that is no alpha (a TIFF without ExtraSamples) hides nothing
    profile = dict(driver="GTiff", width=80, height=72, count=4, dtype="uint8",
                   crs="EPSG:32640", transform=TRANSFORM, photometric="MINISBLACK")  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(rgba)
    (item,) = decoded(root, [SCENE], one, 1.0, bands=(3, 2, 1))
    assert (item.mask.numpy()[2:, :-3] == 0).all()


def test_a_class_raster_in_degrees_covers_what_it_covers_in_metres(tmp_path):
    """Found by a review: the warped raster's extent was its four corners reprojected, and
    a straight edge in degrees is a curve in UTM: an image at 57 E, 31 N inside a class
    raster of 30 W..60 E, 30..72 N fell outside the four-corner shape and was refused."""
    from rasterio.warp import transform as warp_points

    from aerialseg.data.labels import Grid, RasterLabels

    degrees = Affine(0.5, 0, -30.0, 0, -0.5, 72.0)  # 180 x 84 cells of half a degree
    labels = write_geotiff(tmp_path / "classes.tif", np.full((1, 84, 180), 2, np.uint8),
                           crs=CRS.from_epsg(4326), transform=degrees)  # fmt: skip
    (x,), (y,) = warp_points(CRS.from_epsg(4326), UTM40N, [57.0], [31.0])
    grid = Grid(UTM40N, Affine(10.0, 0, x, 0, -10.0, y), 20, 20)
    ids = RasterLabels(str(labels), "classes.tif", VALUES, grid).read(Window(0, 0, 20, 20)).ids
    assert (ids == 1).all()  # value 2: class 1, every pixel
