"""Where training crops are cut (regions, edges, class centres) and the whole images and
blocks validation reads."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from rasterio.windows import Window
from torchvision import tv_tensors
from torchvision.transforms import v2

from aerialseg.data.classes import IGNORE_INDEX
from aerialseg.data.crops import (
    CLASS_GRID,
    RandomCropDataset,
    ResizedDataset,
    WholeImageDataset,
    _class_pixels,
)
from aerialseg.data.scenes import LabelledImage
from aerialseg.data.transforms import BandJitter


def positions(h: int, w: int, sid: str = "x") -> LabelledImage:
    """Band 0 holds each pixel's row, band 1 its column, the mask its row too (mod 250)."""
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    image = torch.stack([ys % 250, xs % 250, torch.zeros_like(ys)]).to(torch.uint8)
    return LabelledImage(sid, image, (ys % 250).to(torch.uint8))


def test_crops_stay_inside_their_region_and_reach_its_every_edge():
    scene = positions(200, 200)
    region = Window(30, 50, 70, 60)  # columns 30..99, rows 50..109
    torch.manual_seed(0)
    ds = RandomCropDataset([scene], size=32, length=300, augment=False, regions=[(0, region)])
    rows, cols = set(), set()
    for i in range(len(ds)):
        image, mask = ds[i]
        assert image.shape == (3, 32, 32) and (mask != IGNORE_INDEX).all()
        rows |= set(image[0].unique().long().tolist())
        cols |= set(image[1].unique().long().tolist())
    assert min(rows) == 50 and max(rows) == 109
    assert min(cols) == 30 and max(cols) == 99


def test_a_region_smaller_than_the_crop_is_read_whole_and_padded():
    scene = positions(100, 100)
    regions = [(0, Window(10, 20, 8, 40))]
    ds = RandomCropDataset([scene], size=32, length=4, augment=False, regions=regions)
    image, mask = ds[0]
    labelled = mask != IGNORE_INDEX
    assert int(labelled.sum()) == 8 * 32  # every column of it, 32 of its 40 rows
    assert set(image[1][labelled].long().tolist()) == set(range(10, 18))


def test_regions_are_drawn_by_area_across_scenes():
    first, second = positions(64, 64, "a"), positions(64, 64, "b")
    second.image[2] = 1  # tells the scenes apart
    regions = [(0, Window(0, 0, 32, 32)), (1, Window(0, 0, 64, 48))]
    torch.manual_seed(1)
    ds = RandomCropDataset([first, second], size=16, length=600, augment=False, regions=regions)
    assert ds.probs.tolist() == pytest.approx([0.25, 0.75])
    share = sum(int(ds[i][0][2, 0, 0]) for i in range(len(ds))) / len(ds)
    assert 0.69 < share < 0.81
    assert all(int(ds[i][0][0].max()) < 48 for i in range(50))  # never below the region


def test_scaled_crops_read_a_window_of_the_largest_scale():
    scene = positions(300, 300)
    ds = RandomCropDataset([scene], size=40, length=1, augment=True, scale_range=(0.5, 1.5))
    assert ds.cut == 60
    unscaled = RandomCropDataset([scene], 40, 1, augment=False, scale_range=(0.5, 1.5))
    assert unscaled.cut == 40  # no augmentation: no scaling
    assert RandomCropDataset([scene], size=40, length=1, augment=True).cut == 40


def test_crops_around_a_class_hold_its_pixel_and_stay_in_the_region():
    mask = torch.zeros(160, 160, dtype=torch.uint8)
    mask[8:16, 144:152] = 2  # a corner of the region: the crop is pushed inside it
    mask[100:108, 100:108] = 3  # outside the region: never a centre
    scene = LabelledImage("x", positions(160, 160).image, mask)
    region = Window(0, 0, 152, 96)
    torch.manual_seed(3)
    ds = RandomCropDataset([scene], 32, 200, False, class_balanced=1.0, regions=[(0, region)])
    assert [p[:, 0].unique().tolist() for p in ds.class_pixels] == [[0], [0]]  # classes 0, 2
    for _ in range(100):
        item = ds._around_a_class()
        assert item.height == 32 and item.width == 32
        rows, cols = item.image[0].long(), item.image[1].long()
        assert rows.min() >= 0 and rows.max() < 96 and cols.max() < 152
    twos = [ds._around_a_class() for _ in range(60)]
    with_two = [t for t in twos if (t.mask == 2).any()]
    assert with_two and all(int(t.image[1].max()) == 151 for t in with_two)  # at the edge


def test_class_pixels_are_found_on_the_grid_inside_each_region_only():
    mask = torch.full((64, 64), IGNORE_INDEX, dtype=torch.uint8)
    mask[0:8, 0:8] = 1
    mask[40:48, 16:24] = 4
    scene = LabelledImage("x", torch.zeros(3, 64, 64, dtype=torch.uint8), mask)
    found = _class_pixels([scene], [(0, Window(0, 0, 64, 32)), (0, Window(8, 32, 56, 32))])
    ones, fours = found
    assert ones.tolist() == [[0, 0, 0]]  # (region, y, x) of the grid pixels of class 1
    assert fours.tolist() == [[1, 40, 16]]
    assert CLASS_GRID == 8


def test_resized_images_take_the_extra_transform_on_image_and_mask():
    item = positions(40, 60)
    flips = []

    def flip(image, mask):
        flips.append((type(image), type(mask), mask.dtype))
        return image.flip(-1), mask.flip(-1)

    image, mask = ResizedDataset([item], 20, flip)[0]
    assert flips == [(tv_tensors.Image, tv_tensors.Mask, torch.int64)]
    plain_image, plain_mask = ResizedDataset([item], 20)[0]
    assert torch.equal(image, plain_image.flip(-1)) and torch.equal(mask, plain_mask.flip(-1))
    assert image.dtype == torch.float32 and mask.dtype == torch.int64
    assert type(image) is torch.Tensor and len(ResizedDataset([item, item], 20)) == 2


def test_validation_reads_whole_images_or_their_blocks_when_asked():
    a, b = positions(30, 40, "a"), positions(50, 20, "b")
    whole = WholeImageDataset([a, b])
    assert len(whole) == 2 and whole.pixels == 30 * 40 + 50 * 20
    assert whole.item(0) is a  # in memory already: not copied
    image, mask = whole[1]
    assert image.dtype == torch.float32 and mask.dtype == torch.int64 and image.shape == (3, 50, 20)
    blocks = WholeImageDataset([a, a], [Window(0, 10, 40, 20), None])
    assert blocks.pixels == 40 * 20 + 30 * 40
    first = blocks.items[0]
    assert first.height == 20 and int(first.image[0, 0, 0]) == 10  # from row 10
    assert blocks.items[-1] is a and blocks.items[1] is a
    assert [i.height for i in blocks.items[:]] == [20, 30] and blocks.items[1:] == [a]
    assert len(blocks.items) == 2
    with pytest.raises(IndexError):
        blocks.items[2]
    with pytest.raises(IndexError):
        blocks.items[-3]


def test_crops_are_centred_on_the_class_pixel_drawn_where_there_is_room():
    mask = torch.zeros(200, 200, dtype=torch.uint8)
    mask[96:104, 96:104] = 5  # far from every edge
    scene = LabelledImage("x", positions(200, 200).image, mask)
    for size in (32, 33):
        ds = RandomCropDataset([scene], size, 10, False, class_balanced=1.0)
        ds.class_pixels = [ds.class_pixels[1]]  # class 5 only
        for _ in range(20):
            item = ds._around_a_class()
            assert (item.height, item.width) == (size, size)
            top, left = int(item.image[0, 0, 0]), int(item.image[1, 0, 0])
            assert (top + size // 2, left + size // 2) in {
                (y, x) for y in (96, 104) for x in (96, 104)
            }


def test_crops_around_a_class_near_the_far_edges_and_in_narrow_regions():
    mask = torch.zeros(160, 160, dtype=torch.uint8)
    mask[88:96, 136:144] = 2  # the region's bottom-right corner
    scene = LabelledImage("x", positions(160, 160).image, mask)
    corner = [(0, Window(0, 0, 144, 96))]
    ds = RandomCropDataset([scene], 32, 10, False, class_balanced=1.0, regions=corner)
    ds.class_pixels = [ds.class_pixels[1]]
    item = ds._around_a_class()
    assert int(item.image[0].max()) == 95 and int(item.image[1].max()) == 143
    assert (item.height, item.width) == (32, 32)
    small = [(0, Window(130, 80, 20, 12))]
    narrow = RandomCropDataset([scene], 32, 10, False, class_balanced=1.0, regions=small)
    item = narrow._around_a_class()
    assert (item.height, item.width) == (12, 20)  # the whole region, no more
    assert int(item.image[0, 0, 0]) == 80 and int(item.image[1, 0, 0]) == 130


def test_crop_datasets_jitter_by_their_band_count_and_take_the_users_transform():
    rgb, four = positions(64, 64), positions(64, 64)
    four.image = torch.cat([four.image, four.image[:1]])

    def kinds(ds) -> list[type]:
        return [type(step) for step in ds.transform.transforms]

    plain = RandomCropDataset([rgb], 32, 1, augment=True)
    (jitter,) = [s for s in plain.transform.transforms if isinstance(s, v2.ColorJitter)]
    assert jitter.brightness == pytest.approx((0.8, 1.2))  # the default strength
    assert plain.class_pixels == []  # no class-balanced crops unless asked
    assert BandJitter in kinds(RandomCropDataset([four], 32, 1, augment=True))

    def extra(x, mask):
        return x, mask

    steps = RandomCropDataset([rgb], 32, 1, False, extra_transform=extra).transform.transforms
    assert steps[-1] is extra


def test_resized_images_are_bilinear_without_aligned_corners():
    item = positions(40, 60)
    image, mask = ResizedDataset([item], 20)[0]
    expected = F.interpolate(
        item.image[None].float(), size=(20, 20), mode="bilinear", align_corners=False
    )[0]
    assert torch.equal(image, expected)
    assert torch.equal(mask, item.mask[::2, ::3].long())  # nearest: every 2nd row, 3rd column


class Streamed:
    """A scene read by windows (as a raster scene is), recording what it is asked."""

    def __init__(self, whole: LabelledImage):
        self.whole, self.id, self.asked = whole, whole.id, []

    height = property(lambda self: self.whole.height)
    width = property(lambda self: self.whole.width)

    def read(self, window: Window) -> LabelledImage:
        self.asked.append(window)
        return self.whole.read(window)

    def labels_every(self, step: int) -> torch.Tensor:
        return self.whole.mask[::step, ::step]


def test_a_streamed_scene_is_read_whole_for_validation_where_no_block_is_given():
    scene = Streamed(positions(30, 50))
    dataset = WholeImageDataset([scene, scene], [None, Window(10, 5, 20, 10)])
    image, mask = dataset[0]
    assert image.shape == (3, 30, 50) and mask.shape == (30, 50)
    assert scene.asked == [Window(0, 0, 50, 30)]
    assert dataset[1][0].shape == (3, 10, 20) and scene.asked[-1] == Window(10, 5, 20, 10)
    assert dataset.items[-2].height == 30  # from the end, as a list counts
    with pytest.raises(IndexError, match="^2$"):
        dataset.items[2]


def test_class_pixels_right_of_a_region_are_not_its_own():
    mask = torch.zeros(64, 64, dtype=torch.uint8)
    mask[:, 40:] = 3
    scene = LabelledImage("x", torch.zeros(3, 64, 64, dtype=torch.uint8), mask)
    (zeros,) = _class_pixels([scene], [(0, Window(0, 0, 40, 64))])
    assert int(zeros[:, 2].max()) == 32  # grid columns 0..32 only


def test_a_share_of_class_balanced_crops_is_centred_on_a_class():
    mask = torch.zeros(128, 128, dtype=torch.uint8)
    mask[60:68, 60:68] = 1
    scene = LabelledImage("x", torch.zeros(3, 128, 128, dtype=torch.uint8), mask)
    torch.manual_seed(4)
    ds = RandomCropDataset([scene], 16, 400, False, class_balanced=0.3)
    centred = []
    around = ds._around_a_class
    ds._around_a_class = lambda: centred.append(1) or around()  # type: ignore[method-assign]
    for i in range(len(ds)):
        ds[i]
    assert 0.24 < len(centred) / len(ds) < 0.36
