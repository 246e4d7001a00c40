"""The catalog: every input form opens into scenes, read the same whatever the memory."""

import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from rasterio.windows import Window

from aerialseg.data.catalog import LabelSpec, open_catalog
from aerialseg.data.classes import DUBAI_CLASSES, ClassTable, encode_mask
from aerialseg.data.crops import RandomCropDataset
from aerialseg.data.scenes import LabelledImage, PlainPair, RasterScene, Reading
from aerialseg.errors import DatasetError
from tests.helpers.geotiff import VALUE_CLASSES, write_geotiff_dataset
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


def _pil_decoded(root, ids, table) -> list[LabelledImage]:
    """The Dubai pairs as the notebook and the first loader read them: PIL, RGB, colours
    to class ids (bfcda90's test showed the old loader gives these very crops)."""
    items = []
    for rel in ids:
        image = np.array(Image.open(root / ROOT / rel).convert("RGB"))
        mask_rel = rel.replace("/images/", "/masks/").rsplit(".", 1)[0] + ".png"
        mask = np.array(Image.open(root / ROOT / mask_rel).convert("RGB"))
        ids_ = encode_mask(mask, table).ids
        items.append(
            LabelledImage(rel, torch.from_numpy(image).permute(2, 0, 1), torch.from_numpy(ids_))
        )
    return items


@requires_real_data()
def test_dubai_pairs_decode_as_pil_reads_them_and_crop_alike():
    catalog = open_catalog(REAL_DATA, DUBAI_CLASSES)
    ids = [e.id for e in catalog.entries if e.group == "Tile 1"][:3]
    assert all(isinstance(catalog.scenes[i], PlainPair) for i in ids)
    new = catalog.read(ids, Reading(max_unknown=1.0))
    old = _pil_decoded(REAL_DATA, ids, DUBAI_CLASSES)
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
            catalog.read(["s0.tif", "s1.tif"], Reading())
    (scene,) = catalog.read(["s0.tif"], Reading(bands=(1,) * 3))
    assert scene.image.shape == (3, 40, 50)
