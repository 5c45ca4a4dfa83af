"""A model replica on a Ray node: the Ray Serve deployment's class, around one local model host.

::

    web process (PoolBackend: queue, batching, deadlines)        a Ray node
    ─────────────────────────────────────────────────────        ──────────────────────────────
    RayLane.predict ── DeploymentHandle ── Serve's router ─────► ModelReplica (a Serve replica)
                                                                   └─ Replica: a spawned model
                                                                      host, the same as on one PC

The model runs in a model host spawned by this replica (``backends.replica.Replica``, the class a
local pool uses), not in the Serve actor itself. So a model that hangs, holds the GIL or is frozen
is handled as on one PC: the call's deadline passes, the host is killed and a new one loads the
same bytes, while the Serve actor stays responsive to Ray (its health checks pass, its queue
length is answered) and is not replaced for a fault of the model. A Serve actor that dies (its
process killed, its node lost) takes its host with it (``PR_SET_PDEATHSIG``) and Serve starts
another.

Answers are the host's records unchanged (the web process's pool reads them as it reads a local
host's), or a record ``{"winserve": "timeout" | "gone", "reason": …}`` that the lane turns into
the same exceptions a local replica raises.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from typing import Any

from winserve.backends import bundle as bundles
from winserve.backends.proxy import HOST_GONE
from winserve.backends.replica import Replica
from winserve.errors import ModelLoadError
from winserve.model_info import ModelSpec

log = logging.getLogger("winserve.ray")

RESTART_BACKOFF_MAX = 30.0


class ModelReplica:
    """One Serve replica. Serve calls ``__init__`` once, then ``describe``, ``predict`` and
    ``check_health`` from its threads; ``__del__`` when the replica is removed."""

    def __init__(self, bundle: Any, spec: ModelSpec, load_timeout: float) -> None:
        if bundle is not None and not isinstance(bundle, bundles.Bundle):
            import ray  # Serve hands a constructor's ObjectRef over as it is

            bundle = ray.get(bundle, timeout=load_timeout)
        self._model_path = bundles.unpack(bundle) if bundle is not None else None
        if self._model_path is not None:
            spec = dataclasses.replace(spec, path=str(self._model_path))
        self._spec = spec
        self._load_timeout = load_timeout
        self._lock = threading.Lock()  # one call at a time into the host
        self._ready = threading.Event()  # a host is loaded and answering
        self._settled = threading.Event()  # the first load has succeeded or failed
        self._restart = threading.Event()
        self._stopping = threading.Event()
        self._replica: Replica | None = None
        self._info: dict[str, Any] | None = None
        self._error = ""
        self._restarts = 0
        self._load_seconds = 0.0
        # The host is spawned from this thread, which lives as long as the replica: on Linux a
        # host dies with the thread that started it (PR_SET_PDEATHSIG).
        self._keeper = threading.Thread(target=self._keep_host, name="winserve-ray-host")
        self._keeper.daemon = True
        self._keeper.start()
        # Serve counts a replica as started when this returns: wait for the model, so that no
        # request is routed to a replica still loading (a failed load is reported by describe).
        self._settled.wait(load_timeout + 5.0)

    # -- called by the web process ----------------------------------------------------------

    def describe(self, timeout: float) -> dict[str, Any]:
        """The host's load record, with where this replica runs."""
        self._settled.wait(timeout)
        where = _where()
        replica = self._replica
        where["host_pid"] = replica.pid if replica is not None else None
        if self._info is not None:
            return {"ok": True, "info": self._info, **where}
        message = self._error or f"the model did not load within {self._load_timeout:g} s"
        return {"ok": False, "error": {"type": "ModelLoadError", "message": message}, **where}

    def predict(
        self, payload: dict[str, Any], proba: bool, scores: bool, timeout: float
    ) -> dict[str, Any]:
        end = time.monotonic() + timeout
        # A host being replaced (after a hang or a crash) answers once it is loaded, within
        # the caller's deadline; meanwhile this replica is busy and Serve routes elsewhere.
        if not self._ready.wait(timeout):
            return _fault("timeout", self._error or "the model host is still restarting")
        if not self._lock.acquire(timeout=max(0.0, end - time.monotonic())):
            return _fault("timeout", "the model host is busy with a call past its deadline")
        try:
            replica = self._replica
            if replica is None or not self._ready.is_set():
                return _fault("gone", self._error or "the model host is restarting")
            left = max(0.01, end - time.monotonic())
            try:
                return replica.predict(payload, proba, timeout=left, scores=scores)
            except TimeoutError:
                self._replace(replica, f"a prediction took longer than {timeout:g} s")
                return _fault("timeout", f"a prediction took longer than {timeout:g} s")
            except (*HOST_GONE, OSError):
                reason = f"{replica.exit_description()} during a prediction"
                self._replace(replica, reason)
                return _fault("gone", reason)
        finally:
            self._lock.release()

    def check_health(self) -> None:
        """Serve's health check: only a replica that can no longer get a host is unhealthy
        (Serve then replaces it); a host being reloaded is this replica's business."""
        first_load_failed = self._settled.is_set() and self._info is None  # describe says why
        if not self._keeper.is_alive() and not self._stopping.is_set() and not first_load_failed:
            raise RuntimeError(self._error or "the model host keeper stopped")

    def __del__(self) -> None:
        self._stopping.set()
        self._restart.set()
        replica = self._replica
        if replica is not None:
            replica.stop()
        if self._model_path is not None:
            bundles.remove(self._model_path)

    # -- the host ---------------------------------------------------------------------------

    def _replace(self, replica: Replica, reason: str) -> None:
        """Kill a host that missed its deadline or died; the keeper starts another."""
        self._ready.clear()
        self._error = reason
        replica.kill()
        self._restart.set()

    def _keep_host(self) -> None:
        backoff = 0.0
        while not self._stopping.is_set():
            replica = Replica(self._restarts, self._spec)
            self._replica = replica
            try:
                info = replica.start(self._load_timeout)
            except ModelLoadError as exc:
                self._error = str(exc)
            except TimeoutError:
                self._error = f"the model did not load within {self._load_timeout:g} s"
            except (*HOST_GONE, OSError) as exc:
                self._error = f"{replica.exit_description()} while loading ({type(exc).__name__})"
            else:
                self._load_seconds = replica.load_seconds
                if self._info is None:
                    self._info = info
                    if info.get("sha256"):  # a reload must find these same bytes
                        self._spec = dataclasses.replace(self._spec, same_as=info["sha256"])
                self._error = ""
                backoff = 0.0
                self._ready.set()
                self._settled.set()
                self._restart.wait()
                self._restart.clear()
                self._restarts += 1
                continue
            replica.kill()
            if self._info is None:  # the first load failed: the model cannot be served here
                self._settled.set()
                return
            self._restarts += 1
            log.warning("model host: %s; restarting in %.1f s", self._error, backoff)
            self._stopping.wait(backoff)
            backoff = min(max(backoff * 2, 0.5), RESTART_BACKOFF_MAX)


def _fault(kind: str, reason: str) -> dict[str, Any]:
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
