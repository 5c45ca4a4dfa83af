"""Fake model hosts for fast tests of the pool and the registry, with no process (issue 23).

::

    test ── FakeModel (latency, a row value that hangs / crashes / is refused, load failures)
              │ .make_replica(index, spec)           │ .make_backend(spec, workers)
              ▼                                      ▼
    PoolBackend ─► FakeReplica.predict(payload)    Registry ─► FakeBackend (a PoolBackend of
      (a ReplicaRunner: what a spawned ModelHost     FakeReplicas: start, wait_ready, predict,
       answers, a host record, TimeoutError past     close, as the registry sees a backend)
       the call's timeout, HostGone when it "dies")

The fake model answers ``2 * x0 + x1`` for each row of a ``{"matrix": …}`` payload, and each
row's sum for a payload of one tensor (``{"tensors": {name: array}}``). A row whose
``x0`` is ``model.refuse`` is refused with a ValueError (the host's isolated-rows record, as
``ModelHost.predict`` answers, when the call holds other rows); ``model.hang`` makes the call
block until its timeout (``TimeoutError``, as the proxy raises it) or until the replica is
killed; ``model.crash`` ends the "process" at the end of the call (``HostGone``, as a dead host's
connection raises it). Every wait is bounded, and ``kill``/``stop`` unblock a call at once.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tests.helpers import wait_until
from winserve.backends.pool import PoolBackend
from winserve.backends.runner import HostGone, Lifecycle, ReplicaRunner
from winserve.errors import ModelLoadError
from winserve.host.answers import AskAnswer, ErrorRecord, HostInfo, Isolated, PredictAnswer
from winserve.model_file import sha256_of
from winserve.model_info import ModelSpec
from winserve.scoring import jobs
from winserve.scoring.job import ScoringJob
from winserve.service import Service

_pids = itertools.count(900_001)  # fake process ids: each start gets a new one


def row(x0: float, x1: float = 1.0) -> dict[str, Any]:
    """One request's payload: one row of two numbers."""
    return {"matrix": np.array([[x0, x1]])}


def rows(*x0: float) -> dict[str, Any]:
    """One request's payload with several rows (``x1`` = 1)."""
    return {"matrix": np.array([[x, 1.0] for x in x0])}


def answer(x0: float, x1: float = 1.0) -> float:
    """What the fake model predicts for a row."""
    return 2 * x0 + x1


@dataclass
class FakeModel:
    """What every fake replica made by ``make_replica`` does; a test changes it while the pool
    runs. ``calls`` has the rows of each prediction call, in order (``asks``: each explain /
    whatif call's method and rows); ``replicas`` every replica made."""

    latency: float = 0.0  # seconds each call takes
    row_latency: float = 0.0  # and seconds more for each of its rows (issue 29's chunk sizes)
    load_seconds: float = 0.0
    # an Event: a load also waits until the test sets it (a state seen while loading, with no
    # race against the machine's speed); None: it does not
    load_gate: threading.Event | None = None
    load_error: str = ""  # every start raises ModelLoadError with it
    refuse: float | None = None  # a row with this x0 is refused (400, ValueError)
    hang: float | None = None  # a call holding a row with this x0 never answers
    crash: float | None = None  # a call holding a row with this x0 kills its host
    crash_times: int = 1 << 30  # how many calls may crash on it before it answers
    crashes: int = 0  # calls that crashed so far
    name: str = "fake"
    calls: list[int] = field(default_factory=list)
    asks: list[tuple[str, int]] = field(default_factory=list)  # explain/whatif calls, rows
    shapes: list[tuple[int, ...]] = field(default_factory=list)  # a tensor call's row shape
    replicas: list[FakeReplica] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def make_replica(self, index: int, spec: ModelSpec) -> ReplicaRunner:
        replica = FakeReplica(index, spec, self)
        with self.lock:
            self.replicas.append(replica)
        return replica

    def pool(self, spec: ModelSpec | None = None, **options: Any) -> PoolBackend:
        """A started pool of fake replicas (``options``: PoolBackend's keywords)."""
        pool = PoolBackend(spec or ModelSpec(), make_replica=self.make_replica, **options)
        pool.start()
        return pool

    def make_backend(self, spec: ModelSpec, workers: int) -> PoolBackend:
        """The registry's ``MakeBackend``: a pool of fake replicas (not started: the registry
        starts it)."""
        return PoolBackend(spec, workers=workers, make_replica=self.make_replica, timeout=5.0)

    def info(self, spec: ModelSpec) -> HostInfo:
        """The description a host gives after a load."""
        return {
            "name": self.name,
            "model_type": "FakeRegressor",
            "task": "regression",
            "features": [{"name": "x0"}, {"name": "x1"}],
            "feature_names_known": True,
            "source": spec.path,
            # the loaded file's, as a host says it: the registry compares it with a new file's
            "sha256": sha256_of(Path(spec.path)) if spec.path else "",
        }


class FakeReplica(Lifecycle):
    """A ``ReplicaRunner`` without a process: what ``PoolBackend`` calls on a replica."""

    def __init__(self, index: int, spec: ModelSpec, model: FakeModel) -> None:
        super().__init__(index, spec)
        self.model = model
        self.starts = self.kills = 0
        self.start_times: list[float] = []  # when each start began (time.monotonic)
        self.stopped = False
        self._pid: int | None = None
        self._alive = False
        self._ended = threading.Event()  # set by kill/stop: a blocked call returns at once

    @property
    def pid(self) -> int | None:
        return self._pid

    def start(self, load_timeout: float) -> HostInfo:
        began = time.monotonic()
        if self.stopped:
            raise HostGone("the replica was stopped")
        self._ended = threading.Event()
        self.starts += 1
        self.start_times.append(began)
        self._pid = next(_pids)
        self._alive = True
        if self._ended.wait(min(self.model.load_seconds, load_timeout)):
            raise HostGone("the replica was stopped while its host started")
        if self.model.load_seconds > load_timeout:
            raise TimeoutError("load")
        gate = self.model.load_gate
        while gate is not None and not gate.wait(0.05):
            if self._ended.is_set():
                raise HostGone("the replica was stopped while its host started")
            if time.monotonic() - began > load_timeout:
                raise TimeoutError("load")
        if self.model.load_error:
            raise ModelLoadError(self.model.load_error)
        self.loaded_since(began)
        return self.model.info(self.spec)

    def predict(
        self, payload: dict[str, Any], proba: bool, timeout: float, scores: bool = False
    ) -> PredictAnswer:
        if not self._alive:
            raise HostGone("the model host is not running")
        model = self.model
        if "tensors" in payload:  # one tensor input (issue 24): each row's sum
            tensor = next(iter(payload["tensors"].values()))
            with model.lock:
                model.calls.append(len(tensor))
                model.shapes.append(tensor.shape[1:])
            self._spend([], timeout)
            return {"ok": True, "predictions": [float(t.sum()) for t in tensor]}
        matrix = payload["matrix"]
        first = [float(v) for v in matrix[:, 0]]
        with model.lock:
            model.calls.append(len(first))
        self._spend(first, timeout)
        predictions: list[Any] = [answer(a, b) for a, b in matrix.tolist()]
        bad = [i for i, x0 in enumerate(first) if x0 == model.refuse]
        if not bad:
            return {"ok": True, "predictions": predictions, "probabilities": None, "scores": None}
        if len(first) < 2:
            return {"ok": False, "error": _refused(bad[0])}
        for i in bad:
            predictions[i] = None
        errors = [(i, _refused(i)) for i in bad]
        isolated: Isolated = {"predictions": predictions, "errors": errors}
        return {"ok": False, "error": _refused(bad[0]), "isolated": isolated}

    def ask(
        self, name: str, payload: dict[str, Any], options: dict[str, Any], timeout: float
    ) -> AskAnswer:
        """``ModelHost.explain`` / ``.whatif`` (issue 25): the host's record, as it came."""
        if not self._alive:
            raise HostGone("the model host is not running")
        first = [float(v) for v in payload["matrix"][:, 0]]
        with self.model.lock:
            self.model.asks.append((name, len(first)))
        self._spend(first, timeout)
        return {"ok": True, "asked": name, "rows": len(first), "options": options}

    def _spend(self, first: list[float], timeout: float) -> None:
        """The call's time, and its end: hung, killed, crashed, or an answer to give."""
        model = self.model
        if model.hang in first:
            if self._ended.wait(timeout):
                raise HostGone("killed")
            raise TimeoutError("no answer")
        latency = model.latency + model.row_latency * len(first)
        if latency:
            if self._ended.wait(min(latency, timeout)):
                raise HostGone("killed")
            if latency > timeout:
                raise TimeoutError("no answer")
        if model.crash in first and model.crashes < model.crash_times:  # at the call's end
            model.crashes += 1
            self.die()
            raise HostGone("the host died")

    def die(self) -> None:
        """The host process ends by itself (a crash while idle, an operator's kill)."""
        self._alive = False

    def alive(self) -> bool:
        return self._alive

    def exit_description(self) -> str:
        return "the fake model process exited with code 1"

    def kill(self) -> None:
        self.kills += 1
        self._alive = False
        self._ended.set()

    def stop(self) -> None:
        self.stopped = True
        self.kill()
        self.mark("stopped")


def _refused(index: int) -> ErrorRecord:
    return {
        "type": "ValueError",
        "message": f"row {index} is refused by the fake model",
        "input_error": True,
    }


def pids(model: FakeModel) -> set[int | None]:
    """The fake process ids of every replica made, as they are now."""
    return {r.pid for r in model.replicas}


@contextlib.contextmanager
def ended_job(
    folder: Path,
    lines: int,
    within: float,
    model: FakeModel | None = None,
    *,
    max_rows: int = 100_000,
    clock: Callable[[], float] = time.perf_counter,
) -> Iterator[ScoringJob]:
    """A CSV job of ``lines`` rows ("x0,x1", then "i % 7,1") through a pool of fake replicas
    of ``model`` and a job manager of its own, run to its end (done or failed, ``within`` s);
    yielded before the manager and the pool close, so its result is still there."""
    model = model or FakeModel()
    pool = model.pool()
    manager = jobs.JobManager(
        Service(pool, max_rows=100),
        max_rows=max_rows,
        keep_seconds=60,
        parent=folder,
        clock=clock,
    )
    try:
        pool.wait_ready(5)
        job = manager.new("rows.csv")
        text = "x0,x1\n" + "".join(f"{i % 7},1\n" for i in range(lines))
        manager.save(job, lambda path: path.write_text(text, encoding="utf-8"))
        manager.start(job)
        wait_until(lambda: job.state in ("done", "failed"), within)
        yield job
    finally:
        manager.close()
        pool.close()
