import io
import os
import shutil
import subprocess
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest
import rasterio
import yaml
from PIL import Image
from rasterio.errors import NotGeoreferencedWarning

from aerialseg.data.catalog import open_catalog
from aerialseg.data.classes import DUBAI_CLASSES, ClassTable, encode_mask
from aerialseg.data.raster import InputError, check_zip_entry
from aerialseg.data.scenes import TRAINING_FLAGS, Flags, Reading
from aerialseg.data.source import DatasetSource
from aerialseg.errors import DatasetError
from tests.helpers.geotiff import VALUE_CLASSES, write_geotiff_dataset
from tests.helpers.images import synthetic_pair, write_dataset, write_mask, zip_folder
from tests.helpers.scenes import decoded

VALUES = ClassTable.from_dict(VALUE_CLASSES)
# classes by colour: k -> (10k, 20k, 30k); Dubai's table holds no such colours
COLOURS = ClassTable.from_dict(
    {
        "classes": [
            {"name": f"c{k}", "mask_color": f"#{10 * k:02x}{20 * k:02x}{30 * k:02x}"}
            for k in range(1, 6)
        ]
    }  # fmt: skip
)


def _read(data, index: int = 0, classes: ClassTable = DUBAI_CLASSES, **reading):
    """Pair ``index`` of the dataset ``data`` as training reads it: (H, W, bands) uint8
    image, (H, W) class ids."""
    catalog = open_catalog(data, classes)
    sid = catalog.entries[index].id
    (scene,) = catalog.read([sid], Reading(max_unknown=1.0, **reading))
    return scene.image.permute(1, 2, 0).numpy(), scene.mask.numpy()


def test_folder_and_parent_folder_and_zip_list_the_same_pairs(tiny_dataset, tmp_path):
    direct = DatasetSource(tiny_dataset)
    parent = DatasetSource(tiny_dataset.parent)
    archive = DatasetSource(zip_folder(tiny_dataset, tmp_path / "archive.zip"))
    assert len(direct.pairs) == 18
    assert direct.pairs == parent.pairs == archive.pairs
    assert direct.pairs[0].id == "Tile 1/images/image_part_001.jpg"
    assert direct.pairs[0].mask == "Tile 1/masks/image_part_001.png"
    for read in zip(_read(archive.path, 10), _read(direct.path, 10), strict=True):
        assert np.array_equal(*read)


def test_image_without_mask(fresh_dataset):
    (fresh_dataset / "Tile 2" / "masks" / "image_part_004.png").unlink()
    with pytest.raises(DatasetError, match=r"Tile 2/images/image_part_004.jpg: image has no mask"):
        DatasetSource(fresh_dataset)


def test_a_missing_mask_is_expected_as_the_others_are_stored(tmp_path):
    """A review: with .tif masks, a missing one was "expected masks/x.png"."""
    root = write_geotiff_dataset(tmp_path / "own", parts=2, size=(24, 32))
    missing = sorted((root / "masks").iterdir())[0]
    missing.unlink()
    with pytest.raises(DatasetError, match=rf"\(expected masks/{missing.name}\)"):
        DatasetSource(root)


def test_mask_size_differs_from_image(fresh_dataset):
    path = fresh_dataset / "Tile 1" / "masks" / "image_part_003.png"
    Image.open(path).convert("RGB").resize((10, 10)).save(path)
    with pytest.raises(DatasetError) as err:
        _read(fresh_dataset, 2)
    assert str(err.value).startswith(
        "Tile 1/masks/image_part_003.png: mask is 10x10 but its image is 80x72"
    )


def test_truncated_image(fresh_dataset):
    path = fresh_dataset / "Tile 1" / "images" / "image_part_001.jpg"
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DatasetError, match=r"image_part_001.jpg: .*(truncated|damaged)"):
        _read(fresh_dataset)


def test_not_an_image(fresh_dataset):
    path = fresh_dataset / "Tile 1" / "images" / "image_part_001.jpg"
    path.write_text("hello")
    with pytest.raises(DatasetError, match=r"image_part_001.jpg: cannot read"):
        _read(fresh_dataset)


def test_wrong_layout(tmp_path):
    (tmp_path / "pictures").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "pictures" / "a.png")
    with pytest.raises(
        DatasetError, match=r"no image folder with a label folder beside it; .* images/ \+ labels/"
    ):
        DatasetSource(tmp_path)


@pytest.mark.parametrize("folders", [["images", "masks"], [], ["Tile 1/images", "Tile 1/masks"]])
def test_a_folder_without_files_is_called_empty(tmp_path, folders):
    for folder in folders:
        (tmp_path / folder).mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"the dataset is empty, it holds no files; expected"):
        DatasetSource(tmp_path)


def test_empty_dataset(fresh_dataset):
    for tile in fresh_dataset.iterdir():
        for f in (tile / "images").iterdir():
            f.unlink()
        (tile / "images" / "notes.txt").write_text("no images here")
    with pytest.raises(DatasetError, match="empty"):
        DatasetSource(fresh_dataset)


def test_zip_that_is_not_the_dataset(tmp_path):
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as z:
        z.writestr("readme.txt", "something else")
    with pytest.raises(DatasetError, match="no image folder"):
        DatasetSource(tmp_path / "other.zip")


def test_a_zip_holding_a_name_twice_is_refused(tmp_path, monkeypatch):
    """Found by a review: GDAL reads an entry's first copy, zip tools its last, so a zip
    added to trained on the stale image; and the zip-bomb check looked at the last copy
    alone, so a bomb before a small copy of the same name got through."""
    path = tmp_path / "appended.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name"
        archive.writestr("images/a.tif", bytes(8 * 2**20))  # 8 MiB of zeros: a bomb here
        archive.writestr("masks/a.tif", b"mask")
        archive.writestr("images/a.tif", b"small")
    with pytest.raises(DatasetError, match=r"holds images/a.tif twice \(an archive added to\)"):
        DatasetSource(path)
    monkeypatch.setattr("aerialseg.data.raster.ZIP_RATIO_FROM", 2**20)
    with pytest.raises(InputError, match="would decompress to 8 MiB .* likely zip bomb"):
        check_zip_entry(f"/vsizip/{{{path}}}/images/a.tif")
    check_zip_entry(f"/vsizip/{{{path}}}/masks/a.tif")  # a small entry passes


def test_a_zip_entry_with_a_backslash_is_refused(tmp_path):
    """A review: GDAL reads "masks\\a.tif" as "masks/a.tif", so a 289 MiB mask so named
    was decoded in place of the checked "masks/a.tif", past the zip-bomb check."""
    path = tmp_path / "slanted.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("masks\\a.tif", bytes(8 * 2**20))
        archive.writestr("images/a.tif", b"image")
        archive.writestr("masks/a.tif", b"mask")
    with pytest.raises(DatasetError, match=r"'masks\\\\a.tif' holds a backslash, which GDAL reads"):
        DatasetSource(path)


@pytest.mark.parametrize(
    "stepping", ["y/../masks/a.tif", "../images/b.png", "./images/b.png", "t/./masks/b.png"]
)
def test_a_zip_entry_that_steps_out_of_its_folder_is_refused(tmp_path, monkeypatch, stepping):
    """A review: GDAL's /vsizip/ resolves "..", so a 4-byte "y/../masks/a.tif" opened the
    large entry "masks/a.tif" past the zip-bomb check, which looked at the small one, and
    "../images/a.png" read as a tile named "..". Such an archive is refused whole."""
    path = tmp_path / "stepping.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("images/a.tif", b"image")
        archive.writestr("masks/a.tif", bytes(8 * 2**20))
        archive.writestr(stepping, b"tiny")
    with pytest.raises(DatasetError) as err:
        DatasetSource(path)
    assert str(err.value) == (
        f"{path}: its entry {stepping!r} steps through '.' or '..', out of its folder or back"
        " in: refused, as such an archive could read or, extracted, write where it should"
        " not; ask its maker for a clean one"
    )
    # and a path to the entry that GDAL resolves is checked as what it opens
    monkeypatch.setattr("aerialseg.data.raster.ZIP_RATIO_FROM", 2**20)
    with pytest.raises(InputError, match="would decompress to 8 MiB"):
        check_zip_entry(f"/vsizip/{{{path}}}/y/../masks/a.tif")


def test_a_damaged_zip_is_one_line(tmp_path):
    """A review: a zip whose end record is whole but whose directory is damaged passed
    is_zipfile and then stopped inspect and train with a traceback."""
    path = tmp_path / "damaged.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("images/a.png", b"image")
    data = bytearray(path.read_bytes())
    directory = data.rfind(b"PK\x01\x02")
    data[directory : directory + 4] = b"XXXX"  # the central directory's first entry
    path.write_bytes(bytes(data))
    assert zipfile.is_zipfile(path)
    with pytest.raises(DatasetError, match=r"damaged.zip: a damaged zip archive \(Bad magic"):
        DatasetSource(path)


@pytest.mark.skipif(shutil.which("zip") is None, reason="the zip tool makes the encrypted archive")
def test_an_encrypted_zip_says_so(tiny_dataset, tmp_path):
    """A review: every entry of a password-protected zip was reported as damaged."""
    archive = tmp_path / "locked.zip"
    subprocess.run(
        ["zip", "-q", "-r", "-P", "secret", str(archive), "."], cwd=tiny_dataset, check=True
    )
    with pytest.raises(DatasetError, match=r"locked.zip: its entry '.+' is encrypted, which GDAL"):
        DatasetSource(archive)
    entry = zipfile.ZipFile(archive).namelist()[-1]  # as predict opens a zip's entry
    with pytest.raises(InputError, match=r"the entry is encrypted, which GDAL cannot read"):
        check_zip_entry(f"/vsizip/{{{archive}}}/{entry}")
    DatasetSource(zip_folder(tiny_dataset, tmp_path / "open.zip"))  # the same, unlocked, reads


def test_a_zip_whose_path_gdal_cannot_name_is_refused_as_such(tiny_dataset, tmp_path):
    """A review: every entry of 'br}ace.zip' was reported as a damaged image."""
    archive = zip_folder(tiny_dataset, tmp_path / "br}ace.zip")
    with pytest.raises(DatasetError) as err:
        DatasetSource(archive)
    assert str(err.value) == (
        f"{archive}: GDAL cannot read inside a zip archive whose path holds a '}}'; rename it"
        " or a folder above it, or extract it and pass the folder"
    )


def test_file_that_is_not_a_zip(tmp_path):
    (tmp_path / "archive.zip").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="not a zip archive"):
        DatasetSource(tmp_path / "archive.zip")


def test_missing_path(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        DatasetSource(tmp_path / "nope")


def test_flat_dataset_without_tiles(tiny_dataset, tmp_path):
    flat = tmp_path / "flat"
    shutil.copytree(tiny_dataset / "Tile 1", flat)
    source = DatasetSource(flat)
    assert len(source.pairs) == 9 and source.pairs[0].id == "images/image_part_001.jpg"
    assert source.pairs[0].group == "."


def test_a_palette_geotiff_is_read_as_colours_or_as_values(tmp_path):
    root = write_geotiff_dataset(tmp_path / "own", parts=1)
    with rasterio.open(root / "masks" / "scene_0.tif", "r+") as mask:
        mask.write_colormap(1, {v: (v * 10, v * 20, v * 30, 255) for v in range(6)})
        values = mask.read(1)
    by_value = _read(root, classes=VALUES, bands=(1, 2, 3))[1]
    by_colour = _read(root, classes=COLOURS, bands=(1, 2, 3))[1]
    labelled = (values > 0) & (by_value != 255)  # 255 also where the image has no data
    assert labelled.mean() > 0.5 and (by_value[labelled] == values[labelled] - 1).all()
    assert np.array_equal(by_value, by_colour)  # value k is class k-1, and so is colour k
    with rasterio.open(root / "masks" / "scene_0.tif", "r+") as mask:
        mask.nodata = 1  # its pixels hold no label, though 1 is a colour's index
    ids = _read(root, classes=COLOURS, bands=(1, 2, 3))[1]
    assert (ids[values == 1] == 255).all() and (ids[values == 2] != 255).any()
    # read as values, 1 is a class's mask_value: that class would never be learnt
    with pytest.raises(DatasetError, match="nodata value 1 is the mask_value of class"):
        _read(root, classes=VALUES, bands=(1, 2, 3))


def test_plain_pairs_open_without_a_warning(tiny_dataset):
    """A JPEG has no georeference: rasterio's NotGeoreferencedWarning says nothing to a
    user of a dataset of pictures."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotGeoreferencedWarning)
        image, ids = _read(tiny_dataset)
    assert image.shape == (72, 80, 3) and ids.shape == (72, 80)


def test_a_palette_png_is_read_as_colours_or_as_values(tmp_path):
    # predict's class rasters are palette PNGs of class ids; the Dubai masks are palette
    # PNGs of colours: which one is meant depends on the class table.
    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
    Image.new("RGB", (3, 1)).save(tmp_path / "images" / "a.png")
    mask = Image.fromarray(np.array([[0, 1, 2]], np.uint8), mode="P")
    mask.putpalette([10, 20, 30, 40, 50, 60, 70, 80, 90])
    mask.save(tmp_path / "masks" / "a.png")
    assert _read(tmp_path, classes=VALUES)[1].tolist() == [[255, 0, 1]]  # 0 is ignored
    table = ClassTable.from_dict({"classes": [{"name": "x", "mask_color": "#46505a"}]})
    assert _read(tmp_path, classes=table)[1].tolist() == [[255, 255, 0]]  # (70, 80, 90)


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_the_alpha_of_an_rgba_png_marks_nodata_as_in_predict(tmp_path):
    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
    rgba = np.full((4, 5, 4), 200, np.uint8)
    rgba[:, :2, 3] = 0  # transparent: no data
    Image.fromarray(rgba, "RGBA").save(tmp_path / "images" / "a.png")
    Image.fromarray(np.full((4, 5), 2, np.uint8)).save(tmp_path / "masks" / "a.png")
    rgb, ids = _read(tmp_path, classes=VALUES)
    assert rgb.shape == (4, 5, 3) and (ids[:, :2] == 255).all() and (ids[:, 2:] != 255).all()
    assert (rgb[:, 2:] == 200).all()


# ---- layouts: folder names of public datasets, and manifests ----


def renamed_copy(tiny_dataset, dest, images, masks, tiles=True):
    """tiny_dataset with its images/ and masks/ folders renamed (Tile 1 only if not tiles)."""
    for tile in ("Tile 1", "Tile 2") if tiles else ("Tile 1",):
        base = dest / tile if tiles else dest
        shutil.copytree(tiny_dataset / tile / "images", base / images)
        shutil.copytree(tiny_dataset / tile / "masks", base / masks)
    return dest


@pytest.mark.parametrize(
    ("images", "masks"),
    [("images", "masks"), ("image", "mask"), ("images", "labels"), ("img", "gt")],
)
@pytest.mark.parametrize("tiles", [True, False])
def test_each_layout_is_found(tiny_dataset, tmp_path, images, masks, tiles):
    root = renamed_copy(tiny_dataset, tmp_path / "ds", images, masks, tiles)
    for given in (root, root.parent):  # the root itself or the folder above it
        source = DatasetSource(given)
        assert len(source.pairs) == (18 if tiles else 9)
        first = source.pairs[0]
        # a flat dataset in a folder reads as one tile of that name, as before
        tile = "Tile 1/" if tiles else ("" if given == root else "ds/")
        assert first.id == f"{tile}{images}/image_part_001.jpg"
        assert first.mask == f"{tile}{masks}/image_part_001.png"
        assert source.root == ("ds" if tiles and given != root else ".")
        assert np.array_equal(_read(given)[1], _read(tiny_dataset)[1])


def test_a_layout_named_in_no_table_entry_is_refused_with_the_accepted_ones(tiny_dataset, tmp_path):
    root = renamed_copy(tiny_dataset, tmp_path / "ds", "img", "mask", tiles=False)
    with pytest.raises(DatasetError) as err:
        DatasetSource(root)
    for names in ("images/ + masks/", "image/ + mask/", "images/ + labels/", "img/ + gt/"):
        assert names in str(err.value)
    assert "manifest" in str(err.value)


def test_the_kaggle_names_win_a_tie_and_the_shallowest_root_wins(tiny_dataset, tmp_path):
    root = renamed_copy(tiny_dataset, tmp_path / "ds", "images", "labels", tiles=False)
    shutil.copytree(tiny_dataset / "Tile 1" / "masks", root / "masks")
    (root / "masks" / "image_part_009.png").unlink()
    source = DatasetSource(root, strict=False)
    assert {p.mask.split("/")[0] for p in source.pairs} == {"masks"}
    assert source.unpaired == [("images/image_part_009.jpg", "masks/image_part_009.png")]
    # a deeper layout of earlier rank loses to a shallower one
    deeper = renamed_copy(tiny_dataset, tmp_path / "deep", "img", "gt", tiles=False)
    renamed_copy(tiny_dataset, deeper / "sub" / "more", "images", "masks", tiles=False)
    assert DatasetSource(deeper).pairs[0].id == "img/image_part_001.jpg"


@pytest.mark.parametrize(
    "folder, first, second",
    [("masks", "image_part_002.png", "image_part_002.tif"),
     ("images", "image_part_002.jpg", "image_part_002.png")],
)  # fmt: skip
def test_two_files_of_one_name_are_refused_rather_than_paired_silently(
    fresh_dataset, folder, first, second
):
    """A review: a.tif won over a.png as the mask silently, and a.png and a.tif, images of
    one mask, landed in two splits."""
    tile = fresh_dataset / "Tile 1" / folder
    shutil.copy(tile / first, tile / second)
    kind = folder[:-1]
    message = (
        f"{fresh_dataset}: Tile 1/{folder}/{first} and Tile 1/{folder}/{second} are two"
        f" {kind}s of one name, 'image_part_002', so images and masks cannot pair by name;"
        " keep one of them"
    )
    with pytest.raises(DatasetError) as err:
        DatasetSource(fresh_dataset)
    assert str(err.value) == message


def test_images_without_masks_are_all_listed_when_not_strict(fresh_dataset):
    for name in ("Tile 1/masks/image_part_003.png", "Tile 2/masks/image_part_004.png"):
        (fresh_dataset / name).unlink()
    with pytest.raises(
        DatasetError, match=r"image_part_003.jpg: .*run aerialseg data inspect .*ds to list every"
    ):
        DatasetSource(fresh_dataset)
    source = DatasetSource(fresh_dataset, strict=False)
    assert source.unpaired == [
        ("Tile 1/images/image_part_003.jpg", "Tile 1/masks/image_part_003.png"),
        ("Tile 2/images/image_part_004.jpg", "Tile 2/masks/image_part_004.png"),
    ]
    assert len(source.pairs) == 16


def test_a_dataset_of_images_without_any_mask_is_not_empty_when_not_strict(tmp_path):
    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "images" / "a.png")
    (tmp_path / "masks" / "a.txt").write_text("")  # not a mask, though of the image's name
    source = DatasetSource(tmp_path, strict=False)
    assert source.pairs == [] and source.unpaired == [("images/a.png", "masks/a.png")]


def write_manifest_files(folder):
    """Two pairs under names no layout knows, as a manifest names them."""
    rng = np.random.default_rng(3)
    (folder / "pics").mkdir(parents=True)
    (folder / "truth").mkdir()
    for name in ("x", "y"):
        image, ids = synthetic_pair(rng, 12, 10)
        Image.fromarray(image).save(folder / "pics" / f"{name}.png")
        write_mask(folder / "truth" / f"{name}_label.png", ids)
    return [("pics/x.png", "truth/x_label.png"), ("pics/y.png", "truth/y_label.png")]


@pytest.mark.parametrize("kind", ["csv", "yaml", "yml"])
def test_a_manifest_names_the_pairs(tmp_path, kind):
    rows = write_manifest_files(tmp_path / "data")
    manifest = tmp_path / "data" / f"pairs.{kind}"
    if kind == "csv":
        manifest.write_text("label,image\n" + "".join(f"{m},{i}\n" for i, m in rows))
    else:
        manifest.write_text(yaml.safe_dump([{"image": i, "label": m} for i, m in rows]))
    source = DatasetSource(manifest)
    assert [(p.id, p.mask) for p in source.pairs] == rows
    assert source.root == "." and not source.is_zip
    rgb, _ = _read(manifest, 1)
    assert (rgb == np.array(Image.open(tmp_path / "data" / "pics" / "y.png"))).all()
    colours = np.array(Image.open(tmp_path / "data" / "truth" / "x_label.png"))
    assert np.array_equal(_read(manifest)[1], encode_mask(colours, DUBAI_CLASSES).ids)
    assert open_catalog(manifest, DUBAI_CLASSES).entries[0].scene_grid().width == 10


def test_a_manifest_csv_saved_by_excel_is_read(tmp_path):
    """Excel saves 'CSV UTF-8' with a byte-order mark and CRLF line ends."""
    rows = write_manifest_files(tmp_path / "data")
    text = "image,label\r\n" + "".join(f"{i},{m}\r\n" for i, m in rows)
    manifest = tmp_path / "data" / "pairs.csv"
    manifest.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert [(p.id, p.mask) for p in DatasetSource(manifest).pairs] == rows


def test_a_manifests_missing_label_is_unpaired(tmp_path):
    rows = write_manifest_files(tmp_path)
    (tmp_path / "pairs.csv").write_text(
        "image,label\n" + "".join(f"{i},{m}\n" for i, m in rows) + "pics/x.png,truth/none.png\n"
    )
    with pytest.raises(DatasetError, match="listed twice"):
        DatasetSource(tmp_path / "pairs.csv")
    (tmp_path / "pairs.csv").write_text("image,label\npics/x.png,truth/none.png\n")
    with pytest.raises(DatasetError, match=r"pics/x.png: image has no mask \(expected truth/none"):
        DatasetSource(tmp_path / "pairs.csv")
    source = DatasetSource(tmp_path / "pairs.csv", strict=False)
    assert source.pairs == [] and source.unpaired == [("pics/x.png", "truth/none.png")]


@pytest.mark.parametrize(
    "again",
    [
        "pics/../pics/x.png",  # another spelling of the same path
        "./pics/x.png",
        "pics//x.png",
        "linked/x.png",  # the same file through a link to its folder
    ],
)
def test_a_manifest_lists_each_image_once_however_it_is_written(tmp_path, again):
    """One image under two names would be two scenes, and a split could put it in train and
    test alike: a score on images the model trained on, with no warning."""
    rows = write_manifest_files(tmp_path)
    (tmp_path / "linked").symlink_to(tmp_path / "pics")
    text = "image,label\n" + "".join(f"{i},{m}\n" for i, m in rows)
    (tmp_path / "pairs.csv").write_text(text + f"{again},truth/x_label.png\n")
    with pytest.raises(DatasetError) as err:
        DatasetSource(tmp_path / "pairs.csv")
    named = os.path.normpath(again)
    also = "" if named == "pics/x.png" else " (as pics/x.png)"  # the first entry's spelling
    assert str(err.value) == (
        f"{tmp_path / 'pairs.csv'}: entry 3: {named} is listed twice: also entry 1{also}"
    )
    # each image once, written in any of those ways, is read under one tidy id
    (tmp_path / "pairs.csv").write_text(f"image,label\n{again},./truth/x_label.png\n")
    [pair] = DatasetSource(tmp_path / "pairs.csv").pairs
    assert pair.mask == "truth/x_label.png"
    assert pair.id == ("linked/x.png" if again.startswith("linked") else "pics/x.png")


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("m.csv", "img,mask\na.png,b.png\n", "needs the header line 'image,label', not 'img,mask'"),
        ("m.csv", "", "needs the header line 'image,label', not 'an empty file'"),
        ("m.csv", "image,label\n", "the dataset is empty"),
        ("m.csv", "image,label\npics/x.png\n", r"entry 1: '' is not a relative path"),
        (
            "m.csv",
            "image,label\n,pics/x.png\n",
            r"m.csv: entry 1: '' is not a relative path; give image and label paths relative"
            r" to the manifest's folder$",
        ),
        ("m.csv", "image,label\n/abs/x.png,a.png\n", "entry 1: '/abs/x.png' is not a relative"),
        ("m.csv", "image,label\npics/x.png,/abs/m.png\n", "'/abs/m.png' is not a relative"),
        # found by a review: said "image https:/example.com/a.tif: no such file"
        (
            "m.csv",
            "image,label\nhttps://example.com/a.tif,a.png\n",
            r"entry 1: 'https://example.com/a.tif' is a URL; a manifest lists local files,"
            r" relative to its folder \(pass a URL to --data with --labels\)$",
        ),
        (
            "m.csv",
            "image,label\npics/x.png,a\npics/z.png,a\n",
            "entry 2: image pics/z.png: no such",
        ),
        # a review: a folder was "no such file"
        ("m.csv", "image,label\npics,truth/x_label.png\n", "entry 1: image pics is a folder;"),
        ("m.csv", "image,label\npics/x.png,truth\n", "entry 1: label truth is a folder;"),
        # a review: Path.is_file raised "File name too long"
        (
            "m.csv",
            f"image,label\n{'x' * 5000}.png,a.png\n",
            r"entry 1: .{100}\.\.\.: File name too long$",
        ),
        (
            "m.csv",
            f"image,label\npics/x.png,{'y' * 5000}\n",
            r"entry 1: .{100}\.\.\.: File name too long$",
        ),
        ("m.yaml", "image: a.png\n", r"a list of entries \{image: PATH, label: PATH\}"),
        ("m.yaml", "- {image: a.png}\n", r"a list of entries"),
        ("m.yaml", "- {image: a.png, label: 3}\n", r"a list of entries"),
        ("m.yaml", "- [a.png, b.png]\n", r"a list of entries"),
        ("m.yaml", "- {image: [\n", "is not valid YAML"),
        ("m.yml", "[]\n", "the dataset is empty"),
    ],
)
def test_bad_manifests(tmp_path, name, text, message):
    write_manifest_files(tmp_path)
    (tmp_path / name).write_text(text)
    with pytest.raises(DatasetError, match=message):
        DatasetSource(tmp_path / name)


def test_an_unreadable_manifest(tmp_path):
    (tmp_path / "m.csv").write_bytes(b"\xff\xfe\xfa image")
    with pytest.raises(DatasetError, match="cannot read manifest"):
        DatasetSource(tmp_path / "m.csv")


def test_a_file_neither_zip_nor_manifest_names_what_is_accepted(tmp_path):
    (tmp_path / "data.txt").write_text("image,label\n")
    with pytest.raises(DatasetError, match=r"not a zip archive, a manifest \(.csv, .yaml\)"):
        DatasetSource(tmp_path / "data.txt")


# ---- masks of another size than their image ----


def test_a_plain_mask_of_another_size_is_resampled_nearest_on_request(fresh_dataset):
    path = fresh_dataset / "Tile 1" / "masks" / "image_part_003.png"
    small = Image.open(path).resize((20, 18), Image.Resampling.NEAREST)
    small.save(path)
    pair = DatasetSource(fresh_dataset).pairs[2]
    with pytest.raises(DatasetError) as err:
        _read(fresh_dataset, 2)
    assert "mask is 20x18 but its image is 80x72" in str(err.value)
    assert "; --resize-masks resamples such masks to their image's size (nearest)" in str(err.value)
    with pytest.raises(DatasetError, match=r"20x18 .*run aerialseg data inspect .* to list every"):
        decoded(fresh_dataset, [pair.id], DUBAI_CLASSES)
    (scene,) = decoded(fresh_dataset, [pair.id], DUBAI_CLASSES, resize_masks=True)
    expected = np.array(small.convert("RGB").resize((80, 72), Image.Resampling.NEAREST))
    assert np.array_equal(scene.mask.numpy(), encode_mask(expected, DUBAI_CLASSES).ids)


def test_a_palette_mask_resamples_its_indices(fresh_dataset):
    path = fresh_dataset / "Tile 2" / "masks" / "image_part_001.png"  # a palette tile
    small = Image.open(path).resize((33, 31), Image.Resampling.NEAREST)
    small.save(path)
    ids = _read(fresh_dataset, 9, classes=VALUES, resize_masks=True)[1]
    values = np.array(small.resize((80, 72), Image.Resampling.NEAREST))
    assert np.array_equal(ids, encode_mask(values, VALUES).ids)


def test_a_damaged_mask_fails_with_one_line(fresh_dataset):
    path = fresh_dataset / "Tile 1" / "masks" / "image_part_001.png"
    Image.open(path).convert("RGB").resize((40, 36)).save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DatasetError, match="image_part_001.png: the file is truncated"):
        _read(fresh_dataset, resize_masks=True)


# ---- what mutation testing found unguarded (bench/mutation.py, data/source.py) ----


def _pair_folder(tmp_path, image: Image.Image, mask: Image.Image, mask_name="a.png"):
    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir(parents=True, exist_ok=True)
    image.save(tmp_path / "images" / "a.png")
    mask.save(tmp_path / "masks" / mask_name)
    return tmp_path


def test_mask_pixel_modes_are_colours_values_or_a_one_line_refusal(tmp_path):
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255
    red = ClassTable.from_dict({"classes": [{"name": "red", "mask_color": "#c80000"}]})
    folder = _pair_folder(tmp_path / "rgba", Image.new("RGB", (5, 4)), Image.fromarray(rgba))
    assert (_read(folder, classes=red)[1] == 0).all()
    grey = Image.fromarray(np.full((4, 5), 3, np.uint8))
    folder = _pair_folder(tmp_path / "l", Image.new("RGB", (5, 4)), grey)
    assert (_read(folder, classes=VALUES)[1] == 2).all()
    folder = _pair_folder(tmp_path / "la", Image.new("RGB", (5, 4)), Image.new("LA", (5, 4)))
    with pytest.raises(DatasetError) as err:
        _read(folder, classes=VALUES)
    assert str(err.value).startswith(
        "masks/a.png: a mask has one band (class values) or three (colours), this one 2"
    )


def test_plain_images_are_rgb_or_the_bands_asked(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0], rgb[..., 2] = 10, 30
    folder = _pair_folder(tmp_path / "rgb", Image.fromarray(rgb), Image.new("RGB", (5, 4)))
    assert _read(folder)[0][0, 0].tolist() == [10, 0, 30]
    assert _read(folder, bands=(3, 2, 1))[0][0, 0].tolist() == [30, 0, 10]
    grey = Image.fromarray(np.full((4, 5), 9, np.uint8))
    folder = _pair_folder(tmp_path / "grey", grey, Image.new("RGB", (5, 4)))
    assert _read(folder, bands=(1, 1, 1))[0].tolist() == [[[9] * 3] * 5] * 4


def test_damaged_files_are_named_in_whole_sentences(tmp_path):
    _pair_folder(tmp_path, Image.new("RGB", (50, 40)), Image.new("RGB", (50, 40)))
    mask = tmp_path / "masks" / "a.png"
    data = mask.read_bytes()
    mask.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError) as err:
        _read(tmp_path)
    assert str(err.value).startswith("masks/a.png: the file is truncated or damaged (")
    assert "); replace it or remove it" in str(err.value)
    mask.write_bytes(b"not an image at all")
    with pytest.raises(DatasetError) as err:
        _read(tmp_path)
    assert str(err.value).startswith("masks/a.png: cannot read the file (")
    assert (
        "); it is damaged, or not a GeoTIFF, PNG or JPEG (convert a VRT or another format with"
        " gdal_translate -of COG): replace it or remove it from the dataset"
    ) in str(err.value)


def test_a_flat_zip_reads_its_files(tmp_path):
    folder = tmp_path / "flat"
    _pair_folder(folder, Image.new("RGB", (5, 4), (1, 2, 3)), Image.new("RGB", (5, 4)))
    archive = tmp_path / "flat.zip"
    zip_folder(folder, archive)
    assert DatasetSource(archive).root == "." and _read(archive)[0][0, 0].tolist() == [1, 2, 3]
    with pytest.raises(DatasetError, match=f"^{tmp_path / 'empty.zip'}: no image folder"):
        empty = tmp_path / "empty.zip"
        with zipfile.ZipFile(empty, "w") as z:
            z.writestr("readme.txt", "x")
        DatasetSource(empty)
    with pytest.raises(DatasetError, match=f"^{tmp_path / 'nothing'}: no image folder"):
        (tmp_path / "nothing").mkdir()
        (tmp_path / "nothing" / "readme.txt").write_text("x")
        DatasetSource(tmp_path / "nothing")


def test_size_messages_name_the_flag_and_the_fix(tmp_path):
    folder = _pair_folder(tmp_path, Image.new("RGB", (5, 4)), Image.new("RGB", (3, 2)))
    for flags, said in ((Flags(), "--resize-masks"), (TRAINING_FLAGS, "--resize-masks")):
        with pytest.raises(DatasetError) as err:
            _read(folder, flags=flags)
        assert str(err.value).startswith(
            f"masks/a.png: mask is 3x2 but its image is 5x4; masks must match their image pixel"
            f" for pixel; {said} resamples such masks to their image's size (nearest)"
        )
    with pytest.raises(DatasetError, match="; resize_masks=true resamples such masks"):
        _read(folder, flags=Flags(resize_masks="resize_masks=true"))


@pytest.fixture(scope="module")
def zip_bomb(tmp_path_factory):
    """A dataset zip of 1.6 MB whose images are 300 MiB and 64 MiB of zeros, and one image
    that is not an image. Written a MiB at a time: the test never holds an entry whole."""
    path = tmp_path_factory.mktemp("bomb") / "archive.zip"
    mask = io.BytesIO()
    Image.new("RGB", (4, 4)).save(mask, "PNG")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for stem in ("x", "y", "z"):
            archive.writestr(f"Tile 1/masks/{stem}.png", mask.getvalue())
        archive.writestr("Tile 1/images/z.png", b"not an image")
        for name, mib in (("x.jpg", 300), ("y.tif", 64)):
            with archive.open(f"Tile 1/images/{name}", "w") as entry:
                for _ in range(mib):
                    entry.write(bytes(2**20))
    return path


def read_traced(source, rel):
    """The error reading the scene of image ``rel`` raises, and the most memory Python held
    meanwhile."""
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError) as err:
            catalog = open_catalog(source.path, DUBAI_CLASSES, strict=False)
            catalog.read([rel], Reading())
        text = str(err.value).split(" (run aerialseg data inspect")[0]  # the hint, where given
        return text, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_zip_bomb_is_refused_from_its_sizes_before_it_is_decompressed(zip_bomb):
    source = DatasetSource(zip_bomb)
    assert zip_bomb.stat().st_size < 2e6
    text, peak = read_traced(source, "Tile 1/images/x.jpg")
    assert peak < 8 * 2**20  # the 300 MiB were never read
    assert text == (
        f"{zip_bomb}:Tile 1/images/x.jpg: the entry would decompress to 300 MiB from 1.3 MiB,"
        " over the limits for a zip entry (4 GiB, or 100 times its compressed size above 256"
        " MiB): refused as a likely zip bomb; if the file is genuine, extract the archive and"
        " pass its folder"
    )
    scene = open_catalog(zip_bomb, DUBAI_CLASSES, strict=False).scenes["Tile 1/images/x.jpg"]
    with pytest.raises(DatasetError, match="likely zip bomb"):
        scene.look(Reading())  # data inspect's way in: the same


def test_zip_entries_are_read_as_they_are_decoded_and_errors_name_them(zip_bomb, monkeypatch):
    source = DatasetSource(zip_bomb)
    # under the bounds, an entry is streamed: PIL and GDAL read as much as they need
    monkeypatch.setattr("aerialseg.data.raster.ZIP_RATIO_FROM", 2**40, raising=False)
    text, peak = read_traced(source, "Tile 1/images/x.jpg")
    assert peak < 8 * 2**20  # not the 300 MiB of the entry
    assert text.startswith(f"{zip_bomb}:Tile 1/images/x.jpg: cannot read the file (")
    text, peak = read_traced(source, "Tile 1/images/y.tif")  # GDAL's /vsizip/
    assert peak < 8 * 2**20
    assert text == (
        f"{zip_bomb}:Tile 1/images/y.tif: cannot read the file (not recognized as being in a"
        " supported file format); it is damaged, or not a GeoTIFF, PNG or JPEG (convert a VRT or"
        " another format with gdal_translate -of COG): replace it or remove it from the dataset"
    )
    text, _ = read_traced(source, "Tile 1/images/z.png")
    assert text == (
        f"{zip_bomb}:Tile 1/images/z.png: cannot read the file (not recognized as being in a"
        " supported file format); it is damaged, or not a GeoTIFF, PNG or JPEG (convert a VRT or"
        " another format with gdal_translate -of COG): replace it or remove it from the dataset"
    )
    # the size bound holds whatever the ratio
    monkeypatch.setattr("aerialseg.data.raster.ZIP_MAX_BYTES", 2**30 // 32, raising=False)
    assert "the entry would decompress to 64 MiB" in read_traced(source, "Tile 1/images/y.tif")[0]
    with rasterio.open(DatasetSource(zip_bomb).gdal_path("Tile 1/masks/z.png")) as mask:
        assert mask.shape == (4, 4)  # the archive's other entries read


def test_tile_folders_linked_in_are_read_and_a_loop_of_links_ends(tmp_path):
    """A review: a tile folder that is a symbolic link was left out without a word
    (Path.rglob does not follow links), and images/ and masks/ as links made the dataset
    'empty'."""
    import shutil

    elsewhere = write_dataset(tmp_path / "elsewhere", tiles=2, parts=3)
    root = tmp_path / "ds"
    root.mkdir()
    (root / "Tile 1").symlink_to(elsewhere / "Tile 1")
    (root / "Tile 2").mkdir()
    for part in ("images", "masks"):
        (root / "Tile 2" / part).symlink_to(elsewhere / "Tile 2" / part)
    shutil.copytree(elsewhere / "Tile 1", root / "Tile 3")
    (root / "Tile 3" / "loop").symlink_to(root)  # a link back up: read once
    ids = sorted(pair.id for pair in DatasetSource(root).pairs)
    assert [i.split("/")[0] for i in ids] == ["Tile 1"] * 3 + ["Tile 2"] * 3 + ["Tile 3"] * 3
