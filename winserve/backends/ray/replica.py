"""A model replica on a Ray node: a Serve replica, and beside it the actor that serves the calls.

::

    web process (PoolBackend: queue, batching, deadlines)        a Ray node
    ─────────────────────────────────────────────────────        ──────────────────────────────
    RayLane.predict ── a direct Ray actor call ────────────────► HostKeeper (a plain Ray actor)
                                                                   └─ Replica: a spawned model
                                                                      host, the same as on one PC
    RayBackend (placement, replacement, autoscaling) ── Serve ─► ModelReplica (a Serve replica)
                                                                   owns its HostKeeper

Serve does what it is good at: it places the replicas on the cluster's nodes, replaces a dead
one, checks their health and scales their number with ``--workers auto``. The calls themselves
do not go through Serve's router: a DeploymentHandle call costs the web process about 8 ms of
CPU (measured: ``bench/RESULTS.md``), a plain actor call about 1 ms. So each Serve replica
starts one ``HostKeeper`` actor on its own node, named after winserve's application, and the
web process calls the keepers directly (``RayBackend`` finds them by name).

The two live and die together: the keeper is owned by its Serve replica, so Ray ends it when the
replica ends; a Serve replica whose keeper dies ends itself at once, so Serve replaces both.

The model runs in a model host spawned by the keeper (``backends.replica.Replica``, the class a
local pool uses), not in an actor. So a model that hangs, holds the GIL or is frozen is handled
as on one PC: the call's deadline passes, the host is killed and a new one loads the same bytes,
while the keeper stays responsive to Ray and is not replaced for a fault of the model. A keeper
that dies (its process killed, its node lost) takes its host with it (``PR_SET_PDEATHSIG``).

The keeper's host is kept by the same ``Supervisor`` as a local pool's replicas
(``backends/supervisor.py``): start, classify a failure, back off, restart; a first load that
fails is final here (Serve replacing the replica would only fail again).

Answers are the host's records unchanged (the web process's pool reads them as it reads a local
host's), or a ``KeeperFault`` ``{"winserve": "timeout" | "gone", "reason": …}`` that the lane
turns into the same exceptions a local replica raises.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
import time
import uuid
from typing import Any, Literal, TypedDict

from winserve.backends import bundle as bundles
from winserve.backends.replica import Replica
from winserve.backends.runner import ReplicaRunner
from winserve.backends.supervisor import Failure, Hooks, Supervisor, call_failure
from winserve.host.answers import HostInfo, PredictAnswer
from winserve.model_info import ModelSpec

log = logging.getLogger("winserve.ray")

NAMESPACE = "winserve"  # the keepers' Ray namespace; each is named "<application>#<id>"
KEEPER_CALLS = 16  # calls a keeper takes at once: the lanes' (one each) and Serve's checks
KEEPER_CHECK_SECONDS = 5.0


class KeeperFault(TypedDict):
    """The keeper's own answer when its host gave none: the lane raises ``TimeoutError``
    ("timeout") or ``HostGone`` ("gone") with the reason."""

    winserve: Literal["timeout", "gone"]
    reason: str


def keeper_name(app: str) -> str:
    return f"{app}#{uuid.uuid4().hex[:12]}"


class ModelReplica:
    """One Serve replica: starts its ``HostKeeper`` on this node and answers Serve for it.
    Serve calls ``__init__`` once, then ``check_health`` and
    ``record_autoscaling_stats`` from its threads; ``__del__`` when the replica is removed."""

    def __init__(self, bundle: Any, spec: ModelSpec, load_timeout: float, app: str) -> None:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        # A class per application, so that `ps` (and the tests) tell whose process this is:
        # Ray titles an actor's process after its class, as Serve's own "ServeReplica:<app>:…"
        keeper_class = ray.remote(type(f"WinserveHost:{app}", (HostKeeper,), {}))
        self.name = keeper_name(app)
        self._stopping = threading.Event()
        self._keeper = keeper_class.options(  # type: ignore[attr-defined]
            name=self.name,
            namespace=NAMESPACE,
            num_cpus=0,  # the Serve replica reserved this node's CPUs for both
            max_concurrency=KEEPER_CALLS,
            max_restarts=0,  # a dead keeper ends its Serve replica, and Serve replaces both
            scheduling_strategy=NodeAffinitySchedulingStrategy(
                ray.get_runtime_context().get_node_id(), soft=False
            ),
        ).remote(bundle, spec, load_timeout)
        # Serve counts a replica as started when this returns: wait for the model, so that no
        # replica counts as running while its model loads (the web process reads the keeper's
        # own record, a failed load's reason too)
        ray.get(self._keeper.describe.remote(load_timeout + 5.0), timeout=load_timeout + 60.0)
        threading.Thread(target=self._watch, name="winserve-ray-watch", daemon=True).start()

    def _watch(self) -> None:
        import ray

        try:
            ray.get(self._keeper.until_stopped.remote())
        except Exception as exc:  # the keeper died: end this replica so that Serve replaces it
            if not self._stopping.is_set():
                log.error("the model's keeper actor died (%s): ending this replica", exc)
                os._exit(1)

    def check_health(self) -> None:
        """Serve's health check: the keeper answers (a host being reloaded is its business)."""
        import ray

        ray.get(self._keeper.check.remote(), timeout=KEEPER_CHECK_SECONDS)

    def record_autoscaling_stats(self) -> dict[str, float]:
        """Calls at the keeper, running and waiting: what ``scaling.py`` scales on (the calls
        do not pass through Serve, so Serve's own count of ongoing requests is zero)."""
        import ray

        return {"calls": float(ray.get(self._keeper.calls.remote(), timeout=2.0))}

    def __del__(self) -> None:
        import ray

        self._stopping.set()
        with contextlib.suppress(Exception):  # already gone
            ray.get(self._keeper.stop.remote(), timeout=10.0)
        with contextlib.suppress(Exception):
            ray.kill(self._keeper)


class HostKeeper:
    """The actor that serves one Serve replica's calls, around one local model host. Its methods
    run in Ray's threads (``max_concurrency``); its host is kept by a ``Supervisor``."""

    def __init__(self, bundle: Any, spec: ModelSpec, load_timeout: float) -> None:
        if bundle is not None and not isinstance(bundle, bundles.Bundle):
            import ray  # an ObjectRef nested in another argument arrives unresolved

            bundle = ray.get(bundle, timeout=load_timeout)
        self._model_path = bundles.unpack(bundle) if bundle is not None else None
        if self._model_path is not None:
            spec = dataclasses.replace(spec, path=str(self._model_path))
        self._load_timeout = load_timeout
        self._lock = threading.Lock()  # one call at a time into the host
        self._ready = threading.Event()  # a host is loaded and answering
        self._settled = threading.Event()  # the first load has succeeded or failed
        self._restart = threading.Event()
        self._stopping = threading.Event()
        self._replica = Replica(0, spec)  # started again after each failure, never replaced
        self._info: HostInfo | None = None
        self._calls = 0  # predict calls here now, running or waiting for the host
        self._calls_lock = threading.Lock()
        supervisor = Supervisor(
            self._replica,
            Hooks(
                serve=self._serve,
                started=self._started,
                keep_trying=self._keep_trying,
            ),
            load_timeout=load_timeout,
            stopping=self._stopping,
            label="model host",
            log=log,
            # the bytes were unpacked here, pinned to their SHA-256: no file to wait for
            watch_file=False,
            reset_after=0.0,  # a host that loaded again restarts at once next time
        )
        # The host is spawned from this thread, which lives as long as the keeper: on Linux a
        # host dies with the thread that started it (PR_SET_PDEATHSIG).
        self._host_thread = threading.Thread(target=supervisor.run, name="winserve-ray-host")
        self._host_thread.daemon = True
        self._host_thread.start()

    @property
    def _error(self) -> str:
        return self._replica.last_error

    # -- called by the web process and by the Serve replica ----------------------------------

    def describe(self, timeout: float) -> dict[str, Any]:
        """The host's load record, with where this keeper runs (``loading`` while it loads)."""
        self._settled.wait(timeout)
        where = _where()
        where["host_pid"] = self._replica.pid
        if self._info is not None:  # ready: a host answers now (not one being reloaded)
            return {"ok": True, "info": self._info, "ready": self._ready.is_set(), **where}
        if not self._settled.is_set():
            message = f"the model did not load within {timeout:g} s"
            return {"ok": False, "loading": True, "error": _load_error(message), **where}
        message = self._error or f"the model did not load within {self._load_timeout:g} s"
        return {"ok": False, "error": _load_error(message), **where}

    def predict(
        self, payload: dict[str, Any], proba: bool, scores: bool, timeout: float
    ) -> PredictAnswer | KeeperFault:
        with self._calls_lock:
            self._calls += 1
        try:
            return self._predict(payload, proba, scores, timeout)
        finally:
            with self._calls_lock:
                self._calls -= 1

    def _predict(
        self, payload: dict[str, Any], proba: bool, scores: bool, timeout: float
    ) -> PredictAnswer | KeeperFault:
        end = time.monotonic() + timeout
        # A host being replaced (after a hang or a crash) answers once it is loaded, within
        # the caller's deadline
        if not self._ready.wait(timeout):
            return _fault("timeout", self._error or "the model host is still restarting")
        if not self._lock.acquire(timeout=max(0.0, end - time.monotonic())):
            return _fault("timeout", "the model host is busy with a call past its deadline")
        try:
            replica = self._replica
            if not self._ready.is_set():
                return _fault("gone", self._error or "the model host is restarting")
            left = max(0.01, end - time.monotonic())
            try:
                return replica.predict(payload, proba, timeout=left, scores=scores)
            except Exception as exc:
                failure = call_failure(exc, replica, timeout)
                if failure.kind == "broken":
                    raise  # the lane sees the keeper fail, as before
                # a crash's reason: the web process adds "during a prediction"
                self._replace(failure.reason)
                return _fault("timeout" if failure.kind == "timeout" else "gone", failure.reason)
        finally:
            self._lock.release()

    def calls(self) -> int:
        return self._calls

    def check(self) -> None:
        """Healthy unless it can no longer get a host; a first load that failed is reported
        by ``describe`` (Serve replacing the replica would only fail again)."""
        first_load_failed = self._settled.is_set() and self._info is None
        stopped = self._stopping.is_set() or first_load_failed
        if not self._host_thread.is_alive() and not stopped:
            raise RuntimeError(self._error or "the model host keeper stopped")

    def until_stopped(self) -> None:
        """Returns when the keeper is stopped: its Serve replica waits here to learn of its
        death (the call then fails)."""
        self._stopping.wait()

    def stop(self) -> None:
        self._stopping.set()
        self._restart.set()
        self._replica.stop()
        if self._model_path is not None:
            bundles.remove(self._model_path)

    # -- the host: the supervisor's hooks ---------------------------------------------------

    def _replace(self, reason: str) -> None:
        """Kill a host that missed its deadline or died; the supervisor starts another."""
        self._ready.clear()
        self._replica.mark("restarting", reason)
        self._replica.kill()
        self._restart.set()

    def _started(self, replica: ReplicaRunner, outcome: HostInfo | Failure) -> None:
        if isinstance(outcome, Failure):
            if self._info is None:  # the first load failed: the model cannot be served here
                self._settled.set()
            return
        if self._info is None:
            self._info = outcome
            if outcome.get("sha256"):  # a reload must find these same bytes
                replica.pin(outcome["sha256"])
        self._ready.set()
        self._settled.set()

    def _serve(self, replica: ReplicaRunner) -> None:
        """Until a call replaces the host (``_replace``) or the keeper stops."""
        self._restart.wait()
        self._restart.clear()

    def _keep_trying(self, replica: ReplicaRunner) -> bool:
        return self._info is not None  # a first load that failed is final


def _load_error(message: str) -> dict[str, str]:
    return {"type": "ModelLoadError", "message": message}


def _fault(kind: Literal["timeout", "gone"], reason: str) -> KeeperFault:
    return {"winserve": kind, "reason": reason}


def _where() -> dict[str, Any]:
    """This replica's node and process, for /health."""
    node = address = ""
    try:
        import ray

        node = ray.get_runtime_context().get_node_id()
        address = ray.util.get_node_ip_address()
    except Exception:  # outside Ray (the tests call the class directly)
        pass
    return {"node": node, "node_address": address, "pid": os.getpid()}
