"""predict --ray's driver on an in-process stand-in for Ray (tests/helpers/fake_ray.py):
what it submits, splits, assembles and retries, and the resources it asks for. The same
driver on a real local Ray: test_distributed.py."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from tqdm import tqdm

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


def planned_blocks(model: Path, height: int, width: int, block_pixels: float) -> list:
    from aerialseg.inference.blocks import plan_blocks
    from aerialseg.inference.load import load_predictor

    predictor = load_predictor(model, device="cpu")
    return plan_blocks(height, width, predictor.spec, predictor.engine.stride, block_pixels)


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
    assert len(blocks) == len(planned_blocks(tiny_model, 300, 200, SMALL_BLOCKS))
    rows = sorted((a, b) for _, _, a, b in blocks)
    assert rows[0][0] == 0 and rows[-1][1] == 300  # the blocks tile the rows
    assert all(b == c for (_, b), (c, _) in zip(rows, rows[1:], strict=False))
    (assembled,) = [args for name, args in fake.calls if name == "assemble"]
    assert list(assembled[2]) == rows
    assert kinds.index("assemble") > max(i for i, k in enumerate(kinds) if k == "block")
    # two workers of one CPU each, every one killed at the end; Ray shut down (it started it)
    assert len(fake.actors) == 2 and fake.killed == fake.actors and fake.shut_down
    assert fake.options == {"num_cpus": 1.0, "num_gpus": 0, "max_restarts": 0}
    assert fake.most_in_flight == IN_FLIGHT_PER_WORKER * 2
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
    # the block, and the unit queued behind it on the same worker
    assert summary.retries == len(fake.deaths) == 2
    assert not summary.failed and len(summary.done) == 3
    assert died[0] in [args for name, args in fake.calls if name == "block"]  # run again
    assert len(fake.actors) == 3  # the dead one replaced
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

    fake = FakeRay(cpus=2, dies=dies)
    summary = run(fake, tiny_model, [inputs], tmp_path / "ray", monkeypatch)
    assert len(tries) == 3  # tried 3 times, then given up
    (failed,) = summary.failed
    assert failed.endswith("s1.tif")
    assert summary.failed[failed] == f"{failed}: its worker died 3 times while predicting it"
    # the units queued behind it on a dying worker were retried too, and finished
    assert summary.retries == len(fake.deaths) - 1  # every unit lost, but s1 at its last
    assert sorted(Path(p).name for p in summary.done) == ["large.tif", "s0.tif"]
    assert "aerialseg: skipped" in capsys.readouterr().err  # said as it happens
    done = (tmp_path / "ray" / RECORD).read_text()
    assert "s0" in done and "large" in done and '"s1"' not in done


def test_workers_that_keep_dying_stop_the_run(tiny_model, inputs, tmp_path, monkeypatch):
    fake = FakeRay(cpus=2, dies=lambda method, args: method != "owner")
    with pytest.raises(AerialsegError, match="Ray workers keep dying"):
        run(fake, tiny_model, [inputs], tmp_path / "ray", monkeypatch)
    assert len(fake.killed) == 2  # the pool's workers killed on the way out


def test_a_bad_input_fails_alone_with_its_reason(tiny_model, inputs, tmp_path, monkeypatch):
    (inputs / "bad.tif").write_bytes(b"not an image")
    summary = run(FakeRay(), tiny_model, [inputs], tmp_path / "ray", monkeypatch)
    (reason,) = summary.failed.values()
    assert "bad.tif" in reason and "not an image aerialseg can read" in reason
    assert len(summary.done) == 3


@pytest.mark.parametrize(
    ("nodes", "threads", "workers", "gpus", "expected"),
    [
        ([{"CPU": 8}], 2, None, True, (4, {"num_cpus": 2.0, "num_gpus": 0})),  # threads' CPUs
        ([{"CPU": 2}], 4, None, True, (1, {"num_cpus": 2.0, "num_gpus": 0})),  # a node's most
        ([{"CPU": 3}, {"CPU": 3}], 2, None, True, (2, {"num_cpus": 2.0, "num_gpus": 0})),
        ([{"CPU": 8, "GPU": 2}], 2, None, True, (2, {"num_cpus": 1.0, "num_gpus": 1.0})),
        ([{"CPU": 8, "GPU": 2}], 2, None, False, (4, {"num_cpus": 2.0, "num_gpus": 0})),
        # more workers than fit share what there is, each share rounded down to Ray's unit
        ([{"CPU": 2}], 2, 3, True, (3, {"num_cpus": 0.6666, "num_gpus": 0})),
        ([{"CPU": 8, "GPU": 2}], 1, 4, True, (4, {"num_cpus": 1.0, "num_gpus": 0.5})),
        ([{"CPU": 8, "GPU": 2}], 1, 3, True, (3, {"num_cpus": 1.0, "num_gpus": 0.5})),
        ([{"CPU": 8, "GPU": 4}], 1, 2, True, (2, {"num_cpus": 1.0, "num_gpus": 1.0})),
        # GPU nodes that offer no CPU; a CPU node beside a node without CPUs
        ([{"GPU": 2}], 2, None, True, (2, {"num_cpus": 0.0, "num_gpus": 1.0})),
        ([{"CPU": 4}, {"GPU": 1}], 2, None, False, (2, {"num_cpus": 2.0, "num_gpus": 0})),
    ],
)
def test_workers_and_the_resources_each_holds(nodes, threads, workers, gpus, expected):
    """As many workers as fit on the live nodes, each on one node."""
    count, resources = expected
    assert distributed.placement(nodes, threads, workers, gpus) == (count, resources)
    cpus = sum(node.get("CPU", 0) for node in nodes)
    assert count * resources["num_cpus"] <= cpus


@pytest.mark.parametrize(("device", "gpus"), [("auto", 2), ("cpu", 0)])
def test_the_driver_places_workers_on_the_live_nodes(
    device, gpus, tiny_model, tmp_path, monkeypatch
):
    scene = tmp_path / "s.tif"
    write_geotiff(scene, rgb_scene(40, 40, seed=1))
    fake = FakeRay(cpus=8, gpus=2)  # and a dead node of 99 CPUs and 9 GPUs
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch, "set_num_threads", lambda threads: None)  # this process's
    addresses = []

    def join(address):
        addresses.append(address)
        return fake, False  # a Ray that was running

    monkeypatch.setattr(distributed, "_start_ray", join)
    paths, names = ray_inputs([str(scene)])
    spec = WorkerModel(str(tiny_model), device=device, threads=2)
    settings = RaySettings(address="ray://head:10001")
    predict_on_ray(spec, tiny_model, paths, tmp_path / "o", PredictOptions(), names, settings)
    count, resources = distributed.placement([{"CPU": 8, "GPU": 2}], 2, None, gpus > 0)
    assert len(fake.actors) == count == (2 if gpus else 4)
    assert fake.options == {**resources, "max_restarts": 0}
    assert addresses == ["ray://head:10001"]
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
    assert (
        again.complete("a", "/in/a.tif")
        and not again.complete("b", "/in/b.tif")
        and not again.complete("c", "/in/c.tif")
    )
    assert not DoneRecord(tmp_path, "other options").complete("a", "/in/a.tif")


def test_a_scene_written_again_since_its_record_is_not_done(tmp_path):
    """Another run (other options, or a set it began and the next run completed) wrote
    the scene's files since: the record's entry no longer describes them."""
    done = tmp_path / "a_classes.tif"
    done.write_bytes(b"x")
    DoneRecord(tmp_path, "run1").add("a", "/in/a.tif", {"classes": str(done)})
    assert DoneRecord(tmp_path, "run1").complete("a", "/in/a.tif")
    os.utime(done, ns=(0, done.stat().st_mtime_ns + 1_000_000))
    assert not DoneRecord(tmp_path, "run1").complete("a", "/in/a.tif")


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

    fake = FakeRay(cpus=2, dies=dies)
    summary = run(fake, tiny_model, [inputs], out, monkeypatch)
    assert left and not left[0].exists() and not left[1].exists()
    assert (out / "s0_note.txt").read_text() == "renamed"  # the set completed
    assert summary.retries == len(fake.deaths) and len(summary.done) == 3


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


def test_an_assembly_whose_worker_died_after_it_is_done_again(
    tiny_model, inputs, tmp_path, monkeypatch
):
    """A worker that dies once it has written a scene and removed its blocks: the
    assembly, tried again, predicts the blocks again rather than failing on their absence."""
    assembled: list = []

    def first_assembly(method, args) -> bool:
        assembled.append(method == "assemble")
        return method == "assemble" and assembled.count(True) == 1

    out, fake = tmp_path / "ray", FakeRay(dies_after=first_assembly)
    summary = run(fake, tiny_model, [inputs], out, monkeypatch)
    assert [name for name, _ in fake.deaths] == ["assemble"]
    assert not summary.failed and len(summary.done) == 3 and summary.retries == 1
    assert files(out) == single_run(tiny_model, [inputs], tmp_path / "single")


def test_blocks_of_another_precision_are_not_assembled_into_a_scene(
    tiny_model, inputs, tmp_path, monkeypatch
):
    """precision auto is bf16 on one CPU and fp32 on another: a run resumed on the other
    kind predicts the blocks left by the first again, so no scene mixes the two."""
    from aerialseg.inference import engine

    out = tmp_path / "ray"
    monkeypatch.setattr(engine, "cpu_has_native_bf16", lambda: True)
    first = run(FakeRay(dies=lambda m, a: m == "assemble"), tiny_model, [inputs], out, monkeypatch)
    assert list(first.failed) == [str(inputs / "large.tif")]
    monkeypatch.setattr(engine, "cpu_has_native_bf16", lambda: False)
    again = run(FakeRay(), tiny_model, [inputs], out, monkeypatch)
    assert again.pixels == 300 * 200  # every block predicted again, in fp32
    single = single_run(tiny_model, [inputs], tmp_path / "single")
    assert {k: v for k, v in files(out).items() if k.startswith("large")} == {
        k: v for k, v in single.items() if k.startswith("large")
    }


def test_workers_of_different_cpus_compute_in_one_precision(
    tiny_model, inputs, tmp_path, monkeypatch
):
    """precision auto on a cluster whose CPUs differ (bf16 on some, not on others): every
    worker computes in the precision a single process on the driver's machine chooses, so
    that a scene's blocks, predicted by several workers, can be put together."""
    from aerialseg.inference import engine

    native = iter([True] + [False] * 100)  # the driver's CPU has bf16; no worker's has
    monkeypatch.setattr(engine, "cpu_has_native_bf16", lambda: next(native))
    fake = FakeRay(cpus=4)
    summary = run(fake, tiny_model, [inputs], tmp_path / "ray", monkeypatch)
    assert {actor.instance.run.rsplit("-", 1)[1] for actor in fake.actors} == {"bf16"}
    assert not summary.failed and len(summary.done) == 3


def test_blocks_that_the_assembling_worker_never_finds_fail_their_scene_alone(
    tiny_model, inputs, tmp_path, monkeypatch
):
    """An --out that the nodes do not share: the worker that puts a scene together does
    not find the blocks the others wrote. After three tries the scene fails, saying why,
    and the run ends."""
    from aerialseg.inference import blocks

    monkeypatch.setattr(blocks, "finished_block", lambda path, run: False)
    fake = FakeRay()
    summary = run(fake, tiny_model, [inputs], tmp_path / "ray", monkeypatch)
    assert [name for name, _ in fake.calls].count("assemble") == distributed.MAX_ATTEMPTS
    (error,) = summary.failed.values()
    assert f"{distributed.MAX_ATTEMPTS} times (--out must be a folder that every node sees" in error
    assert len(summary.done) == 2


def test_an_onnx_model_is_predicted_in_fp32_on_a_bf16_driver(tiny_model, tmp_path, monkeypatch):
    """precision auto with an .onnx model (the engine left at its default): the driver's
    bf16 CPU does not make the workers ask ONNX Runtime for bf16, which it cannot do."""
    from aerialseg.inference import engine
    from aerialseg.models.export import export_onnx
    from aerialseg.models.io import load_model

    onnx = tmp_path / "m.onnx"
    export_onnx(load_model(tiny_model), onnx)
    monkeypatch.setattr(engine, "cpu_has_native_bf16", lambda: True)
    write_geotiff(tmp_path / "s.tif", rgb_scene(70, 90))
    summary = run(FakeRay(), onnx, [tmp_path / "s.tif"], tmp_path / "ray", monkeypatch)
    assert not summary.failed and len(summary.done) == 1


@pytest.fixture
def bars(monkeypatch) -> list:
    """The driver's progress bars, each with what it was made with and shown."""
    made: list = []

    class Bar(tqdm):
        def __init__(self, **kwargs):
            made.append(self)
            self.made_with, self.postfixes = kwargs, []
            super().__init__(**kwargs)

        def set_postfix(self, **shown):
            self.postfixes.append(shown)
            super().set_postfix(**shown)

    monkeypatch.setattr(distributed, "tqdm", Bar)
    return made


def test_the_bar_counts_scenes_and_shows_the_pixels_done(
    tiny_model, inputs, tmp_path, monkeypatch, bars
):
    out = tmp_path / "ray"
    run(FakeRay(), tiny_model, [inputs / "s0.tif"], out, monkeypatch)  # one scene done before
    bars.clear()
    clock = iter([100.0])  # the run starts at 100 s, and every later reading is 100.5
    monkeypatch.setattr(
        distributed, "time", SimpleNamespace(perf_counter=lambda: next(clock, 100.5))
    )
    summary = run(FakeRay(), tiny_model, [inputs], out, monkeypatch)
    (bar,) = bars
    assert bar.made_with == {"total": 3, "initial": 1, "desc": "predict", "unit": "scene"}
    assert bar.n == 3 and summary.skipped == 1
    pixels = 70 * 90 + 300 * 200
    assert summary.pixels == pixels and summary.seconds == 0.5
    shown = {"MP": f"{pixels / 1e6:.1f}", "MPps": f"{pixels / 1e6 / 0.5:.2f}"}
    assert bar.postfixes[-1] == {**shown, "retries": 0, "failed": 0}


@pytest.mark.parametrize(
    ("first_death", "deaths", "stops"), [(0, 7, False), (1, 7, False), (0, 8, True)]
)
def test_the_run_stops_after_more_deaths_in_a_row_than_two_per_worker_and_three(
    first_death, deaths, stops, tiny_model, inputs, tmp_path, monkeypatch
):
    """With 2 workers, 7 worker deaths in a row (2 x 2 + 3) are survived, an 8th stops
    the run; a unit that comes back starts the count again."""
    calls = []
    fake = FakeRay(cpus=2)

    def dies(method: str, args: tuple) -> bool:
        if method == "owner":
            return False
        calls.append(method)
        dead = sum(actor.dead for actor in fake.actors)
        return len(calls) > first_death and dead < deaths

    fake.dies = dies
    if stops:
        with pytest.raises(AerialsegError, match="^Ray workers keep dying; the last: "):
            run(fake, tiny_model, [inputs], tmp_path / "ray", monkeypatch)
        return
    summary = run(fake, tiny_model, [inputs], tmp_path / "ray", monkeypatch)
    assert sum(actor.dead for actor in fake.actors) == deaths
    # every unit in flight on a dying worker is run again, but one that fails for it
    assert summary.retries == len(fake.deaths) - len(summary.failed)
    assert len(summary.done) + len(summary.failed) == 3


@pytest.mark.parametrize(("bad", "good", "said"), [(1, 0, False), (1, 1, True)])
def test_a_skipped_input_is_said_as_it_happens_when_there_are_others(
    bad, good, said, tiny_model, tmp_path, monkeypatch, capsys
):
    """Alone, its failure is the command's own message (the CLI says it once)."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "bad.tif").write_bytes(b"not an image")
    if good:
        write_geotiff(folder / "good.tif", rgb_scene(40, 40, seed=1))
    summary = run(FakeRay(), tiny_model, [folder], tmp_path / "ray", monkeypatch)
    assert len(summary.failed) == bad and len(summary.done) == good
    assert ("aerialseg: skipped" in capsys.readouterr().err) == said


def test_the_record_names_each_scenes_input_and_files(tiny_model, inputs, tmp_path, monkeypatch):
    out = tmp_path / "ray"
    summary = run(FakeRay(), tiny_model, [inputs], out, monkeypatch)
    lines = [json.loads(line) for line in (out / RECORD).read_text().splitlines()]
    assert {entry["input"]: entry["name"] for entry in lines} == {
        str(inputs / f"{name}.tif"): name for name in ("large", "s0", "s1")
    }
    assert {entry["input"]: entry["files"] for entry in lines} == summary.done
    assert all(Path(f).is_file() for files in summary.done.values() for f in files.values())


def test_a_slow_worker_is_given_no_more_than_it_holds(tiny_model, tmp_path, monkeypatch):
    """Units go to the worker with the fewest in flight: while one worker is slow (its
    results come back last), the other takes every unit after the first two each."""
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(8):
        write_geotiff(folder / f"s{i}.tif", rgb_scene(24, 24, seed=i))
    fake = FakeRay(cpus=2, slow_workers={1})
    run(fake, tiny_model, [folder], tmp_path / "ray", monkeypatch, block_pixels=1e9)
    scenes = [[args[1] for name, args in actor.calls if name == "scene"] for actor in fake.actors]
    assert [len(s) for s in scenes] == [6, 2]
    assert fake.most_in_flight == IN_FLIGHT_PER_WORKER * 2


def test_a_new_worker_takes_the_dead_ones_share(tiny_model, tmp_path, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(8):
        write_geotiff(folder / f"s{i}.tif", rgb_scene(24, 24, seed=i))
    fake = FakeRay(cpus=2)  # dies once, on s1
    fake.dies = lambda method, args: method == "scene" and "s1." in args[0] and not fake.deaths
    summary = run(fake, tiny_model, [folder], tmp_path / "ray", monkeypatch, block_pixels=1e9)
    assert len(summary.done) == 8 and summary.retries == 2  # s1 and the unit behind it
    counts = [sum(name == "scene" for name, _ in actor.calls) for actor in fake.actors]
    # the new worker is given the two units that died and then the next free place
    assert counts == [5, 0, 3]


def test_a_dead_worker_that_does_not_say_who_it_was_is_not_waited_for(
    tiny_model, inputs, tmp_path, monkeypatch
):
    """Its temporaries are left to the next run's sweep (files.sweep)."""
    fake = FakeRay(cpus=2, owner_hangs=True)
    fake.dies = lambda method, args: method == "block" and not fake.deaths
    summary = run(fake, tiny_model, [inputs], tmp_path / "ray", monkeypatch)
    assert len(fake.deaths) >= 1 and len(summary.done) == 3 and not summary.failed


def test_workers_draw_no_bars_of_their_own(tiny_model, inputs, tmp_path, monkeypatch):
    fake = FakeRay()
    monkeypatch.setattr(distributed, "_start_ray", lambda address: (fake, True))
    paths, names = ray_inputs([str(inputs / "s0.tif")])
    spec = WorkerModel(str(tiny_model), device="cpu", threads=1)
    opts = PredictOptions(progress=True)
    predict_on_ray(spec, tiny_model, paths, tmp_path / "o", opts, names, RaySettings())
    assert all(actor.instance.opts.progress is False for actor in fake.actors)


@pytest.mark.parametrize(
    ("engine", "device", "cuda", "loaded_on"),
    [
        ("torch", "auto", True, "auto"),  # Ray gave the worker a GPU
        ("torch", "auto", False, "cpu"),
        ("torch", "cuda", False, "cpu"),
        ("torch", "cpu", True, "cpu"),
        ("onnx", "auto", True, "cpu"),  # ONNX Runtime on the CPU
    ],
)
def test_a_worker_loads_the_model_as_told(engine, device, cuda, loaded_on, tmp_path, monkeypatch):
    from aerialseg.inference import load

    loaded, options = [], []

    class Loaded:
        engine = SimpleNamespace(precision="bf16")

        def with_options(self, **given):
            options.append(given)
            return self

    def load_predictor(model, **given):
        loaded.append((model, given))
        return Loaded()

    monkeypatch.setattr(load, "load_predictor", load_predictor)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch, "set_num_threads", lambda threads: None)
    spec = WorkerModel("m.pt", engine=engine, device=device, precision="bf16", threads=2)
    opts = PredictOptions(batch_size=3, tta=True, overlap=0.25)
    worker = distributed.PredictWorker(spec, opts, str(tmp_path), "run1")
    assert worker.run == "run1-bf16"  # its blocks say the precision it computes in
    given = {"engine": engine, "device": loaded_on, "precision": "bf16", "batch_size": 3}
    assert loaded == [("m.pt", given)]
    assert options == [{"tta": True, "overlap": 0.25}]


def test_a_scene_is_done_only_from_the_same_input_unchanged(tmp_path):
    """Found by a review: x/scene.tif predicted into OUT, then y/scene.tif (the same output
    name) was 'done before, skipped', and so was an input written again in place: OUT kept
    another scene's classes, areas and georeference."""
    done = tmp_path / "scene_classes.tif"
    done.write_bytes(b"x")
    source = tmp_path / "x" / "scene.tif"
    source.parent.mkdir()
    source.write_bytes(b"pixels")
    DoneRecord(tmp_path, "run1").add("scene", str(source), {"classes": str(done)})
    assert DoneRecord(tmp_path, "run1").complete("scene", str(source))
    assert not DoneRecord(tmp_path, "run1").complete("scene", str(tmp_path / "y" / "scene.tif"))
    os.utime(source, ns=(0, source.stat().st_mtime_ns + 1_000_000))  # written again
    assert not DoneRecord(tmp_path, "run1").complete("scene", str(source))
    # a URL has no stamp to compare: the same URL is the same input
    DoneRecord(tmp_path, "run1").add("remote", "http://h/r.tif", {"classes": str(done)})
    assert DoneRecord(tmp_path, "run1").complete("remote", "http://h/r.tif")
    assert not DoneRecord(tmp_path, "run1").complete("remote", "http://h/other/r.tif")


def test_a_record_that_is_no_file_is_refused_in_one_line(tmp_path):
    """Found by a review: OUT/.aerialseg-done.jsonl being a folder gave a traceback."""
    (tmp_path / RECORD).mkdir()
    with pytest.raises(AerialsegError, match="record of finished scenes is not a file"):
        DoneRecord(tmp_path, "run1")


def test_records_of_an_older_release_and_after_a_crash_are_read(tmp_path):
    done = tmp_path / "a_classes.tif"
    done.write_bytes(b"x")
    older = {"name": "a", "input": "/in/a.tif", "run": "run1", "files": {"classes": str(done)}}
    (tmp_path / RECORD).write_text(json.dumps(older) + "\n" + '{"name": "b", "inp')
    DoneRecord(tmp_path, "run1").add("c", "/in/c.tif", {"classes": str(done)})
    record = DoneRecord(tmp_path, "run1")
    assert record.complete("a", "/in/a.tif")  # no stamps then: its files being there is enough
    assert record.complete("c", "/in/c.tif")  # the line after the cut one is whole
    assert not record.complete("b", "/in/b.tif")


def test_a_folder_where_a_recorded_file_was_is_not_done(tmp_path):
    done = tmp_path / "a_classes.tif"
    done.write_bytes(b"x")
    DoneRecord(tmp_path, "run1").add("a", "/in/a.tif", {"classes": str(done)})
    done.unlink()
    done.mkdir()
    assert not DoneRecord(tmp_path, "run1").complete("a", "/in/a.tif")


def opened(monkeypatch) -> list[str]:
    """The inputs opened for reading pixels, one entry per opening."""
    from aerialseg.inference import run as predict_run

    paths: list[str] = []
    real = predict_run._open

    def counted(path, *args):
        paths.append(Path(path).name)
        return real(path, *args)

    monkeypatch.setattr(predict_run, "_open", counted)
    return paths


def test_a_scene_of_at_most_a_block_is_opened_once(tiny_model, tmp_path, monkeypatch):
    """Its header says its size: it is not opened a second time to plan blocks."""
    scene = tmp_path / "s.tif"
    write_geotiff(scene, rgb_scene(70, 90, seed=1))
    paths = opened(monkeypatch)
    fake = FakeRay()
    summary = run(fake, tiny_model, [scene], tmp_path / "o", monkeypatch, block_pixels=70 * 90)
    assert paths == ["s.tif"] and summary.pixels == 70 * 90
    assert [name for name, _ in fake.calls if name != "owner"] == ["scene"]


def test_a_resampled_scene_is_planned_on_its_new_grid(tiny_model, tmp_path, monkeypatch):
    """At a finer pixel size than its own a scene has more pixels than its header says:
    it is opened to plan its blocks, and its pixels are counted on the new grid."""
    scene = tmp_path / "s.tif"
    write_geotiff(scene, rgb_scene(100, 100, seed=1))  # 0.5 m pixels
    fake = FakeRay()
    monkeypatch.setattr(distributed, "_start_ray", lambda address: (fake, True))
    paths, names = ray_inputs([str(scene)])
    spec = WorkerModel(str(tiny_model), device="cpu", threads=1)
    opts = PredictOptions(pixel_size=0.25)
    whole = predict_on_ray(spec, tiny_model, paths, tmp_path / "a", opts, names, RaySettings())
    assert whole.pixels == 200 * 200
    assert [name for name, _ in fake.calls if name != "owner"] == ["scene"]  # one block
    fake.calls.clear()
    split = RaySettings(block_pixels=20_000)  # above the header's 10,000 px, below 40,000
    blocks = predict_on_ray(spec, tiny_model, paths, tmp_path / "b", opts, names, split)
    assert blocks.pixels == 200 * 200 and "block" in [name for name, _ in fake.calls]
    assert files(tmp_path / "a") == files(tmp_path / "b")


def test_a_scene_of_two_blocks_is_split(tiny_model, inputs, tmp_path, monkeypatch):
    sizes = range(1000, 300 * 200, 1000)
    two = next(size for size in sizes if len(planned_blocks(tiny_model, 300, 200, size)) == 2)
    fake = FakeRay()
    run(fake, tiny_model, [inputs / "large.tif"], tmp_path / "o", monkeypatch, block_pixels=two)
    assert [name for name, _ in fake.calls].count("block") == 2


def test_blocks_are_assembled_without_running_the_network_again(
    tiny_model, inputs, tmp_path, monkeypatch
):
    """Assembling reads the blocks the workers wrote, under the name the driver gave."""
    from aerialseg.inference.predict import Predictor

    assembling = []
    real_assemble, real_rows = distributed.PredictWorker.assemble, Predictor.rows

    def assemble(self, *args):
        assembling.append(args[1])
        try:
            return real_assemble(self, *args)
        finally:
            assembling.clear()

    def rows(self, *args, **kwargs):
        assert not assembling, "the network ran while assembling"
        return real_rows(self, *args, **kwargs)

    monkeypatch.setattr(distributed.PredictWorker, "assemble", assemble)
    monkeypatch.setattr(Predictor, "rows", rows)
    monkeypatch.setattr(distributed, "_start_ray", lambda address: (FakeRay(), True))
    paths, _ = ray_inputs([str(inputs)])
    names = {path: "renamed_" + Path(path).stem for path in paths}
    spec = WorkerModel(str(tiny_model), device="cpu", threads=1)
    opts, where = PredictOptions(outputs=ALL), RaySettings(block_pixels=SMALL_BLOCKS)
    predict_on_ray(spec, tiny_model, paths, tmp_path / "ray", opts, names, where)
    expected = single_run(tiny_model, [inputs], tmp_path / "single")
    assert files(tmp_path / "ray") == {"renamed_" + k: v for k, v in expected.items()}


def test_a_plain_photo_is_predicted_as_in_a_single_run(tiny_model, tmp_path, monkeypatch):
    """A PNG has no georeferencing: reading its header on a worker warns of nothing."""
    from PIL import Image

    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(rgb_scene(60, 80, seed=3).transpose(1, 2, 0)).save(folder / "photo.png")
    summary = run(FakeRay(), tiny_model, [folder], tmp_path / "ray", monkeypatch)
    assert summary.pixels == 60 * 80 and not summary.failed
    assert files(tmp_path / "ray") == single_run(tiny_model, [folder], tmp_path / "single")


def test_lines_that_are_no_records_are_not_done_and_stop_nothing(tmp_path):
    """A record damaged or written by hand: its odd lines are scenes not done, and the
    next run predicts them again."""
    done = tmp_path / "a_classes.tif"
    done.write_bytes(b"x")
    DoneRecord(tmp_path, "run1").add("a", "/in/a.tif", {"classes": str(done)})
    odd = [
        [1],
        {"run": "run1"},
        {"run": "run1", "name": "b", "files": {"classes": 3}},
        {"run": "run1", "name": "c", "files": [str(done)]},
        {"run": "run1", "name": 5, "files": {"classes": str(done)}},
        {"run": "run1", "name": "d", "files": {"classes": str(done)}, "stamps": [1]},
        {"run": "run1", "name": "e", "files": {}},  # no file: nothing shows it was done
        {"run": "run1", "name": "f", "files": {"classes": "f\0_classes.tif"}},
    ]
    with (tmp_path / RECORD).open("ab") as f:
        f.write(b"\xff\xfe not text\n" + b"[" * 100_000 + b"\n")
        f.write("".join(json.dumps(line) + "\n" for line in odd).encode())
    record = DoneRecord(tmp_path, "run1")
    assert record.complete("a", "/in/a.tif")
    assert not any(
        record.complete(name, f"/in/{name}.tif") for name in ("b", "c", "5", "d", "e", "f")
    )
    assert list(record.entries) == ["a", "f"]


def test_a_workers_error_stops_the_run_as_a_single_process_would(
    tiny_model, inputs, tmp_path, monkeypatch
):
    """A full disk is no input's fault: the run stops with the worker's own error (which
    the CLI says in one line), and no worker is left running."""
    import errno

    def scene(self, path, name, block_pixels):
        raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr(distributed.PredictWorker, "scene", scene)
    fake = FakeRay()
    with pytest.raises(OSError) as raised:
        run(fake, tiny_model, [inputs], tmp_path / "ray", monkeypatch)
    assert raised.value.errno == errno.ENOSPC and raised.value.filename.endswith(".tif")
    assert fake.killed == fake.actors


def test_a_scene_whose_blocks_kill_their_workers_fails_once(
    tiny_model, inputs, tmp_path, monkeypatch, bars
):
    """Two of its blocks kill every worker that runs them: the scene fails, is counted
    once, and is not assembled."""
    last = planned_blocks(tiny_model, 300, 200, SMALL_BLOCKS)[-1][0]
    fake = FakeRay(cpus=2, dies=lambda method, args: method == "block" and args[2] in (0, last))
    summary = run(fake, tiny_model, [inputs], tmp_path / "ray", monkeypatch)
    (failed,) = summary.failed
    assert failed.endswith("large.tif") and "its worker died 3 times" in summary.failed[failed]
    assert sorted(Path(p).name for p in summary.done) == ["s0.tif", "s1.tif"]
    assert "assemble" not in [name for name, _ in fake.calls]
    (bar,) = bars
    assert bar.n == 3 and not list((tmp_path / "ray").glob("large*"))


def test_a_unit_that_kills_its_worker_is_tried_again_after_the_others(
    tiny_model, tmp_path, monkeypatch
):
    """On a single worker (one GPU, say) the units queued behind a killer are lost with
    it but not blamed: they run next, and the killer after them, until it fails alone."""
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(4):
        write_geotiff(folder / f"s{i}.tif", rgb_scene(24, 24, seed=i))
    fake = FakeRay(cpus=1, dies=lambda method, args: method == "scene" and "s0." in args[0])
    summary = run(fake, tiny_model, [folder], tmp_path / "ray", monkeypatch, block_pixels=1e9)
    ran = [Path(args[0]).stem for name, args in fake.calls if name == "scene"]
    died = [Path(args[0]).stem for name, args in fake.deaths]
    assert died == ["s0", "s1", "s0", "s0"] and ran == ["s1", "s2", "s3"]
    assert summary.retries == 3  # s1 once, s0 twice
    assert sorted(Path(p).stem for p in summary.failed) == ["s0"]
    assert sorted(Path(p).stem for p in summary.done) == ["s1", "s2", "s3"]
