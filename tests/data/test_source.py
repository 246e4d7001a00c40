import shutil
import zipfile

import pytest
from PIL import Image

from aerialseg.data.source import DatasetSource
from aerialseg.errors import DatasetError


def zip_folder(folder, archive):
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(folder.rglob("*")):
            z.write(path, path.relative_to(folder.parent))
    return archive


def test_folder_and_parent_folder_and_zip_list_the_same_pairs(tiny_dataset, tmp_path):
    direct = DatasetSource(tiny_dataset)
    parent = DatasetSource(tiny_dataset.parent)
    archive = DatasetSource(zip_folder(tiny_dataset, tmp_path / "archive.zip"))
    assert len(direct.pairs) == 18
    assert direct.pairs == parent.pairs == archive.pairs
    assert direct.pairs[0].id == "Tile 1/images/image_part_001.jpg"
    assert direct.pairs[0].mask == "Tile 1/masks/image_part_001.png"
    pair = direct.pairs[10]
    assert (archive.read_image(pair) == direct.read_image(pair)).all()
    assert (archive.read_mask_rgb(pair) == direct.read_mask_rgb(pair)).all()


def test_image_without_mask(fresh_dataset):
    (fresh_dataset / "Tile 2" / "masks" / "image_part_004.png").unlink()
    with pytest.raises(DatasetError, match=r"Tile 2/images/image_part_004.jpg: image has no mask"):
        DatasetSource(fresh_dataset)


def test_mask_size_differs_from_image(fresh_dataset):
    path = fresh_dataset / "Tile 1" / "masks" / "image_part_003.png"
    Image.open(path).convert("RGB").resize((10, 10)).save(path)
    source = DatasetSource(fresh_dataset)
    with pytest.raises(
        DatasetError, match=r"image_part_003.png: mask is 10x10 but its image is 80x72"
    ):
        source.check_sizes()


def test_truncated_image(fresh_dataset):
    path = fresh_dataset / "Tile 1" / "images" / "image_part_001.jpg"
    path.write_bytes(path.read_bytes()[:300])
    source = DatasetSource(fresh_dataset)
    with pytest.raises(DatasetError, match=r"image_part_001.jpg: .*(truncated|damaged)"):
        source.read_image(source.pairs[0])


def test_not_an_image(fresh_dataset):
    path = fresh_dataset / "Tile 1" / "images" / "image_part_001.jpg"
    path.write_text("hello")
    source = DatasetSource(fresh_dataset)
    with pytest.raises(DatasetError, match=r"image_part_001.jpg: cannot read"):
        source.read_image(source.pairs[0])


def test_wrong_layout(tmp_path):
    (tmp_path / "pictures").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "pictures" / "a.png")
    with pytest.raises(DatasetError, match="no images/ folder with a masks/ beside it"):
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
    with pytest.raises(DatasetError, match="no images/ folder"):
        DatasetSource(tmp_path / "other.zip")


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
