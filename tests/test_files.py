"""files.py: owned temporary names, the sweep of dead runs' leftovers, and failed writes
told in one line by every command that writes (full disk, vanished folder)."""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import rasterio

from aerialseg.cli import main
from aerialseg.files import (
    LEFTOVER_FILE,
    UPLOAD_DIR,
    finish_sets,
    owner,
    set_manifest_name,
    sweep,
    temp_path,
    temp_prefix,
    upload_dir_prefix,
    write_failure,
)
from aerialseg.inference import writers
from tests.helpers.geotiff import write_geotiff
from tests.helpers.images import rgb_scene


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_only_leftovers_of_dead_processes_are_swept(tmp_path):
    mine = temp_path(tmp_path / "x_classes.tif", "step.tif")
    assert LEFTOVER_FILE.pattern.fullmatch(mine.name) and mine.name.startswith(".x_classes.tif.")
    dead = owner(dead_pid())
    gone = [
        tmp_path / f".x_classes.tif.aerialseg-{dead}.step.tif",
        tmp_path / f".x_classes.tif.aerialseg-{dead}.tmp.ovr.tmp",  # GDAL's, beside ours
        tmp_path / f".model.pt.aerialseg-{dead}.k2j4abc_.tmp",  # atomic_write's mkstemp
    ]
    kept = [
        mine,  # a live run's (this process)
        tmp_path / "x_classes.tif",  # a final output
        tmp_path / f".notes.{dead}.tmp",  # not a name of ours
        tmp_path / f"x.aerialseg-{dead}.tmp",  # not hidden: never ours
    ]
    for path in gone + kept:
        path.write_bytes(b"12345")
    assert sweep(tmp_path) == 15
    assert [p for p in gone if p.exists()] == []
    assert all(p.exists() for p in kept)


def test_temporary_names_of_a_long_output_name_are_cut_to_fit_and_stay_ours(tmp_path):
    """A review: a 215-byte input name, whose outputs' names fit in 255 bytes, failed on
    its temporary file's name, and the inputs after it were not predicted."""
    finals = [tmp_path / f"{'é' * 100}{end}_confidence.tif" for end in ("a", "b")]
    for final in finals:
        final.write_bytes(b"")  # the final name fits
        temps = [temp_path(final, kind) for kind in ("tmp", "step.tif", "tmp.geojson")]
        for temp in temps:
            assert temp.name.startswith(temp_prefix(final))  # one cut for every kind
            assert temp.name.startswith("." + "é" * 50)
            assert LEFTOVER_FILE.pattern.fullmatch(temp.name)  # swept once its owner is gone
        # each, with what GDAL adds beside it, and mkstemp's names, can be created
        for name in [t.name + side for t in temps for side in ("", ".ovr.tmp", ".aux.xml")]:
            (tmp_path / name).write_bytes(b"")
        (tmp_path / f"{temp_prefix(final)}k2j4abc_.tmp").write_bytes(b"")
    assert len(list(tmp_path.iterdir())) == 2 + 2 * 10  # names cut alike differ by hash
    short = tmp_path / "x_classes.tif"
    assert temp_path(short).name == f".x_classes.tif.aerialseg-{owner()}.tmp"  # as it was


def test_the_sweep_leaves_what_it_cannot_prove_is_a_dead_run_s_of_this_host(tmp_path):
    """A shared --out: another host's (or container's, or boot's) files whose PID is absent
    here, old names without a host, and a user's files or folders that merely look like
    ours all stay."""
    pid = dead_pid()
    host, boot = owner(pid).split("-")[:2]
    ours = tmp_path / f".x_classes.tif.aerialseg-{owner(pid)}.tmp"
    kept = [
        tmp_path / f".x_classes.tif.aerialseg-otherhost-{boot}-{pid}.tmp",
        tmp_path / f".x_classes.tif.aerialseg-{host}-0badb007-{pid}.tmp",  # another boot
        tmp_path / f".x_classes.tif.aerialseg-{pid}.tmp",  # a release without host names
        tmp_path / f".x.aerialseg-{owner(pid)}.tmp.bak",  # a user's copy
        tmp_path / f".x.aerialseg-{owner(pid)}.tmpfoo",
        tmp_path / f".x.aerialseg-{owner(pid)}.mine",
    ]
    for path in [ours, *kept]:
        path.write_bytes(b"12345")
    folder = tmp_path / f".y.aerialseg-{owner(pid)}.tmp"  # a folder: never ours
    (folder / "inside").mkdir(parents=True)
    link = tmp_path / f".z.aerialseg-{owner(pid)}.tmp"
    link.symlink_to(tmp_path / "x_classes.tif")
    assert sweep(tmp_path) == 5
    assert not ours.exists()
    assert all(p.exists() for p in kept) and (folder / "inside").is_dir() and link.is_symlink()


def test_upload_folders_of_dead_servers_of_this_host_are_swept_and_nothing_else(tmp_path):
    pid = dead_pid()
    dead = tmp_path / f"aerialseg-serve-{owner(pid)}-abc_1234"
    kept = [
        tmp_path / f"aerialseg-serve-{owner()}-abcd1234",  # this live process's
        tmp_path / f"aerialseg-serve-elsewhere-{owner(pid).split('-')[1]}-{pid}-abcd1234",
        tmp_path / f"aerialseg-serve-{pid}-abcd1234",  # a release without host names
        tmp_path / f"aerialseg-serve-{owner(pid)}-abcd1234.keep",
    ]
    for folder in (dead, *kept):
        (folder / "out").mkdir(parents=True)
    file_alike = tmp_path / f"aerialseg-serve-{owner(pid)}-efgh5678"  # a file: not ours
    file_alike.write_bytes(b"x")
    assert upload_dir_prefix().startswith(f"aerialseg-serve-{owner()}-")
    sweep(tmp_path, UPLOAD_DIR)
    assert not dead.exists() and all(p.is_dir() for p in kept) and file_alike.is_file()


def test_write_failures_are_told_in_one_line(tmp_path):
    full = OSError(errno.ENOSPC, "No space left on device")
    wrapped = RuntimeError("Write failed.")
    wrapped.__cause__ = full
    assert "no space left" in write_failure(wrapped, tmp_path)
    gdal = RuntimeError("WriteEncodedTile/Strip() failed.")
    assert "writing there failed" in write_failure(gdal, tmp_path)
    assert "free now" in write_failure(gdal, tmp_path)
    assert "read-only" in write_failure(OSError(errno.EROFS, "Read-only"), tmp_path)
    assert "disappeared" in write_failure(FileNotFoundError(2, "x"), tmp_path / "gone")
    assert write_failure(ValueError("a bug"), tmp_path) is None


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def finals(folder: Path) -> list[Path]:
    """Files under final (not hidden, not temporary) names below ``folder``."""
    return [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")]


@pytest.fixture
def commands(tiny_model, tiny_dataset, geotiff, tmp_path):
    out = tmp_path / "out"
    return {
        "predict": ["predict", str(geotiff), "--model", str(tiny_model), "--out", str(out)],
        "train": [
            "train",
            "--data",
            str(tiny_dataset),
            "--out",
            str(out),
            "model=seed-unet",
            "pretrained=false",
            "base_width=4",
            "max_steps=2",
            "accelerator=cpu",
        ],
        "evaluate": ["evaluate", str(tiny_model), "--data", str(tiny_dataset), "--out", str(out)],
        "export": ["export", str(tiny_model), "--onnx", str(out / "m.onnx")],
        "data split": ["data", "split", str(tiny_dataset), "--out", str(out / "split.json")],
    }


@pytest.mark.parametrize("command", ["predict", "train", "evaluate", "export", "data split"])
def test_every_writing_command_answers_a_full_disk_in_one_line(
    command, commands, tmp_path, monkeypatch, capsys
):
    """ENOSPC injected where every output is completed (the rename of its temporary
    file): exit 2, one line naming the folder, nothing under a final name."""
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(os, "replace", no_space)
    assert main(commands[command]) == 2
    said = [line for line in capsys.readouterr().err.splitlines() if "aerialseg:" in line]
    assert said == [
        f"aerialseg: error: {out}: no space left on the disk that holds it; free some space"
        " there, or write to another folder, then run the command again"
    ]
    assert finals(out) == [] and not list(out.glob(".*.aerialseg-*"))


def test_a_folder_that_vanishes_mid_run_is_said_so(
    geotiff, tiny_model, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "out"
    real = writers.RasterOutputs.write

    def write_then_lose_the_folder(self, result):
        real(self, result)
        shutil.rmtree(out, ignore_errors=True)

    monkeypatch.setattr(writers.RasterOutputs, "write", write_then_lose_the_folder)
    assert main(["predict", str(geotiff), "--model", str(tiny_model), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out}: the output folder disappeared" in err and "Traceback" not in err


def mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)])
    return done.returncode == 0


def test_predict_into_a_full_tmpfs(tiny_model, tmp_path, capsys):
    """A real full disk: GDAL's writes fail without an errno, and the line says so."""
    disk = tmp_path / "disk"
    if not mount_tmpfs(disk, "64k"):
        pytest.skip("mounting a tmpfs needs root and mount (CI runs as root)")
    try:
        scene = write_geotiff(tmp_path / "scene.tif", rgb_scene(600, 700))
        argv = ["predict", str(scene), "--model", str(tiny_model), "--out", str(disk / "o")]
        assert main([*argv, "--all-outputs"]) == 2
        said = [line for line in capsys.readouterr().err.splitlines() if "aerialseg:" in line]
        assert len(said) == 1 and f"{disk / 'o'}: writing there failed" in said[0]
        assert list((disk / "o").iterdir()) == []  # not even a temporary file
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_no_output_is_left_half_written_by_a_failed_copy(
    geotiff, tiny_model, tmp_path, monkeypatch
):
    out = tmp_path / "out"

    def broken_copy(*args, **kwargs):
        raise rasterio.errors.RasterioIOError("Write failed.")

    monkeypatch.setattr(rasterio.shutil, "copy", broken_copy)
    assert main(["predict", str(geotiff), "--model", str(tiny_model), "--out", str(out)]) == 2
    assert finals(out) == [] and list(out.iterdir()) == []


KILL_AFTER_THE_CLASS_RASTER = """
import os, signal, sys
rename = os.replace

def replace(src, dst, *args, **kwargs):
    rename(src, dst, *args, **kwargs)
    if str(dst).endswith("_classes.tif"):  # the first of the set, the others not yet
        os.kill(os.getpid(), signal.SIGKILL)

os.replace = replace
from aerialseg.cli import main
sys.exit(main(sys.argv[1:]))
"""


def outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


# a stem whose outputs' names fit in 255 bytes, but not their temporary names nor the
# set's manifest's, which are cut (a review; 230 bytes: a second review, the manifest's)
LONG_STEM = "é" * 70 + "s" * 90


@pytest.mark.parametrize("stem", ["scene", LONG_STEM])
def test_a_kill_between_the_renames_of_a_set_leaves_old_or_new_never_a_mix(
    tiny_model, tmp_path, stem
):
    """New class raster in place, old areas and polygons beside it: the manifest left
    behind lets the next run complete the new set before it does anything else."""
    import sys

    scene = write_geotiff(tmp_path / f"{stem}.tif", rgb_scene(150, 200, seed=1))
    out, new = tmp_path / "out", tmp_path / "new"
    argv = ["predict", str(scene), "--model", str(tiny_model), "--vector", "geojson"]
    argv += ["--device", "cpu", "--out"]
    assert main([*argv, str(out)]) == 0
    old = outputs(out)
    write_geotiff(scene, rgb_scene(150, 200, seed=2))  # the same input, now other pixels
    assert main([*argv, str(new)]) == 0
    assert outputs(new) != old and set(outputs(new)) == set(old)
    child = subprocess.run(
        [sys.executable, "-c", KILL_AFTER_THE_CLASS_RASTER, *argv, str(out)],
        stderr=subprocess.DEVNULL,
    )
    assert child.returncode == -9
    finals_now = {k: v for k, v in outputs(out).items() if not k.startswith(".")}
    assert finals_now[f"{stem}_classes.tif"] == outputs(new)[f"{stem}_classes.tif"]
    assert finals_now[f"{stem}_areas.csv"] == old[f"{stem}_areas.csv"]  # a mix, for now...
    assert (out / set_manifest_name(stem)).is_file()  # ...that says so
    assert (len(set_manifest_name(stem)) < len(f".{stem}.aerialseg-set.json")) is (stem != "scene")
    assert finish_sets(out) == 1  # what the next run into the folder does first
    assert outputs(out) == outputs(new)
    assert main([*argv, str(out)]) == 0  # and the command run again ends as it should
    assert outputs(out) == outputs(new)


def test_kill_9_of_a_large_scene_then_the_same_command_leaves_nothing_behind(tiny_model, tmp_path):
    import sys
    import time

    scene = write_geotiff(tmp_path / "scene.tif", rgb_scene(1500, 1500))
    out = tmp_path / "out"
    argv = ["predict", str(scene), "--model", str(tiny_model), "--out", str(out), "--color"]
    child = subprocess.Popen(
        [sys.executable, "-m", "aerialseg", *argv, "--device", "cpu"], stderr=subprocess.DEVNULL
    )
    while child.poll() is None and not any(p.stat().st_size > 0 for p in out.glob(".*.step.tif")):
        time.sleep(0.02)
    child.kill()
    child.wait()
    assert child.returncode == -9, "the prediction ended before it could be killed"
    left = list(out.glob(".*"))
    assert left and finals(out) == []  # step files stay behind; no final output yet
    assert main([*argv, "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "scene_areas.csv",
        "scene_areas.json",
        "scene_classes.qml",
        "scene_classes.tif",
        "scene_classes.tif.aux.xml",
        "scene_color.tif",
    ]


def test_disappeared_only_of_a_folder_that_was_there_or_that_the_error_names(tmp_path):
    """A symlink loop among the inputs is no vanished folder, though --out is not there:
    the command never made it."""
    gone = tmp_path / "gone"
    loop = RuntimeError(f"Symlink loop from '{tmp_path}/in.tif'")
    assert write_failure(loop, gone, existed=False) is None
    assert "disappeared" in write_failure(loop, gone, existed=True)
    inside = FileNotFoundError(2, "No such file or directory", f"{gone}/.x.aerialseg-1.tmp")
    assert "disappeared" in write_failure(inside, gone, existed=False)
    gdal = RuntimeError("WriteEncodedTile/Strip() failed.")
    assert write_failure(gdal, gone, existed=False) is None


def test_every_module_marked_slow_exists():
    """A renamed slow module would drop out of the slow list unseen."""
    from tests.conftest import SLOW_MODULES
    from tests.helpers.paths import REPO

    assert all((REPO / module).is_file() for module in SLOW_MODULES)


def test_a_folder_where_an_output_goes_is_refused_before_any_rename(tmp_path):
    """suggest with a folder named like its .qml: a traceback from the rename, the tasks
    GeoPackage already in place beside the set's temporary files and manifest."""
    from aerialseg.errors import AerialsegError
    from aerialseg.files import OutputSet

    (tmp_path / "t.qml").mkdir()
    outputs = OutputSet(tmp_path, "t")
    for final in (tmp_path / "t.gpkg", tmp_path / "t.qml"):
        outputs.temp(final).write_text("new")
    with pytest.raises(AerialsegError) as caught:
        outputs.commit()
    assert str(caught.value) == (
        f"{tmp_path / 't.qml'}: a folder stands where this output goes; move it, or write"
        " elsewhere with another --out"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.qml"]  # nothing else written


@pytest.mark.parametrize("kind", ["pipe", "symbolic link"])
def test_a_link_or_a_pipe_where_an_output_goes_is_refused_and_left_as_it_is(tmp_path, kind):
    """A review: `data split --out pipe.json` (or a link, or /dev/full as root) renamed a
    plain file over the pipe or link: outputs are written whole and renamed into place,
    which replaces what stands there rather than writing into it. Both writers refuse."""
    from aerialseg.errors import AerialsegError
    from aerialseg.files import OutputSet
    from aerialseg.models.io import atomic_write

    target = tmp_path / "kept.json"
    target.write_text("kept")
    final = tmp_path / "t.json"
    os.mkfifo(final) if kind == "pipe" else final.symlink_to(target)
    expected = f"{final}: a {kind} stands where this output goes; move it, or write elsewhere"
    with pytest.raises(AerialsegError, match=f"^{re.escape(expected)} with another --out$"):
        atomic_write(final, lambda tmp: Path(tmp).write_text("new"))
    outputs = OutputSet(tmp_path, "t")
    outputs.temp(final).write_text("new")
    with pytest.raises(AerialsegError, match=f"^{re.escape(expected)}"):
        outputs.commit()
    assert final.is_fifo() if kind == "pipe" else final.readlink() == target
    assert target.read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.json", "t.json"]


def test_an_export_removes_what_a_killed_export_left(tiny_model, tmp_path):
    """Found by a review: a SIGKILLed export's temporary ONNX file stayed for good; predict
    and train swept theirs, export did not."""
    left = tmp_path / f".m.onnx.aerialseg-{owner(dead_pid())}.2vl43318.tmp"
    left.write_bytes(b"half an onnx file")
    assert main(["export", str(tiny_model), "--onnx", str(tmp_path / "m.onnx")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


@pytest.mark.timeout(60, method="thread")  # the defect was a hang
def test_a_users_text_file_is_read_only_where_it_is_a_plain_file_of_bounded_size(tmp_path):
    """A review: --config /dev/zero filled memory (a MemoryError traceback), and a config
    that is a FIFO blocked for ever."""
    from aerialseg.errors import ConfigError
    from aerialseg.files import read_bounded
    from aerialseg.training.config import resolve_config

    os.mkfifo(tmp_path / "fifo.yaml")
    for path in ("/dev/zero", tmp_path / "fifo.yaml", tmp_path):
        with pytest.raises(ConfigError, match=f"cannot read config {path}: not a file$"):
            resolve_config(config_file=path)
    (tmp_path / "big.yaml").write_text("lr: 0.1\n" * 100)
    assert read_bounded(tmp_path / "big.yaml", most=800) == b"lr: 0.1\n" * 100
    with pytest.raises(OSError, match="larger than 0 MiB"):
        read_bounded(tmp_path / "big.yaml", most=799)
