"""One model replica: a spawned model-host process, its manager and its proxy.

::

    Supervisor / PoolBackend ─► Replica.start ── spawn ──► manager server + ModelHost
                                Replica.predict ─ HostProxy (deadline) ─► ModelHost.predict
                                Replica.kill ──── SIGKILL / TerminateProcess, then ``forget``

The local ``ReplicaRunner`` (``backends/runner.py``): its failures are ``ModelLoadError``,
``TimeoutError`` or ``HostGone``, and its state is ``Lifecycle``'s.

Only the replica's dispatcher thread calls ``start`` and ``predict``; ``kill`` and ``stop`` may
come from any thread (shutdown, a watchdog) and unblock a dispatcher stuck in a call by ending
the process.

A host may hold the GIL for hours or be frozen (SIGSTOP), and then it answers nothing, not
even multiprocessing's own messages (issue 13). So ``kill`` ends the process first, by signal
(SIGKILL / TerminateProcess), and then ``forget``s its manager and proxy without a call into
it; ``stop`` asks politely and turns into a kill when the host has not gone within
``STOP_SECONDS``; and every wait of ``start`` is bounded by the load timeout.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from winserve.backends.proxy import (
    HOST_GONE,
    HostManager,
    HostProxy,
    ask_to_exit,
    forget,
    spawn_context,
)
from winserve.backends.runner import HostGone, Lifecycle
from winserve.errors import ModelLoadError
from winserve.host import watchdog
from winserve.host.answers import AskAnswer, HostInfo, LoadAnswer, PredictAnswer
from winserve.model_info import ModelSpec
from winserve.platform import adopt_child

KILL_JOIN_SECONDS = 5.0  # a SIGKILLed process is gone in milliseconds; this is the bound
STOP_SECONDS = 1.0  # a host asked to exit that is still there after this is killed


class Replica(Lifecycle):
    """A model host spawned on this machine, loaded once, called through its proxy."""

    def __init__(self, index: int, spec: ModelSpec) -> None:
        super().__init__(index, spec)
        self._lock = threading.Lock()
        self._manager: HostManager | None = None
        self._proxy: HostProxy | None = None
        self._pid: int | None = None
        self._stopped = False

    @property
    def pid(self) -> int | None:
        return self._pid

    def start(self, load_timeout: float) -> HostInfo:
        """Spawn a host and load the model in it; returns the host's description.

        Raises ``ModelLoadError`` (the model cannot be loaded), ``TimeoutError`` or
        ``HostGone`` (the process died, or was killed or stopped meanwhile). Call it from a
        thread that outlives the host: on Linux the host dies when that thread ends
        (``PR_SET_PDEATHSIG``, see ``winserve.platform.die_with_parent``).
        """
        try:
            return self._start(load_timeout)
        except TimeoutError:  # an OSError too, and not a dead host
            raise
        except (*HOST_GONE, OSError) as exc:
            if isinstance(exc, HostGone):
                raise
            raise HostGone(f"the model host is gone ({type(exc).__name__}: {exc})") from exc

    def _start(self, load_timeout: float) -> HostInfo:
        began = time.monotonic()
        manager = HostManager(ctx=spawn_context())
        with self._lock:
            if self._stopped:
                raise HostGone("the replica was stopped")
            self._manager = manager
        # Starting the manager and creating the proxy wait for the host without a timeout of
        # their own; a host frozen meanwhile is killed just past the load deadline (the load
        # call's own timeout answers first when only the load is slow), which ends them.
        guard = threading.Timer(load_timeout + 1.0, self._kill_if_current, args=(manager,))
        guard.daemon = True
        guard.start()
        try:
            manager.start(initializer=watchdog.start)
            process = manager._process  # type: ignore[attr-defined]  # no public accessor
            self._pid = process.pid
            with self._lock:
                killed = self._manager is not manager  # by stop() or kill() while it started
            if killed:
                _kill_process(manager)
                forget(manager, None)
                raise HostGone("the replica was stopped while its host started")
            adopt_child(process.pid)
            proxy = manager.ModelHost()  # type: ignore[attr-defined]
            with self._lock:
                if self._manager is manager:
                    self._proxy = proxy
            left = max(0.01, began + load_timeout - time.monotonic())
            record: LoadAnswer = proxy.load(self.spec, timeout=left)
        finally:
            guard.cancel()
        if not record["ok"]:
            raise ModelLoadError(record["error"]["message"])
        self.loaded_since(began)
        return record["info"]

    def predict(
        self, payload: dict[str, Any], proba: bool, timeout: float, scores: bool = False
    ) -> PredictAnswer:
        proxy = self._proxy
        if proxy is None:
            raise HostGone("the model host is not running")
        return proxy.predict(payload, proba, timeout=timeout, scores=scores)

    def ask(
        self, name: str, payload: dict[str, Any], options: dict[str, Any], timeout: float
    ) -> AskAnswer:
        proxy = self._proxy
        if proxy is None:
            raise HostGone("the model host is not running")
        return proxy.ask(name, payload, options, timeout=timeout)

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
        """End the host now (hung, frozen or dead) without a call into it; safe to call from
        any thread, more than once."""
        with self._lock:
            # Keep the proxy referenced until it is forgotten: dropping it here would run its
            # decref, a call into the host (issue 13).
            manager, proxy = self._manager, self._proxy
            self._manager = self._proxy = None
        if manager is None:
            return
        _kill_process(manager)
        forget(manager, proxy)

    def _kill_if_current(self, manager: HostManager) -> None:
        with self._lock:
            current = self._manager is manager
        if current:
            self.kill()

    def stop(self) -> None:
        """Ask the host to exit; one that is still there after ``STOP_SECONDS`` (frozen, or
        holding the GIL) is killed. The replica starts no host after this."""
        with self._lock:
            self._stopped = True
            manager = self._manager
        process = getattr(manager, "_process", None)
        if manager is not None and process is not None and process.is_alive():
            # The request waits for the host's answer; that wait is abandoned, never joined.
            threading.Thread(
                target=ask_to_exit, args=(manager,), name="winserve-stop-host", daemon=True
            ).start()
            process.join(STOP_SECONDS)
        self.kill()
        self.mark("stopped")


def _kill_process(manager: HostManager) -> None:
    """SIGKILL / TerminateProcess: works on a host that holds the GIL or is stopped."""
    process = getattr(manager, "_process", None)
    if process is not None and process.is_alive():
        process.kill()
        process.join(KILL_JOIN_SECONDS)
