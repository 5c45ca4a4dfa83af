"""``PoolBackend``: N model-host replicas behind one queue, with deadlines, batching and respawn.

::

    waitress threads                 PoolBackend                        model hosts (spawn)
    ────────────────                 ───────────                        ───────────────────
    predict(payload) ─┬► a replica is idle and nothing waits: the lone call; the caller's
         │            │  own thread calls it (no Call, no hand-off) ─────────► replica 0 ─ …
         │            └► Call ─► queue (queues.py, bounded by max_queue); a CSV job's chunk
         │                       (predict_background) in a queue of its own
         │ waits on its call                 │
         │ until its deadline     dispatcher thread per replica:         replica 0 ─ ModelHost
         │                          take every call waiting (≤ max_batch_rows) ─► one call;
         │                          only when none waits, one job's chunk ─► a call alone
         ◄──── result / error ──── split the answer by rows          replica 1 ─ ModelHost
                                    call ran past timeout → kill, respawn (504 to its callers)
                                    process died → respawn with backoff; calls of a crashed
                                      batch are retried once, each alone (503 if it crashes again)
                                    model raised on a batch → the host found the failing
                                      rows in the same call: only a request with a bad row
                                      gets an error (its row's), the others their answers

Every wait is bounded: a caller waits at most ``timeout`` (+ a small grace) from the moment it
queued; a dispatcher's call at most ``timeout`` from the moment it is made; a load at most
``load_timeout``; ``close`` a few seconds, whatever the hosts do. One thread at a time talks to
a replica's host (``_busy``): its dispatcher, or a caller that found it idle and nobody else in
the pool. That lone call is the common case (c=1, issues 14, 29): the caller calls
``ReplicaRunner.predict`` itself and builds the ``Prediction`` (no ``Call``, no hand-off
between threads, no batch key, merge or split; ``bench/pool_call.py`` measures it); only a
failure makes it a ``Call``, handled as a batch's (a crash: retried once, alone, queued). As
soon as requests keep each other company they queue and the dispatcher merges them. Restarts
stay the dispatcher's: a caller's call that timed out or lost its host marks the replica and
wakes the dispatcher. A CSV job's chunks wait in a queue of their own, after users' calls
(``queues.py``, issue 29).

Time spent queued belongs to the callers, never to the replica: a call that can no longer make
its deadline is answered 504 without reaching the model, and only a model call that itself runs
past ``timeout`` gets its replica killed, so a busy queue does not kill replicas doing normal
work (issue 13).

Each dispatcher thread runs its replica's ``Supervisor`` (``supervisor.py``: start, classify a
failure, back off, restart), which hands the replica to ``_serve`` while it is ready; what the
replicas share (the first load, the file they must all load, their health) is a ``ReplicaSet``
(``replicas.py``); a queued request travels as a ``Call`` (``batch.py``, which also merges a
batch's rows and splits its answer); the queues are ``queues.Waiting``. A replica is any
``ReplicaRunner`` (``runner.py``): a local model host, a Ray lane, a test's fake.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any, Literal

from winserve.backends.base import Backend, Health, Prediction, answered, prediction_from
from winserve.backends.batch import Call, deliver, merge_payloads, row_count
from winserve.backends.queues import CHUNK_WAIT, Waiting
from winserve.backends.replica import KILL_JOIN_SECONDS, STOP_SECONDS, Replica
from winserve.backends.replicas import ReplicaSet
from winserve.backends.runner import MakeReplica, ReplicaRunner
from winserve.backends.supervisor import Failure, Hooks, Supervisor, call_failure
from winserve.errors import ModelError, ModelUnavailable
from winserve.metrics import batch_rows_histogram
from winserve.model_info import ModelInfo, ModelSpec
from winserve.rows import Payload

log = logging.getLogger("winserve.pool")

CALLER_GRACE = 0.25  # seconds a caller waits past its deadline for the dispatcher's verdict
IDLE_CHECK = 0.1  # seconds between liveness checks of an idle replica
# the most bytes of tensors and images one call takes (a batch is also capped in rows): 64
# images of 224 × 224 × 3 float32 are 38 MB (issue 24)
MAX_BATCH_BYTES = 64 * 2**20

__all__ = ["CHUNK_WAIT", "MAX_BATCH_BYTES", "PoolBackend"]

Outcome = Literal["ok", "timeout", "dead"]


class PoolBackend(Backend):
    """N replicas behind one queue: batching, deadlines, and a supervisor per replica."""

    def __init__(
        self,
        spec: ModelSpec,
        *,
        workers: int = 1,
        timeout: float = 30.0,
        load_timeout: float = 300.0,
        max_batch_rows: int = 256,
        max_batch_wait_ms: float = 0.0,
        max_queue: int = 512,
        make_replica: MakeReplica = Replica,
        max_batch_bytes: int = MAX_BATCH_BYTES,
    ) -> None:
        self._spec = spec
        self._timeout = timeout
        self._load_timeout = load_timeout
        self._max_batch_rows = max_batch_rows
        self._batch_wait = max_batch_wait_ms / 1000.0
        self._max_queue = max_queue
        # each replica knows how many share the machine (a PyTorch model's threads) and which
        # one it is (its GPU with device = "cuda") (issue 24)
        spec = dataclasses.replace(spec, replicas=max(1, workers))
        self._replicas = [
            make_replica(i, dataclasses.replace(spec, replica=i)) for i in range(workers)
        ]
        self._waiting = Waiting(max_batch_rows, max_batch_bytes)  # (under self._cond)
        self._cond = threading.Condition()
        self._closing = threading.Event()
        self._close_lock = threading.Lock()
        self._closed = threading.Event()  # close() has finished: the hosts are gone
        self._set = ReplicaSet(self._replicas, self._closing)
        self._threads: list[threading.Thread] = []
        self._busy: set[int] = set()  # replicas in a call (under self._cond)
        self._inflight = 0  # interactive requests inside predict() (under self._cond)
        self._started = False
        self.batch_rows = batch_rows_histogram()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        for replica in self._replicas:
            thread = threading.Thread(
                target=self._dispatch,
                args=(replica,),
                name=f"winserve-replica-{replica.index}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()

    def wait_ready(self, timeout: float) -> ModelInfo:
        """The first load: returns when one replica is ready, raises when every replica's
        first attempt failed (the reason is the model's, e.g. a corrupt file)."""
        return self._set.wait_ready(timeout)

    def close(self) -> None:
        with self._close_lock:
            first = not self._closing.is_set()
            self._closing.set()
        if not first:  # another thread is closing: on return, the hosts must be gone all the same
            self._closed.wait(STOP_SECONDS + KILL_JOIN_SECONDS + 1.0)
            return
        with self._cond:
            pending = self._waiting.drain()
            self._cond.notify_all()
        for call in pending:
            call.resolve(error=ModelUnavailable("the server is shutting down"))
        self._set.stop(self._threads, STOP_SECONDS + KILL_JOIN_SECONDS)
        with self._cond:  # calls of a call the stop cut short, put back for a retry
            pending = self._waiting.drain()
        for call in pending:
            call.resolve(error=ModelUnavailable("the server is shutting down"))
        self._closed.set()
        self._set.notify()

    # -- web side ----------------------------------------------------------------------------

    def describe(self) -> ModelInfo:
        info = self._set.info
        if info is None:
            raise ModelUnavailable("the model is still loading", retry_after=self._retry_after())
        return info

    def predict(self, payload: Payload, proba: bool = False, scores: bool = False) -> Prediction:
        return self._predict(payload, proba, scores, False)

    def predict_background(
        self, payload: Payload, proba: bool = False, scores: bool = False
    ) -> Prediction:
        """A scoring job's chunk: queued apart, taken when no interactive call waits (issue 29)."""
        return self._predict(payload, proba, scores, True)

    def _predict(self, payload: Payload, proba: bool, scores: bool, background: bool) -> Prediction:
        """The rows' prediction. Alone in the pool with a replica idle, this thread makes the
        model call itself (the lone call: the usual one at c=1, issue 29); else the call
        queues, and a dispatcher merges it with the others waiting. A job's chunk waiting
        is no company for a user's call (users go first, issue 29); a chunk is alone only when
        nothing else is in the pool."""
        began = time.monotonic()
        replica: ReplicaRunner | None = None
        waiting = self._waiting
        with self._cond:
            if not (
                self._inflight
                or waiting.interactive
                or (background and waiting.background)
                or self._closing.is_set()
            ):
                for each in self._replicas:
                    if each.state == "ready" and each.index not in self._busy:
                        replica = each
                        self._busy.add(each.index)
                        self._inflight += not background
                        break
        if replica is None:  # company, or no replica ready: the queue decides
            deadline = began + self._timeout
            return self._submit(
                Call(
                    payload, row_count(payload), proba, deadline, self._timeout, scores, background
                )
            )
        call = None
        try:
            record = replica.predict(payload, proba, timeout=self._timeout, scores=scores)
        except Exception as exc:  # handled as a queued call's failure: a Call from here on
            deadline = began + self._timeout
            call = Call(
                payload, row_count(payload), proba, deadline, self._timeout, scores, background
            )
            self._failed(replica, [call], exc)
        finally:
            with self._cond:
                self._busy.discard(replica.index)
                self._inflight -= call is None and not background
                # only when there is something to do (requests that queued meanwhile, a restart):
                # waking the dispatchers after every lone call cost ≈ 6 % of the GIL at c=1
                waiting = self._waiting
                if (
                    waiting.interactive
                    or waiting.background
                    or replica.state != "ready"
                    or self._closing.is_set()
                ):
                    self._cond.notify_all()
        if call is not None:  # answered already, or retried alone through the queue (a crash)
            try:
                return self._answer(call)
            finally:
                with self._cond:
                    self._inflight -= not background
        if not record["ok"]:
            self.batch_rows.observe(row_count(payload))
            return prediction_from(record, log)
        self.batch_rows.observe(len(record["predictions"]))  # the rows answered: the rows sent
        return answered(record, proba, scores)

    def _submit(self, call: Call) -> Prediction:
        """Queue ``call`` for a dispatcher and wait for its answer, within its deadline."""
        if self._closing.is_set():
            raise ModelUnavailable("the server is shutting down")
        for replica in self._replicas:  # a loop, not ReplicaSet.ready()'s genexpr (issue 29)
            if replica.state == "ready":
                break
        else:
            raise self._set.unavailable()
        background = call.background
        waiting = self._waiting
        with self._cond:
            if len(waiting) >= self._max_queue:
                raise ModelUnavailable(
                    f"{len(waiting)} requests are already waiting (setting: max_queue)",
                    retry_after=1,
                )
            self._inflight += not background
            waiting.put(call)
            self._cond.notify_all()  # every dispatcher: a busy one would sit this one out
        try:
            return self._answer(call)
        finally:
            with self._cond:
                self._inflight -= not background

    def _answer(self, call: Call) -> Prediction:
        """``call``'s prediction once it has one (its error raised), within its deadline: from
        the deadline, not from now, as a call of this thread's own that crashed late is retried
        in the queue, and its caller must not wait a whole timeout again."""
        if not call.wait(max(0.0, call.deadline + CALLER_GRACE - time.monotonic())):
            call.resolve(error=call.timed_out())
        if call.error is not None:
            raise call.error
        assert call.result is not None
        return call.result

    def ask(self, method: str, payload: Payload, options: dict[str, Any]) -> dict[str, Any]:
        """``ModelHost.explain`` / ``.whatif`` through the queue (issue 25): a call of its own,
        never merged with predictions, under predict's deadlines and restarts."""
        now = time.monotonic()
        call = Call(payload, row_count(payload), False, now + self._timeout, self._timeout)
        # the host stops explaining short of the deadline, which would kill the replica
        call.asked, call.solo = (method, {**options, "seconds": self._timeout * 0.8}), True
        self._submit(call)
        assert call.record is not None
        return call.record

    def health(self) -> Health:
        return self._set.health(self._closing.is_set(), len(self._waiting))

    def _retry_after(self) -> int:
        return self._set.retry_after()

    # -- dispatcher side ---------------------------------------------------------------------

    def _dispatch(self, replica: ReplicaRunner) -> None:
        """The replica's dispatcher thread: its supervisor, serving it while it is ready."""
        replicas = self._set
        hooks = Hooks(
            serve=self._serve,
            started=replicas.started,
            keep_trying=replicas.worth_retrying,
            changed=replicas.notify,
            holding=replicas.hold,
        )
        Supervisor(
            replica,
            hooks,
            load_timeout=self._load_timeout,
            stopping=self._closing,
            label=f"replica {replica.index}",
            log=log,
        ).run()

    def _serve(self, replica: ReplicaRunner) -> None:
        while not self._closing.is_set():
            calls = self._take(replica)
            if replica.state != "ready":  # a caller's call on it timed out or lost the host
                self._wait_idle(replica)
                return
            if not calls:
                if not replica.alive():
                    replica.mark("restarting", replica.exit_description())
                    self._wait_idle(replica)
                    return
                continue
            try:
                outcome = self._run(replica, calls)
            finally:
                with self._cond:
                    self._busy.discard(replica.index)
            if outcome != "ok":
                return

    def _wait_idle(self, replica: ReplicaRunner) -> None:
        """Until no caller is in a call on ``replica`` (a dead host ends such a call at once;
        a hung one within ``timeout``), so that a restart never pulls a host from under it."""
        with self._cond:
            self._cond.wait_for(lambda: replica.index not in self._busy, self._timeout + 1)

    def _take(self, replica: ReplicaRunner) -> list[Call]:
        """Every interactive call waiting, up to max_batch_rows (at least one), else one job's
        chunk (issue 29); [] after an idle spell, or while a caller is in a call on this
        replica. The replica is busy once calls are taken."""
        waiting = self._waiting
        with self._cond:
            if not (waiting.interactive or waiting.background) or replica.index in self._busy:
                self._cond.wait(IDLE_CHECK)
            if replica.index in self._busy or replica.state != "ready":
                return []
            if not (waiting.interactive or waiting.background):  # an idle spell
                return []
            calls, rows = waiting.take()
            if calls:  # before any wait below: no caller may take the replica meanwhile
                self._busy.add(replica.index)
            if calls and self._batch_wait > 0 and not calls[0].solo and not calls[0].background:
                end = time.monotonic() + self._batch_wait
                while rows < self._max_batch_rows and (left := end - time.monotonic()) > 0:
                    self._cond.wait(left)
                    calls, rows = waiting.take_batch(calls, rows)
            return calls

    def _requeue(self, calls: list[Call]) -> None:
        if self._closing.is_set():  # nobody will take them: say so now, not at their deadline
            for call in calls:
                call.resolve(error=ModelUnavailable("the server is shutting down"))
            return
        with self._cond:
            self._waiting.requeue(calls)
            self._cond.notify_all()

    def _run(self, replica: ReplicaRunner, calls: list[Call]) -> Outcome:
        payload = merge_payloads([c.payload for c in calls])
        self.batch_rows.observe(sum(c.rows for c in calls))
        proba = any(c.proba for c in calls)
        scores = any(c.scores for c in calls)
        # The model call's own deadline counts from now: time its calls spent queued is theirs
        # (each caller gets its 504 at its own deadline), not a sign that the replica hangs.
        wait = self._timeout
        asked = calls[0].asked  # explain / whatif: always alone in its call (issue 25)
        try:
            if asked is not None:
                calls[0].record = replica.ask(asked[0], payload, asked[1], timeout=wait)
                calls[0].resolve(Prediction([]))
                return "ok"
            record = replica.predict(payload, proba, timeout=wait, scores=scores)
        except Exception as exc:
            return self._failed(replica, calls, exc)
        # An answer, or an error: for the rows the model rejected, the host found which in the
        # same call and answered the others (ModelHost.predict), so a bad request in a batch
        # fails alone without another call
        deliver(calls, record)
        return "ok"

    def _failed(self, replica: ReplicaRunner, calls: list[Call], exc: Exception) -> Outcome:
        """A model call on ``replica`` raised ``exc``: the replica is marked for a restart, its
        calls answered (a timeout, a broken reply) or retried (a crash)."""
        failure = call_failure(exc, replica, self._timeout)
        if failure.kind == "crash":
            # its calls are retried (after_crash): the reason says when it died
            failure = Failure("crash", f"{failure.reason} during a prediction")
        # marked before anyone hears of it: health must not lag
        replica.mark("restarting", failure.reason)
        if failure.kind == "timeout":
            for call in calls:
                call.resolve(error=call.timed_out())
            return "timeout"
        if failure.kind == "crash":
            self._after_crash(calls)
            return "dead"
        # a broken reply: never trust this connection again
        log.error("replica %d: unexpected reply failure", replica.index, exc_info=exc)
        for call in calls:
            call.resolve(error=ModelError(f"the model call failed: {type(exc).__name__}"))
        return "dead"

    def _after_crash(self, calls: list[Call]) -> None:
        """Calls of a crashed model call get one more try each, alone, on a fresh replica."""
        retry = [c for c in calls if not c.retried]
        for call in calls:
            if call.retried:
                call.resolve(
                    error=ModelUnavailable(
                        "the model process crashed while predicting this request, twice; "
                        "it is being restarted",
                        retry_after=self._retry_after(),
                    )
                )
        for call in retry:
            call.retried, call.solo = True, True
        self._requeue(retry)
