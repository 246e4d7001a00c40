import pytest
import torch
from rasterio.windows import Window

from aerialseg.data.catalog import LabelSpec, expand_scenes, open_catalog
from aerialseg.data.classes import IGNORE_INDEX, ClassTable
from aerialseg.data.crops import RandomCropDataset
from aerialseg.data.scenes import LabelledImage, Reading
from aerialseg.errors import DatasetError
from tests.helpers.geodata import (
    POLYGON_CLASSES,
    UTM,
    class_boxes,
    class_ids_of,
    scene_transform,
    write_area,
    write_polygons,
    write_scene,
)

TABLE = ClassTable.from_dict(POLYGON_CLASSES)
H, W = 300, 260


@pytest.fixture
def geo(tmp_path):
    boxes = class_boxes(H, W, seed=5)
    truth = class_ids_of(boxes, H, W, scene_transform())
    (tmp_path / "scenes").mkdir()
    write_scene(tmp_path / "scenes" / "a.tif", truth, scene_transform())
    labels = write_polygons(tmp_path / "labels.gpkg", boxes)
    return tmp_path, truth, labels


def test_streamed_windows_equal_in_memory_crops(geo):
    root, truth, labels = geo
    data = open_catalog(root / "scenes", TABLE, LabelSpec(str(labels), "class"))
    assert list(data.scenes) == ["a.tif"]
    (streamed,) = data.read(["a.tif"], Reading(cache_megabytes=0))  # too big for no memory
    (cached,) = data.read(["a.tif"], Reading(cache_megabytes=100))
    assert isinstance(cached, LabelledImage) and not isinstance(streamed, LabelledImage)
    assert (cached.mask.numpy() == truth).mean() > 0.995
    for window in (Window(0, 0, 64, 64), Window(100, 37, 90, 71), Window(W - 5, H - 3, 5, 3)):
        a, b = streamed.read(window), cached.read(window)
        assert torch.equal(a.image, b.image) and torch.equal(a.mask, b.mask)
        assert a.mask.shape == (window.height, window.width)
    assert torch.equal(streamed.labels_every(8), cached.labels_every(8))
    # the sampler draws the same crops from either
    for balanced in (0.0, 0.5):
        samples = []
        for scene in (streamed, cached):
            torch.manual_seed(0)
            ds = RandomCropDataset([scene], 64, 4, True, (0.75, 1.5), 0.2, balanced)
            samples.append([ds[k] for k in range(4)])
        for (i1, m1), (i2, m2) in zip(*samples, strict=True):
            assert torch.equal(i1, i2) and torch.equal(m1, m2)


def test_crops_stay_inside_their_regions(geo):
    root, truth, labels = geo
    (scene,) = open_catalog(root / "scenes", TABLE, LabelSpec(str(labels), "class")).read(
        ["a.tif"], Reading(cache_megabytes=100)
    )
    # label the scene with its row number: a crop shows where it was cut
    rows = torch.arange(H).clamp(max=255)[:, None].expand(H, W).to(torch.uint8)
    scene = LabelledImage("rows", scene.image, rows.clone())
    regions = [(0, Window(10, 20, 80, 70)), (0, Window(150, 150, 100, 90))]
    torch.manual_seed(1)
    ds = RandomCropDataset([scene], 48, 200, False, None, 0.0, 0.0, regions)
    seen = torch.cat([ds[k][1].flatten() for k in range(200)])
    assert seen.min() >= 20 and seen.max() < 240
    assert not ((seen >= 90) & (seen < 150)).any()  # never between the regions
    assert (seen < 90).any() and (seen >= 150).any()


def test_nodata_is_ignored_and_streamed_reads_stay_small(geo, tmp_path):
    root, truth, labels = geo
    import rasterio

    path = root / "scenes" / "a.tif"
    with rasterio.open(path, "r+") as ds:
        ds.nodata = 0
        data = ds.read()
        data[:, :10, :] = 0
        ds.write(data)
    (scene,) = open_catalog(path, TABLE, LabelSpec(str(labels), "class")).read(
        ["a.tif"], Reading(cache_megabytes=0)
    )
    item = scene.read(Window(0, 0, 50, 20))
    assert (item.mask[:10] == IGNORE_INDEX).all() and (item.mask[10:] != IGNORE_INDEX).all()


def test_scene_errors(geo, tmp_path):
    root, truth, labels = geo
    from shapely.geometry import box

    far = write_area(tmp_path / "far.gpkg", box(0, 0, 10, 10))
    with pytest.raises(DatasetError, match="labelled area overlaps none of the 1 image"):
        open_catalog(root / "scenes", TABLE, LabelSpec(str(labels), "class", None, str(far)))
    away = write_polygons(
        tmp_path / "away.gpkg",
        [(box(0, 0, 10, 10), "Road")],
        crs=UTM,
    )
    with pytest.raises(DatasetError, match="no polygon lies on any of the 1 georeferenced image"):
        open_catalog(root / "scenes", TABLE, LabelSpec(str(away), "class"))
    with pytest.raises(DatasetError, match="give the polygons or the class raster with --labels"):
        open_catalog(root / "scenes" / "a.tif", TABLE)
    with pytest.raises(DatasetError, match="no image rasters found"):
        expand_scenes(str(tmp_path / "none" / "*.tif"))


def test_training_crops_lie_in_the_labelled_area(geo):
    """Two small labelled blocks of a large scene: every training crop holds labels."""
    import fiona
    from shapely.geometry import box, mapping

    from aerialseg.data.splits import Split

    root, truth, labels = geo
    left, top = scene_transform() @ (0, 0)
    # pixels 20..60 x 30..70 and 180..230 x 200..260 (0.5 m pixels)
    blocks = [
        box(left + 10, top - 35, left + 30, top - 15),
        box(left + 90, top - 130, left + 115, top - 100),
    ]
    area = root / "area.gpkg"
    schema = {"geometry": "Polygon", "properties": {}}
    with fiona.open(area, "w", driver="GPKG", crs="EPSG:32640", schema=schema) as sink:
        sink.writerecords({"geometry": mapping(b), "properties": {}} for b in blocks)
    spec = LabelSpec(str(labels), "class", labelled_area=str(area))
    data = open_catalog(root / "scenes", TABLE, spec)
    split = Split(train=("a.tif",), val=(), test=(), rule="all")
    regions = data.regions(split, "train")
    assert regions is not None
    assert sorted((w.col_off, w.row_off, w.width, w.height) for _, w in regions) == [
        (20, 30, 40, 40),
        (180, 200, 50, 60),
    ]
    scenes = data.read(["a.tif"], Reading(cache_megabytes=0))
    torch.manual_seed(0)
    crops = RandomCropDataset(scenes, 32, 40, False, None, 0.0, 0.0, regions)
    for k in range(40):
        assert (crops[k][1] != IGNORE_INDEX).all()
    unlabelled = open_catalog(root / "scenes", TABLE, LabelSpec(str(labels), "class"))
    assert unlabelled.regions(split, "train") is None


def test_a_scenes_group_is_the_folder_above_its_folder_and_a_url_keeps_its_host():
    """A review: data inspect listed a URL scene's tile as 'http:/127.0.0.1:18080'."""
    from aerialseg.data.scenes import _group

    names = ["Tile 1/images/x.jpg", "x.tif", "a/b/c/x.tif", "http://h:80/ok/x.tif"]
    assert [_group(n) for n in names] == ["Tile 1", ".", "a/b", "http://h:80"]
    assert _group("https://h/a/b/c.tif") == "https://h/a"
