"""Each replica of a PyTorch model gets the cores divided by the replicas (issue 24): the pool
tells every replica how many share the machine (``ModelSpec.replicas``), and the torch
wrapper sets ``torch.set_num_threads`` from it, or from the setting ``intra_op_threads`` where
given (in this process, and in a served model's own host). The first part needs no torch."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.helpers import running_server


def test_the_pool_tells_each_replica_how_many_replicas_there_are() -> None:
    from winserve.backends.pool import PoolBackend
    from winserve.model_info import ModelSpec

    seen: list[Any] = []

    def make_replica(index: int, spec: ModelSpec) -> Any:
        seen.append(spec)
        return None  # never started: only what it was given is looked at

    PoolBackend(ModelSpec(path="model.pt2"), workers=3, make_replica=make_replica)  # type: ignore[arg-type]
    assert [spec.replicas for spec in seen] == [3, 3, 3]
    assert {spec.path for spec in seen} == {"model.pt2"}


def test_threads_are_the_cores_shared_by_the_replicas() -> None:
    from winserve.host.torch_model import threads_for

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert threads_for(1) == cores
    assert threads_for(2) == max(1, (cores or 1) // 2)
    assert threads_for(10_000) == 1


def test_a_loaded_network_runs_on_its_share_of_the_cores(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from winserve.host import loading
    from winserve.host.torch_model import threads_for
    from winserve.model_info import ModelSpec

    path = _tiny_program(torch, tmp_path)
    before = torch.get_num_threads()
    try:
        for replicas in (1, 2):
            loading.load(ModelSpec(path=str(path), replicas=replicas))
            assert torch.get_num_threads() == threads_for(replicas)
    finally:
        torch.set_num_threads(before)


def _tiny_program(torch: Any, folder: Path) -> Path:
    path = folder / "tiny.pt2"
    linear = torch.nn.Linear(3, 2).eval()
    batch = torch.export.Dim("batch")
    program = torch.export.export(linear, (torch.zeros(2, 3),), dynamic_shapes=[{0: batch}])
    torch.export.save(program, str(path))
    return path


def test_the_setting_intra_op_threads_wins_over_the_share(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from winserve.host import loading
    from winserve.model_info import ModelSpec

    path = _tiny_program(torch, tmp_path)
    before = torch.get_num_threads()
    try:
        for threads in (1, 3):
            spec = ModelSpec(path=str(path), replicas=2, intra_op_threads=threads)
            loaded = loading.load(spec)
            assert torch.get_num_threads() == threads
            assert loaded.model.winserve_runtime.endswith(
                f"; cpu, {threads} thread" + "s)"[threads == 1 :]
            )
    finally:
        torch.set_num_threads(before)


@pytest.mark.spawn
@pytest.mark.server
def test_a_served_network_runs_on_the_threads_set_in_its_own_host(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    path = _tiny_program(torch, tmp_path)
    args = [str(path), "--intra-op-threads", "3", "--no-log"]
    with running_server(args, cwd=tmp_path) as server:
        described = requests.get(f"{server.url}/model", timeout=30).json()
        answer = requests.post(
            f"{server.url}/predict", json={"inputs": {"input": [[1, 2, 3]]}}, timeout=30
        )
    # torch.get_num_threads() in the model host, as /model reports it
    assert described["runtime"].endswith("; cpu, 3 threads)"), described["runtime"]
    assert answer.status_code == 200, answer.text
