"""``aerialseg predict --ray``: many scenes on a Ray cluster (or a local Ray), resumable.

Work units are scenes; a scene of more than ``block_pixels`` is split into row blocks
(blocks.py) that workers predict apart and one worker assembles, so every output equals a
single run's byte for byte. Workers are Ray actors that load the model once (a GPU each
where the cluster has GPUs; on CPUs, the driver's torch threads each, and as many CPUs
held). At most two units per worker are in flight, so the driver's
memory does not grow with the number of scenes. A unit whose worker dies is run again on
another (a new worker takes the dead one's place). Each scene's outputs are renamed into
place when complete, then recorded in ``OUT/.aerialseg-done.jsonl``: a second run skips
the scenes recorded there whose files are all on disk, with the same model and options.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from aerialseg.data.raster import InputError
from aerialseg.errors import AerialsegError
from aerialseg.files import finish_sets, sweep
from aerialseg.inference.run import PredictOptions, predict_one, prepare_out_dir
from aerialseg.models.io import is_onnx_file

RECORD = ".aerialseg-done.jsonl"
IN_FLIGHT_PER_WORKER = 2  # one running, one queued: no worker waits on the driver
MAX_ATTEMPTS = 3  # runs of one unit before it counts as failed


@dataclass
class RaySettings:
    address: str | None = None  # None: a local Ray; "auto" or "ray://HOST:PORT": a cluster
    workers: int | None = None  # None: one per GPU, else one per WorkerModel.threads CPUs
    block_pixels: float = 64e6  # scenes larger than this are split into row blocks


@dataclass
class WorkerModel:
    """What each worker loads: the arguments of load.load_predictor."""

    model: str | None
    engine: str = "torch"
    device: str = "auto"  # auto: the worker's GPU where Ray gave it one
    precision: str = "auto"
    # torch's intra-op threads; None: the driver's. A convolution or group norm sums in an
    # order that depends on the thread count (and a bf16 or fp32 near-tie can flip a
    # pixel's class), so workers compute with a single process's threads.
    threads: int | None = None


@dataclass
class RaySummary:
    done: dict[str, dict[str, str]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: int = 0  # complete from an earlier run
    retries: int = 0
    pixels: int = 0
    seconds: float = 0.0


def run_fingerprint(spec: WorkerModel, model_path: Path, opts: PredictOptions) -> str:
    """What decides the outputs' bytes: the model file's content, the engine and options."""
    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
    settings = {
        "model": digest,
        "engine": spec.engine,
        "precision": spec.precision,
        "threads": spec.threads,
        "options": {
            k: sorted(v) if isinstance(v, frozenset) else v
            for k, v in dataclasses.asdict(opts).items()
            if k != "progress"
        },
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


class DoneRecord:
    """The scenes finished in ``out``, one JSON line each, appended by the driver only
    after the scene's files are in place, with each file's size and modification time and
    its input's: a scene whose files were written again since (by other settings, or a set
    that another run began and the next completed), or whose name now comes from another
    input or from its input changed since, is not done."""

    def __init__(self, out: Path, run: str):
        self.path, self.run = out / RECORD, run
        self.entries: dict[str, tuple[Any, Any, dict[str, str], dict[str, list[int]]]] = {}
        if self.path.exists() and not self.path.is_file():  # a folder, say: nothing to append to
            raise AerialsegError(
                f"{self.path}: the record of finished scenes is not a file; move it away"
            )
        if self.path.is_file():
            for line in self.path.read_text(errors="replace").splitlines():
                entry = _entry(line, run)
                if entry is not None:
                    name, *held = entry
                    self.entries[name] = tuple(held)  # type: ignore[assignment]

    def complete(self, name: str, source: str) -> bool:
        """Whether ``name``'s outputs are there, as recorded, from ``source`` as it is."""
        if name not in self.entries:
            return False
        recorded, stamp, files, stamps = self.entries[name]
        # another input of the same output name, or the same input changed since (its size
        # or time; a URL's is not known): its outputs are another scene's
        if recorded != source or (stamp is not UNRECORDED and stamp != _stamp(source)):
            return False
        for key, path in files.items():
            now = _stamp(path)
            if now is None or (key in stamps and stamps[key] != now):
                return False
        return True

    def add(self, name: str, source: str, files: dict[str, str]) -> None:
        stamps = {k: _stamp(p) for k, p in files.items()}
        line = json.dumps(
            {"name": name, "input": source, "input_stamp": _stamp(source), "run": self.run}
            | {"files": files, "stamps": stamps}
        )
        start = "\n" if _cut_short(self.path) else ""  # this line stays whole
        with self.path.open("a") as f:
            f.write(start + line + "\n")
            f.flush()
            os.fsync(f.fileno())


# An input's stamp in a record line of a release that kept none: its path alone is compared.
UNRECORDED = object()


def _entry(line: str, run: str) -> tuple[str, Any, Any, dict[str, str], dict] | None:
    """A record line's scene name, input and its stamp, files and their stamps, where it
    is one of ``run``'s; None for a line cut short by a crash, or anything but a record's
    line."""
    try:
        entry = json.loads(line)
    except (ValueError, RecursionError):  # RecursionError: nested too deep
        return None
    if not isinstance(entry, dict) or entry.get("run") != run:
        return None
    name, files, stamps = entry.get("name"), entry.get("files"), entry.get("stamps", {})
    if (
        not files
        or not isinstance(files, dict)
        or not all(isinstance(p, str) for p in files.values())
    ):
        return None
    if not isinstance(name, str) or not isinstance(stamps, dict):
        return None
    return name, entry.get("input"), entry.get("input_stamp", UNRECORDED), files, stamps


def _cut_short(path: Path) -> bool:
    """Whether a file's last line was cut short (by a crash): it ends in no newline."""
    try:
        with path.open("rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"
    except OSError:  # missing, or empty
        return False


def _stamp(path: str) -> list[int] | None:
    """A file's size and modification time (ns), as JSON keeps them; None if missing."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):  # ValueError: a name no file can have (a NUL in it)
        return None
    return [info.st_size, info.st_mtime_ns] if Path(path).is_file() else None


class PredictWorker:
    """One Ray actor: the model loaded once; scenes, blocks and assemblies on request."""

    def __init__(self, spec: WorkerModel, opts: PredictOptions, out: str, run: str):
        import torch

        from aerialseg.inference.engine import engine_precision
        from aerialseg.inference.load import load_predictor

        if spec.threads:  # Ray set OMP_NUM_THREADS to this worker's CPUs
            torch.set_num_threads(spec.threads)
        # auto: the worker's GPU where Ray gave it one, else its CPU
        device = spec.device if torch.cuda.is_available() or spec.device == "cpu" else "cpu"
        predictor = load_predictor(
            spec.model,
            engine=spec.engine,
            device="cpu" if spec.engine == "onnx" else device,
            precision=spec.precision,
            batch_size=opts.batch_size,
        )
        self.predictor = predictor.with_options(tta=opts.tta, overlap=opts.overlap)
        # Blocks are tagged with the precision "auto" chose on this worker's hardware, so
        # that a scene is never assembled from blocks of two precisions (a run resumed on
        # other machines, or on a cluster of mixed CPUs and GPUs).
        precision = engine_precision(predictor.engine)
        self.opts, self.out, self.run = opts, Path(out), f"{run}-{precision}"

    def owner(self) -> str:
        from aerialseg.files import owner

        return owner()

    def _open(self, path: str):
        from aerialseg.inference.run import _open

        return _open(path, self.opts, self.predictor.spec)

    def _header_pixels(self, path: str) -> int | None:
        """The scene's pixels from its header (a small image is not decoded twice); None
        where it is resampled to a pixel size, so that only opening it tells."""
        import rasterio

        from aerialseg.data.raster import InputError, no_georeference_warning, open_dataset

        if self.opts.pixel_size or self.predictor.spec.pixel_size:
            return None
        try:
            with no_georeference_warning(), open_dataset(path) as ds:
                return ds.width * ds.height
        except (rasterio.errors.RasterioIOError, InputError):
            return 0  # predict_one says what is wrong with it

    def scene(self, path: str, name: str, block_pixels: float) -> dict:
        """Predict a scene, or (large) return its blocks for the driver to hand out."""
        from aerialseg.inference.blocks import plan_blocks

        try:
            pixels = self._header_pixels(path)
            if pixels is None or pixels > block_pixels:  # opened in full only to plan blocks
                with self._open(path) as raster:
                    spec, stride = self.predictor.spec, self.predictor.engine.stride
                    blocks = plan_blocks(raster.height, raster.width, spec, stride, block_pixels)
                    pixels = raster.height * raster.width
                if len(blocks) > 1:
                    return {"kind": "split", "blocks": blocks}
            files = predict_one(self.predictor, path, self.out, self.opts, name)
        except InputError as err:
            return {"kind": "failed", "error": str(err)}
        return {"kind": "done", "files": {k: str(v) for k, v in files.items()}, "pixels": pixels}

    def block(self, path: str, name: str, start: int, stop: int) -> dict:
        from aerialseg.inference.blocks import block_path, finished_block, write_block

        target = block_path(self.out, name, start, stop)
        if finished_block(target, self.run):  # done by an earlier, interrupted run
            return {"kind": "block"}
        with self._open(path) as raster:
            pixels = write_block(
                self.predictor, raster, target, start, stop, run=self.run,
                confidence="confidence" in self.opts.outputs,
            )  # fmt: skip
        return {"kind": "block", "pixels": pixels}

    def assemble(self, path: str, name: str, blocks: list[tuple[int, int]]) -> dict:
        from aerialseg.inference.blocks import (
            block_path,
            block_rows,
            finished_block,
            remove_blocks,
        )

        parts = [(a, b, block_path(self.out, name, a, b)) for a, b in blocks]
        if not all(finished_block(part, self.run) for *_, part in parts):
            # a worker died after it removed them, its files written: the assembly tried
            # again has its blocks predicted again (those still there are kept)
            return {"kind": "split", "blocks": blocks}
        rows = block_rows(parts, with_image="overlay" in self.opts.outputs)
        files = predict_one(self.predictor, path, self.out, self.opts, name, rows=rows)
        remove_blocks(self.out, name)
        return {"kind": "done", "files": {k: str(v) for k, v in files.items()}}


def _start_ray(address: str | None):
    """Ray, imported and connected; whether this call started it."""
    try:
        import ray
    except ImportError:
        raise AerialsegError(
            "--ray needs Ray (not installed here): pip install 'aerialseg[ray]'"
        ) from None
    if ray.is_initialized():
        return ray, False
    import logging
    import signal
    import threading

    # ray.init puts its own SIGTERM handler in place of the command's (cli: clean up, exit
    # 143) and leaves it there (a review: kill -TERM exited 15, without a word)
    on_main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGTERM) if on_main else None
    try:
        ray.init(address=address, logging_level=logging.WARNING, include_dashboard=False)
    except (ConnectionError, ValueError, RuntimeError) as err:
        raise AerialsegError(f"--ray {address}: cannot connect to Ray ({err})") from None
    finally:
        if before is not None:
            signal.signal(signal.SIGTERM, before)
    return ray, True


def predict_on_ray(
    spec: WorkerModel,
    model_path: Path,
    inputs: list[str],
    out: Path,
    opts: PredictOptions,
    names: dict[str, str],
    settings: RaySettings,
) -> RaySummary:
    """Predict ``inputs`` (absolute paths or URLs) into ``out``, a folder every worker
    sees; ``names``: the output name of each input."""
    prepare_out_dir(out)
    out = out.resolve()
    opts = dataclasses.replace(opts, progress=False)  # the driver's bar is the one bar
    if spec.threads is None:
        import torch

        spec = dataclasses.replace(spec, threads=torch.get_num_threads())
    run = run_fingerprint(spec, model_path, opts)
    record = DoneRecord(out, run)
    summary = RaySummary()
    units = [("scene", path, names[path]) for path in inputs]
    todo = deque(unit for unit in units if not record.complete(unit[2], unit[1]))
    summary.skipped = len(units) - len(todo)
    if not todo:  # all done before: no need for Ray
        return summary
    ray, started = _start_ray(settings.address)
    try:
        _drive(ray, spec, opts, out, run, settings, todo, record, summary, len(inputs))
    finally:
        if started:
            ray.shutdown()
    return summary


RAY_UNITS = 1e4  # Ray counts resources in units of 1/10,000


def placement(
    nodes: list[dict[str, float]], threads: int, workers: int | None, gpus: bool
) -> tuple[int, dict[str, float]]:
    """How many workers, and the resources each holds, on live nodes that have these
    resources: a GPU each where the cluster has GPUs (and ``gpus``), else ``threads``
    CPUs each (no more than a node has: more threads than cores, in workers side by side,
    ran 5-10x slower here); a worker that fits on no node would hold the units queued on
    it for ever. ``workers`` more than that share the cluster's total evenly, which fits
    nodes of equal size; on unequal nodes such a share may not fit each of them."""
    cpus = sum(node.get("CPU", 0) for node in nodes)
    gpu_count = int(sum(node.get("GPU", 0) for node in nodes)) if gpus else 0
    if gpu_count:
        count = workers or gpu_count
        # a share of a GPU is placed on a single GPU: 3 workers on 2 GPUs hold half each
        per_gpu = math.ceil(count / gpu_count)
        return count, {"num_cpus": _share(cpus / count, 1), "num_gpus": 1 / per_gpu}
    largest = max(int(node.get("CPU", 0)) for node in nodes)
    each = max(1, min(threads, largest))
    count = workers or max(1, sum(int(node.get("CPU", 0)) // each for node in nodes))
    return count, {"num_cpus": _share(cpus / count, each), "num_gpus": 0}


def _share(amount: float, most: float) -> float:
    """``amount``, at most ``most``, rounded down to Ray's unit: rounded up, the shares
    of all workers would add up to more than there is."""
    return min(float(most), math.floor(amount * RAY_UNITS) / RAY_UNITS)


def _drive(ray, spec, opts, out, run, settings, todo, record, summary, total) -> None:
    nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]
    count, resources = placement(nodes, spec.threads, settings.workers, spec.device != "cpu")
    runs_torch = spec.engine == "torch" and not is_onnx_file(str(spec.model))
    if spec.precision == "auto" and runs_torch:
        from aerialseg.inference.engine import resolve_precision

        # One precision for every worker, the one a single process here would choose: by
        # its own CPU, a worker could choose another, and a scene's blocks must agree.
        device = "cuda" if resources["num_gpus"] else "cpu"
        spec = dataclasses.replace(spec, precision=resolve_precision("auto", device))
    actor_class = ray.remote(PredictWorker).options(**resources, max_restarts=0)

    owners: dict = {}  # worker -> ObjectRef of its files.owner()

    def new_worker():
        worker = actor_class.remote(spec, opts, str(out), run)
        owners[worker] = worker.owner.remote()
        return worker

    workers = [new_worker() for _ in range(count)]
    load = {w: 0 for w in workers}  # units in flight per worker
    pending: dict = {}  # ObjectRef -> (worker, unit, the order it was submitted in)
    submitted = itertools.count()
    attempts: dict[tuple, int] = {}
    blocks_left: dict[str, int] = {}  # per split scene: blocks not yet written
    scene_blocks: dict[str, tuple] = {}
    reassembled: dict[str, int] = {}  # per split scene: assemblies that found blocks gone
    deaths_in_a_row = 0
    start = time.perf_counter()
    bar = tqdm(total=total, initial=summary.skipped, desc="predict", unit="scene")

    def submit(unit) -> None:
        worker = min(load, key=load.__getitem__)
        kind, path, name, *rest = unit
        ref = getattr(worker, kind).remote(path, name, *(rest or [settings.block_pixels]))
        pending[ref] = (worker, unit, next(submitted))
        load[worker] += 1

    def finish_scene(unit, result) -> None:
        _, path, name, *_ = unit
        if path in summary.failed:  # another of its blocks failed before it
            return
        if result["kind"] == "failed":
            summary.failed[path] = result["error"]
            if total > 1:
                tqdm.write(f"aerialseg: skipped {result['error']}", file=sys.stderr)
        else:
            summary.done[path] = result["files"]
            record.add(name, path, result["files"])
        bar.update(1)

    def lost(worker, unit, order: int) -> None:
        """The worker died: every unit in flight on it is run again elsewhere. The
        oldest was running, and is charged a try; those queued behind it are not."""
        in_flight = {order: unit}
        for ref in [ref for ref, entry in pending.items() if entry[0] is worker]:
            _, queued, queued_order = pending.pop(ref)
            in_flight[queued_order] = queued
        running = in_flight.pop(min(in_flight))
        del load[worker]
        load[new_worker()] = 0
        _remove_temporaries(ray, out, owners.pop(worker))
        todo.extendleft(in_flight[k] for k in sorted(in_flight, reverse=True))
        summary.retries += len(in_flight)
        attempts[running] = attempts.get(running, 1) + 1
        if attempts[running] > MAX_ATTEMPTS:
            error = f"{running[1]}: its worker died {MAX_ATTEMPTS} times while predicting it"
            finish_scene(running, {"kind": "failed", "error": error})
        else:
            summary.retries += 1
            todo.append(running)  # after the others: a unit that kills workers waits

    try:
        while todo or pending:
            while todo and len(pending) < IN_FLIGHT_PER_WORKER * len(load):
                submit(todo.popleft())
            ready, _ = ray.wait(list(pending), num_returns=1)
            worker, unit, order = pending.pop(ready[0])
            load[worker] -= 1
            try:
                result = ray.get(ready[0])
            except ray.exceptions.RayActorError as err:
                deaths_in_a_row += 1
                if deaths_in_a_row > 2 * len(load) + MAX_ATTEMPTS:
                    raise AerialsegError(f"Ray workers keep dying; the last: {err}") from None
                lost(worker, unit, order)
                continue
            except ray.exceptions.RayTaskError as err:  # the run stops as a single one would
                raise err.cause from None
            deaths_in_a_row = 0
            summary.pixels += result.get("pixels", 0)
            kind, path, name = unit[:3]
            if result["kind"] == "split" and kind == "assemble":
                reassembled[path] = reassembled.get(path, 0) + 1
                if reassembled[path] == MAX_ATTEMPTS:  # a node that does not see the others'
                    error = (
                        f"{path}: its blocks were not found when put together,"
                        f" {MAX_ATTEMPTS} times (--out must be a folder that every node sees;"
                        " or its workers died just after putting it together)"
                    )
                    finish_scene(unit, {"kind": "failed", "error": error})
                    continue
            if result["kind"] == "split":
                blocks = tuple(tuple(b) for b in result["blocks"])
                blocks_left[path] = len(blocks)
                scene_blocks[path] = blocks
                for a, b in reversed(blocks):  # to the queue's front: finish scenes begun
                    todo.appendleft(("block", path, name, a, b))
            elif result["kind"] == "block":
                blocks_left[path] -= 1
                if blocks_left[path] == 0:
                    del blocks_left[path]
                    todo.appendleft(("assemble", path, name, scene_blocks.pop(path)))
            else:
                finish_scene(unit, result)
            seconds = time.perf_counter() - start
            bar.set_postfix(
                MP=f"{summary.pixels / 1e6:.1f}",
                MPps=f"{summary.pixels / 1e6 / max(seconds, 1e-9):.2f}",
                retries=summary.retries,
                failed=len(summary.failed),
            )
    finally:
        bar.close()
        summary.seconds = time.perf_counter() - start
        for worker in load:
            ray.kill(worker)


def _remove_temporaries(ray, out: Path, owner_ref) -> None:
    """The half-written files of a dead worker, on whichever node it ran: its host and
    process id are in their names (files.temp_path). An output set it was renaming into
    place is completed first."""
    try:
        owner = ray.get(owner_ref, timeout=5)
    except Exception:  # it died before saying: files.sweep removes them on the next run
        return
    finish_sets(out, dead=owner)  # Ray saw it die
    sweep(out, dead=owner)


def ray_inputs(items: list[str], out: str | Path | None = None) -> tuple[list[str], dict[str, str]]:
    """Inputs for ``--ray``: local files, folders and globs as absolute paths, URLs as
    given; with each one's output name (run.named_inputs, ``out`` as there)."""
    from aerialseg.inference.run import named_inputs

    inputs, names = named_inputs(items, out)
    absolute = {str(Path(p).absolute()) if isinstance(p, Path) else p: names[p] for p in inputs}
    return [*absolute], absolute
