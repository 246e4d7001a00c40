"""DDP across machines, proven on one: two processes launched as two "nodes" (gloo, the
environment torchrun sets) train one model."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import torch

from tests.helpers.paths import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_nodes(tmp_path, args: list[str]) -> None:
    records = tmp_path / "records"
    records.mkdir()
    port = free_port()
    nodes = []
    for rank in range(2):
        env = {
            **os.environ,
            # what torchrun sets on each of two machines of one process each
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "WORLD_SIZE": "2",
            "RANK": str(rank),
            "GROUP_RANK": str(rank),
            "NODE_RANK": str(rank),
            "LOCAL_RANK": "0",
            "LOCAL_WORLD_SIZE": "1",
            "TORCHELASTIC_RUN_ID": "test",
            "GLOO_SOCKET_IFNAME": "lo",
            "PYTHONPATH": str(REPO),
            "OMP_NUM_THREADS": "1",
        }
        command = [sys.executable, "-m", "tests.training.ddp_node"]
        nodes.append(
            subprocess.Popen(
                [*command, *args],
                env=env,
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )  # fmt: skip
        )
    logs = [node.communicate(timeout=400)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(logs)


def test_two_nodes_draw_different_windows_and_end_with_the_same_weights(fresh_dataset, tmp_path):
    records = tmp_path / "records"
    run_two_nodes(tmp_path, [str(fresh_dataset), str(tmp_path / "run"), str(records)])
    windows = [json.loads((records / f"windows-{r}.json").read_text()) for r in range(2)]
    assert len(windows[0]) == len(windows[1]) == 16  # 2 epochs of 2 batches of 4
    assert set(windows[0]).isdisjoint(windows[1])  # each node drew its own windows
    weights = [torch.load(records / f"weights-{r}.pt") for r in range(2)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert (tmp_path / "run" / "model.pt").is_file()  # written once, by rank 0


def test_two_nodes_stream_their_own_windows_of_a_scene(tmp_path):
    from aerialseg.cli import main
    from tests.helpers.geodata import (
        POLYGON_CLASSES,
        class_boxes,
        class_ids_of,
        scene_transform,
        write_polygons,
        write_scene,
    )

    boxes = class_boxes(192, 256, seed=8, count=40)
    scene = write_scene(
        tmp_path / "scene.tif", class_ids_of(boxes, 192, 256, scene_transform()),
        scene_transform(),
    )  # fmt: skip
    labels = write_polygons(tmp_path / "labels.gpkg", boxes)
    classes = tmp_path / "classes.json"
    classes.write_text(json.dumps(POLYGON_CLASSES))
    split = tmp_path / "split.json"
    labelled = ["--labels", str(labels), "--label-field", "class", "--classes", str(classes)]
    assert main(["data", "split", str(scene), "--out", str(split), "--block-size", "64",
                 "--buffer", "0", *labelled]) == 0  # fmt: skip
    records = tmp_path / "records"
    args = [str(scene), str(tmp_path / "run"), str(records), str(labels), str(classes)]
    run_two_nodes(tmp_path, [*args, str(split)])
    windows = [json.loads((records / f"windows-{r}.json").read_text()) for r in range(2)]
    assert len(windows[0]) == len(windows[1]) == 16
    assert set(windows[0]).isdisjoint(windows[1])
    # each rank read windows from the file: neither decoded the scene into memory
    for rank in range(2):
        assert json.loads((records / f"scenes-{rank}.json").read_text()) == ["RasterScene"]
    weights = [torch.load(records / f"weights-{r}.pt") for r in range(2)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
