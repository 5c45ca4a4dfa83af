"""The whole Ray cluster lost while winserve serves (issue 17), in a module of its own: its
cluster is shut down for good, head and worker, as when the machines go away.

winserve must not hang: requests get 503/504 JSON within their deadline, `/health` and the page
name the cluster and since when it has not answered, and Ctrl+C still ends winserve with nothing
of its own left behind."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import requests

from tests.helpers import running_server, wait_until
from tests.ray_cluster import (
    READY_SECONDS,
    ROW,
    TwoNodes,
    health_of,
    keeper_processes,
    ray_args,
    serve_replicas,
)
from tests.ray_cluster import (
    two_nodes as two_nodes,
)

pytest.importorskip("ray.cluster_utils")

pytestmark = [pytest.mark.ray, pytest.mark.server, pytest.mark.timeout(600)]


def test_a_cluster_lost_later_is_reported_and_costs_no_hang(
    two_nodes: TwoNodes, tmp_path: Path
) -> None:
    timeout = 3.0
    args = [*ray_args(two_nodes, "--workers", "1"), "--factory", "tests.models:slow_chaos"]
    args += ["--timeout", str(timeout)]
    with running_server(args, cwd=tmp_path, ready=False) as server:
        server.wait_ready(READY_SECONDS)
        app = health_of(server.url)["extra"]["ray"]["application"]
        ours = serve_replicas(app) + keeper_processes(app)
        assert requests.post(f"{server.url}/predict", json=ROW, timeout=10).status_code == 200
        two_nodes.cluster.shutdown()  # every node of the cluster: its GCS, raylets and workers

        def answered() -> tuple[int, float]:
            began = time.monotonic()
            answer = requests.post(f"{server.url}/predict", json=ROW, timeout=30)
            answer.json()  # JSON, the errors too
            return answer.status_code, time.monotonic() - began

        seen = [answered() for _ in range(5)]
        assert {status for status, _ in seen} <= {503, 504}, seen
        assert max(seconds for _, seconds in seen) < timeout + 1.0, seen
        health = wait_until(
            lambda: (
                "has not answered since" in (h := health_of(server.url)).get("reason", "") and h
            ),
            60,
            1.0,
        )
        assert health["status"] != "ready"
        assert two_nodes.address in health["reason"] or "Ray cluster" in health["reason"]
        page = requests.get(f"{server.url}/", timeout=10).text
        assert "has not answered since" in page
        began = time.monotonic()
        server.stop(signal.SIGINT, timeout=60)
        assert time.monotonic() - began < 45
        output = server.drain()
    assert "Traceback" not in output
    assert not [proc for proc in ours if proc.is_running() and proc.status() != "zombie"]
