"""Scenes of every file kind answer the same calls: what each reads, opens and reports."""

import numpy as np
import pytest
import torch
import yaml
from affine import Affine
from PIL import Image
from rasterio.windows import Window

import aerialseg.data.scenes as scenes
from aerialseg.data.blocks import SceneGrid
from aerialseg.data.catalog import open_catalog
from aerialseg.data.classes import DUBAI_CLASSES, IGNORE_INDEX, ClassTable
from aerialseg.data.labels import OversizeImageError
from aerialseg.data.raster import open_input
from aerialseg.data.scenes import TRAINING_FLAGS, Flags, RasterScene, Reading
from aerialseg.errors import ClassTableError, DatasetError
from tests.helpers.geotiff import (
    TRANSFORM,
    UTM40N,
    VALUE_CLASSES,
    write_geotiff,
    write_geotiff_dataset,
)
from tests.helpers.hostile import bomb_png
from tests.helpers.images import write_dataset, write_mask, zip_folder

VALUES = ClassTable.from_dict(VALUE_CLASSES)
BGR = Reading(bands=(3, 2, 1), max_unknown=1.0)


def _raster_scene(root, **kwargs) -> tuple:
    catalog = open_catalog(root, VALUES, **kwargs)
    scene = catalog.entries[0]
    assert isinstance(scene, RasterScene)
    return catalog, scene


def test_a_raster_is_opened_once_a_process_in_its_bands_and_never_whole(tmp_path, monkeypatch):
    _, scene = _raster_scene(write_geotiff_dataset(tmp_path / "own", parts=1))
    bgr = scene.with_bands((3, 2, 1))
    raster = bgr.raster()
    assert bgr.raster() is raster and raster.bands == (3, 2, 1) and raster.whole is None
    grid, labels = bgr.grid, bgr.labels  # the header read, the labels bound
    nir = bgr.with_bands((4,))
    assert nir.raster().bands == (4,)  # not the raster opened for other bands
    assert nir.grid is grid and nir.labels is labels  # kept, not read again
    monkeypatch.setattr(scenes.os, "getpid", lambda: -1)  # a data loader worker
    assert bgr.raster() is not raster and bgr.raster().bands == (3, 2, 1)


def test_streamed_windows_are_uint8_at_the_pixel_size(tmp_path):
    _, scene = _raster_scene(write_geotiff_dataset(tmp_path / "own", parts=1), pixel_size=1.0)
    assert (scene.width, scene.height) == (40, 36)  # 0.5 m pixels read at 1 m
    streamed = scene.streamed(BGR)
    assert not scene.decodes_whole and isinstance(streamed, RasterScene)  # a GeoTIFF streams
    part = streamed.read(Window(0, 0, 40, 36))
    reference = open_input(scene.path, (3, 2, 1), pixel_size=1.0)
    values, valid = reference.read(Window(0, 0, 40, 36))
    reference.close()
    assert part.image.dtype == torch.uint8 and part.id == scene.id
    assert np.array_equal(part.image.numpy(), np.rint(values).astype(np.uint8))
    assert (part.mask.numpy()[~valid] == IGNORE_INDEX).all()
    decoded = scene.decoded(BGR)
    assert torch.equal(decoded.image, part.image) and torch.equal(decoded.mask, part.mask)


def test_errors_name_a_zipped_image_as_the_user_knows_it(tmp_path):
    root = write_geotiff_dataset(tmp_path / "own", parts=1)
    archive = zip_folder(root, tmp_path / "own.zip")
    _, scene = _raster_scene(archive)
    assert scene.path.startswith("/vsizip/") and scene.name.startswith(f"{archive}:")
    with pytest.raises(DatasetError) as err:
        scene.with_bands((9,), TRAINING_FLAGS.bands)
    assert str(err.value) == (f"{scene.name}: bands= 9 asks for band 9 but the file has 4")
    with pytest.raises(DatasetError) as err:
        scene.look(Reading(bands=(1, 2, 9), flags=Flags(bands="--bands")))
    assert str(err.value).startswith(f"{scene.name}: --bands 1,2,9 asks for band 9")


def test_a_large_scene_is_looked_at_on_every_kth_pixel(tmp_path, monkeypatch):
    root = write_geotiff_dataset(tmp_path / "own", parts=1, size=(101, 100))
    _, scene = _raster_scene(root)
    whole = scene.look(Reading())
    assert whole.weight == 1 and whole.encoded.ids.shape == (101, 100)
    monkeypatch.setattr(scenes, "COUNTED_PIXELS", 2500)  # 50 x 50 pixels at most
    look = scene.look(Reading())
    assert look.weight == 4 and look.encoded.ids.shape == (51, 50)
    assert np.array_equal(look.encoded.ids, whole.encoded.ids[::2, ::2])
    assert (look.image_mode, look.mask_mode, look.group) == ("4x uint16", "1x uint8", ".")
    assert (look.size, look.grid, look.pixel_size) == ((100, 101), "EPSG:32640, 0.5 x 0.5", 0.5)


def test_grids_and_georeferences_come_from_georeferenced_scenes_only(tmp_path):
    catalog, scene = _raster_scene(write_geotiff_dataset(tmp_path / "own", parts=2))
    assert [(g.id, g.height, g.width, g.pixel, g.crs, g.transform) for g in catalog.grids()] == [
        ("images/scene_0.tif", 72, 80, 0.5, UTM40N, TRANSFORM),
        ("images/scene_1.tif", 72, 80, 0.5, UTM40N, TRANSFORM),
    ]
    assert set(catalog.georeferences()) == {"images/scene_0.tif", "images/scene_1.tif"}
    assert scene.look(Reading()).pixel_size == 0.5
    plain = tmp_path / "plain"
    for folder, data in (("images", np.ones((3, 6, 5), np.uint8)), ("masks", np.ones((1, 6, 5)))):
        (plain / folder).mkdir(parents=True)
        write_geotiff(plain / folder / "a.tif", data.astype(np.uint8), crs=None)
    ungeoreferenced = open_catalog(plain, VALUES)
    assert ungeoreferenced.georeferences() == {}
    assert ungeoreferenced.grids() == [SceneGrid("images/a.tif", 6, 5, None)]  # no metres
    odd = tmp_path / "odd"
    transform = TRANSFORM @ Affine.scale(0.2469134)  # pixels of 0.1234567 m
    for folder, count in (("images", 3), ("masks", 1)):
        (odd / folder).mkdir(parents=True)
        data = np.ones((count, 6, 5), np.uint8)
        write_geotiff(odd / folder / "a.tif", data, transform=transform)
    (odd_scene,) = open_catalog(odd, VALUES).entries
    assert odd_scene.look(Reading()).pixel_size == 0.123457  # to a micrometre
    degrees = tmp_path / "degrees"  # a review: 9.5135e-06 degrees was told as 1e-05
    for folder, count in (("images", 3), ("masks", 1)):
        (degrees / folder).mkdir(parents=True)
        data = np.ones((count, 6, 5), np.uint8)
        at = Affine(9.5135e-06, 0, 55.2, 0, -9.5135e-06, 25.2)
        write_geotiff(degrees / folder / "a.tif", data, crs="EPSG:4326", transform=at)
    (scene_in_degrees,) = open_catalog(degrees, VALUES).entries
    look = scene_in_degrees.look(Reading())
    assert look.pixel_size == 9.5135e-06 and "9.5135e-06 x 9.5135e-06" in look.grid


def test_plain_pairs_report_their_size_bytes_and_grid_from_the_header(tmp_path):
    catalog = open_catalog(write_dataset(tmp_path / "ds", tiles=1, parts=2), DUBAI_CLASSES)
    pair = catalog.entries[0]
    assert pair.decodes_whole and not pair.with_bands(None).raster().georeferenced
    assert pair.scene_grid() == SceneGrid(pair.id, 72, 80, None)
    assert pair.decoded_bytes(3) == 72 * 80 * 4 and pair.decoded_bytes(1) == 72 * 80 * 2
    decoded = pair.decoded(Reading())
    assert decoded.id == pair.id and decoded.read(Window(3, 2, 10, 5)).id == pair.id
    streamed = pair.streamed(Reading())  # a JPEG decodes whole: windows would each decode it
    assert torch.equal(streamed.image, decoded.image) and torch.equal(streamed.mask, decoded.mask)
    flipped, rgb = (pair.decoded(Reading(bands=b)).image for b in ((3, 2, 1), (1, 2, 3)))
    assert torch.equal(flipped, rgb.flip(0)) and torch.equal(rgb, decoded.image)


def _grey_pair(root, mask: Image.Image, image: Image.Image | None = None) -> RasterScene:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (image or Image.new("L", (5, 4), 7)).save(root / "images" / "a.png")
    mask.save(root / "masks" / "a.png")
    (pair,) = open_catalog(root, VALUES).entries
    return pair


def test_plain_pairs_read_the_bands_asked_and_value_masks(tmp_path):
    values = np.array([[1, 2, 3, 4, 5]] * 4, np.uint8)
    palette = Image.fromarray(values, mode="P")
    palette.putpalette([v for k in range(256) for v in (k * 9 % 256, k, 255 - k)])
    pair = _grey_pair(tmp_path / "grey", palette)
    look = pair.look(Reading(bands=(1, 1, 1)))
    assert look.encoded.ids.tolist() == [[0, 1, 2, 3, 4]] * 4  # values, not colours
    assert (look.image_mode, look.mask_mode, look.size) == ("1x uint8", "1x uint8 palette", (5, 4))
    assert pair.decoded(Reading(bands=(1, 1, 1))).image.numpy().tolist() == [[[7] * 5] * 4] * 3
    with pytest.raises(DatasetError, match=r"--bands 1,2 asks for band 2 but the file has 1"):
        pair.look(Reading(bands=(1, 2), flags=Flags(bands="--bands")))
    with pytest.raises(DatasetError, match=r"^images/a.png: bands= 2 asks for band 2"):
        pair.decoded(Reading(bands=(2,), flags=TRAINING_FLAGS))
    with pytest.raises(DatasetError, match=r"^images/a.png: --bands 2 asks for band 2"):
        pair.streamed(Reading(bands=(2,)))  # evaluate's flag, by default
    # a grey image is read as predict reads it: its one band chosen, as the model then keeps
    with pytest.raises(DatasetError, match=r"^images/a.png: has 1 band\(s\).* bands=\[1,1,1\]"):
        pair.decoded(Reading(flags=TRAINING_FLAGS))


def test_unknown_label_shares_name_the_mask_and_the_setting(tmp_path):
    pair = _grey_pair(tmp_path / "plain", Image.fromarray(np.full((4, 5), 9, np.uint8)))
    with pytest.raises(ClassTableError) as err:
        pair.decoded(Reading(bands=(1, 1, 1), max_unknown=0.5, flags=TRAINING_FLAGS))
    assert str(err.value).startswith("masks/a.png: 100.0% of pixels match no class value")
    assert str(err.value).endswith("(limit 50%, set by max_unknown=)")
    root = write_geotiff_dataset(tmp_path / "own", parts=1)
    write_geotiff(root / "masks" / "scene_0.tif", np.full((1, 72, 80), 9, np.uint8))
    _, scene = _raster_scene(root)
    for read in (scene.decoded, scene.streamed):
        with pytest.raises(ClassTableError) as err:
            read(Reading(bands=(3, 2, 1), max_unknown=0.5, flags=TRAINING_FLAGS))
        assert str(err.value).startswith(f"{scene.labels.name}: 100.0% of pixels")
        assert str(err.value).endswith("set by max_unknown=)")


def test_an_rgba_pairs_transparent_pixels_are_unlabelled(tmp_path):
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., :3], rgba[:, :2, 3] = 60, 255  # opaque in the first two columns only
    mask = Image.fromarray(np.full((4, 5), 2, np.uint8))
    pair = _grey_pair(tmp_path / "rgba", mask, Image.fromarray(rgba, mode="RGBA"))
    ids = pair.decoded(Reading()).mask.numpy()
    assert (ids[:, :2] == 1).all() and (ids[:, 2:] == IGNORE_INDEX).all()


def test_an_oversize_png_or_jpeg_is_refused_from_its_header(tmp_path):
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    Image.new("RGB", (5, 4)).save(root / "images" / "a.png")
    bomb_png(root / "masks" / "a.png", 20_000, 9_000)  # 180 MP
    (scene,) = open_catalog(root, DUBAI_CLASSES).entries
    with pytest.raises(OversizeImageError) as err:
        scene.look(Reading())
    assert str(err.value) == (
        "masks/a.png: 20,000 x 9,000 px, more than the 178,956,970 pixels a JPEG or PNG of a"
        " dataset may have (they are decoded whole); cut it into tiles or remove it"
    )
    write_mask(root / "masks" / "a.png", np.zeros((4, 5), np.uint8))
    (scene,) = open_catalog(root, DUBAI_CLASSES).entries
    assert scene.look(Reading()).size == (5, 4)


def test_a_pixel_size_error_names_the_setting_of_the_command_that_reads(tmp_path, capsys):
    """data split --pixel-size and evaluate --pixel-size said "pixel_size=0.0625 or more",
    the training setting, which neither command takes; train keeps pixel_size=. The class
    raster's own resampling names it alike."""
    from aerialseg.cli import main
    from aerialseg.data.catalog import LabelSpec
    from tests.helpers.models import FAST, write_tiny_model

    root = write_geotiff_dataset(tmp_path / "own", parts=3)  # 80 x 72 px of 0.5 m
    table = tmp_path / "classes.yaml"
    table.write_text(yaml.safe_dump(VALUE_CLASSES))
    split, model = tmp_path / "split.json", write_tiny_model(tmp_path / "m.pt", ["bands=[3,2,1]"])
    too_fine = ["--pixel-size", "0.001"]
    for argv in (
        ["data", "split", str(root), "--block-size", "16", *too_fine, "--out", str(split)],
        ["evaluate", str(model), "--data", str(root), "--classes", str(table), "--split", "all",
         *too_fine, "--out", str(tmp_path / "scores")],
    ):  # fmt: skip
        assert main(argv) == 2
        assert capsys.readouterr().err.endswith("per side: --pixel-size 0.0625 or more\n")
    assert main(["data", "split", str(root), "--out", str(split)]) == 0
    train = ["train", "--data", str(root), "--classes", str(table), "--split", str(split)]
    settings = [*FAST, "bands=[3,2,1]", "pixel_size=0.001"]
    assert main([*train, "--out", str(tmp_path / "run"), *settings]) == 2
    assert capsys.readouterr().err.endswith("per side: pixel_size=0.0625 or more\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "classes.yaml",
        "m.pt",
        "own",
        "split.json",
    ]
    coarse = write_geotiff(  # 10 m class pixels under the 0.5 m image
        tmp_path / "coarse.tif",
        np.ones((1, 4, 4), np.uint8),
        transform=TRANSFORM @ Affine.scale(20),
    )
    image = str(root / "images" / "scene_0.tif")
    for flag in ("--pixel-size", "pixel_size="):
        catalog = open_catalog(image, VALUES, LabelSpec(str(coarse)), 1.0, pixel_flag=flag)
        with pytest.raises(DatasetError, match=rf"per side: {flag} ?1.25 or more$"):
            print(catalog.entries[0].labels.mode)
