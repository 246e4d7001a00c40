"""predict --ray on a local Ray of 2 CPUs: the single run's bytes, retries, resume, errors."""

from __future__ import annotations

import logging
import os
import re
import signal
import threading
import time
import zipfile
from pathlib import Path

import pytest
import rasterio
from rasterio.windows import Window

from aerialseg.cli import main
from tests.helpers.geotiff import write_geotiff
from tests.helpers.images import rgb_scene
from tests.helpers.paths import REAL_DATA, requires_real_data

IMAGES = REAL_DATA / "Semantic segmentation dataset"

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray for the module (starting one costs seconds); --ray joins it."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield
    ray.shutdown()


def predict(*args) -> int:
    return main(["predict", *map(str, args), "--device", "cpu"])


def files(folder: Path) -> dict[str, bytes]:
    """Every output file's bytes, by name; hidden files (the run record) aside."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if not p.name.startswith(".")}


def scenes(folder: Path, count: int, size=(70, 90)) -> Path:
    folder.mkdir()
    for i in range(count):
        write_geotiff(folder / f"s{i}.tif", rgb_scene(*size, seed=i))
    return folder


def test_outputs_equal_a_single_run_small_and_split_scenes(tiny_model, tmp_path, capsys):
    inputs = scenes(tmp_path / "in", 3)
    # 300 x 200 px at 0.01 MP a block: split into blocks of about 50 rows (bands of 32)
    write_geotiff(inputs / "large.tif", rgb_scene(300, 200, seed=9))
    base = ["--model", tiny_model, "--all-outputs"]
    assert predict(inputs, "--out", tmp_path / "single", *base) == 0
    capsys.readouterr()
    ray_run = tmp_path / "ray"
    assert predict(inputs, "--out", ray_run, *base, "--ray", "--block-megapixels", "0.01") == 0
    said = capsys.readouterr().out
    assert "predicted 4 of 4 scene(s)" in said and "0 retried" in said and "0 failed" in said
    assert "0.1 MP" in said  # 3 x 6,300 + 60,000 px
    single = files(tmp_path / "single")
    kinds = ("classes.tif", "color.tif", "confidence.tif", "overlay.png", "areas.csv", "areas.json")
    for scene in ("s0", "s1", "s2", "large"):
        assert all(f"{scene}_{kind}" in single for kind in kinds)
    assert files(ray_run) == single  # byte for byte, the blocked scene's COGs too
    # no block file, step file or temporary left; the run record only
    assert [p.name for p in ray_run.glob(".*")] == [".aerialseg-done.jsonl"]


@requires_real_data()
@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_real_images_equal_a_single_run(tmp_path, capsys, precision):
    """Two protocol test images with the bundled model: Tile 2's image_part_002 whole, and
    the last window of Tile 8's image_part_007 (rows 0-416, columns 1669-2149), where a
    worker on one torch thread flipped pixel (183, 1847) in bf16 against the 2 threads of
    one process (issue 29). Workers now compute with the driver's threads."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    source = IMAGES / "Tile 8" / "images" / "image_part_007.jpg"
    with rasterio.open(source) as src:
        window = src.read(window=Window(1669, 0, 480, 416))
    with rasterio.open(
        inputs / "tile8_007_last_window.png", "w", driver="PNG", width=480, height=416,
        count=3, dtype="uint8",
    ) as dst:  # fmt: skip
        dst.write(window)
    scenes = [
        inputs / "tile8_007_last_window.png",
        IMAGES / "Tile 2" / "images" / "image_part_002.jpg",
    ]
    base = ["--precision", precision, "--confidence"]
    assert predict(*scenes, "--out", tmp_path / "single", *base) == 0
    assert predict(*scenes, "--out", tmp_path / "ray", *base, "--ray") == 0
    assert "predicted 2 of 2 scene(s)" in capsys.readouterr().out
    single = files(tmp_path / "single")
    assert {"tile8_007_last_window_classes.png", "image_part_002_classes.png"} <= set(single)
    assert files(tmp_path / "ray") == single


def test_resume_skips_scenes_done(tiny_model, tmp_path, capsys):
    inputs = scenes(tmp_path / "in", 2)
    out = tmp_path / "o"
    args = [inputs, "--out", out, "--model", tiny_model, "--ray"]
    assert predict(*args) == 0
    first = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    write_geotiff(inputs / "s2.tif", rgb_scene(70, 90, seed=2))
    (out / "s1_areas.json").unlink()  # recorded, but no longer complete on disk
    capsys.readouterr()
    assert predict(*args) == 0
    said = capsys.readouterr().out
    assert "predicted 2 of 3 scene(s) (1 done before, skipped)" in said
    assert all(p.stat().st_mtime_ns == t for p, t in first.items() if p.name.startswith("s0"))
    assert (out / "s1_areas.json").is_file() and (out / "s2_classes.tif").is_file()


def test_a_bad_input_among_good_ones_and_a_gdal_url(tiny_model, tmp_path, capsys):
    inputs = scenes(tmp_path / "in", 2)
    (inputs / "notes.tif").write_text("hello")
    # a GDAL virtual path, as URLs are: its "//" must reach GDAL as given
    local = write_geotiff(tmp_path / "u.tif", rgb_scene(60, 80, seed=7))
    with zipfile.ZipFile(tmp_path / "z.zip", "w") as z:
        z.write(local, "u.tif")
    url = f"/vsizip//{(tmp_path / 'z.zip').as_posix().lstrip('/')}/u.tif"
    out = tmp_path / "o"
    assert predict(inputs, url, "--out", out, "--model", tiny_model, "--ray") == 1
    captured = capsys.readouterr()
    assert "skipped" in captured.err and "notes.tif" in captured.err
    assert "not an image" in captured.err and "Traceback" not in captured.err
    assert "predicted 3 of 4 scene(s)" in captured.out and "1 failed" in captured.out
    written = sorted(p.name for p in out.glob("*_classes.tif"))
    assert written == ["s0_classes.tif", "s1_classes.tif", "u_classes.tif"]
    assert predict(local, "--out", tmp_path / "single", "--model", tiny_model) == 0
    single = (tmp_path / "single" / "u_classes.tif").read_bytes()
    assert (out / "u_classes.tif").read_bytes() == single


def test_a_killed_worker_s_scene_is_predicted_again(tiny_model, tmp_path, capsys):
    """SIGKILL the worker process that is writing a scene: the run still ends complete,
    with the single run's bytes, and counts the retry."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_geotiff(inputs / "slow.tif", rgb_scene(384, 384, seed=3))  # 121 windows
    write_geotiff(inputs / "quick.tif", rgb_scene(70, 90, seed=4))
    out = tmp_path / "o"
    killed: list[int] = []
    step = re.compile(r"\.slow_classes\.tif\.aerialseg-\w+-[0-9a-f]{8}-(\d+)\.step\.tif")

    def kill_the_writer() -> None:
        deadline = time.monotonic() + 300  # Ray starts slowly on a busy machine
        while not killed and time.monotonic() < deadline:
            for name in os.listdir(out) if out.is_dir() else []:
                if match := step.fullmatch(name):
                    os.kill(int(match[1]), signal.SIGKILL)
                    killed.append(int(match[1]))
                    return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_the_writer)
    killer.start()
    try:
        # two workers, so that only the killed one's scene is retried
        assert (
            predict(inputs, "--out", out, "--model", tiny_model, "--ray", "--ray-workers", 2) == 0
        )
    finally:
        killer.join()
    assert killed, "the slow scene's step file never appeared"
    said = capsys.readouterr().out
    assert "predicted 2 of 2 scene(s)" in said and "1 retried" in said, said
    assert predict(inputs, "--out", tmp_path / "single", "--model", tiny_model) == 0
    assert files(out) == files(tmp_path / "single")
    assert not [p for p in out.glob(".*") if str(killed[0]) in p.name]  # its files swept
