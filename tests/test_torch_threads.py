"""Each replica of a PyTorch model gets the cores divided by the replicas (issue 24): the pool
tells every replica how many share the machine (``ModelSpec.replicas``), and the torch
wrapper sets ``torch.set_num_threads`` from it. The first part needs no torch."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest


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

    path = tmp_path / "tiny.pt2"
    linear = torch.nn.Linear(3, 2).eval()
    batch = torch.export.Dim("batch")
    program = torch.export.export(linear, (torch.zeros(2, 3),), dynamic_shapes=[{0: batch}])
    torch.export.save(program, str(path))
    before = torch.get_num_threads()
    try:
        for replicas in (1, 2):
            loading.load(ModelSpec(path=str(path), replicas=replicas))
            assert torch.get_num_threads() == threads_for(replicas)
    finally:
        torch.set_num_threads(before)
