"""A pool's replicas as one set: their first load, the model they all serve, their health.

::

    dispatcher threads (their Supervisor's hooks)      web threads, the console
    ─────────────────────────────────────────────      ────────────────────────
    started(replica, info | failure) ──┐               wait_ready(timeout) ─► ModelInfo, or
    worth_retrying(replica) ───────────┼─► ReplicaSet     ModelLoadError once every first
    hold(replica, held) ───────────────┘   (its own       attempt failed
    notify() on every state change          Condition)  ready() / unavailable(): the 503's why
                                                        health(closing, queue_depth)

The first model loaded is the one every replica must load again (``ModelSpec.same_as``): a
restart never serves another file than the one ``/model`` describes. A first load that failed
waits for the other replicas' first attempts: if one loads, this failure was its replica's
and it restarts; if none does, the model cannot be loaded and the pool gives up (``wait_ready``
says why, once).
"""

from __future__ import annotations

import logging
import math
import threading
import time

from winserve.backends.base import Health, Status
from winserve.backends.runner import ReplicaRunner
from winserve.backends.supervisor import Failure
from winserve.errors import ModelLoadError, ModelUnavailable
from winserve.host.answers import HostInfo
from winserve.model_info import ModelInfo
from winserve.predlog import events

log = logging.getLogger("winserve.pool")

IDLE_CHECK = 0.1  # seconds between looks while waiting for the other replicas' first loads


class ReplicaSet:
    """The replicas of one pool, and what they share. Thread-safe."""

    def __init__(self, replicas: list[ReplicaRunner], closing: threading.Event) -> None:
        self.replicas = replicas
        self.info: ModelInfo | None = None  # the model's description, from its first load
        self._closing = closing
        self._changed = threading.Condition()
        self._first_attempts = 0
        self._held: set[int] = set()  # replicas waiting for the loaded model file to come back

    def notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def wait_ready(self, timeout: float) -> ModelInfo:
        """The first load: returns when one replica is ready, raises when every replica's
        first attempt failed (the reason is the model's, e.g. a corrupt file)."""
        end = time.monotonic() + timeout
        with self._changed:
            while True:
                if self.info is not None and self.ready():
                    return self.info
                if self._first_attempts >= len(self.replicas) and self.info is None:
                    reasons = {r.last_error for r in self.replicas if r.last_error}
                    raise ModelLoadError("; ".join(sorted(reasons)) or "the model did not load")
                if self._closing.is_set():
                    raise ModelLoadError("stopped while the model was loading")
                remaining = end - time.monotonic()
                if remaining <= 0:
                    raise ModelLoadError(f"the model did not load within {timeout:g} s")
                self._changed.wait(min(remaining, IDLE_CHECK))

    # -- the supervisors' hooks --------------------------------------------------------------

    def started(self, replica: ReplicaRunner, outcome: HostInfo | Failure) -> None:
        """After each start. A failure is not logged here: the supervisor says it once with
        what happens next, and a first load that failed everywhere is said once by whoever
        waits for it (the console)."""
        try:
            if isinstance(outcome, Failure):
                return
            if replica.restarts > 0:  # the monitor page's timeline (issue 26), by the file
                events.note(
                    "restarted",
                    None,
                    sha256=replica.spec.same_as or None,
                    detail=f"replica {replica.index}: {replica.last_error}",
                )
            if self.info is None:
                self.info = ModelInfo.from_dict(outcome)
                if self.info.sha256:  # later loads must find this same file
                    for each in self.replicas:
                        each.pin(self.info.sha256)
            log.info(
                "replica %d ready (pid %s, %.2f s)",
                replica.index,
                replica.pid,
                replica.load_seconds,
            )
        finally:
            with self._changed:
                self._first_attempts += replica.restarts == 0

    def worth_retrying(self, replica: ReplicaRunner) -> bool:
        """After a failure: False when this was a first load and every replica's first load
        failed, i.e. the model cannot be loaded and winserve is exiting; until that is known,
        a first failure waits for the other replicas."""
        if replica.restarts > 0:
            return True
        with self._changed:
            while not self._closing.is_set():
                if self.info is not None:
                    return True  # another replica loaded it: this failure was this replica's
                if self._first_attempts >= len(self.replicas):
                    return False
                self._changed.wait(IDLE_CHECK)
        return False

    def stop(self, threads: list[threading.Thread], seconds: float) -> None:
        """Stop every replica, and join ``threads`` (their dispatchers), within ``seconds``.
        All hosts are asked at once; one frozen or holding the GIL is killed after
        ``STOP_SECONDS``, so closing takes seconds, whatever the hosts do (issue 13)."""
        stoppers = [
            threading.Thread(target=r.stop, name=f"winserve-stop-{r.index}", daemon=True)
            for r in self.replicas
        ]
        for thread in stoppers:
            thread.start()
        end = time.monotonic() + seconds
        for thread in [*stoppers, *threads]:
            thread.join(timeout=max(0.0, end - time.monotonic()))

    def hold(self, replica: ReplicaRunner, held: bool) -> None:
        """``replica`` waits for the loaded model file to come back (or no longer does)."""
        with self._changed:
            if held:
                self._held.add(replica.index)
            else:
                self._held.discard(replica.index)

    # -- what the web side reads -------------------------------------------------------------

    def ready(self) -> bool:
        return any(r.state == "ready" for r in self.replicas)

    def unavailable(self) -> ModelUnavailable:
        """The 503 while no replica is ready, saying why."""
        if len(self._held) == len(self.replicas):  # will not recover by itself
            reasons = "; ".join(sorted({r.last_error for r in self.replicas}))
            return ModelUnavailable(
                f"no model replica can start: {reasons}", retry_after=self.retry_after()
            )
        states = ", ".join(sorted({r.state for r in self.replicas}))
        return ModelUnavailable(
            f"no model replica is ready ({states}); try again shortly",
            retry_after=self.retry_after(),
        )

    def retry_after(self) -> int:
        loads = [r.load_seconds for r in self.replicas if r.load_seconds]
        return max(1, math.ceil(max(loads, default=2.0)))

    def health(self, closing: bool, queue_depth: int) -> Health:
        replicas = tuple(r.health() for r in self.replicas)
        states = [r.state for r in replicas]
        status: Status
        if closing:
            status = "stopped"
        elif all(s == "ready" for s in states):
            status = "ready"
        elif "ready" in states:
            status = "degraded"
        elif all(s == "failed" for s in states):
            status = "failed"
        else:
            status = "loading"
        reason = "; ".join(sorted({r.last_error for r in replicas if r.last_error}))
        return Health(
            status, replicas, reason if status != "ready" else "", queue_depth=queue_depth
        )
