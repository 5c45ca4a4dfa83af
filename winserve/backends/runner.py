"""The replica seam: what the pool and the supervisor call on one replica, whatever runs it.

::

    PoolBackend ──► ReplicaRunner (this Protocol) ◄── Supervisor (start, classify, back off)
                      ├─ Replica   a spawned model host on this PC   (backends/replica.py)
                      ├─ RayLane   a lane to a keeper on a Ray node  (backends/ray/lane.py)
                      └─ FakeReplica, no process                     (tests/fakes.py)

A runner raises one of three things from ``start``, ``predict`` and ``ask``: ``ModelLoadError``
(the model cannot be loaded), ``TimeoutError`` (no answer within the call's timeout) or
``HostGone`` (the process died, was killed or stopped, or its connection broke). Each runner
turns its own transport's failures into these at its boundary (the proxy's EOFError /
BrokenPipeError / ConnectionResetError, Ray's dead actors), so the pool and the supervisor
classify one name, not a tuple of builtins (issue 23).

A runner's state (``state``, ``restarts``, ``last_error``, load times, the file it must load
again) is ``Lifecycle``'s: read as attributes, written only through its methods, by the
supervisor and the pool.
"""

from __future__ import annotations

import dataclasses
import datetime
import time
from typing import Any, Protocol

from winserve.backends.base import ReplicaHealth, ReplicaState
from winserve.host.answers import AskAnswer, HostInfo, PredictAnswer
from winserve.model_info import ModelSpec


class HostGone(ConnectionError):
    """The model host died, was killed or stopped, or its connection broke: the call's answer
    will never come. A ``ConnectionError``, so code that caught those keeps catching it."""


class Lifecycle:
    """What is known of one replica between its starts: its state, restarts, last error and
    load time, for ``/health`` and for the pool's choice of a replica. Written only through
    these methods (the supervisor's and the pool's), read as attributes."""

    def __init__(self, index: int, spec: ModelSpec) -> None:
        self.index = index
        self.spec = spec
        self.state: ReplicaState = "starting"
        self.restarts = 0
        self.last_error = ""
        self.last_error_at = 0.0  # time.time() when last_error was recorded (0: never)
        self.started_at = 0.0
        self.load_seconds = 0.0

    @property
    def pid(self) -> int | None:
        return None

    def mark(self, state: ReplicaState, error: str | None = None) -> None:
        """Set the state (and the reason for it, when given): set before anyone hears of a
        failure, so that ``/health`` never lags behind an answer. The last error is kept, with
        when it happened, until another replaces it: a restart does not erase it (issue 23,
        a new user's finding: /health said last_error "" right after a crash)."""
        self.state = state
        if error:
            self.last_error, self.last_error_at = error, time.time()

    def count_restart(self) -> None:
        self.restarts += 1

    def pin(self, sha256: str) -> None:
        """Later loads must find the file with this SHA-256 (``ModelSpec.same_as``)."""
        self.spec = dataclasses.replace(self.spec, same_as=sha256)

    def loaded_since(self, began: float) -> None:
        """A load that began at ``began`` (``time.monotonic``) has just succeeded."""
        self.started_at = time.monotonic()
        self.load_seconds = self.started_at - began

    def health(self) -> ReplicaHealth:
        return ReplicaHealth(
            self.index,
            self.state,
            self.restarts,
            self.pid,
            self.last_error,
            round(self.load_seconds, 3),
            _utc(self.last_error_at),
        )


def _utc(moment: float) -> str:
    """``time.time()`` as ISO 8601 UTC to the second; "" for never."""
    if not moment:
        return ""
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).isoformat(timespec="seconds")


class ReplicaRunner(Protocol):
    """One replica as the pool and the supervisor see it (``Replica``, ``RayLane``, the tests'
    ``FakeReplica``). ``start`` and ``predict`` come from one thread at a time (its dispatcher,
    or a caller that found it idle); ``kill`` and ``stop`` from any thread, and they unblock
    a call in progress."""

    index: int
    spec: ModelSpec
    state: ReplicaState
    restarts: int
    last_error: str
    started_at: float
    load_seconds: float

    @property
    def pid(self) -> int | None: ...

    def mark(self, state: ReplicaState, error: str | None = None) -> None: ...

    def count_restart(self) -> None: ...

    def pin(self, sha256: str) -> None: ...

    def health(self) -> ReplicaHealth: ...

    def start(self, load_timeout: float) -> HostInfo:
        """Start a host and load the model; its description. ``ModelLoadError``,
        ``TimeoutError`` or ``HostGone``."""
        ...

    def predict(
        self, payload: dict[str, Any], proba: bool, timeout: float, scores: bool = False
    ) -> PredictAnswer: ...

    def ask(
        self, name: str, payload: dict[str, Any], options: dict[str, Any], timeout: float
    ) -> AskAnswer: ...

    def alive(self) -> bool: ...

    def exit_description(self) -> str:
        """How the host ended, in words ("the model process exited with code 1")."""
        ...

    def kill(self) -> None:
        """End the host now, without a word to it; any thread, any number of times."""
        ...

    def stop(self) -> None:
        """Ask the host to exit (killed if it does not); no start after this."""
        ...


class MakeReplica(Protocol):
    """Builds the pool's replica ``index``: a local model host (``Replica``), a lane to a Ray
    Serve deployment (``RayLane``) or a test's fake."""

    def __call__(self, index: int, spec: ModelSpec) -> ReplicaRunner: ...
