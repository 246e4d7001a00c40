import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from aerialseg.data.classes import DUBAI_CLASSES, IGNORE_INDEX, ClassTable, encode_mask
from aerialseg.data.crops import RandomCropDataset, ResizedDataset
from aerialseg.data.scenes import TRAINING_FLAGS, LabelledImage
from aerialseg.data.transforms import BandJitter, RandomRot90, RandomScaledCrop, crop_transform
from aerialseg.errors import ClassTableError, DatasetError
from tests.helpers.geotiff import VALUE_CLASSES, write_geotiff_dataset
from tests.helpers.scenes import decoded


def coded_item(h=50, w=70) -> LabelledImage:
    """Image and mask that encode each pixel's position, so misalignment is visible."""
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    code = (ys * w + xs) % 250
    image = torch.stack([code, code, code]).to(torch.uint8)
    return LabelledImage("x", image, code.to(torch.uint8))


def test_geometric_augmentation_keeps_image_and_mask_aligned():
    torch.manual_seed(0)
    item = coded_item()
    transform = crop_transform(32, augment=True)
    # Colour jitter changes the image values, so align on geometry alone: drop jitter.
    transform.transforms = transform.transforms[:-1]
    seen = set()
    for _ in range(40):
        image, mask = transform(tv_tensors.Image(item.image), tv_tensors.Mask(item.mask))
        assert image.shape == (3, 32, 32) and mask.shape == (32, 32)
        assert torch.equal(image[0], mask)
        seen.add(tuple(image[0, 0, :2].tolist()))
    assert len(seen) > 20  # crops, flips and rotations really vary


def test_colour_jitter_changes_image_not_mask():
    item = coded_item()
    with_jitter = crop_transform(48, augment=True)
    without = crop_transform(48, augment=True)
    without.transforms = without.transforms[:-1]
    # Same seed: geometry parameters are drawn first, so both see the same crop and turns.
    torch.manual_seed(1)
    image_j, mask_j = with_jitter(tv_tensors.Image(item.image), tv_tensors.Mask(item.mask))
    torch.manual_seed(1)
    image, mask = without(tv_tensors.Image(item.image), tv_tensors.Mask(item.mask))
    assert torch.equal(mask_j, mask)
    assert not torch.equal(image_j, image)
    assert (image_j.float() - image.float()).abs().mean() < 60  # mild, not a new picture


def test_colour_jitter_strength_is_the_configured_one():
    item = coded_item()
    plain = crop_transform(48, augment=True, color_jitter=0.0)
    assert not any(isinstance(t, v2.ColorJitter) for t in plain.transforms)
    strong = crop_transform(48, augment=True, color_jitter=0.4)
    (jitter,) = [t for t in strong.transforms if isinstance(t, v2.ColorJitter)]
    assert jitter.brightness == jitter.contrast == jitter.saturation == (0.6, 1.4)
    torch.manual_seed(1)
    image, mask = plain(tv_tensors.Image(item.image), tv_tensors.Mask(item.mask))
    assert torch.equal(image[0], mask)  # values untouched: the image still codes its mask


def test_band_jitter_follows_the_rgb_definitions_over_any_band_count():
    image = tv_tensors.Image(torch.tensor([[[100.0]], [[50.0]], [[0.0]], [[250.0]]]))
    jitter = BandJitter(0.2)

    def apply(brightness=1.0, contrast=1.0, saturation=1.0):
        params = {"brightness": brightness, "contrast": contrast, "saturation": saturation}
        return jitter.transform(image, params).flatten().tolist()

    assert apply() == [100, 50, 0, 250]
    assert apply(brightness=1.2) == [120, 60, 0, 255]  # clipped at 255
    # one pixel: its mean over bands is the image mean, 100; contrast halves the distance
    assert apply(contrast=0.5) == [100, 75, 50, 175]
    assert apply(saturation=0.0) == [100, 100, 100, 100]
    mask = tv_tensors.Mask(torch.ones(1, 1, dtype=torch.uint8))
    assert jitter.transform(mask, {"brightness": 2.0}) is mask


def test_four_band_crops_are_jittered_by_band_not_torchvision():
    torch.manual_seed(0)
    item = coded_item()
    four = LabelledImage("x", torch.cat([item.image, item.image[:1] // 2]), item.mask)
    transform = crop_transform(32, augment=True, bands=4)
    assert isinstance(transform.transforms[-1], BandJitter)
    assert not any(isinstance(t, v2.ColorJitter) for t in transform.transforms)
    dataset = RandomCropDataset([four], size=32, length=4, augment=True)
    for index in range(len(dataset)):
        image, mask = dataset[index]
        assert image.shape == (4, 32, 32) and mask.shape == (32, 32)
        assert image.min() >= 0 and image.max() <= 255


def test_rotated_crops_stay_images_and_masks_so_band_jitter_still_applies():
    image = tv_tensors.Image(torch.arange(4 * 8 * 8, dtype=torch.uint8).reshape(4, 8, 8))
    mask = tv_tensors.Mask(torch.zeros(8, 8, dtype=torch.uint8))
    rotate = RandomRot90()
    for k in range(1, 4):
        turned_image = rotate.transform(image, {"k": k})
        turned_mask = rotate.transform(mask, {"k": k})
        assert type(turned_image) is tv_tensors.Image and type(turned_mask) is tv_tensors.Mask
    # after a turn, BandJitter still changes the image (it passed plain tensors by)
    jitter = BandJitter(0.5)
    params = {"brightness": 1.5, "contrast": 1.0, "saturation": 1.0}
    jittered = jitter.transform(rotate.transform(image, {"k": 1}), params)
    assert not torch.equal(jittered, rotate.transform(image, {"k": 1}))


def test_crop_larger_than_image_pads_mask_with_ignore():
    item = coded_item(20, 20)
    ds = RandomCropDataset([item], size=32, length=3, augment=False)
    image, mask = ds[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert (mask == IGNORE_INDEX).sum() == 32 * 32 - 20 * 20


def test_crops_pick_images_by_area():
    small, big = coded_item(32, 32), coded_item(96, 96)
    ds = RandomCropDataset([small, big], size=32, length=1, augment=False)
    assert torch.allclose(ds.probs, torch.tensor([0.1, 0.9]))


def test_resized_dataset_squashes_whole_images(tiny_dataset):
    items = decoded(tiny_dataset, ["Tile 1/images/image_part_001.jpg"], DUBAI_CLASSES)
    image, mask = ResizedDataset(items, 32)[0]
    assert image.shape == (3, 32, 32) and mask.shape == (32, 32)
    assert set(mask.unique().tolist()) <= set(items[0].mask.unique().tolist())


def row_coded_item(h=120, w=90) -> LabelledImage:
    """Every pixel of image and mask holds its row number."""
    rows = torch.arange(h)[:, None].expand(h, w).to(torch.uint8)
    return LabelledImage("rows", torch.stack([rows, rows, rows]), rows.clone())


def test_scaled_crops_zoom_image_and_mask_together():
    item = row_coded_item()
    for scale, row_step in [(2.0, 2), (0.5, 0.5)]:
        transform = RandomScaledCrop(32, (scale, scale))
        for seed in range(5):
            torch.manual_seed(seed)
            image, mask = transform(tv_tensors.Image(item.image), tv_tensors.Mask(item.mask))
            assert image.shape == (3, 32, 32) and mask.shape == (32, 32)
            rows = mask[:, 0].float()
            # A square of 64 px shrunk to 32 skips every other row; one of 16 px grown to 32
            # repeats each row twice.
            assert torch.allclose(rows[1:] - rows[:-1], torch.full((31,), float(row_step)), atol=1)
            assert abs((rows[-1] - rows[0]).item() - 31 * row_step) <= 1
            # The image was resampled from the same square: its rows agree with the mask's.
            assert (image[0, :, 0].float() - rows).abs().max() <= 1.5


def test_scaled_crop_never_exceeds_the_image():
    item = row_coded_item(40, 50)
    transform = RandomScaledCrop(32, (3.0, 3.0))  # asks for 96 px of a 40 px tall image
    torch.manual_seed(0)
    _, mask = transform(tv_tensors.Image(item.image), tv_tensors.Mask(item.mask))
    assert mask.shape == (32, 32) and int(mask.max()) <= 39 and IGNORE_INDEX not in mask


def test_scale_range_comes_from_the_config_into_the_crops():
    item = row_coded_item()
    ds = RandomCropDataset([item], size=32, length=1, augment=True, scale_range=(2.0, 2.0))
    torch.manual_seed(0)
    _, mask = ds[0]
    # 64 rows shrunk into 32 (a crop at native scale would span 31), whichever way the
    # flips and turns put them.
    assert int(mask.max()) - int(mask.min()) >= 60


def test_nodata_pixels_of_an_image_are_left_out_of_its_mask(tmp_path):
    root = write_geotiff_dataset(tmp_path / "own", parts=2)
    table = ClassTable.from_dict(VALUE_CLASSES)
    ids = ["images/scene_0.tif", "images/scene_1.tif"]
    items = decoded(root, ids, table, bands=(3, 2, 1))
    for item in items:
        assert item.image.shape == (3, 72, 80)
        assert (item.mask[:, -3:] == IGNORE_INDEX).all()  # the image's nodata columns
        assert (item.mask[:2, :] == IGNORE_INDEX).all()  # the mask's ignore value 0
        assert (item.mask[2:, :-3] < 5).all()  # values 1-5 became class ids 0-4


def test_class_balanced_crops_find_a_rare_class():
    mask = torch.zeros(256, 256, dtype=torch.uint8)
    mask[200:208, 40:48] = 1  # 0.1 % of the pixels
    mask[:4] = IGNORE_INDEX  # ignored pixels are no class to centre on
    item = LabelledImage("x", torch.zeros(3, 256, 256, dtype=torch.uint8), mask)

    def share_with_rare_class(balanced: float) -> float:
        torch.manual_seed(0)
        ds = RandomCropDataset([item], size=32, length=200, augment=False, class_balanced=balanced)
        return sum(bool((ds[i][1] == 1).any()) for i in range(len(ds))) / len(ds)

    assert share_with_rare_class(0.0) < 0.1
    assert 0.4 < share_with_rare_class(1.0) < 0.6  # one class of two, drawn uniformly


def test_resize_masks_gives_the_nearest_resampled_mask(fresh_dataset):
    path = fresh_dataset / "Tile 1" / "masks" / "image_part_004.png"
    small = Image.open(path).resize((30, 25), Image.Resampling.NEAREST)
    small.save(path)
    ids = ["Tile 1/images/image_part_004.jpg"]
    with pytest.raises(DatasetError, match=r"30x25 .*; --resize-masks resamples such masks"):
        decoded(fresh_dataset, ids, DUBAI_CLASSES, flags=TRAINING_FLAGS)
    (item,) = decoded(fresh_dataset, ids, DUBAI_CLASSES, resize_masks=True)
    expected = np.array(small.convert("RGB").resize((80, 72), Image.Resampling.NEAREST))
    assert item.mask.shape == (72, 80)
    assert (item.mask.numpy() == encode_mask(expected, DUBAI_CLASSES).ids).all()


def test_training_errors_name_the_training_setting(fresh_dataset):
    path = fresh_dataset / "Tile 1" / "masks" / "image_part_004.png"
    Image.new("RGB", (80, 72), (1, 2, 3)).save(path)
    ids = ["Tile 1/images/image_part_004.jpg"]
    with pytest.raises(ClassTableError, match=r"set by max_unknown=\)"):
        decoded(fresh_dataset, ids, DUBAI_CLASSES, flags=TRAINING_FLAGS)
    with pytest.raises(ClassTableError, match=r"set by --max-unknown\)"):
        decoded(fresh_dataset, ids, DUBAI_CLASSES)
