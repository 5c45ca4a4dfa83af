"""One model replica: a spawned model-host process, its manager and its proxy.

Only the replica's dispatcher thread calls ``predict``; ``kill`` and ``stop`` may come from any
thread (shutdown, a watchdog) and unblock a dispatcher stuck in a call by ending the process.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from winserve.backends.base import ReplicaHealth, ReplicaState
from winserve.backends.proxy import HostManager, HostProxy, spawn_context
from winserve.errors import ModelLoadError
from winserve.host import watchdog
from winserve.model_info import ModelSpec
from winserve.platform import adopt_child

KILL_JOIN_SECONDS = 5.0


class Replica:
    def __init__(self, index: int, spec: ModelSpec) -> None:
        self.index = index
        self.spec = spec
        self.state: ReplicaState = "starting"
        self.restarts = 0
        self.last_error = ""
        self.started_at = 0.0
        self.load_seconds = 0.0
        self._lock = threading.Lock()
        self._manager: HostManager | None = None
        self._proxy: HostProxy | None = None
        self._pid: int | None = None

    @property
    def pid(self) -> int | None:
        return self._pid

    def health(self) -> ReplicaHealth:
        return ReplicaHealth(
            self.index,
            self.state,
            self.restarts,
            self._pid,
            self.last_error,
            round(self.load_seconds, 3),
        )

    def start(self, load_timeout: float) -> dict[str, Any]:
        """Spawn a host and load the model in it; returns the host's description.

        Raises ``ModelLoadError`` (the model cannot be loaded), ``TimeoutError`` or one of
        ``HOST_GONE`` (the process died or was stopped meanwhile).
        """
        began = time.monotonic()
        manager = HostManager(ctx=spawn_context())
        with self._lock:
            self._manager = manager
        manager.start(initializer=watchdog.start)
        process = manager._process  # type: ignore[attr-defined]  # no public accessor
        self._pid = process.pid
        adopt_child(process.pid)
        proxy = manager.ModelHost()  # type: ignore[attr-defined]
        with self._lock:
            self._proxy = proxy
        record = proxy.load(self.spec, timeout=load_timeout)
        if not record["ok"]:
            raise ModelLoadError(record["error"]["message"])
        self.started_at = time.monotonic()
        self.load_seconds = self.started_at - began
        info: dict[str, Any] = record["info"]
        return info

    def predict(self, payload: dict[str, Any], proba: bool, timeout: float) -> dict[str, Any]:
        proxy = self._proxy
        if proxy is None:
            raise BrokenPipeError("the model host is not running")
        return proxy.predict(payload, proba, timeout=timeout)

    def alive(self) -> bool:
        manager = self._manager
        process = getattr(manager, "_process", None)
        return process is not None and process.is_alive()

    def exit_description(self) -> str:
        process = getattr(self._manager, "_process", None)
        code = None if process is None else process.exitcode
        if code is None:
            return "the model process stopped answering"
        if code < 0:
            return f"the model process was killed by signal {-code}"
        return f"the model process exited with code {code}"

    def kill(self) -> None:
        """End the host now (hung or dead); safe to call from any thread, more than once."""
        with self._lock:
            manager, self._manager, self._proxy = self._manager, None, None
        if manager is None:
            return
        process = getattr(manager, "_process", None)
        if process is not None and process.is_alive():
            process.kill()
            process.join(KILL_JOIN_SECONDS)
        shutdown = getattr(manager, "shutdown", None)
        if shutdown is not None:
            with contextlib.suppress(Exception):
                shutdown()  # forgets the dead address; nothing left to stop

    def stop(self) -> None:
        """Ask the host to exit (the manager's own shutdown), then make sure it did."""
        with self._lock:
            manager = self._manager
        shutdown = getattr(manager, "shutdown", None)
        if shutdown is not None:
            with contextlib.suppress(Exception):
                shutdown()
        self.kill()
        self.state = "stopped"
