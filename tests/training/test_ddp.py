"""DDP across machines, proven on one: two processes launched as two "nodes" (gloo, the
environment torchrun sets) train one model."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import torch

from tests.conftest import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_draw_different_windows_and_end_with_the_same_weights(fresh_dataset, tmp_path):
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
        args = [str(fresh_dataset), str(tmp_path / "run"), str(records)]
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
    windows = [json.loads((records / f"windows-{r}.json").read_text()) for r in range(2)]
    assert len(windows[0]) == len(windows[1]) == 16  # 2 epochs of 2 batches of 4
    assert set(windows[0]).isdisjoint(windows[1])  # each node drew its own windows
    weights = [torch.load(records / f"weights-{r}.pt") for r in range(2)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert (tmp_path / "run" / "model.pt").is_file()  # written once, by rank 0
