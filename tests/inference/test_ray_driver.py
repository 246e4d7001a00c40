"""predict --ray's driver on an in-process stand-in for Ray (tests/helpers/fake_ray.py):
what it submits, splits, assembles and retries, and the resources it asks for. The same
driver on a real local Ray: test_distributed.py."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
import torch

from aerialseg.cli import main
from aerialseg.errors import AerialsegError
from aerialseg.files import TAG, OutputSet, owner
from aerialseg.inference import distributed
from aerialseg.inference.distributed import (
    IN_FLIGHT_PER_WORKER,
    RECORD,
    DoneRecord,
    RaySettings,
    WorkerModel,
    predict_on_ray,
    ray_inputs,
    run_fingerprint,
)
from aerialseg.inference.run import PredictOptions
from tests.helpers.fake_ray import FakeRay
from tests.helpers.geotiff import write_geotiff
from tests.helpers.images import rgb_scene

ALL = frozenset({"classes", "color", "confidence", "overlay", "areas"})
# 300 x 200 px at 0.01 MP a block: row blocks of about 50 rows (bands of 32)
SMALL_BLOCKS = 0.01e6


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if not p.name.startswith(".")}


@pytest.fixture
def inputs(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        write_geotiff(folder / f"s{i}.tif", rgb_scene(70, 90, seed=i))
    write_geotiff(folder / "large.tif", rgb_scene(300, 200, seed=9))
    return folder


def run(fake: FakeRay, model: Path, items: list, out: Path, monkeypatch, **settings):
    monkeypatch.setattr(distributed, "_start_ray", lambda address: (fake, True))
    paths, names = ray_inputs([str(i) for i in items])
    spec = WorkerModel(str(model), device="cpu", threads=settings.pop("threads", 1))
    opts = PredictOptions(outputs=ALL)
    where = RaySettings(block_pixels=settings.pop("block_pixels", SMALL_BLOCKS), **settings)
    return predict_on_ray(spec, Path(model), paths, out, opts, names, where)


def single_run(model: Path, items: list, out: Path) -> dict[str, bytes]:
    args = ["predict", *map(str, items), "--out", str(out), "--model", str(model)]
    assert main([*args, "--all-outputs", "--device", "cpu"]) == 0
    return files(out)


def test_large_scenes_are_predicted_in_blocks_and_assembled_as_a_single_run(
    tiny_model, inputs, tmp_path, monkeypatch
):
    fake = FakeRay(cpus=2)
    summary = run(fake, tiny_model, [inputs], tmp_path / "ray", monkeypatch)
    assert files(tmp_path / "ray") == single_run(tiny_model, [inputs], tmp_path / "single")
    assert sorted(Path(p).name for p in summary.done) == ["large.tif", "s0.tif", "s1.tif"]
    assert (summary.failed, summary.retries, summary.skipped) == ({}, 0, 0)
    assert summary.pixels == 2 * 70 * 90 + 300 * 200  # each pixel once, blocks' included
    kinds = [name for name, _ in fake.calls if name != "owner"]
    blocks = [args for name, args in fake.calls if name == "block"]
    assert kinds.count("scene") == 3 and kinds.count("assemble") == 1 and len(blocks) >= 4
    rows = sorted((a, b) for _, _, a, b in blocks)
    assert rows[0][0] == 0 and rows[-1][1] == 300  # the blocks tile the rows
    assert all(b == c for (_, b), (c, _) in zip(rows, rows[1:], strict=False))
    (assembled,) = [args for name, args in fake.calls if name == "assemble"]
    assert list(assembled[2]) == rows
    assert kinds.index("assemble") > max(i for i, k in enumerate(kinds) if k == "block")
    # two workers of one CPU each, every one killed at the end; Ray shut down (it started it)
    assert len(fake.actors) == 2 and fake.killed == fake.actors and fake.shut_down
    assert fake.options == {"num_cpus": 1.0, "num_gpus": 0, "max_restarts": 0}
    assert fake.most_in_flight <= IN_FLIGHT_PER_WORKER * 2
    assert [p.name for p in (tmp_path / "ray").glob(".*")] == [RECORD]


def test_a_dead_workers_unit_is_run_again_on_a_new_worker(
    tiny_model, inputs, tmp_path, monkeypatch
):
    died = []

    def dies(method: str, args: tuple) -> bool:
        if method == "block" and not died:
            died.append(args)
            return True
        return False

    fake = FakeRay(cpus=2, dies=dies)
    summary = run(fake, tiny_model, [inputs], tmp_path / "ray", monkeypatch)
    assert summary.retries >= 1 and not summary.failed and len(summary.done) == 3
    assert died[0] in [args for name, args in fake.calls if name == "block"]  # run again
    assert len(fake.actors) >= 3  # the dead one replaced
    assert files(tmp_path / "ray") == single_run(tiny_model, [inputs], tmp_path / "single")


def test_a_unit_whose_worker_dies_each_time_fails_alone(
    tiny_model, inputs, tmp_path, monkeypatch, capsys
):
    tries = []

    def dies(method: str, args: tuple) -> bool:
        if method == "scene" and "s1" in args[1]:
            tries.append(args)
            return True
        return False

    summary = run(FakeRay(cpus=2, dies=dies), tiny_model, [inputs], tmp_path / "ray", monkeypatch)
    assert len(tries) == 3  # tried 3 times, then given up
    (failed,) = summary.failed
    assert failed.endswith("s1.tif")
    assert summary.failed[failed] == f"{failed}: its worker died 3 times while predicting it"
    # the units queued behind it on a dying worker were retried too, and finished
    assert summary.retries >= 2
    assert sorted(Path(p).name for p in summary.done) == ["large.tif", "s0.tif"]
    assert "aerialseg: skipped" in capsys.readouterr().err  # said as it happens
    done = (tmp_path / "ray" / RECORD).read_text()
    assert "s0" in done and "large" in done and '"s1"' not in done


def test_workers_that_keep_dying_stop_the_run(tiny_model, inputs, tmp_path, monkeypatch):
    fake = FakeRay(cpus=2, dies=lambda method, args: method != "owner")
    with pytest.raises(AerialsegError, match="Ray workers keep dying"):
        run(fake, tiny_model, [inputs], tmp_path / "ray", monkeypatch)
    assert fake.killed  # the live ones killed on the way out


def test_a_bad_input_fails_alone_with_its_reason(tiny_model, inputs, tmp_path, monkeypatch):
    (inputs / "bad.tif").write_bytes(b"not an image")
    summary = run(FakeRay(), tiny_model, [inputs], tmp_path / "ray", monkeypatch)
    (reason,) = summary.failed.values()
    assert "bad.tif" in reason and "not an image aerialseg can read" in reason
    assert len(summary.done) == 3


@pytest.mark.parametrize(
    ("cpus", "gpus", "threads", "workers", "expected"),
    [
        (8, 0, 2, None, (4, {"num_cpus": 2.0, "num_gpus": 0})),  # threads' CPUs each
        (2, 0, 4, None, (1, {"num_cpus": 2.0, "num_gpus": 0})),  # no more than a node has
        (8, 2, 2, None, (2, {"num_cpus": 1.0, "num_gpus": 1.0})),  # a GPU each
        (2, 0, 2, 3, (3, {"num_cpus": 2 / 3, "num_gpus": 0})),  # more workers share them
        (8, 2, 1, 4, (4, {"num_cpus": 1.0, "num_gpus": 0.5})),
    ],
)
def test_workers_and_the_resources_each_holds(
    cpus, gpus, threads, workers, expected, tiny_model, tmp_path, monkeypatch
):
    scene = tmp_path / "s.tif"
    write_geotiff(scene, rgb_scene(40, 40, seed=1))
    fake = FakeRay(cpus=cpus, gpus=gpus)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(distributed, "_start_ray", lambda address: (fake, False))
    paths, names = ray_inputs([str(scene)])
    spec = WorkerModel(str(tiny_model), device="auto", threads=threads)
    settings = RaySettings(workers=workers)
    predict_on_ray(spec, tiny_model, paths, tmp_path / "o", PredictOptions(), names, settings)
    count, resources = expected
    assert len(fake.actors) == count
    assert fake.options == {**resources, "max_restarts": 0}
    assert not fake.shut_down  # a Ray it joined is left running


def test_a_second_run_skips_complete_scenes_without_starting_ray(
    tiny_model, inputs, tmp_path, monkeypatch
):
    out = tmp_path / "ray"
    run(FakeRay(), tiny_model, [inputs], out, monkeypatch)
    monkeypatch.setattr(distributed, "_start_ray", lambda address: pytest.fail("Ray started"))
    paths, names = ray_inputs([str(inputs)])
    spec = WorkerModel(str(tiny_model), device="cpu", threads=1)
    opts, where = PredictOptions(outputs=ALL), RaySettings(block_pixels=SMALL_BLOCKS)
    summary = predict_on_ray(spec, tiny_model, paths, out, opts, names, where)
    assert summary.skipped == 3 and not summary.done
    # other options are another run: nothing skipped
    fake = FakeRay()
    monkeypatch.setattr(distributed, "_start_ray", lambda address: (fake, True))
    again = predict_on_ray(
        spec, tiny_model, paths, out, dataclasses.replace(opts, tta=True), names, where
    )
    assert again.skipped == 0 and len(again.done) == 3


def test_workers_compute_with_the_drivers_threads_unless_told(tiny_model, tmp_path, monkeypatch):
    scene = tmp_path / "s.tif"
    write_geotiff(scene, rgb_scene(40, 40, seed=1))
    fake = FakeRay(cpus=8)
    monkeypatch.setattr(distributed, "_start_ray", lambda address: (fake, True))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    threads: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    paths, names = ray_inputs([str(scene)])
    spec = WorkerModel(str(tiny_model), device="cpu")
    predict_on_ray(spec, tiny_model, paths, tmp_path / "o", PredictOptions(), names, RaySettings())
    assert threads == [3, 3]  # each worker computes with the driver's threads
    assert fake.options["num_cpus"] == 3.0 and len(fake.actors) == 2  # 8 CPUs // 3


def test_the_fingerprint_changes_with_what_decides_the_bytes(tiny_model, tmp_path):
    spec, opts = WorkerModel(str(tiny_model), threads=2), PredictOptions()
    first = run_fingerprint(spec, tiny_model, opts)
    assert first == run_fingerprint(spec, tiny_model, dataclasses.replace(opts, progress=False))
    assert len(first) == 16
    other = tmp_path / "other.pt"
    other.write_bytes(tiny_model.read_bytes() + b"\0")
    changed = [
        run_fingerprint(spec, other, opts),
        run_fingerprint(dataclasses.replace(spec, engine="onnx"), tiny_model, opts),
        run_fingerprint(dataclasses.replace(spec, precision="fp32"), tiny_model, opts),
        run_fingerprint(dataclasses.replace(spec, threads=4), tiny_model, opts),
        run_fingerprint(spec, tiny_model, dataclasses.replace(opts, tta=True)),
        run_fingerprint(spec, tiny_model, dataclasses.replace(opts, outputs=ALL)),
    ]
    assert len({first, *changed}) == 7


def test_the_record_holds_only_complete_scenes_of_the_same_settings(tmp_path):
    done = tmp_path / "a_classes.tif"
    done.write_bytes(b"x")
    DoneRecord(tmp_path, "run1").add("a", "/in/a.tif", {"classes": str(done)})
    DoneRecord(tmp_path, "run1").add("b", "/in/b.tif", {"classes": str(tmp_path / "gone.tif")})
    with (tmp_path / RECORD).open("a") as f:
        f.write('{"name": "c", "inp')  # a line cut short by a crash
    again = DoneRecord(tmp_path, "run1")
    assert again.complete("a") and not again.complete("b") and not again.complete("c")
    assert not DoneRecord(tmp_path, "other options").complete("a")


def test_a_scene_written_again_since_its_record_is_not_done(tmp_path):
    """Another run (other options, or a set it began and the next run completed) wrote
    the scene's files since: the record's entry no longer describes them."""
    done = tmp_path / "a_classes.tif"
    done.write_bytes(b"x")
    DoneRecord(tmp_path, "run1").add("a", "/in/a.tif", {"classes": str(done)})
    assert DoneRecord(tmp_path, "run1").complete("a")
    os.utime(done, ns=(0, done.stat().st_mtime_ns + 1_000_000))
    assert not DoneRecord(tmp_path, "run1").complete("a")


def test_url_inputs_keep_their_slashes_and_get_names(tmp_path):
    (tmp_path / "x.tif").write_bytes(b"")
    inputs, names = ray_inputs(
        [str(tmp_path / "x.tif"), "https://h.org/a/x.tif", "s3://bucket/b/y.tif", "/vsis3/c/z.tif"]
    )
    assert inputs[1:] == ["https://h.org/a/x.tif", "s3://bucket/b/y.tif", "/vsis3/c/z.tif"]
    assert [names[i] for i in inputs] == ["x", "h.org__a__x", "y", "z"]


def test_a_dead_workers_half_written_files_are_swept(tiny_model, inputs, tmp_path, monkeypatch):
    """A worker that dies mid-scene leaves its temporaries and maybe a set half renamed,
    named by its host and process: the driver completes the set and removes the rest once
    Ray says it died, even while the process still answers as running (a zombie; here,
    the in-process workers are this very process)."""
    out = tmp_path / "ray"
    left: list[Path] = []

    def dies(method: str, args: tuple) -> bool:
        if method == "scene" and "s0" in args[1] and not left:
            left.append(out / f".s0_scratch.tif.{TAG}-{owner()}.tmp")
            left[0].write_bytes(b"half")
            outputs = OutputSet(out, "s0")
            outputs.temp(out / "s0_note.txt").write_text("renamed")
            outputs.temp(out / "s0_other.txt").write_text("renamed too")
            record = {"owner": owner(), "moves": list(outputs.moves.items()), "drops": []}
            outputs.manifest.write_text(json.dumps(record))
            left.append(outputs.manifest)
            return True
        return False

    summary = run(FakeRay(cpus=2, dies=dies), tiny_model, [inputs], out, monkeypatch)
    assert left and not left[0].exists() and not left[1].exists()
    assert (out / "s0_note.txt").read_text() == "renamed"  # the set completed
    assert summary.retries >= 1 and len(summary.done) == 3


def test_blocks_written_before_an_interruption_are_not_predicted_again(
    tiny_model, inputs, tmp_path, monkeypatch
):
    out = tmp_path / "ray"
    first = run(FakeRay(dies=lambda m, a: m == "assemble"), tiny_model, [inputs], out, monkeypatch)
    (failed,) = first.failed
    assert failed.endswith("large.tif") and first.pixels == 2 * 70 * 90 + 300 * 200
    again = run(FakeRay(), tiny_model, [inputs], out, monkeypatch)
    assert again.skipped == 2 and again.pixels == 0  # every block found written
    assert files(out) == single_run(tiny_model, [inputs], tmp_path / "single")
