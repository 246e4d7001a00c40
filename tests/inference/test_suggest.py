"""aerialseg suggest: ranking blocks for labelling, on scenes where the doubt is known.

A pointwise engine makes the model's doubt a function of colour: a pure red, green or
blue pixel is one class with near certainty, a grey pixel any of the three. Scenes
painted so have their doubtful blocks exactly where the grey is.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import fiona
import numpy as np
import pytest
import rasterio
import shapely
import torch
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import calculate_default_transform, reproject, transform_geom
from rasterio.windows import Window
from shapely.geometry import box, mapping, shape

import aerialseg
from aerialseg.data.classes import ClassTable
from aerialseg.data.polygons import PolygonLayer, footprint, read_area
from aerialseg.errors import AerialsegError
from aerialseg.inference.doubt import SuggestError
from aerialseg.inference.predict import Predictor
from aerialseg.inference.run import PredictOptions, _open
from aerialseg.inference.suggest import SuggestOptions, suggest_scenes
from aerialseg.inference.tasks import share_fields, write_tasks
from aerialseg.models.io import bundled_model_path, load_model, save_model
from aerialseg.training.config import TrainConfig
from tests.helpers.geotiff import TRANSFORM, UTM40N, write_geotiff
from tests.helpers.paths import SAMPLE

CLASSES = ClassTable.from_dict({"classes": [{"name": "Red"}, {"name": "Green"}, {"name": "Blue"}]})
BLOCK = 64


class Pointwise:
    """Logits proportional to each band: the class is the dominant colour."""

    stride = 32

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return batch / 255 * 12


def painted(grey_blocks: list[tuple[int, int]], size: int = 512) -> np.ndarray:
    """Left half red, right half green, a blue square, and grey blocks (row, col)."""
    image = np.zeros((3, size, size), np.uint8)
    image[0, :, : size // 2] = 255
    image[1, :, size // 2 :] = 255
    image[:, 320:448, 64:192] = 0
    image[2, 320:448, 64:192] = 255
    for r, c in grey_blocks:
        image[:, r * BLOCK : (r + 1) * BLOCK, c * BLOCK : (c + 1) * BLOCK] = 128
    return image


def run(paths, tmp_path, labelled=(), **options):
    spec = TrainConfig(window=256, overlap=0.25, confidence_temperature=1.0).spec
    predictor = Predictor(Pointwise(), spec, CLASSES)
    opts = SuggestOptions(**{"block_size": str(BLOCK), **options})
    found = suggest_scenes(
        lambda p: _open(p, PredictOptions(), spec),
        lambda raster: predictor.rows(raster, confidence=True),
        paths,
        CLASSES,
        opts,
        {f"layer {k}": layer for k, layer in enumerate(labelled)},
    )
    out = tmp_path / "tasks.gpkg"
    files = write_tasks(found, CLASSES, out, list(labelled))
    if found.workdir is not None:
        found.workdir.cleanup()
    return found, files


def block_box(r: int, c: int):
    left, top = TRANSFORM @ (c * BLOCK, r * BLOCK)
    return box(left, top - BLOCK * 0.5, left + BLOCK * 0.5, top)


def test_the_doubtful_block_ranks_first_and_its_task_is_written(tmp_path):
    scene = write_geotiff(tmp_path / "scene.tif", painted([(1, 5)]))
    found, files = run([scene], tmp_path, count=3)
    first = found.tasks[0]
    assert divmod(first.index, 8) == (1, 5)
    assert first.doubt > 0.5 > max(t.doubt for t in found.tasks[1:])
    with fiona.open(files["tasks"], layer="tasks") as layer:
        rows = list(layer)
        assert layer.crs_wkt and "32640" in str(layer.crs.to_epsg())
    assert [r.properties["rank"] for r in rows] == [1, 2, 3]
    assert shape(rows[0].geometry).equals(block_box(1, 5))
    assert rows[0].properties["reason"].startswith("mean confidence 3")
    shares = [rows[0].properties[f"share_{n}"] for n in ("red", "green", "blue")]
    assert pytest.approx(sum(shares), abs=1e-3) == 1
    assert "tasks" in fiona.listlayers(files["tasks"])
    assert "layer_styles" in fiona.listlayers(files["tasks"])
    assert files["tasks_style"].read_text().count('fieldName="rank"') == 1


def test_mixed_prefers_a_mixed_block_to_a_pure_one_of_the_same_doubt(tmp_path):
    image = painted([])
    # two equally doubtful blocks: one all of a faint red, one half faint red, half faint blue
    image[:, 0:64, 0:64] = [[[150]], [[110]], [[110]]]
    image[:, 0:64, 384:448] = [[[150]], [[110]], [[110]]]
    image[:, 0:64, 416:448] = [[[110]], [[110]], [[150]]]
    scene = write_geotiff(tmp_path / "scene.tif", image)
    mixed, _ = run([scene], tmp_path, count=1, min_distance="0")
    doubt, _ = run([scene], tmp_path, count=1, min_distance="0", strategy="doubt")
    assert divmod(mixed.tasks[0].index, 8) == (0, 6)
    assert mixed.tasks[0].impurity > 0.5
    assert abs(doubt.tasks[0].doubt - mixed.tasks[0].doubt) < 0.02


def test_neighbours_of_the_same_doubt_do_not_all_win(tmp_path):
    scene = write_geotiff(tmp_path / "scene.tif", painted([(1, 1), (1, 2), (5, 6)]))
    found, _ = run([scene], tmp_path, count=2)
    assert sorted(divmod(t.index, 8) for t in found.tasks)[1] == (5, 6)
    close, _ = run([scene], tmp_path, count=2, min_distance="0")
    assert sorted(divmod(t.index, 8) for t in close.tasks) == [(1, 1), (1, 2)]


def test_labelled_blocks_are_never_suggested_again_whatever_their_crs(tmp_path):
    scene = write_geotiff(tmp_path / "scene.tif", painted([(1, 5), (6, 6)]))
    wgs84 = transform_geom(UTM40N, "EPSG:4326", mapping(block_box(1, 5)))
    area = tmp_path / "done.geojson"
    schema = {"geometry": "Polygon", "properties": {"id": "int"}}
    with fiona.open(area, "w", driver="GeoJSON", schema=schema, crs="EPSG:4326") as sink:
        sink.write({"geometry": wgs84, "properties": {"id": 1}})
    found, files = run([scene], tmp_path, labelled=[read_area(area)], count=63, min_distance="0")
    assert (1, 5) not in [divmod(t.index, 8) for t in found.tasks]
    assert divmod(found.tasks[0].index, 8) == (6, 6)
    with fiona.open(files["labelled_area"]) as layer:
        union = shape(next(iter(layer)).geometry)
    assert union.area == pytest.approx(64 * (BLOCK * 0.5) ** 2, rel=1e-3)  # 63 tasks + done


def test_random_is_deterministic_for_a_seed(tmp_path):
    scene = write_geotiff(tmp_path / "scene.tif", painted([(1, 5)]))
    a, _ = run([scene], tmp_path, count=5, strategy="random", seed=3)
    b, _ = run([scene], tmp_path, count=5, strategy="random", seed=3)
    c, _ = run([scene], tmp_path, count=5, strategy="random", seed=4)
    assert [t.index for t in a.tasks] == [t.index for t in b.tasks] != [t.index for t in c.tasks]


def test_prelabel_holds_the_models_polygons_inside_each_task(tmp_path):
    scene = write_geotiff(tmp_path / "scene.tif", painted([]))
    found, files = run([scene], tmp_path, count=2, prelabel=True, strategy="random")
    with fiona.open(files["tasks"], layer="prelabel") as layer:
        polygons = list(layer)
    with fiona.open(files["tasks"], layer="tasks") as layer:
        blocks = {r.properties["rank"]: shape(r.geometry) for r in layer}
    assert {p.properties["task"] for p in polygons} == {1, 2}
    for rank, block in blocks.items():
        mine = [shape(p.geometry) for p in polygons if p.properties["task"] == rank]
        assert sum(p.area for p in mine) == pytest.approx(block.area)
    assert {p.properties["class"] for p in polygons} <= {"Red", "Green", "Blue"}


def test_min_distance_takes_any_distance_and_names_itself(tmp_path):
    """--min-distance was read as a block size: '0.0' and a distance wider than the scene
    were refused in --block-size's words."""
    scene = write_geotiff(tmp_path / "scene.tif", painted([(0, 0), (0, 1)]))
    none, _ = run([scene], tmp_path, count=2, min_distance="0")
    assert [t.index for t in run([scene], tmp_path, count=2, min_distance="0.0")[0].tasks] == [
        t.index for t in none.tasks
    ]
    far, _ = run([scene], tmp_path, count=2, min_distance="100000")  # wider than the scene
    assert len(far.tasks) == 2
    for bad in ("-1", "abc", "10km", "nan"):
        with pytest.raises(AerialsegError, match=f"--min-distance '{bad}': give pixels"):
            run([scene], tmp_path, count=2, min_distance=bad)


def test_labels_whose_box_covers_the_scene_but_not_their_shape_are_outside(tmp_path):
    scene = write_geotiff(tmp_path / "scene.tif", painted([]))
    left, top = TRANSFORM @ (0, 0)
    right, bottom = TRANSFORM @ (512, 512)
    ell = box(left - 400, top, left - 100, top + 400).union(  # an L around the scene's corner
        box(left - 400, top + 100, right + 400, top + 400)
    )
    with pytest.raises(SuggestError, match="outside every scene"):
        run([scene], tmp_path, labelled=[PolygonLayer.of(UTM40N, [ell], [1])])


def test_bad_requests_get_one_line(tmp_path, capsys):
    scene = write_geotiff(tmp_path / "scene.tif", painted([]))
    with pytest.raises(SuggestError, match="only 64 block"):
        run([scene], tmp_path, count=65)
    capsys.readouterr()
    for size, pixels in (("1", 1), ("15m", 30)):  # 0.5 m pixels: 15 m are 30 px
        with pytest.raises(
            SuggestError, match=rf"^--block-size {size} \({pixels} px of scene.tif\)"
        ):
            run([scene], tmp_path, block_size=size)
    assert "predicting" not in capsys.readouterr().err  # refused before (a review: 1 px tasks)
    far = PolygonLayer.of(UTM40N, [box(0, 0, 10, 10)], [1])
    near = PolygonLayer.of(UTM40N, [box(*(TRANSFORM @ (0, 64)), *(TRANSFORM @ (64, 0)))], [1])
    # the layer outside is named (a review: an off-scene labelled area was called the labels)
    with pytest.raises(SuggestError, match=r"^layer 1: its polygons \(EPSG:32640\) lie outside"):
        run([scene, scene], tmp_path, labelled=[near, far])
    # from the headers: no scene predicted (a review: after every one of them)
    assert "predicting" not in capsys.readouterr().err
    plain, pixels = tmp_path / "plain.tif", painted([])
    profile = {"driver": "GTiff", "count": pixels.shape[0], "dtype": pixels.dtype}
    with rasterio.open(plain, "w", height=512, width=512, **profile) as ds:  # no georeference
        ds.write(pixels)
    with pytest.raises(SuggestError, match="plain.tif has no georeference and scene.tif has one"):
        run([scene, plain], tmp_path)
    assert "predicting" not in capsys.readouterr().err
    with pytest.raises(SuggestError, match="--strategy"):
        run([scene], tmp_path, strategy="loud")
    assert not (tmp_path / "tasks.gpkg").exists()


@pytest.mark.parametrize("size", ["64", "32m"])
def test_tasks_of_a_rotated_scene_are_its_rotated_blocks(tmp_path, size):
    """On a grid rotated 30° each task was its block's two-corner box: a rectangle of half
    the area, partly off the scene, that the prelabel polygons did not fill; and 32 m
    were taken as 74 px (the transform's ``a``, 0.43 m, as the pixel width)."""
    rotated = Affine.translation(*(TRANSFORM @ (0, 0))) @ Affine.rotation(30)
    rotated = rotated @ Affine.scale(TRANSFORM.a, TRANSFORM.e)
    scene = write_geotiff(tmp_path / "rot.tif", painted([(1, 5)]), transform=rotated)
    found, files = run([scene], tmp_path, count=3, prelabel=True, block_size=size)
    assert [(t.window.width, t.window.height) for t in found.tasks] == [(BLOCK, BLOCK)] * 3
    whole = footprint(Window(0, 0, 512, 512), rotated)
    with fiona.open(files["tasks"], layer="tasks") as layer:
        tasks = {r.properties["rank"]: shape(r.geometry) for r in layer}
    with fiona.open(files["tasks"], layer="prelabel") as layer:
        prelabel = [(p.properties["task"], shape(p.geometry)) for p in layer]
    for task in found.tasks:
        block = tasks[task.rank]
        assert block.equals(footprint(task.window, rotated))
        assert block.area == pytest.approx((BLOCK * 0.5) ** 2) and whole.buffer(1e-6).contains(
            block
        )
        mine = [p for rank, p in prelabel if rank == task.rank]
        assert sum(p.area for p in mine) == pytest.approx(block.area)
        assert all(block.buffer(1e-6).contains(p) for p in mine)
    with fiona.open(files["labelled_area"]) as layer:
        area = sum(shape(r.geometry).area for r in layer)
    assert area == pytest.approx(3 * (BLOCK * 0.5) ** 2)


def test_a_scene_thinner_than_half_a_block_is_refused_naming_sizes(tmp_path):
    """A 128 x 1 px scene has no block at least half inside it, which was reported as every
    block being labelled already or without data."""
    thin = write_geotiff(tmp_path / "thin.tif", np.full((3, 1, 128), 128, np.uint8))
    with pytest.raises(SuggestError) as err:
        run([thin], tmp_path)
    assert str(err.value) == (  # 2 px would fit it: tasks are 32 px at least (a review
        # of the minimum: "choose 2 px or less", then "choose 32 px or more")
        "thin.tif (128 x 1 px) is too small for a task of 32 px, half inside it: leave it out"
    )
    narrow = write_geotiff(tmp_path / "narrow.tif", np.full((3, 30, 600), 128, np.uint8))
    with pytest.raises(SuggestError, match="choose a block of 60 px or less"):
        run([narrow], tmp_path, block_size="128")
    # half a block across is a task still, as a candidate is one at least half inside
    strip = write_geotiff(tmp_path / "strip.tif", painted([], size=128)[:, :32])
    assert run([strip], tmp_path, count=1)[0].candidates == 2


def test_suggest_on_a_real_scene_with_the_bundled_model(tmp_path):
    out = tmp_path / "round1" / "tasks.gpkg"
    first = aerialseg.suggest(SAMPLE, out, count=3, block_size="128m", prelabel=True)
    assert [t["rank"] for t in first.tasks] == [1, 2, 3]
    assert first.files["tasks"] == out and first.files["labelled_area"].is_file()
    assert fiona.listlayers(out)[:2] == ["tasks", "prelabel"]
    scores = [t["score"] for t in first.tasks]
    assert scores == sorted(scores, reverse=True)
    # Labelling the tasks and asking again: none of them comes back.
    again = aerialseg.suggest(
        SAMPLE,
        tmp_path / "round2.gpkg",
        count=3,
        block_size="128m",
        labelled_area=first.files["labelled_area"],
    )
    assert not {tuple(t["window"]) for t in again.tasks} & {tuple(t["window"]) for t in first.tasks}
    assert again.candidates == first.candidates - 3


def test_suggest_refuses_a_model_without_calibration_and_bad_requests(tmp_path):
    loaded = load_model(bundled_model_path())
    spec = replace(loaded.spec, confidence_temperature=None)
    save_model(tmp_path / "raw.pt", loaded.net, spec, loaded.classes)
    with pytest.raises(AerialsegError, match="no confidence calibration"):
        aerialseg.suggest(SAMPLE, tmp_path / "t.gpkg", model=tmp_path / "raw.pt")
    with pytest.raises(AerialsegError, match="no such model file"):
        aerialseg.suggest(SAMPLE, tmp_path / "t.gpkg", model=tmp_path / "none.pt")
    with pytest.raises(AerialsegError, match="GeoPackage"):
        aerialseg.suggest(SAMPLE, tmp_path / "t.shp")
    (tmp_path / "dir.gpkg").mkdir()  # was a traceback after predicting, and temp files
    with pytest.raises(AerialsegError, match="GeoPackage; name the file NAME.gpkg"):
        aerialseg.suggest(SAMPLE, tmp_path / "dir.gpkg")
    (tmp_path / "dir.gpkg").rmdir()
    with pytest.raises(AerialsegError, match=r"count=500: only \d+ block"):
        aerialseg.suggest(SAMPLE, tmp_path / "t.gpkg", count=500, block_size="128m")
    assert list(tmp_path.iterdir()) == [tmp_path / "raw.pt"]


def test_plain_images_get_tasks_in_pixel_coordinates(tmp_path):
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    for name, grey in (("a.png", []), ("b.png", [(2, 3)])):
        Image.fromarray(painted(grey, size=256).transpose(1, 2, 0)).save(folder / name)
    found, files = run([folder / "a.png", folder / "b.png"], tmp_path, count=2)
    first = found.tasks[0]
    assert found.scenes[first.scene].name == "b.png" and divmod(first.index, 4) == (2, 3)
    assert "labelled_area" not in files
    with fiona.open(files["tasks"], layer="tasks") as layer:
        rows = list(layer)
        assert not layer.crs_wkt
    # a review: an earlier run's labelled area, of other ground, stayed beside these tasks
    _, earlier = run([write_geotiff(tmp_path / "scene.tif", painted([]))], tmp_path, count=1)
    assert earlier["labelled_area"].is_file()
    run([folder / "a.png", folder / "b.png"], tmp_path, count=2)
    assert not earlier["labelled_area"].exists()
    assert shape(rows[0].geometry).bounds == (192.0, 128.0, 256.0, 192.0)
    area = PolygonLayer.of(UTM40N, [box(0, 0, 10, 10)], [1])
    with pytest.raises(SuggestError, match="no georeference"):
        run([folder / "a.png"], tmp_path, labelled=[area])


def test_the_command_prints_its_files_as_a_shell_reads_them(tmp_path, capsys):
    import shlex

    from aerialseg.cli import main

    out = tmp_path / "my dir" / "t 1.gpkg"
    argv = ["suggest", str(SAMPLE), "--out", str(out), "--count", "2", "--block-size", "128m"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    wrote = next(line for line in printed.splitlines() if line.startswith("wrote "))
    files = shlex.split(wrote.removeprefix("wrote "))
    assert str(out) in files and all(Path(f).is_file() for f in files)
    assert f"open {shlex.quote(str(out))} and draw" in printed
    assert "\nnext:\n  aerialseg data split " in printed
    # the next round asks as this one did
    ranked = ["--strategy", "doubt", "--min-distance", "300m", "--bands", "1,2,3"]
    assert main([*argv, *ranked]) == 0
    again = shlex.split(capsys.readouterr().out.splitlines()[-1])
    assert again[:2] == ["aerialseg", "suggest"] and again[-6:] == ranked
    # two scene arguments: train and split take one folder, file or glob
    copy = tmp_path / "copy.tif"
    copy.write_bytes(SAMPLE.read_bytes())
    assert main([argv[0], str(copy), *argv[1:]]) == 0
    printed = capsys.readouterr().out
    assert "fine-tune on them as docs/suggest.md's loop shows" in printed
    assert "next:" not in printed
    # resampled: the split is cut, and the run reads, on the tasks' grid (a review: data
    # split cut the scene's own pixels, each task in four, and the printed train refused
    # its blocks; test_next_commands.py runs them)
    assert main([*argv[:-1], "32", "--pixel-size", "4"]) == 0
    split, train, again = (shlex.split(line) for line in capsys.readouterr().out.splitlines()[-3:])
    assert split[1:3] == ["data", "split"] and split[split.index("--pixel-size") + 1] == "4.0"
    assert train[1] == "train" and "pixel_size=4.0" in train
    assert again[1] == "suggest" and again[-2:] == ["--pixel-size", "4.0"]


def test_the_commands_carry_the_pixel_size_of_a_model_that_reads_at_one(tmp_path, capsys):
    """A model trained with pixel_size=4 reads scenes at 4 m unasked, so its tasks are on
    that grid; the printed split and train were at the scene's own 2 m (a review): the
    split's blocks cut each task in four."""
    import shlex

    from aerialseg.cli import main
    from tests.helpers.models import write_tiny_model

    model = write_tiny_model(tmp_path / "m.pt", ["pixel_size=4.0"])
    argv = ["suggest", str(SAMPLE), "--model", str(model), "--out", str(tmp_path / "t.gpkg")]
    assert main([*argv, "--count", "2", "--block-size", "32"]) == 0
    split, train, again = (shlex.split(line) for line in capsys.readouterr().out.splitlines()[-3:])
    assert split[split.index("--pixel-size") + 1] == "4.0" and "pixel_size=4.0" in train
    assert f"init_from={model}" in train and again[-2:] == ["--pixel-size", "4.0"]
    found = aerialseg.suggest(SAMPLE, tmp_path / "u.gpkg", model=model, count=1, block_size=32)
    assert found.pixel_size == 4.0 and found.tasks[0]["window"][2:] == [32, 32]


def test_a_scene_and_its_copy_give_no_ground_twice(tmp_path):
    """Overlapping tiles: the list filled up past the spacing with the copy's blocks of
    ground already listed, under the other scene's name (a review)."""
    scene = write_geotiff(tmp_path / "scene.tif", painted([(1, 5)]))
    copy = tmp_path / "copy.tif"
    copy.write_bytes(scene.read_bytes())
    found, _ = run([scene, copy], tmp_path, count=40)
    windows = [tuple(t.window.flatten()) for t in found.tasks]
    assert len(set(windows)) == len(windows) == 40 and found.candidates == 128


def test_a_labelled_area_round_the_globe_is_cut_to_the_scenes(tmp_path):
    """A labelled area in degrees from 179°W to the scene's middle, moved whole into the
    scene's UTM zone, was written as a polygon 40,000 km tall; it is the scene's left half
    with the tasks."""
    scene = write_geotiff(tmp_path / "scene.tif", painted([(1, 5), (6, 6)]))
    middle = {"type": "Point", "coordinates": TRANSFORM @ (256, 256)}
    lon = transform_geom(UTM40N, "EPSG:4326", middle)["coordinates"][0]
    west = box(-179, -80, lon, 80)
    area = tmp_path / "done.geojson"
    schema = {"geometry": "Polygon", "properties": {"id": "int"}}
    with fiona.open(area, "w", driver="GeoJSON", schema=schema, crs="EPSG:4326") as sink:
        sink.write({"geometry": mapping(west), "properties": {"id": 1}})
    found, files = run([scene], tmp_path, labelled=[read_area(area)], count=3, min_distance="0")
    assert all(t.index % 8 >= 4 for t in found.tasks)
    with fiona.open(files["labelled_area"]) as layer:
        union = shapely.union_all([shape(r.geometry) for r in layer])
    whole = footprint(Window(0, 0, 512, 512), TRANSFORM)
    left_half = footprint(Window(0, 0, 256, 512), TRANSFORM)
    tasks = shapely.union_all([footprint(t.window, TRANSFORM) for t in found.tasks])
    assert whole.buffer(BLOCK).contains(union)
    # the meridian leans on the UTM grid (convergence): 1 % of the scene's area for that
    off = union.intersection(whole).symmetric_difference(left_half.union(tasks))
    assert off.area < 0.01 * whole.area


def test_a_copy_in_another_crs_gives_no_ground_twice(tmp_path):
    """The same ground warped into the next UTM zone: blocks were kept apart only within a
    CRS, so the list filled with the copy's blocks of ground already listed."""
    scene = write_geotiff(tmp_path / "scene.tif", painted([(1, 5)]))
    zone39 = CRS.from_epsg(32639)
    with rasterio.open(scene) as src:
        at, width, height = calculate_default_transform(
            src.crs, zone39, src.width, src.height, *src.bounds
        )
        warped = np.zeros((3, height, width), np.uint8)
        reproject(rasterio.band(src, [1, 2, 3]), warped, dst_transform=at, dst_crs=zone39)
    copy = write_geotiff(tmp_path / "copy.tif", warped, nodata=0, crs=zone39, transform=at)
    found, files = run([scene, copy], tmp_path, count=40)
    assert {t.scene for t in found.tasks} == {0, 1}
    with fiona.open(files["tasks"], layer="tasks") as layer:
        blocks = [shape(r.geometry) for r in layer]
    side = BLOCK * 0.5
    for k, a in enumerate(blocks):
        assert all(a.intersection(b).area < side * side / 2 for b in blocks[k + 1 :])


def test_an_earlier_labelled_area_in_degrees_keeps_ground_of_other_scenes(tmp_path):
    """A review: an earlier area in degrees was cut to this run's scenes, so a square on a
    scene not suggested again (labelled in round 1) left the new labelled area, and
    training on that scene lost its labels without a word."""
    scene = write_geotiff(tmp_path / "scene.tif", painted([(1, 5)]))
    here = block_box(1, 5)  # labelled on this scene
    away = box(301_000, 2_799_000, 301_128, 2_799_128)  # on another scene, 1 km east
    area = tmp_path / "done.geojson"
    schema = {"geometry": "Polygon", "properties": {"id": "int"}}
    with fiona.open(area, "w", driver="GeoJSON", schema=schema, crs="EPSG:4326") as sink:
        for k, square in enumerate((here, away)):
            degrees = transform_geom(UTM40N, "EPSG:4326", mapping(square))
            sink.write({"geometry": degrees, "properties": {"id": k}})
    found, files = run([scene], tmp_path, labelled=[read_area(area)], count=2, min_distance="0")
    with fiona.open(files["labelled_area"]) as layer:
        union = shapely.union_all([shape(r.geometry) for r in layer])
    tasks = shapely.union_all([block_box(*divmod(t.index, 8)) for t in found.tasks])
    expected = shapely.union_all([here, away, tasks])
    assert union.symmetric_difference(expected).area < 1e-3 * expected.area


def test_share_fields_are_one_a_class_whatever_the_names():
    """A review: "Road." after "Road" took share_road_2, the field of "road 2", and one
    class's share was lost."""
    names = ["Road", "road 2", "Road.", "Veg", "水", "share"]
    table = ClassTable.from_dict({"classes": [{"name": n} for n in names]})
    fields = share_fields(table)
    assert fields[:2] == ["share_road", "share_road_2"] and len(set(fields)) == len(names)


def test_an_out_that_would_replace_an_input_is_refused_before_anything_is_read(tmp_path):
    """A review: --out naming the label polygons replaced them with the tasks (the user's
    drawing lost); the labelled area written may replace the earlier one, which it holds."""
    scene = write_geotiff(tmp_path / "scene.tif", painted([]))
    labels = tmp_path / "labels.gpkg"
    schema = {"geometry": "Polygon", "properties": {"class": "str"}}
    with fiona.open(labels, "w", driver="GPKG", schema=schema, crs="EPSG:32640") as sink:
        sink.write({"geometry": mapping(block_box(1, 1)), "properties": {"class": "Red"}})
    kept = labels.read_bytes()
    area = tmp_path / "t_labelled_area.gpkg"
    area.write_bytes(kept)
    for out, given in [
        (labels, {"labels": labels}),
        (labels, {"labelled_area": labels}),
        (tmp_path / "t.gpkg", {"labels": area}),  # its labelled area is the labels
    ]:
        with pytest.raises(AerialsegError, match=r"^out=.* would replace .*: name another file$"):
            aerialseg.suggest(scene, out, **given)
    assert labels.read_bytes() == kept and area.read_bytes() == kept
    assert sorted(p.name for p in tmp_path.iterdir()) == [labels.name, "scene.tif", area.name]


def test_what_a_killed_suggest_left_beside_its_tasks_is_swept(tmp_path):
    """A review: a suggest killed while writing left its temporary GeoPackage and GDAL's
    journal beside the tasks, and later runs left them there."""
    import subprocess

    from aerialseg.files import owner

    dead = subprocess.Popen(["true"])
    dead.wait()
    left = tmp_path / f".tasks.gpkg.aerialseg-{owner(dead.pid)}.tmp.gpkg"
    journal = left.with_name(left.name + "-journal")
    for path in (left, journal):
        path.write_bytes(b"half")
    aerialseg.suggest(SAMPLE, tmp_path / "tasks.gpkg", count=1, block_size="128m")
    assert not left.exists() and not journal.exists()
    assert (tmp_path / "tasks.gpkg").is_file()


def test_labels_naming_a_class_the_model_lacks_are_refused_before_predicting(tmp_path):
    """A review: suggest took labels whose 'class' named no class of the model's table,
    and the split it printed failed on them; it now says so before predicting."""
    with rasterio.open(SAMPLE) as ds:
        left, bottom, right, top = ds.bounds
        crs = ds.crs
    inside = box(left + 10, bottom + 10, left + 60, bottom + 60)
    labels = tmp_path / "labels.gpkg"
    schema = {"geometry": "Polygon", "properties": {"class": "str"}}
    with fiona.open(labels, "w", driver="GPKG", crs=crs.to_wkt(), schema=schema) as dst:
        for name in ("Water", "Spaceship"):
            dst.write({"geometry": mapping(inside), "properties": {"class": name}})
    with pytest.raises(AerialsegError, match="match no class name or mask_value: 'Spaceship'"):
        aerialseg.suggest(SAMPLE, tmp_path / "tasks.gpkg", labels=labels, block_size="128m")
    assert not (tmp_path / "tasks.gpkg").exists()


def test_the_tasks_are_in_the_first_given_scenes_crs_and_a_plain_one_is_named(tmp_path):
    """A review: the tasks' CRS was that of the first scene by name, not the first given
    (feet2263.tif before utm.tif put Dubai's tasks in New York's State Plane); and a plain
    image among georeferenced scenes was refused under a georeferenced one's name."""
    pixels = np.random.default_rng(0).integers(0, 255, (3, 64, 64), dtype=np.uint8)
    utm = write_geotiff(tmp_path / "b_utm.tif", pixels)
    mercator = Affine(0.5, 0, 6_150_000, 0, -0.5, 2_900_000)
    web = write_geotiff(tmp_path / "a_web.tif", pixels, crs=CRS.from_epsg(3857), transform=mercator)
    for scenes in ([utm, web], [web, utm]):
        out = tmp_path / f"{scenes[0].stem}.gpkg"
        aerialseg.suggest(scenes, out, count=1, block_size=32, min_distance=0)
        with fiona.open(out, layer="tasks") as tasks, rasterio.open(scenes[0]) as first:
            assert CRS.from_user_input(tasks.crs) == first.crs, scenes
    plain = write_geotiff(tmp_path / "c_plain.tif", pixels, crs=None)
    for scenes in ([utm, plain], [plain, utm]):
        with pytest.raises(SuggestError, match="^c_plain.tif has no georeference and b_utm.tif"):
            aerialseg.suggest(scenes, tmp_path / "x.gpkg", count=1, block_size=32)
