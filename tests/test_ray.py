"""The Ray backend (issue 17) on a real two-node Ray cluster on this machine.

A head node and a worker node, one CPU each, so that two replicas reserving one CPU each land
one on each node. winserve joins the cluster as a user would (``--backend ray --ray-address``):
answers equal the model's own in-process answers through every protocol and the page
(tests/contracts.py's protocol contract, subclassed on Ray); the process serving a replica's
calls SIGKILLed under load, a worker node stopped under load and a hung model get only
200/503/504 JSON, none past its deadline; Ctrl+C leaves the cluster as it was.
"""

from __future__ import annotations

import concurrent.futures
import signal
import threading
import time
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path

import joblib
import pytest
import requests

from tests import zoo
from tests.contracts import ProtocolContract, Served, same
from tests.helpers import running_server, server_env, wait_until
from tests.ray_cluster import (
    READY_SECONDS,
    ROW,
    TwoNodes,
    applications,
    health_of,
    keeper_processes,
    one_client,
    ray_args,
    ray_server,
    replica_pids,
    serve_processes,
    serve_replicas,
    under_load,
)
from tests.ray_cluster import two_nodes as two_nodes  # a cluster for this module

# Ray is imported where it is used (tests/ray_cluster.py), not to collect this module: the
# fast layer collects it too, and importing Ray cost it 0.3 s of CPU (issue 23)
pytestmark = [
    pytest.mark.ray,
    pytest.mark.server,
    pytest.mark.timeout(600),
    pytest.mark.skipif(find_spec("ray") is None, reason="Ray is not installed"),
]
RAY_CASES = ["imputer_pipeline", "text_pipeline", "multi_output_regressor"]


@pytest.fixture(scope="module", params=RAY_CASES)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, two_nodes: TwoNodes
) -> Iterator[Served]:
    case = zoo.BUILDERS[request.param]()
    folder = tmp_path_factory.mktemp(case.name)
    path = folder / f"{case.name}.joblib"
    joblib.dump(case.model, path)
    # no CPUs reserved: the last case's server lives on to the end of this module (pytest keeps
    # a module's fixture until then), and the tests below need both nodes' CPUs
    args = [str(path), *ray_args(two_nodes, "--workers", "2"), "--ray-cpus", "0"]
    with ray_server(args, folder) as server:
        yield Served(case, server.url, zoo.expected(case))


class TestContract(ProtocolContract):
    """tests/contracts.py's protocol contract, on this module's cases served on Ray."""


def test_the_replicas_run_on_both_nodes_and_load_the_same_bytes(
    two_nodes: TwoNodes, tmp_path: Path
) -> None:
    case = zoo.BUILDERS["imputer_pipeline"]()
    path = tmp_path / "churn.joblib"
    joblib.dump(case.model, path)
    with ray_server([str(path), *ray_args(two_nodes, "--workers", "2")], tmp_path) as server:
        # /health's view of Serve is refreshed every few seconds (it may still show the
        # replicas starting, from a look taken during the deployment)
        health = wait_until(
            lambda: (
                (h := health_of(server.url))["extra"]["ray"].get("replica_states") == {"RUNNING": 2}
                and h
            ),
            30,
        )
        app = health["extra"]["ray"]["application"]
        replicas = serve_replicas(app)
        assert len(replicas) == 2
        raylets = {proc.parent().pid for proc in replicas}  # each node's raylet starts its actors
        assert len(raylets) == 2, "both replicas on one node"
        keepers = keeper_processes(app)  # each replica's keeper, on the replica's node
        assert len(keepers) == 2
        assert {proc.parent().pid for proc in keepers} == raylets
        import hashlib

        model = requests.get(f"{server.url}/model", timeout=10).json()
        assert model["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert "on the Ray cluster at" in "\n".join(server.lines)


def test_a_killed_replica_under_load_costs_only_503s_and_is_replaced(
    two_nodes: TwoNodes, tmp_path: Path
) -> None:
    timeout = 3.0
    args = [*ray_args(two_nodes, "--workers", "2"), "--factory", "tests.models:slow_chaos"]
    with ray_server([*args, "--timeout", str(timeout)], tmp_path) as server:
        app = health_of(server.url)["extra"]["ray"]["application"]
        replicas = replica_pids(app)
        victim = keeper_processes(app)[0]  # the process the calls go to
        results = under_load(server.url, lambda: victim.send_signal(signal.SIGKILL), 8.0)
        statuses = {status for status, _ in results}
        assert statuses <= {200, 503, 504}, statuses
        assert max(seconds for _, seconds in results) < timeout + 1.0
        assert sum(status == 200 for status, _ in results) > 100
        # its Serve replica ends with it, and Serve starts both anew
        wait_until(
            lambda: (
                len(keeper_processes(app)) == 2
                and victim.pid not in {p.pid for p in keeper_processes(app)}
            ),
            60,
            0.5,
        )
        wait_until(lambda: len(replica_pids(app)) == 2 and replica_pids(app) != replicas, 60, 0.5)
        answer = requests.post(f"{server.url}/predict", json=ROW, timeout=10)
        assert answer.status_code == 200 and answer.json()["predictions"] == [3.0]


def test_a_hung_model_is_cut_at_the_deadline_and_its_host_replaced(
    two_nodes: TwoNodes, tmp_path: Path
) -> None:
    args = [*ray_args(two_nodes, "--workers", "1"), "--factory", "tests.models:chaos"]
    with ray_server([*args, "--timeout", "2"], tmp_path) as server:
        app = health_of(server.url)["extra"]["ray"]["application"]
        replica_pid = replica_pids(app)
        keeper_pid = {proc.pid for proc in keeper_processes(app)}
        began = time.monotonic()
        answer = requests.post(f"{server.url}/predict", json=[{"a": 999, "b": 0}], timeout=30)
        took = time.monotonic() - began
        assert answer.status_code == 504, answer.text
        assert "did not answer within 2 s" in answer.json()["error"]["message"]
        assert took < 3.0
        # the model host is killed and reloaded inside the same Serve replica
        wait_until(
            lambda: requests.post(f"{server.url}/predict", json=ROW, timeout=10).status_code == 200,
            20,
            0.2,
        )
        assert replica_pids(app) == replica_pid
        assert {proc.pid for proc in keeper_processes(app)} == keeper_pid


def test_workers_auto_lets_serve_add_replicas_under_load(
    two_nodes: TwoNodes, tmp_path: Path
) -> None:
    args = [*ray_args(two_nodes, "--workers", "auto", "--max-workers", "2")]
    with ray_server([*args, "--factory", "tests.models:steady"], tmp_path) as server:
        app = health_of(server.url)["extra"]["ray"]["application"]
        assert len(serve_replicas(app)) == 1  # autoscaling starts from one replica
        stop = threading.Event()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(one_client, server.url, stop, ROW) for _ in range(4)]
            try:
                wait_until(lambda: len(serve_replicas(app)) == 2, 120, 0.5)
            finally:
                stop.set()
            statuses = {status for future in futures for status, _ in future.result(60)}
        assert statuses <= {200, 503, 504}, statuses
        assert "1 to 2 replicas (autoscaled) on the Ray cluster" in "\n".join(server.lines)


def test_a_folder_of_models_is_served_on_ray(two_nodes: TwoNodes, tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    cases = [zoo.BUILDERS[name]() for name in ("imputer_pipeline", "text_pipeline")]
    for case in cases:
        joblib.dump(case.model, folder / f"{case.name}.joblib")
    args = [str(folder), *ray_args(two_nodes, "--ray-cpus", "0"), "--no-watch"]
    with ray_server(args, tmp_path) as server:
        assert len(applications(health_of(server.url))) == 2  # one Serve application per model
        for case in cases:
            url = f"{server.url}/models/{case.name}/predict"
            answer = requests.post(url, json=zoo.records(case), timeout=30)
            assert answer.status_code == 200, answer.text
            same(answer.json()["predictions"], zoo.expected(case)["predictions"], case.name)


def test_ctrl_c_leaves_the_cluster_as_it_was(two_nodes: TwoNodes, tmp_path: Path) -> None:
    before = serve_processes()
    nodes_before = _alive_nodes(two_nodes)
    args = [*ray_args(two_nodes, "--workers", "1"), "--factory", "tests.models:chaos"]
    with running_server(args, cwd=tmp_path, ready=False) as server:
        server.wait_ready(READY_SECONDS)
        app = health_of(server.url)["extra"]["ray"]["application"]
        assert serve_replicas(app)
        began = time.monotonic()
        assert server.stop(signal.SIGINT, timeout=30) == 0
        assert time.monotonic() - began < 20
        output = server.drain()
    assert "Traceback" not in output
    wait_until(lambda: serve_processes() == before, 30, 0.5)  # its app and Serve are gone
    assert _alive_nodes(two_nodes) == nodes_before  # and the cluster still runs


def _alive_nodes(nodes: TwoNodes) -> list[bool]:
    return [node.remaining_processes_alive() for node in [nodes.cluster.head_node, nodes.worker]]


def test_an_address_nobody_answers_is_named_at_start(tmp_path: Path) -> None:
    env = server_env()
    with running_server(
        ["--backend", "ray", "--ray-address", "127.0.0.1:9", "--load-timeout", "5"],
        cwd=tmp_path,
        env=env,
        ready=False,
    ) as server:
        line = server.wait_for_line(lambda s: "could not be loaded" in s, 60)
        assert "127.0.0.1:9" in line
        assert server.proc.wait(30) == 1


def test_replicas_the_cluster_has_no_room_for_are_named_with_the_reason(
    two_nodes: TwoNodes, tmp_path: Path
) -> None:
    # three replicas of one CPU each on two nodes of one CPU: Serve places two and waits
    args = [*ray_args(two_nodes, "--workers", "3"), "--factory", "tests.models:steady"]
    with running_server([*args, "--load-timeout", "50"], cwd=tmp_path, ready=False) as server:
        line = server.wait_for_line(lambda s: "could not be loaded" in s, 180)
        assert server.proc.wait(60) == 1
        output = server.drain()
    assert "Ray Serve runs 2 of 3 replicas" in line, line
    assert "lower --ray-cpus or --workers, or add a node" in line
    assert "Traceback" not in output


def test_a_killed_model_host_sends_the_calls_to_the_other_replica_meanwhile(
    two_nodes: TwoNodes, tmp_path: Path
) -> None:
    # its keeper reloads it (8 s): the requests must not wait for that while a sibling answers
    args = [
        *ray_args(two_nodes, "--workers", "2"),
        "--factory",
        "tests.models:slow_reloading_chaos",
    ]
    with ray_server([*args, "--timeout", "30"], tmp_path) as server:
        app = health_of(server.url)["extra"]["ray"]["application"]
        keeper = keeper_processes(app)[0]
        hosts = [
            child
            for child in keeper.children()
            if "spawn_main" in " ".join(child.cmdline())  # not its resource tracker
        ]
        assert len(hosts) == 1
        results = under_load(server.url, lambda: hosts[0].send_signal(signal.SIGKILL), 6.0)
        statuses = {status for status, _ in results}
        assert statuses <= {200, 503}, statuses
        slowest = max(seconds for _, seconds in results)
        assert slowest < 4.0, f"a request waited {slowest:.1f} s (for the host's reload?)"
        assert sum(status == 200 for status, _ in results) > 100
        # and the keeper's new host serves again, in the same keeper
        wait_until(
            lambda: (
                len([c for c in keeper.children() if "spawn_main" in " ".join(c.cmdline())]) == 1
                and hosts[0].pid not in {c.pid for c in keeper.children()}
            ),
            60,
            0.5,
        )
