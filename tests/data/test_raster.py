"""Reading rasters: band choice, the 16-bit stretch, nodata, errors that name the option."""

from __future__ import annotations

import os

import numpy as np
import pytest
import rasterio
import yaml
from affine import Affine
from PIL import Image
from rasterio.control import GroundControlPoint
from rasterio.enums import ColorInterp
from rasterio.windows import Window

from aerialseg.data.raster import (
    STATS_SIDE,
    STRETCH_PERCENTILES,
    UNIT_SLACK,
    InputError,
    TooLargeInputError,
    UngeoreferencedError,
    at_pixel_size,
    band_numbers,
    check_band_count,
    check_pixel_size,
    display_rgb,
    open_input,
    parse_bands,
    read_array,
)
from tests.helpers.geotiff import TRANSFORM, VALUE_CLASSES, write_geotiff, write_geotiff_dataset
from tests.helpers.hostile import complex_geotiff, vrt_of, wide_tiff
from tests.helpers.images import rgb_scene
from tests.helpers.paths import SAMPLE


def test_parse_bands():
    assert parse_bands(None, "bands=") is None
    assert parse_bands("4,3,2", "bands=") == (4, 3, 2)
    assert parse_bands("3,2,1,4", "bands=") == (3, 2, 1, 4) and parse_bands("2", "bands=") == (2,)
    for bad in ("0,1,2", "a,b,c", "", "3,,1"):
        with pytest.raises(InputError, match=f"^bands= '{bad}': give band numbers"):
            parse_bands(bad, "bands=")


@pytest.mark.parametrize("dtype", [bool, np.complex64, "<U1", object])
def test_an_array_of_anything_but_numbers_is_refused_by_its_dtype(dtype):
    with pytest.raises(InputError, match=r"^an array of \S+: pass numbers \(uint8 0..255,"):
        read_array(np.zeros((3, 4, 5), dtype))


def test_a_float_array_within_unit_slack_of_0_to_1_holds_8_bit_values_over_255():
    """Resampled 0..1 images overshoot a little: up to UNIT_SLACK past either end they are
    still 8-bit values / 255 (clipped); past it, values of another range, stretched."""
    base = np.linspace(0, 1, 3 * 8 * 10).reshape(3, 8, 10)
    for low, high in ((-UNIT_SLACK, 1 + UNIT_SLACK), (0.0, 1.0)):
        edges = base.copy()
        edges[0, 0, 0], edges[1, 0, 0] = low, high
        values, valid = read_array(edges)
        assert valid.all() and np.array_equal(
            values, (np.clip(edges, 0, 1) * 255).astype(np.float32)
        )
    for low, high in ((-UNIT_SLACK - 0.01, 1.0), (0.0, 1 + UNIT_SLACK + 0.01)):
        past = base.copy()
        past[0, 0, 0], past[1, 0, 0] = low, high
        values, _ = read_array(past)
        assert not np.allclose(values, np.clip(past, 0, 1) * 255), (low, high)


def test_arrays_keep_their_bands_and_come_as_float32_0_to_255(tmp_path):
    """read_array reads a (bands, H, W) array as a file of it: every band (not the file's
    RGB default), float32 values, and float16 (no GDAL type) as its float32 values."""
    rng = np.random.default_rng(2)
    for count in (1, 2, 4):
        data = rng.integers(0, 4000, (count, 6, 7)).astype(np.uint16)
        path = write_geotiff(tmp_path / f"b{count}.tif", data)
        with open_input(path, tuple(range(1, count + 1))) as raster:
            expected = raster.read(Window(0, 0, 7, 6))[0]
        values, valid = read_array(data)
        assert values.shape == (count, 6, 7) and valid.all()
        assert np.array_equal(values, expected), count
    eight_bit = rng.integers(0, 256, (3, 6, 7)).astype(np.uint8)
    values, _ = read_array(eight_bit)
    assert values.dtype == np.float32 and np.array_equal(values, eight_bit)
    half = (rng.random((3, 6, 7)) * 900 + 3).astype(np.float16)
    assert np.array_equal(read_array(half)[0], read_array(half.astype(np.float32))[0])


def test_band_count_must_be_the_models():
    check_band_count(None, 4, "--bands")
    check_band_count((4, 3, 2, 1), 4, "--bands")
    with pytest.raises(InputError, match="^--bands 4,3,2: the model takes 4 band"):
        check_band_count((4, 3, 2), 4, "--bands")


def whole(path, bands=None):
    """The raster read whole as (H, W, bands) uint8 and its valid mask."""
    raster = open_input(path, bands)
    values, valid = raster.read(Window(0, 0, raster.width, raster.height))
    raster.close()
    return np.rint(values).astype(np.uint8).transpose(1, 2, 0), valid


def test_display_rgb_shows_the_first_three_bands_or_grey():
    four = np.arange(4 * 2 * 2).reshape(4, 2, 2)
    assert (display_rgb(four) == four[:3]).all()
    three = four[1:]
    assert np.array_equal(display_rgb(three), three)
    for grey in (np.arange(4).reshape(1, 2, 2), four[:2]):  # one band, or two: the first
        assert display_rgb(grey).shape == (3, 2, 2) and (display_rgb(grey) == grey[0]).all()


def test_sixteen_bit_bands_are_stretched_per_band_with_nodata_left_out(tmp_path):
    data = np.zeros((4, 30, 40), np.uint16)
    for band in range(4):
        data[band] = 1000 * (band + 1) + np.arange(40)[None, :] * 10 * (band + 1)
    data[:, :, :5] = 0  # nodata columns: must not widen the stretch
    path = write_geotiff(tmp_path / "bgrn.tif", data, nodata=0)
    rgb, valid = whole(path, (3, 2, 1))
    assert rgb.shape == (30, 40, 3) and rgb.dtype == np.uint8
    assert not valid[:, :5].any() and valid[:, 5:].all()
    assert (rgb[:, :5] == 0).all()
    for channel in range(3):  # each band spans 0..255 over its own 2nd-98th percentile
        assert rgb[valid][:, channel].min() == 0 and rgb[valid][:, channel].max() == 255


def test_nodata_is_that_of_the_bands_read_not_of_the_whole_file(tmp_path):
    """GDAL's dataset mask is valid where any band of the file is: a near-infrared band
    with data made the nodata of the three bands read count as data, and predicted. As in
    GDAL, a pixel is nodata where every band read is (a dark pixel with one band at 0 is
    not)."""
    data = np.full((4, 20, 30), 120, np.uint16)
    data[:3, :, :10] = 0  # no data in the RGB bands, data in the fourth
    data[0, :, 10:15] = 0  # red 0 alone: a dark pixel, not nodata
    path = write_geotiff(tmp_path / "rgbn.tif", data, nodata=0)
    for bands in ((1, 2, 3), (3, 2, 1)):
        _, valid = whole(path, bands)
        assert not valid[:, :10].any() and valid[:, 10:].all(), bands
    _, valid = whole(path, (1, 1, 1))  # red alone is nodata where it is 0
    assert not valid[:, :15].any() and valid[:, 15:].all()
    _, valid = whole(path, (1, 2, 4))  # the fourth holds data everywhere
    assert valid.all()
    _, valid = whole(path, (1, 2, 3, 4))
    assert valid.all()


def test_default_bands_and_the_errors_name_the_option(tmp_path):
    rgb = write_geotiff(tmp_path / "rgb.tif", rgb_scene(20, 20))
    image, valid = whole(rgb)
    assert (image == rgb_scene(20, 20).transpose(1, 2, 0)).all() and valid.all()
    gray = write_geotiff(tmp_path / "gray.tif", rgb_scene(20, 20)[:1])
    with pytest.raises(InputError, match=r"has 1 band\(s\).* e.g. --bands 1,1,1$"):
        open_input(gray)
    with pytest.raises(InputError, match=r"e.g. bands=\[1,1,1\]$"):
        open_input(gray, flag="bands=")
    with pytest.raises(InputError, match="bands= 1,1,2 asks for band 2 but the file has 1"):
        open_input(gray, (1, 1, 2), flag="bands=")
    # the example is one the file can give (a review: a 2-band file was told 1,2,3)
    two = write_geotiff(tmp_path / "two.tif", rgb_scene(20, 20)[:2])
    with pytest.raises(InputError, match=r"has 2 band\(s\).* e.g. --bands 1,2,2$"):
        open_input(two)
    # grey and alpha: the grey band thrice, not the alpha band to the model (a review)
    with rasterio.open(two, "r+") as ds:
        ds.colorinterp = [ColorInterp.gray, ColorInterp.alpha]
    with pytest.raises(InputError, match=r"has 2 band\(s\).* e.g. --bands 1,1,1$"):
        open_input(two)
    # a file that tags its red, green and blue: those, in that order
    bands = np.concatenate([rgb_scene(20, 20)[::-1]] * 2)[:4].astype(np.uint16)
    bgrn = write_geotiff(tmp_path / "bgrn.tif", bands)
    with pytest.raises(InputError, match=r"has 4 band\(s\).* e.g. --bands 1,2,3$"):
        open_input(bgrn)
    with rasterio.open(bgrn, "r+") as ds:
        ds.colorinterp = [
            ColorInterp.blue,
            ColorInterp.green,
            ColorInterp.red,
            ColorInterp.undefined,
        ]
    with pytest.raises(InputError, match=r"has 4 band\(s\).* e.g. --bands 3,2,1$"):
        open_input(bgrn)


def test_more_than_three_bands_are_read_in_the_order_asked(tmp_path):
    data = np.stack([np.full((8, 10), 10 * (band + 1), np.uint8) for band in range(4)])
    path = write_geotiff(tmp_path / "bgrn.tif", data)
    values, _ = whole(path, (3, 2, 1, 4))
    assert values.shape == (8, 10, 4) and list(values[0, 0]) == [30, 20, 10, 40]


def test_a_pixel_size_resamples_over_the_same_extent(tmp_path):
    image = write_geotiff(tmp_path / "scene.tif", rgb_scene(40, 60))  # 0.5 m pixels
    with rasterio.open(image) as ds:
        same = at_pixel_size(ds, 0.5, "scene.tif")
        assert same is ds  # already that size: no resampling
        native, bounds = ds.read().astype(float), ds.bounds
        with at_pixel_size(ds, 1.0, "scene.tif") as coarse:
            assert (coarse.width, coarse.height) == (30, 20) and coarse.bounds == bounds
            assert coarse.transform.a == 1.0 and coarse.crs == ds.crs
            averaged = native.reshape(3, 20, 2, 30, 2).mean(axis=(2, 4))
            assert np.abs(coarse.read().astype(float) - averaged).max() <= 0.5
        with at_pixel_size(ds, 0.25, "scene.tif") as fine:
            assert (fine.width, fine.height) == (120, 80)
            between = fine.read().astype(float)[:, 1:-1:2, 1:-1:2]  # bilinear, not repeated
            assert not np.isin(between, native).all()


@pytest.mark.parametrize(("a", "e"), [(1.0, -2.0), (2.0, -1.0)])
def test_oblong_pixels_are_resampled_square_and_float_noise_is_not_resampled(tmp_path, a, e):
    """A pixel size is square: 1 x 2 m pixels at 1 m are resampled to 1 x 1, whichever
    side already matches; a side off by a millionth or less (a transform's float noise)
    reads the raster as it is."""
    oblong = Affine(a, 0, TRANSFORM.c, 0, e, TRANSFORM.f)
    path = write_geotiff(tmp_path / "oblong.tif", rgb_scene(20, 30), transform=oblong)
    with rasterio.open(path) as ds, at_pixel_size(ds, 1.0, "oblong.tif") as square:
        assert (square.transform.a, square.transform.e) == (1.0, -1.0)
        assert (square.width, square.height) == (30 * a, 20 * -e)
        # the long side's pixels are split, interpolated (bilinear), not repeated
        assert not np.isin(square.read()[:, 1:-1, 1:-1], ds.read()).all()
    noisy = Affine(0.5 * (1 + 4e-7), 0, TRANSFORM.c, 0, -0.5 * (1 - 4e-7), TRANSFORM.f)
    path = write_geotiff(tmp_path / "noisy.tif", rgb_scene(20, 30), transform=noisy)
    with rasterio.open(path) as ds:
        assert at_pixel_size(ds, 0.5, "noisy.tif") is ds


def test_a_rotated_or_sheared_grid_is_refused_and_bad_sizes_name_the_setting(tmp_path):
    for b, d in ((0.1, 0.0), (0.0, 0.1), (0.1, -0.1)):
        turned = Affine(0.5, b, TRANSFORM.c, d, -0.5, TRANSFORM.f)
        path = write_geotiff(tmp_path / "turned.tif", rgb_scene(20, 30), transform=turned)
        with rasterio.open(path) as ds, pytest.raises(InputError) as caught:
            at_pixel_size(ds, 1.0, "turned.tif")
        assert str(caught.value) == (
            "turned.tif: a rotated pixel grid; warp it north-up first (gdalwarp)"
        )
    path = write_geotiff(tmp_path / "s.tif", rgb_scene(20, 30))
    with rasterio.open(path) as ds:
        for flag, named in (("--pixel-size", "--pixel-size"), ("pixel_size=", "pixel_size="),
                            (None, "pixel_size")):  # fmt: skip
            with pytest.raises(InputError, match=rf"^{named} 0: give a positive size"):
                at_pixel_size(ds, 0, "s.tif", flag=flag)
        with pytest.raises(InputError, match=r"^--pixel-size 0: give a positive size"):
            at_pixel_size(ds, 0, "s.tif")  # how the command line sets it, by default
    plain = write_geotiff(tmp_path / "plain.tif", rgb_scene(20, 30), crs=None)
    with rasterio.open(plain) as ds, pytest.raises(UngeoreferencedError) as caught:
        at_pixel_size(ds, 1.0, "plain.tif", flag=None)  # the model's, which none sets here
    assert str(caught.value) == (
        "plain.tif: has no georeference, so its pixel size is unknown; a pixel size needs"
        " georeferenced rasters (GeoTIFF)"
    )
    # a review: a grid without a CRS, and GCPs, were said to have no georeference
    profile = {"driver": "GTiff", "width": 30, "height": 20, "count": 1, "dtype": "uint8"}
    with rasterio.open(tmp_path / "grid.tif", "w", **profile, transform=TRANSFORM) as ds:
        ds.write(np.zeros((1, 20, 30), np.uint8))
    with rasterio.open(tmp_path / "grid.tif") as ds, pytest.raises(UngeoreferencedError) as caught:
        at_pixel_size(ds, 1.0, "grid.tif")
    assert str(caught.value) == (
        "grid.tif: has no CRS, so its pixel size is unknown; --pixel-size needs"
        " georeferenced rasters (GeoTIFF with a CRS)"
    )
    gcps = [GroundControlPoint(0, 0, 500000, 2800000), GroundControlPoint(20, 30, 500030, 2799980),
            GroundControlPoint(0, 30, 500030, 2800000)]  # fmt: skip
    with rasterio.open(tmp_path / "gcps.tif", "w", **profile) as ds:
        ds.write(np.zeros((1, 20, 30), np.uint8))
        ds.gcps = (gcps, "EPSG:32640")
    with rasterio.open(tmp_path / "gcps.tif") as ds, pytest.raises(UngeoreferencedError) as caught:
        at_pixel_size(ds, 1.0, "gcps.tif")
    assert str(caught.value) == (
        "gcps.tif: placed by ground control points, not on a pixel grid; warp it onto one"
        " first (gdalwarp) for --pixel-size"
    )


def test_labels_keep_whole_values_when_resampled(tmp_path):
    labels = np.zeros((1, 4, 4), np.uint8)
    labels[0, :3, :3] = 7  # three of each 2x2 block's four pixels in the top-left block
    path = write_geotiff(tmp_path / "labels.tif", labels)
    with rasterio.open(path) as ds, at_pixel_size(ds, 1.0, "labels.tif", labels=True) as coarse:
        values = coarse.read(1)
    assert values[0, 0] == 7 and set(np.unique(values)) <= {0, 7}  # the most common, no mean


def test_class_masks_take_the_commonest_class_but_colours_the_nearest(tmp_path):
    """Onto 3 x 3 times coarser pixels a class raster takes each block's commonest value
    (its centre, which the nearest would take, is another); a colour mask takes the
    nearest colour, since the commonest value band by band can make a colour of none;
    onto finer pixels both take the nearest."""
    values = np.full((1, 6, 6), 7, np.uint8)
    values[0, 1::3, 1::3] = 9  # each block's centre
    path = write_geotiff(tmp_path / "values.tif", values)
    with rasterio.open(path) as ds:
        with at_pixel_size(ds, 1.5, "values.tif", labels=True) as coarse:
            assert (coarse.read(1) == 7).all()
        with at_pixel_size(ds, 0.25, "values.tif", labels=True) as fine:
            assert set(np.unique(fine.read(1))) == {7, 9}  # no value between them
    red, green, blue = (255, 0, 0), (0, 255, 0), (0, 0, 255)
    block = [green, green, blue, red, red, green, red, blue, red]  # 4 red: its centre red
    colours = np.array(block * 4, np.uint8).reshape(2, 2, 3, 3, 3)  # block row, column, ...
    colours = colours.transpose(4, 0, 2, 1, 3).reshape(3, 6, 6)  # bands, rows, columns
    path = write_geotiff(tmp_path / "colours.tif", colours)
    with rasterio.open(path) as ds, at_pixel_size(ds, 1.5, "colours.tif", labels=True) as coarse:
        assert (coarse.read().transpose(1, 2, 0) == red).all()  # band-wise mode: (0, 0, 0)


def test_a_pixel_size_needs_a_georeference(tmp_path):
    plain = tmp_path / "plain.png"
    Image.fromarray(rgb_scene(20, 20).transpose(1, 2, 0)).save(plain)
    with pytest.raises(UngeoreferencedError, match="plain.png: has no georeference"):
        open_input(plain, pixel_size=1.0)
    raster = open_input(write_geotiff(tmp_path / "geo.tif", rgb_scene(20, 20)), pixel_size=1.0)
    assert (raster.width, raster.height) == (10, 10) and raster.file is not None
    raster.close()
    assert raster.file.closed and raster.dataset.closed


def test_the_band_hint_is_in_the_form_the_caller_takes(tmp_path):
    """The CLI takes --bands 1,2,3; a training setting or the Python API bands=[1,2,3]; the
    server's query ?bands=1,2,3 (a list in brackets is no query value)."""
    gray = write_geotiff(tmp_path / "gray.tif", rgb_scene(20, 20)[:1])
    for flag, example in [
        ("--bands", "--bands 1,1,1"),
        ("bands=", "bands=[1,1,1]"),
        ("?bands=", "?bands=1,1,1"),
    ]:
        with pytest.raises(InputError) as caught:
            open_input(gray, flag=flag)
        assert str(caught.value).endswith(f"choose them with {flag}, e.g. {example}")


def test_shape_limits_are_checked_from_the_header(tmp_path):
    """A 125 KB TIFF of 2,000,000 x 20 px is 40 MP, within a pixel limit of 40 MP, but no
    wider than max_side nor longer than max_aspect allow; refused before a pixel is read."""
    path = wide_tiff(tmp_path / "strip.tif")
    assert path.stat().st_size < 200_000
    with pytest.raises(TooLargeInputError, match=r"2,000,000 x 20 px; the limit is 10,000 px"):
        open_input(path, max_pixels=40_000_000, max_side=10_000)
    long_side = r"its long side 100,000 times its short one; the limit is 50$"
    with pytest.raises(TooLargeInputError, match=long_side):
        open_input(path, max_aspect=50)
    square = write_geotiff(tmp_path / "square.tif", rgb_scene(40, 20))
    open_input(square, max_side=40, max_aspect=2, max_pixels=800).close()  # at every limit
    for limits in ({"max_side": 39}, {"max_aspect": 1.9}, {"max_pixels": 799}):
        with pytest.raises(TooLargeInputError, match="square.tif: the image is 20 x 40 px"):
            open_input(square, **limits)


def test_resampling_to_far_finer_pixels_is_refused_with_the_size_it_would_have_been(tmp_path):
    """--pixel-size 0.0001 on a 256 px input of 1 m pixels: 2,560,000 px a side, refused in
    one line (it grew to 20 GB); eight times finer per side is the limit."""
    one_metre = Affine(1.0, 0, TRANSFORM.c, 0, -1.0, TRANSFORM.f)
    path = write_geotiff(tmp_path / "s.tif", rgb_scene(256, 256), transform=one_metre)
    with pytest.raises(TooLargeInputError) as caught:
        open_input(path, pixel_size=0.0001)
    message = str(caught.value)
    assert "would be 2,560,000 x 2,560,000 px" in message and "\n" not in message
    assert message.endswith("the limit is 8 times finer per side: --pixel-size 0.125 or more")
    with rasterio.open(path) as ds, at_pixel_size(ds, (1 - 1e-6) / 8, "s.tif") as finest:
        assert finest.width == 2048  # the finest, within the tolerance
    with rasterio.open(path) as ds, pytest.raises(TooLargeInputError) as caught:
        at_pixel_size(ds, 0.1, "s.tif", flag=None)  # the model's: not the user's to set
    assert str(caught.value).endswith("per side: give an image of pixels of 0.8 or finer")
    with rasterio.open(path) as ds:
        with pytest.raises(TooLargeInputError, match=r"pixel_size=0.125 or more$"):
            at_pixel_size(ds, 0.1, "s.tif", labels=True, flag="pixel_size=")
        with at_pixel_size(ds, 0.125, "s.tif") as finest:
            assert finest.width == 2048


@pytest.mark.parametrize(
    ("pixel_size", "sides"),
    [
        (2.56e-8, "10,000,000,000 x 10,000,000,000 px"),  # whole below a trillion
        (2.56e-10, "1e+12 x 1e+12 px"),  # powers of ten from a trillion on
        (1e-300, "2.56e+302 x 2.56e+302 px"),
        (5e-324, "more than 1e+308 x more than 1e+308 px"),
    ],
)
def test_a_vanishing_pixel_size_is_refused_with_a_short_line(tmp_path, pixel_size, sides):
    """--pixel-size 5e-324 (the least float) made sides of infinity, an OverflowError
    traceback; 1e-300 a line of 600 digits."""
    one_metre = Affine(1.0, 0, TRANSFORM.c, 0, -1.0, TRANSFORM.f)
    path = write_geotiff(tmp_path / "s.tif", rgb_scene(256, 256), transform=one_metre)
    with pytest.raises(TooLargeInputError) as caught:
        open_input(path, pixel_size=pixel_size)
    message = str(caught.value)
    assert f"would be {sides}, from 256 x 256 px of 1;" in message
    assert len(message) - len(str(path)) < 200  # 780 with the 1e-300 digits


@pytest.mark.parametrize("dtype", ["complex64", "complex_int16"])
def test_complex_values_are_refused(tmp_path, dtype):
    path = complex_geotiff(tmp_path / "radar.tif", dtype)
    with pytest.raises(InputError, match=f"radar.tif: holds complex values \\({dtype}"):
        open_input(path)


def test_a_loop_of_symbolic_links_is_named(tmp_path):
    loop = tmp_path / "loop.tif"
    os.symlink(loop, loop)
    with pytest.raises(InputError, match="loop.tif: cannot open it .*symbolic links"):
        open_input(loop)
    (tmp_path / "folder.tif").mkdir()
    with pytest.raises(InputError, match="folder.tif: not a file"):
        open_input(tmp_path / "folder.tif")


@pytest.mark.parametrize(
    ("dtype", "base"),
    [(np.uint32, 30_000_000), (np.int64, 2**40), (np.float32, 1e8), (np.float64, 1e300)],
)
def test_values_too_wide_for_float32_are_stretched_not_made_nan(tmp_path, dtype, base):
    """32- and 64-bit values of 2**24 and more (and float64 past float32's range) were
    stretched in float32: neighbours rounded onto one value, the span became 0 or inf, and
    every pixel NaN, which the network turned into class 0 without a word. Whole numbers
    one apart stay apart (an int64 array cast to float32 made 2**40 and 2**40 + 1 one)."""
    data = np.full((3, 20, 30), base, dtype)
    data[:, :, 15:] = dtype(base) + dtype(1 if np.dtype(dtype).kind in "iu" else base // 2**20)
    values, valid = read_array(data)
    assert np.isfinite(values).all() and valid.all()
    assert values.min() == 0 and values.max() == 255  # the two values, the stretch's ends
    assert (values[:, :, :15] == 0).all() and (values[:, :, 15:] == 255).all()
    constant = np.full((3, 8, 8), base, dtype)  # one value throughout: 0, not NaN
    values, _ = read_array(constant)
    assert np.isfinite(values).all() and (values == 0).all()


@pytest.mark.parametrize("power", [1000, 1023])
def test_values_spanning_more_than_float64_holds_are_stretched_as_their_scaled_down_selves(power):
    """A review: finite float64 values of +-1.7e308 have a span float64 cannot hold: the
    stretch divided inf by inf and every pixel became NaN, class 0 without a word. Values
    scaled by a power of two are stretched to the very same 8-bit values."""
    data = np.random.default_rng(0).random((3, 64, 64)) * 3.8 - 1.9  # past 0..1: stretched
    values, valid = read_array(data * 2.0**power)  # 2**1023: +-1.7e308, a span of 3.4e308
    assert valid.all() and np.array_equal(values, read_array(data)[0])


def test_a_pixel_size_must_be_a_finite_positive_number():
    for bad in (0, -1, float("inf"), float("nan"), "1", True, np.bool_(True), np.float32(0)):
        with pytest.raises(InputError, match="give a positive size in CRS units"):
            check_pixel_size(bad, "pixel_size=")
    with pytest.raises(InputError, match=r"^--pixel-size -1: give a positive size in CRS units"):
        check_pixel_size(-1)  # predict's flag by default
    for good in (0.5, 2, np.float32(1.0), np.int64(3)):  # numpy's too (a review)
        check_pixel_size(good)


def test_band_numbers_are_whole_numbers_from_one():
    assert band_numbers(None) is None and band_numbers([]) is None
    assert band_numbers([3, 2, 1]) == (3, 2, 1) and band_numbers(np.array([4, 1])) == (4, 1)
    for bad in ([0, 1, 2], [-1], [1.5], [True], ["1"]):
        with pytest.raises(InputError, match=r"bands= .*: give band numbers \(from 1\)"):
            band_numbers(bad, "bands=")
    with pytest.raises(InputError, match=r"^--bands 0,1: give band numbers \(from 1\)"):
        band_numbers([0, 1])  # the command line's flag by default


def test_a_truncated_png_is_refused_not_read_as_black_rows(tmp_path):
    """GDAL's PNG driver reads the rows a cut PNG lacks as zeros, without an error."""
    path = tmp_path / "whole.png"
    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path)
    whole_png = path.read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole_png[: len(whole_png) // 3])
    with pytest.raises(InputError, match="truncated or damaged .a PNG without its end"):
        open_input(cut)
    trailing = tmp_path / "trailing.png"  # bytes after IEND, as some writers leave: fine
    trailing.write_bytes(whole_png + b"\0" * 100)
    raster = open_input(trailing)
    values, _ = raster.read(Window(0, 0, 256, 256))
    raster.close()
    assert (values.transpose(1, 2, 0) == noise).all()


def test_a_pixel_size_coarser_than_the_scene_is_refused_with_the_largest_that_works(tmp_path):
    """One 1 km pixel of a 30 x 20 m scene measured 1 km², one of 1e308 m an infinite area:
    refused, naming the scene's extent and the largest pixel size that works."""
    path = write_geotiff(tmp_path / "s.tif", rgb_scene(40, 60))  # 0.5 m: 30 x 20 m
    for size in (1000.0, 1e308, 20.5):
        with pytest.raises(InputError) as caught:
            open_input(path, pixel_size=size)
        message = str(caught.value)
        assert "s.tif: the scene is 30 x 20 CRS units, less than one pixel" in message
        assert message.endswith("--pixel-size 20 or less") and "\n" not in message
    with rasterio.open(path) as ds, pytest.raises(InputError, match=r"pixel_size=20 or less$"):
        at_pixel_size(ds, 25.0, "s.tif", labels=True, flag="pixel_size=")
    raster = open_input(path, pixel_size=20.0)  # the largest: one pixel on the short side
    assert (raster.width, raster.height) == (2, 1)
    raster.close()
    with rasterio.open(path) as ds:
        with at_pixel_size(ds, 20 * (1 + 1e-5), "s.tif") as edge:  # the tolerance's edge
            assert (edge.width, edge.height) == (1, 1)
        with pytest.raises(InputError, match=r"on a side: give a larger image$"):
            at_pixel_size(ds, 25.0, "s.tif", flag=None)  # the model's: not the user's to set
    tall = write_geotiff(tmp_path / "tall.tif", rgb_scene(60, 40))  # 20 x 30 m
    with rasterio.open(tall) as ds:
        with pytest.raises(InputError, match=r"--pixel-size 20 or less$"):
            at_pixel_size(ds, 25.0, "tall.tif")
        with at_pixel_size(ds, 20.0, "tall.tif") as narrowest:
            assert (narrowest.width, narrowest.height) == (1, 2)


def palette_png(path, rgb: np.ndarray, clear: int = 0):
    """(H, W, 3) ``rgb`` saved as a palette PNG (PIL's convert("P"), its web palette); the
    colours it shows, its indices and those of them made transparent (a tRNS chunk): the
    ``clear`` most used, one half transparent."""
    image = Image.fromarray(rgb).convert("P")
    indices = np.asarray(image)
    by_use = np.argsort(np.bincount(indices.ravel(), minlength=256))[::-1]
    used = by_use[:clear]
    alpha = np.full(256, 255, np.uint8)
    alpha[used], alpha[by_use[clear]] = 0, 128
    image.save(path, **({"transparency": alpha.tobytes()} if clear else {}))
    return np.asarray(image.convert("RGB")), indices, used


def test_a_palette_image_is_read_as_the_rgb_of_its_colour_table(tmp_path):
    """Not refused as one band, nor read as grey levels of its indices (--bands 1,1,1):
    the colours it shows, whole or in windows; --bands picks from them."""
    colours, _, _ = palette_png(tmp_path / "p.png", rgb_scene(30, 40).transpose(1, 2, 0))
    for whole_read in (None, 0):  # decoded whole on opening, or window by window
        raster = open_input(tmp_path / "p.png", whole_read_pixels=whole_read)
        assert raster.bands == (1, 2, 3) and raster.scale is None
        values, valid = raster.read(Window(5, 7, 20, 10))
        raster.close()
        assert (values.transpose(1, 2, 0) == colours[7:17, 5:25]).all() and valid.all()
    values, _ = whole(tmp_path / "p.png", (3, 2, 1))
    assert (values == colours[..., ::-1]).all()
    with pytest.raises(InputError, match=r"asks for band 4 but the file has 3 \(the RGB of"):
        open_input(tmp_path / "p.png", (1, 2, 4))


def test_transparent_palette_entries_are_nodata(tmp_path):
    """Every entry of alpha 0, where GDAL takes a single one as the nodata value; partial
    alpha is a colour like any other."""
    scene = rgb_scene(30, 40).transpose(1, 2, 0)
    colours, indices, used = palette_png(tmp_path / "t.png", scene, clear=2)
    clear = np.isin(indices, used)
    assert 0 < clear.sum() < clear.size
    values, valid = whole(tmp_path / "t.png")
    assert (valid == ~clear).all()
    assert (values[clear] == 0).all() and (values[~clear] == colours[~clear]).all()


def test_a_palette_is_resampled_by_its_colours_never_averaged(tmp_path):
    """Indices 0 and 10 (red, blue) in a checkerboard: averaged, they would be index 5
    (green), a colour of neither."""
    path = tmp_path / "pal.tif"
    checker = (np.indices((40, 60)).sum(axis=0) % 2 * 10).astype(np.uint8)
    write_geotiff(path, checker[None])
    with rasterio.open(path, "r+") as ds:
        ds.colorinterp = [ColorInterp.palette]
        ds.write_colormap(1, {0: (255, 0, 0, 255), 5: (0, 255, 0, 255), 10: (0, 0, 255, 255)})
    raster = open_input(path, pixel_size=1.0)
    values, valid = raster.read(Window(0, 0, raster.width, raster.height))
    raster.close()
    assert values.shape == (3, 20, 30) and valid.all()
    found = {tuple(c) for c in values.reshape(3, -1).T.astype(int)}
    assert found <= {(255, 0, 0), (0, 0, 255)}


def test_a_file_that_names_other_files_is_not_read_whatever_it_is_called(tmp_path, capsys):
    """A review: GDAL opens a VRT under any name, so a dataset's "a.png" (in a folder or a
    zip) or an input "photo.tif" could read any file of the machine, or a URL, into its
    pixels. Only JPEG, PNG and TIFF are opened; the real image beside it still reads."""
    from aerialseg.cli import main
    from tests.helpers.images import write_dataset, zip_folder

    secret = tmp_path / "secret.png"
    Image.fromarray(rgb_scene(64, 64).transpose(1, 2, 0)).save(secret)
    disguised = tmp_path / "photo.tif"
    disguised.write_text(vrt_of(secret))
    with pytest.raises(InputError, match="photo.tif: not an image aerialseg can read"):
        open_input(disguised)
    assert open_input(secret).width == 64
    root = write_dataset(tmp_path / "ds", tiles=1, parts=2)
    images = sorted((root / "Tile 1" / "images").iterdir())
    images[0].write_text(vrt_of(secret))
    archive = zip_folder(root, tmp_path / "ds.zip")
    for data in (root, archive):
        assert main(["data", "inspect", str(data)]) == 2
        said = capsys.readouterr()
        assert f"{images[0].name}: cannot read the file (not recognized as being in a" in said.err
        assert "1 problem(s)" in said.err and "2 pairs" not in said.out


@pytest.mark.parametrize(
    ("transform", "said"),
    [
        (Affine(0, 0, 300_000, 0, 0, 2_800_000), "pixels 0 x 0 CRS units"),
        (Affine(float("nan"), 0, 300_000, 0, -0.5, 2_800_000), "pixels nan x -0.5 CRS units"),
        (Affine(0.5, 0.5, 300_000, 0.5, 0.5, 2_800_000), "pixels 0.5 x 0.5 CRS units, the grid"),
    ],
)
def test_a_broken_georeference_is_one_line_where_it_is_opened(tmp_path, capsys, transform, said):
    """A review: pixels of size 0 stopped predict with a ZeroDivisionError and inspect with
    GDAL's "Cannot invert geotransform"; a NaN in the transform, with a GEOSException."""
    from aerialseg.cli import main

    path = write_geotiff(tmp_path / "broken.tif", rgb_scene(16, 16), transform=transform)
    with pytest.raises(InputError, match=f"broken.tif: its georeference is broken \\({said}"):
        open_input(path)
    root = write_geotiff_dataset(tmp_path / "own", parts=2)
    mask = root / "masks" / "scene_0.tif"
    with rasterio.open(mask) as src:
        values = src.read()
    write_geotiff(mask, values, transform=transform)
    table = tmp_path / "classes.yaml"
    table.write_text(yaml.safe_dump(VALUE_CLASSES))
    assert main(["data", "inspect", str(root), "--classes", str(table), "--bands", "3,2,1"]) == 2
    err = capsys.readouterr().err
    assert f"masks/scene_0.tif: its georeference is broken ({said}" in err
    assert err.count("\n") == 1


def test_a_georeference_far_off_the_earth_is_refused_before_proj_sees_it(tmp_path):
    """A review: a 16 KB GeoTIFF in EPSG:3857 at x = 1e20 sent PROJ's inverse projection
    into a loop that held the GIL: the server froze, /healthz included, until killed."""
    far = Affine(1.0, 0, 1e20, 0, -1.0, 0)
    path = write_geotiff(tmp_path / "far.tif", rgb_scene(16, 16), crs="EPSG:3857", transform=far)
    with pytest.raises(InputError) as err:
        open_input(path)
    assert str(err.value) == (
        f"{path}: its georeference puts it 1e+20 CRS units from the CRS's origin, where no"
        " CRS places the Earth: check the transform and the CRS"
    )
    near = Affine(1.0, 0, 9e9, 0, -1.0, 0)  # far, yet not past the bound: opened
    open_input(write_geotiff(tmp_path / "near.tif", rgb_scene(16, 16), transform=near)).close()


def tiled_tiff(path, side: int, tile: int):
    """A square RGB TIFF of ``side`` px in deflated tiles of ``tile`` px."""
    profile = {"driver": "GTiff", "count": 3, "dtype": "uint8", "compress": "deflate"}
    profile |= {"tiled": True, "blockxsize": tile, "blockysize": tile}
    with rasterio.open(path, "w", width=side, height=side, **profile) as dst:
        dst.write(rgb_scene(side, side))
    return path


def test_blocks_far_larger_than_their_image_are_refused_before_a_read(tmp_path):
    """A review: a 323-byte 64 x 64 TIFF whose tiles said 40000 x 40000 px made GDAL
    allocate a tile of 4.8 GB (RSS 0.8 -> 6.9 GB) before any limit could say no. A small
    image's ordinary tile, larger than the image, still opens."""
    from tests.helpers.hostile import tiff_tag_patched

    small = tiled_tiff(tmp_path / "small.tif", side=64, tile=256)
    open_input(small).close()  # a 256 px tile over 64 px: GDAL's own default
    for tag in (322, 323):  # TileWidth, TileLength
        tiff_tag_patched(small, tag, 40_000)
    with pytest.raises(InputError) as err:
        open_input(small)
    assert str(err.value) == (
        f"{small}: its blocks (tiles or strips) are 40000 x 40000 px, far more than its"
        " 64 x 64 px: a damaged file"
    )


def test_a_damaged_tile_past_those_checked_on_opening_is_one_line(tmp_path):
    """A review: a large tiled TIFF with a damaged tile in its middle passed the corner
    and last-block probes, then failed mid-prediction: the server answered 500."""
    from tests.helpers.hostile import tile_damaged

    path = tile_damaged(tiled_tiff(tmp_path / "big.tif", side=512, tile=128), 2, 1)
    raster = open_input(path, whole_read_pixels=0)  # read by windows, as a large one is
    try:
        raster.read(Window(0, 0, 128, 128))  # a good tile
        with pytest.raises(InputError, match=f"{path}: the file is truncated or damaged"):
            raster.read(Window(128, 256, 128, 128))
    finally:
        raster.close()


@pytest.mark.parametrize(
    ("width", "height", "reduced"),
    [(2048, 9, (4, 1024)), (4096, 3, (1, 1024)), (3, 4096, (1024, 1)), (700, 5, (5, 700))],
)
def test_a_rasters_stretch_comes_from_a_read_of_at_most_stats_side(
    tmp_path, width, height, reduced
):
    """The 2nd-98th percentiles of a large 16-bit raster are those of one read reduced by a
    whole factor to STATS_SIDE px or less on its long side (at least one px on the other),
    not of every pixel: a 20,000 px scene is not decoded whole to stretch it. A raster of
    STATS_SIDE px or less is read whole for it."""
    assert STATS_SIDE == 1024
    rng = np.random.default_rng(5)
    data = rng.integers(100, 60_000, (2, height, width)).astype(np.uint16)  # no two reads alike
    path = write_geotiff(tmp_path / "wide.tif", data)
    with rasterio.open(path) as ds:
        sample = ds.read([2, 1], out_shape=(2, *reduced)).astype(np.float64)
    expected = np.percentile(sample.reshape(2, -1), STRETCH_PERCENTILES, axis=1)
    with open_input(path, (2, 1)) as raster:
        lows, highs = raster.scale  # type: ignore[misc]
    assert np.array_equal(lows, expected[0]) and np.array_equal(highs, expected[1])
    every = np.percentile(data[::-1].reshape(2, -1).astype(np.float64), STRETCH_PERCENTILES, axis=1)
    assert np.array_equal(lows, every[0]) == (reduced == (height, width))


@pytest.mark.parametrize("whole_read_pixels", [None, 0])
@pytest.mark.parametrize(("dtype", "nodata"), [("uint16", 0), ("float32", np.nan)])
def test_valid_pixels_the_reduced_read_misses_are_stretched_by_their_own_values(
    tmp_path, dtype, nodata, whole_read_pixels
):
    """A strip of valid pixels narrower than the reduced read's step (a corridor survey in
    a scene of nodata) can fall between its samples: the stretch then comes from every
    valid pixel, of the decoded raster or read by strips, not from none (the strip read as
    255 throughout)."""
    width = 2 * STATS_SIDE  # reduced by 2: one column of two is read for the stretch
    strip = np.random.default_rng(3).integers(1000, 3000, (3, 40)).astype(dtype)
    low, high = np.percentile(strip.astype(np.float64), STRETCH_PERCENTILES, axis=1)
    expected = np.clip((strip - low[:, None]) / (high - low)[:, None] * 255, 0, 255)
    for column in (700, 701):
        data = np.full((3, 40, width), nodata, dtype)
        data[:, :, column] = strip
        path = write_geotiff(tmp_path / f"strip{column}.tif", data, nodata=nodata)
        with rasterio.open(path) as ds:
            if ds.dataset_mask(out_shape=(20, STATS_SIDE)).any():
                continue  # the column the reduced read takes: stretched by its samples
        with open_input(path, whole_read_pixels=whole_read_pixels) as raster:
            values, valid = raster.read(Window(column, 0, 1, 40))
        assert valid.all()
        np.testing.assert_allclose(values[:, :, 0], expected, atol=1e-3)
        break
    else:
        raise AssertionError("the reduced read took both columns")


def test_the_rescan_reads_strips_of_bounded_size_and_keeps_a_thinned_even_sample(tmp_path):
    """Where the reduced read shows no spread, every valid pixel is looked at (_stretch):
    read in strips of rows of at most STATS_SIDE**2 px that tile the raster, in the bands
    asked for, nodata left out; at most STATS_SIDE**2 values are kept, thinned evenly over
    the rows, so that a scene of any size is held in bounded memory."""
    from aerialseg.data.raster import _valid_values

    height, width = 1100, 2100  # 2.3 M px: thinned twice
    rows = np.arange(height, dtype=np.uint16)[:, None].repeat(width, axis=1)
    data = np.stack([rows + 10_000 * band for band in (1, 2, 3, 4)])  # band and row, told apart
    data[:, :10, :10] = 0  # nodata
    path = write_geotiff(tmp_path / "big.tif", data, nodata=0)
    windows = []
    with rasterio.open(path) as ds:

        class Recorded:  # the raster, its reads recorded
            def __getattr__(self, name):
                return getattr(ds, name)

            def read(self, indexes, window):
                windows.append(window)
                return ds.read(indexes, window=window)

        kept = _valid_values(Recorded(), (3, 2, 1))
    strip = STATS_SIDE**2 // width
    assert windows == [
        Window(0, top, width, min(strip, height - top)) for top in range(0, height, strip)
    ]
    assert STATS_SIDE**2 // 2 < kept.shape[1] <= STATS_SIDE**2
    assert (kept[0] // 10_000 == 3).all() and (kept[2] // 10_000 == 1).all()
    assert (kept % 10_000 == kept[0] % 10_000).all()  # one pixel's bands together
    valid_rows = rows[data[0] > 0]
    assert abs((kept[0] % 10_000).mean() - valid_rows.mean()) < 0.01 * height


@pytest.mark.parametrize(("value", "apart", "span"), [(100.0, 0.5, 1.0), (2.0**24, 8.0, 16.0)])
def test_a_band_of_one_value_but_for_a_few_pixels_reads_those_apart_over_a_small_span(
    tmp_path, value, apart, span
):
    """Where a band's 2nd and 98th percentiles are one value (the band is constant but for
    under 2 % of its pixels), the stretch spans 1 above it, or 2**-20 of the value past
    2**20, which float32 still tells apart: a pixel ``apart`` above reads apart/span*255."""
    data = np.full((3, 50, 50), value, np.float32)
    data[:, 0, :10] = value + apart  # 10 pixels of 2,500
    path = write_geotiff(tmp_path / "flat.tif", data)
    with open_input(path) as raster:
        values, valid = raster.read(Window(0, 0, 50, 50))
    assert valid.all() and (values[:, 1:] == 0).all() and (values[:, 0, 10:] == 0).all()
    np.testing.assert_allclose(values[:, 0, :10], apart / span * 255)


@pytest.mark.parametrize(("dtype", "nodata"), [("uint16", 0), ("float32", np.nan)])
def test_a_raster_with_no_valid_pixel_opens_and_predicts_nothing(tmp_path, dtype, nodata):
    """A scene all nodata (a tile of a mosaic outside its footprint) is valid nowhere: no
    stretch of no values, no traceback."""
    path = write_geotiff(tmp_path / "empty.tif", np.full((3, 20, 30), nodata, dtype), nodata=nodata)
    with open_input(path) as raster:
        values, valid = raster.read(Window(0, 0, 30, 20))
    assert values.shape == (3, 20, 30) and not valid.any()


def test_a_relative_name_that_looks_like_a_gdal_connection_string_is_that_file(
    tmp_path, monkeypatch
):
    # GDAL reads GTIFF_DIR:1:b.tif as "the first image of b.tif" (a review: predict read
    # b.tif and wrote its classes under the other file's name)
    write_geotiff(tmp_path / "b.tif", np.full((3, 30, 20), 5, np.uint8))
    write_geotiff(tmp_path / "GTIFF_DIR:1:b.tif", np.full((3, 12, 10), 9, np.uint8))
    monkeypatch.chdir(tmp_path)
    with open_input("GTIFF_DIR:1:b.tif") as raster:
        assert (raster.width, raster.height) == (10, 12)


def test_an_alpha_band_beside_a_nodata_value_prints_no_warning(tmp_path):
    """A review: a 4-band GeoTIFF with an alpha band (GDAL's ALPHA=YES) and a nodata value
    printed rasterio's NodataShadowWarning, a line of aerialseg's source, on inspect,
    train and predict. GDAL's mask is then the nodata's: 0 here, so the image is valid."""
    import warnings

    import rasterio
    from rasterio.errors import NodataShadowWarning
    from rasterio.transform import from_origin

    from aerialseg.data.raster import open_input

    path = tmp_path / "rgba.tif"
    profile = dict(driver="GTiff", width=64, height=64, count=4, dtype="uint8", nodata=0,
                   crs="EPSG:32640", transform=from_origin(0, 64, 1, 1), photometric="RGB",
                   alpha="YES")  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((4, 64, 64), 100, np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("error", NodataShadowWarning)
        with open_input(path) as raster:
            values, valid = raster.read(Window(0, 0, 64, 64))
    assert values.shape == (3, 64, 64) and valid.all()


@pytest.mark.parametrize(
    "fourth, accepted", [("opaque", True), ("soft edges", True), ("nir", False)]
)
def test_a_fourth_band_tagged_alpha_that_holds_an_image_is_not_taken_for_alpha(
    tmp_path, fourth, accepted
):
    """A review: a 4-band B, G, R, NIR GeoTIFF written with GDAL's defaults has its 4th
    band tagged alpha, so bands 1-3 were read as red, green and blue without a word. An
    alpha band is opaque or transparent over most pixels, or of a few levels; one of many
    values between over most of them is an image band, and the file is told to choose
    its bands."""
    import rasterio
    from rasterio.transform import from_origin

    from aerialseg.data.raster import InputError, open_input

    rng = np.random.default_rng(0)
    alpha = np.full((64, 64), 255, np.uint8)
    if fourth == "soft edges":  # an anti-aliased outline: a few values between
        alpha[:, :6] = np.linspace(0, 255, 6, dtype=np.uint8)
    if fourth == "nir":
        alpha = rng.integers(20, 230, (64, 64)).astype(np.uint8)
    path = tmp_path / "four.tif"
    profile = dict(driver="GTiff", width=64, height=64, count=4, dtype="uint8",
                   crs="EPSG:32640", transform=from_origin(0, 64, 1, 1), photometric="RGB",
                   alpha="YES")  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.concatenate([rng.integers(0, 255, (3, 64, 64), np.uint8), alpha[None]]))
    if accepted:
        with open_input(path) as raster:
            assert raster.bands == (1, 2, 3)
        return
    with pytest.raises(InputError) as err:
        open_input(path)
    assert str(err.value) == (
        f"{path}: has 4 band(s), the 4th tagged alpha but holding neither transparent nor"
        " opaque values over most pixels (near-infrared?); the model takes 3 (RGB): choose"
        " them with --bands, e.g. --bands 1,2,3"
    )


def test_a_geotiff_cut_anywhere_is_called_truncated_never_read_without_its_tags(tmp_path):
    """A review: the sample GeoTIFF cut before its directory was "not an image aerialseg
    can read", and cut 355 bytes short (inside its GeoTIFF tags, which GDAL then leaves out
    with a warning) was predicted without its CRS, exit 0. Cut anywhere, it is damaged."""
    whole = SAMPLE.read_bytes()
    cuts = [*range(16, len(whole), len(whole) // 40), *range(len(whole) - 400, len(whole), 20)]
    path = tmp_path / "cut.tif"
    for cut in cuts:
        path.write_bytes(whole[:cut])
        with pytest.raises(InputError, match=r"cut.tif: the file is truncated or damaged \("):
            open_input(path).dataset.close()
    path.write_bytes(whole)
    with open_input(path).dataset as ds:
        assert ds.crs is not None  # the whole file, as it is


def test_a_block_that_decodes_to_too_much_with_all_its_bands_is_refused(tmp_path, monkeypatch):
    """A review: a 256 x 256 tile of 24,576 bands stored together, 1.7 MB compressed, took
    1.5 GB to read three bands of: GDAL decodes a pixel-interleaved block whole. The same
    bands stored apart are read a band at a time. BLOCK_BYTES is cut to this file's size."""
    from aerialseg.data import raster

    monkeypatch.setattr(raster, "BLOCK_BYTES", 32 * 32 * 65 - 1)
    for interleave in ("pixel", "band"):
        path = tmp_path / f"{interleave}.tif"
        profile = dict(driver="GTiff", width=64, height=64, count=65, dtype="uint8")
        profile |= dict(tiled=True, blockxsize=32, blockysize=32, interleave=interleave)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(np.zeros((65, 64, 64), np.uint8))
        if interleave == "pixel":
            with pytest.raises(InputError, match=r"each of its blocks decodes to 0 MiB \(32 x 32"):
                open_input(path, bands=(1, 2, 3))
        else:
            open_input(path, bands=(1, 2, 3)).dataset.close()
    # few bands in a block past the limit: bounded by its pixels, read as before (a second
    # review: a large RGB image in one strip was refused)
    monkeypatch.setattr(raster, "BLOCK_BYTES", 10)
    open_input(write_geotiff(tmp_path / "rgb.tif", rgb_scene(40, 40))).dataset.close()


def test_a_file_resampled_to_coarser_pixels_is_bounded_by_its_own_size(tmp_path):
    """A review: where pixels are limited (the server), only the resampled size was
    checked, so a file of 10^10 px of sparse tiles at fine pixels shrank to a legal size
    and was read whole for minutes. Its own pixels are bounded too: 16 times the limit."""
    from aerialseg.data.raster import MAX_DOWNSAMPLED_AREA

    path = write_geotiff(tmp_path / "fine.tif", rgb_scene(64, 64))  # 0.5 m pixels
    with open_input(path, pixel_size=4.0, max_pixels=64 * 64 // MAX_DOWNSAMPLED_AREA) as ok:
        assert (ok.width, ok.height) == (8, 8)
    with pytest.raises(TooLargeInputError, match=r"64 x 64 px, read whole to be resampled"):
        open_input(path, pixel_size=4.0, max_pixels=64 * 64 // MAX_DOWNSAMPLED_AREA - 1)
