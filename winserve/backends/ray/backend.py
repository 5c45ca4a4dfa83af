"""``RayBackend``: the model replicas as a Ray Serve deployment, behind the pool's own queue.

::

    waitress threads ─► PoolBackend (queue, batching, deadlines, 504/503 JSON)
                           │ one dispatcher per lane, as per local replica
                           ▼
                        RayLane 0 … L-1 ── direct actor calls ──► HostKeeper actors, one per
                        (lane.py)                                 Serve replica (replica.py),
                                                                  each with a model host

Everything but the model call stays in the web process: protocols, validation, the page, CSV
scoring, batching and deadlines are the local pool's (DESIGN decision 11). A lane (``lane.py``)
is the pool's replica: it sends one batch at a time and maps Ray's failures onto the ones a
local host raises (a timeout → ``TimeoutError``; a dead replica, a lost node, an unreachable
cluster → ``HostGone``), so the pool answers 504/503 and "restarts" the lane, which only means
finding a keeper that answers: Serve itself replaces a dead replica. This module deploys the
keepers and watches the cluster for ``/health``; ``keepers.py`` finds the keepers for the lanes.

Serve places, replaces, health-checks and autoscales the replicas; the calls go straight to each
replica's keeper actor (found by its name, ``<application>#…``), because a call through a
Serve DeploymentHandle costs the web process about 8 ms of CPU and a plain actor call about 1.

The model travels by value (``bundle``): the web process reads the file once, puts it in Ray's
object store and pins every replica's load to its SHA-256.

With ``--workers N`` the deployment has N replicas and the pool N lanes (one call in flight per
lane, so batches form here); with ``--workers auto`` Serve scales between 1 and
``max_workers`` replicas on the calls waiting at the keepers (``scaling.py``).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
import time
from pathlib import Path
from typing import Any

from winserve.backends import bundle as bundles
from winserve.backends.base import Backend, Health, Prediction
from winserve.backends.pool import MAX_BATCH_BYTES, PoolBackend
from winserve.backends.ray import cluster as ray_cluster
from winserve.backends.ray.keepers import Keepers
from winserve.backends.ray.lane import RayLane
from winserve.backends.runner import ReplicaRunner
from winserve.errors import ModelLoadError, ModelUnavailable
from winserve.model_file import sha256_of
from winserve.model_info import ModelInfo, ModelSpec
from winserve.rows import Payload

log = logging.getLogger("winserve.ray")

MONITOR_SECONDS = 3.0  # between looks at the cluster, for /health (serve.status: ~10 ms of CPU)
STALE_SECONDS = 10.0  # a cluster silent this long is reported unreachable
HEALTH_CHECK_SECONDS = 2.0
_apps = itertools.count(1)


@dataclasses.dataclass(frozen=True)
class RayOptions:
    address: str = "auto"
    workers: int = 1  # 0: autoscaling between 1 and max_workers
    max_workers: int = 4
    cpus: float = 1.0  # Ray CPUs each replica reserves


class RayBackend(Backend):
    def __init__(
        self,
        spec: ModelSpec,
        options: RayOptions,
        *,
        timeout: float = 30.0,
        load_timeout: float = 300.0,
        max_batch_rows: int = 256,
        max_batch_wait_ms: float = 0.0,
        max_queue: int = 512,
        name: str = "",
        max_batch_bytes: int = MAX_BATCH_BYTES,
    ) -> None:
        self._spec = spec
        self._options = options
        self._timeout = timeout
        self._load_timeout = load_timeout
        stem = Path(spec.path).stem if spec.path else (name or "model")
        self.app_name = ray_cluster.app_name(stem, next(_apps))
        lanes = options.workers or options.max_workers
        # lanes carry no file: a changed file on disk is no reason to hold them (the bytes
        # were sent), and the replicas, not the lanes, pin what they load
        lane_spec = dataclasses.replace(spec, path="")
        self._pool = PoolBackend(
            lane_spec,
            workers=lanes,
            timeout=timeout,
            load_timeout=load_timeout,
            max_batch_rows=max_batch_rows,
            max_batch_wait_ms=max_batch_wait_ms,
            max_queue=max_queue,
            max_batch_bytes=max_batch_bytes,
            make_replica=self._lane,
        )
        self.batch_rows = self._pool.batch_rows
        self._deployed = threading.Event()
        self.deploy_error = ""
        self._connected = False
        self._closing = threading.Event()
        self._close_lock = threading.Lock()
        self._status: dict[str, Any] = {}
        self._heard = 0.0
        self._heard_wall = 0.0
        self._nodes_at_start: dict[str, str] = {}
        self._started = 0.0
        self._cluster = ""  # the GCS address joined (``auto`` says which cluster it found)
        self._app_sent = False
        self.keepers = Keepers(self.app_name, self._closing)  # the lanes find theirs there

    def _lane(self, index: int, spec: ModelSpec) -> ReplicaRunner:
        return RayLane(index, spec, self)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._started = time.monotonic()
        threading.Thread(target=self._deploy, name="winserve-ray-deploy", daemon=True).start()
        self._pool.start()

    def _deploy(self) -> None:
        try:
            self._run_deployment()
        except ModelLoadError as exc:
            self.deploy_error = str(exc)
        except Exception as exc:
            self.deploy_error = f"cannot deploy the model on Ray: {self._why_not(exc)}"
        if self.deploy_error:
            log.error("%s", self.deploy_error)
        self._deployed.set()

    def _run_deployment(self) -> None:
        import ray
        from ray import serve

        from winserve.backends.ray.replica import ModelReplica
        from winserve.backends.ray.scaling import scale_on_calls

        # within the lanes' wait for the deployment, so that its reason is the one told
        left = self._started + self._load_timeout - 1.0 - time.monotonic()
        connection = ray_cluster.connect(
            self._options.address, min(ray_cluster.CONNECT_SECONDS, max(0.5, left))
        )
        self._connected = True
        self._cluster = connection.joined
        if self._closing.is_set():
            raise ModelLoadError("stopped while connecting to Ray")
        spec = self._spec
        bundle = None
        if spec.path:
            path = Path(spec.path)
            bundle = bundles.pack(path)
            # every node loads these bytes, or refuses them (host: "the file must have this
            # SHA-256 before it is unpickled")
            spec = dataclasses.replace(spec, sha256=spec.sha256 or sha256_of(path))
            log.info(
                "sending %s (%.1f MB) to the Ray cluster at %s",
                path.name,
                bundle.size / 1e6,
                connection.address,
            )
        self._nodes_at_start = _alive_nodes()
        # from here, not from the deployment's end: while Serve waits for replicas it cannot
        # place (no free CPU), /health and the load's error say so
        threading.Thread(target=self._monitor, name="winserve-ray-monitor", daemon=True).start()
        options: dict[str, Any] = {
            "ray_actor_options": {"num_cpus": self._options.cpus},
            "health_check_period_s": HEALTH_CHECK_SECONDS,
            "health_check_timeout_s": max(HEALTH_CHECK_SECONDS, 5.0),
            "graceful_shutdown_timeout_s": 5.0,
        }
        if self._options.workers:
            options["num_replicas"] = self._options.workers
        else:
            options["autoscaling_config"] = {
                "min_replicas": 1,
                "max_replicas": self._options.max_workers,
                "target_ongoing_requests": 1,
                "upscale_delay_s": 1.0,
                "downscale_delay_s": 60.0,
                # Serve's defaults average the load over 30 s, reported every 10 s: a desktop
                # cluster's users would wait a minute for a second replica
                "look_back_period_s": 5.0,
                "metrics_interval_s": 1.0,
                "policy": {"policy_function": scale_on_calls},
            }
        # through the object store: once, not inside Serve's stored config
        carried = ray.put(bundle) if bundle is not None else None

        def build() -> Any:
            deployment = serve.deployment(name="model", **options)(ModelReplica)
            return deployment.bind(carried, spec, self._load_timeout, self.app_name)

        self._app_sent = True  # from here on, close() removes the application
        ray_cluster.bounded(
            lambda: ray_cluster.deploy(build, self.app_name),
            self._load_timeout + 30.0,
            "serve.run",
        )

    def _why_not(self, exc: BaseException) -> str:
        """Serve's own account of a failed deployment (the replicas' error), else ``exc``'s."""
        from ray import serve

        try:
            status = serve.status().applications.get(self.app_name)
            messages = [d.message for d in status.deployments.values()] if status else []
        except Exception:
            messages = []
        for message in messages:
            if message:
                return _cause(RuntimeError(message))
        return _cause(exc)

    def deployed(self, timeout: float) -> None:
        """Returns once the deployment runs (a lane's start waits here)."""
        if not self._deployed.wait(timeout):
            raise TimeoutError(f"the Ray deployment did not start within {timeout:g} s")
        if self.deploy_error:
            raise ModelLoadError(self.deploy_error)

    def wait_ready(self, timeout: float) -> ModelInfo:
        return self._pool.wait_ready(timeout)

    def close(self) -> None:
        with self._close_lock:
            first = not self._closing.is_set()
            self._closing.set()
        if not first:
            return
        self._pool.close()
        if self._app_sent:
            from ray import serve

            try:
                ray_cluster.bounded(
                    lambda: serve.delete(self.app_name), ray_cluster.STOP_SECONDS, "serve.delete"
                )
            except Exception as exc:
                log.warning("could not remove the Serve application %s: %s", self.app_name, exc)
        if self._connected:
            self._connected = False
            ray_cluster.disconnect()

    # -- web side ----------------------------------------------------------------------------

    def describe(self) -> ModelInfo:
        return self._pool.describe()

    def predict(self, payload: Payload, proba: bool = False, scores: bool = False) -> Prediction:
        try:
            return self._pool.predict(payload, proba, scores)
        except ModelUnavailable as exc:
            problem = self.problem()  # the cluster's state says more than "restarting"
            if problem and problem not in exc.message:
                raise ModelUnavailable(
                    f"{exc.message} ({problem})", retry_after=exc.retry_after
                ) from None
            raise

    def health(self) -> Health:
        health = self._pool.health()
        problem = self.problem()
        status = health.status
        reason = health.reason
        if problem and status in ("ready", "degraded"):
            status = "degraded"
        if problem and problem not in reason:
            reason = f"{reason}; {problem}" if reason else problem
        extra = {
            "ray": {
                "address": self._options.address,
                "cluster": self._cluster,
                "application": self.app_name,
            }
        }
        extra["ray"].update(self._status)
        return Health(status, health.replicas, reason, queue_depth=health.queue_depth, extra=extra)

    def problem(self) -> str:
        """What is wrong with the cluster, as last seen; "" when nothing is."""
        if self.deploy_error:
            return self.deploy_error
        if self._heard and time.monotonic() - self._heard > STALE_SECONDS:
            since = time.strftime("%H:%M:%S", time.localtime(self._heard_wall))
            return f"the Ray cluster at {self._options.address} has not answered since {since}"
        lost = self._status.get("lost_nodes") or []
        if lost:
            return "Ray node lost: " + "; ".join(lost)
        return self._replicas_short()

    def _replicas_short(self) -> str:
        """Fewer replicas running than asked for, with Serve's reason (most often: no node
        has the CPUs a replica reserves)."""
        states: dict[str, int] = self._status.get("replica_states") or {}
        running = states.get("RUNNING", 0)
        message = self._status.get("serve_message", "")
        wanted = self._options.workers
        if states and wanted and running < wanted:
            others = ", ".join(
                f"{n} {s.lower()}" for s, n in sorted(states.items()) if s != "RUNNING"
            )
            short = f"Ray Serve runs {running} of {wanted} replicas ({others or 'none other'})"
        elif "scheduled" in message:
            short = "Ray Serve cannot place every replica"
        else:
            return ""
        if "scheduled" in message or "Resources required" in message:
            short += (
                f": the cluster has no room for another (each replica reserves "
                f"ray_cpus = {self._options.cpus:g} CPU; lower --ray-cpus or --workers, or add "
                f"a node). Ray Serve says: {message}"
            )
        return short

    def _monitor(self) -> None:
        """Replicas and nodes as the cluster reports them, every ``MONITOR_SECONDS``."""
        import ray
        from ray import serve

        self._heard, self._heard_wall = time.monotonic(), time.time()
        while not self._closing.wait(MONITOR_SECONDS):
            self.keepers.look()  # replicas Serve added (autoscaling) or replaced
            try:
                status = serve.status().applications.get(self.app_name)
                nodes = {n["NodeID"]: n for n in ray.nodes()}
            except Exception as exc:  # the cluster is gone: problem() says for how long
                log.debug("Ray status failed: %s", exc)
                continue
            self._heard, self._heard_wall = time.monotonic(), time.time()
            snapshot: dict[str, Any] = {}
            if status is not None:
                for deployment in status.deployments.values():
                    snapshot["replica_states"] = {
                        str(getattr(state, "value", state)): count
                        for state, count in deployment.replica_states.items()
                    }
                    if deployment.message:
                        snapshot["serve_message"] = deployment.message[:500]
            snapshot["nodes"] = sorted(
                f"{n['NodeManagerAddress']} ({'alive' if n['Alive'] else 'dead'})"
                for n in nodes.values()
            )
            lost = []
            for node_id, address in self._nodes_at_start.items():
                node = nodes.get(node_id)
                if node is None:
                    lost.append(f"{address} (no longer in the cluster)")
                elif not node["Alive"]:
                    lost.append(f"{address} ({node.get('DeathReasonMessage') or 'stopped'})")
            snapshot["lost_nodes"] = sorted(lost)
            for each in sorted(set(lost) - set(self._status.get("lost_nodes") or [])):
                log.error("Ray node lost: %s", each)
            self._status = snapshot


def _alive_nodes() -> dict[str, str]:
    import ray

    return {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]}


def _cause(exc: BaseException) -> str:
    """The innermost error of a Ray failure (its text often holds a whole remote traceback)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    errors = [line for line in lines if ("Error:" in line or "Exception:" in line)]
    last = errors[-1] if errors else (lines[0] if lines else "")
    return f"{type(exc).__name__}: {last[:300]}"
