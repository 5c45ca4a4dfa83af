"""A Ray worker node lost under load (issue 17), in a module of its own: its cluster's worker
node is stopped for good, and no other winserve is on the cluster meanwhile (a server of another
test, with a replica on the lost node, could not remove its application in time)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import psutil
import pytest
import requests

from tests.helpers import wait_until
from tests.ray_cluster import (  # the Ray test helpers
    ROW,
    TwoNodes,
    health_of,
    ray_args,
    ray_server,
    under_load,
)
from tests.ray_cluster import (
    two_nodes as two_nodes,
)

pytest.importorskip("ray.cluster_utils")

pytestmark = [pytest.mark.ray, pytest.mark.server, pytest.mark.timeout(600)]


def _power_off(nodes: TwoNodes) -> None:
    """The worker node's machine goes away: its Ray processes and the workers they started
    (Serve replicas with their model hosts) all die at once."""
    raylet = psutil.Process(nodes.worker.all_processes["raylet"][0].process.pid)
    workers = raylet.children(recursive=True)
    nodes.cluster.remove_node(nodes.worker, allow_graceful=False)
    for proc in workers:
        with contextlib.suppress(psutil.Error):
            proc.kill()


def test_a_lost_worker_node_is_reported_and_the_head_keeps_serving(
    two_nodes: TwoNodes, tmp_path: Path
) -> None:
    args = [*ray_args(two_nodes, "--workers", "2"), "--factory", "tests.models:slow_chaos"]
    with ray_server([*args, "--timeout", "3"], tmp_path) as server:
        wait_until(
            lambda: health_of(server.url)["extra"]["ray"].get("replica_states") == {"RUNNING": 2},
            30,
        )
        results = under_load(server.url, lambda: _power_off(two_nodes), 8.0)
        statuses = {status for status, _ in results}
        assert statuses <= {200, 503, 504}, statuses
        assert max(seconds for _, seconds in results) < 3.0 + 1.0
        health = wait_until(
            lambda: (h := health_of(server.url))["extra"]["ray"].get("lost_nodes") and h, 30
        )
        assert health["status"] == "degraded"
        assert "Ray node lost" in health["reason"]
        page = requests.get(f"{server.url}/", timeout=10).text
        assert "Ready, with a problem: Ray node lost" in page
        answer = requests.post(f"{server.url}/predict", json=ROW, timeout=10)
        assert answer.status_code == 200
