"""A real two-node Ray cluster on this machine for the Ray backend's tests, and what they look
for on it: winserve's Serve replicas, their keepers and model hosts, by process title.

A head node and a worker node, one CPU each, so that two replicas reserving one CPU each land
one on each node. Each test module that uses ``two_nodes`` gets a cluster of its own.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from tests.helpers import ROOT, ServerProcess, running_server

READY_SECONDS = 240  # joining the cluster, starting Serve and two replicas on a 2-core machine
ROW = [{"a": 1.0, "b": 2.0}]  # tests.models' factories answer a + b


@dataclass
class TwoNodes:
    cluster: Any
    worker: Any
    address: str
    raylets: list[int] = field(default_factory=list)


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[TwoNodes]:
    # the nodes' workers import the test models by name (tests.models), as spawned hosts do
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), old or ""]).rstrip(os.pathsep)
    from ray import cluster_utils

    cluster = cluster_utils.Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"head": 1}}
    )
    try:
        worker = cluster.add_node(num_cpus=1, resources={"worker": 1})
        cluster.wait_for_nodes()
        yield TwoNodes(cluster, worker, cluster.address)
    finally:
        cluster.shutdown()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def ray_args(nodes: TwoNodes, *more: str) -> list[str]:
    return ["--backend", "ray", "--ray-address", nodes.address, "--ray-cpus", "1", *more]


@contextlib.contextmanager
def ray_server(args: list[str], cwd: Path) -> Iterator[ServerProcess]:
    """winserve on the cluster, ready; stopped with Ctrl+C at the end, as a user stops it, so
    that its Serve application leaves the cluster (a SIGKILLed winserve cannot remove it, and
    its replicas would hold the nodes' CPUs)."""
    with running_server(args, cwd=cwd, ready=False) as server:
        server.wait_ready(READY_SECONDS)
        apps = applications(health_of(server.url))
        try:
            yield server
        finally:
            # the Serve replicas and their model hosts
            started = [proc for app in apps for proc in replica_trees(app)]
            if server.proc.poll() is None:
                server.stop(signal.SIGINT, timeout=30)
            started += [proc for app in apps for proc in replica_trees(app)]
            _, alive = psutil.wait_procs(started, timeout=20)
            assert not alive, f"left on the cluster: {[p.pid for p in alive]}"


def applications(health: Any) -> list[str]:
    """Every Serve application named in /health (one per model of a folder)."""
    if isinstance(health, dict):
        found = [health["application"]] if "application" in health else []
        return found + [app for value in health.values() for app in applications(value)]
    if isinstance(health, list):
        return [app for value in health for app in applications(value)]
    return []


def replica_trees(app: str) -> list[psutil.Process]:
    trees = []
    for replica in serve_replicas(app) + keeper_processes(app):
        with contextlib.suppress(psutil.Error):
            trees += [replica, *replica.children(recursive=True)]
    return trees


def serve_replicas(app: str) -> list[psutil.Process]:
    """The Serve replica processes of winserve's application ``app``."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if f"ServeReplica:{app}:" in cmdline:
            found.append(proc)
    return found


def keeper_processes(app: str) -> list[psutil.Process]:
    """The keeper actors beside ``app``'s Serve replicas (they serve the model's calls)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if f"WinserveHost:{app}" in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


def serve_processes() -> set[int]:
    """Serve's controller and replicas, and winserve's keepers (by pid: Ray retitles a process
    with each call it runs)."""
    found = set()
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if cmdline.startswith(("ray::Serve", "ray::WinserveHost")):
            found.add(proc.pid)
    return found


def health_of(url: str) -> dict[str, Any]:
    answer: dict[str, Any] = requests.get(f"{url}/health", timeout=10).json()
    return answer


def one_client(
    url: str, stop: threading.Event, body: list[dict[str, float]]
) -> list[tuple[int, float]]:
    """One client: requests back to back until ``stop``; (status, seconds) of each."""
    seen = []
    with requests.Session() as session:
        while not stop.is_set():
            began = time.monotonic()
            try:
                answer = session.post(f"{url}/predict", json=body, timeout=30)
            except requests.RequestException as exc:
                seen.append((-1, time.monotonic() - began))
                print("client error", exc)
                continue
            answer.json()  # every answer is JSON, the errors too
            seen.append((answer.status_code, time.monotonic() - began))
    return seen


def under_load(url: str, action: Any, seconds_after: float, clients: int = 8) -> list[Any]:
    stop = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(one_client, url, stop, ROW) for _ in range(clients)]
        time.sleep(2.0)
        action()
        time.sleep(seconds_after)
        stop.set()
        return [item for future in futures for item in future.result(timeout=60)]


def replica_pids(app: str) -> set[int]:
    return {proc.pid for proc in serve_replicas(app)}
