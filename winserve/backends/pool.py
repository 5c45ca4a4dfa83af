"""``PoolBackend``: N model-host replicas behind one queue, with deadlines, batching and respawn.

::

    waitress threads                 PoolBackend                        model hosts (spawn)
    ────────────────                 ───────────                        ───────────────────
    predict(payload) ─► Job ─┬► a replica is idle and nothing waits: the caller's own thread
         │                    │  makes the call (no hand-off between threads) ─► replica 0 ─ …
         │                    └► queue (deque, bounded by max_queue)
         │ waits on its job                  │
         │ until its deadline     dispatcher thread per replica:         replica 0 ─ ModelHost
         │                          take every job waiting (≤ max_batch_rows) ─► one call
         ◄──── result / error ──── split the answer by rows          replica 1 ─ ModelHost
                                    call ran past timeout → kill, respawn (504 to its callers)
                                    process died → respawn with backoff; jobs of a crashed
                                      batch are retried once, each alone (503 if it crashes again)
                                    model raised on a batch → the host found the failing
                                      rows in the same call: only a request with a bad row
                                      gets an error (its row's), the others their answers

Every wait is bounded: a caller waits at most ``timeout`` (+ a small grace) from the moment it
queued; a dispatcher's call at most ``timeout`` from the moment it is made; a load at most
``load_timeout``; ``close`` a few seconds, whatever the hosts do. One thread at a time talks to
a replica's host (``_busy``): its dispatcher, or a caller that found it idle and no other
request in the pool. A lone request so costs no hand-off between threads (two wake-ups; issue
14); as soon as requests keep each other company they queue and the dispatcher merges them,
so batching under load is as it was. Restarts stay the dispatcher's: a caller's call that
timed out or lost its host marks the replica and wakes the dispatcher.

Time spent queued belongs to the callers, never to the replica: a job that can no longer make
its deadline is answered 504 without reaching the model, and only a call that itself runs past
``timeout`` gets its replica killed, so a busy queue does not kill replicas doing normal work
(issue 13).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import threading
import time
from pathlib import Path
from typing import Any, Literal, Protocol

from winserve.backends.base import Backend, Health, Prediction, Status, prediction_from
from winserve.backends.proxy import HOST_GONE
from winserve.backends.replica import KILL_JOIN_SECONDS, STOP_SECONDS, Replica
from winserve.errors import (
    ModelError,
    ModelLoadError,
    ModelTimeout,
    ModelUnavailable,
    WinserveError,
)
from winserve.metrics import batch_rows_histogram
from winserve.model_file import sha256_of, stamp
from winserve.model_info import ModelInfo, ModelSpec
from winserve.payload import Payload, batch_key, merge_payloads, payload_bytes, row_count

log = logging.getLogger("winserve.pool")

CALLER_GRACE = 0.25  # seconds a caller waits past its deadline for the dispatcher's verdict
IDLE_CHECK = 0.1  # seconds between liveness checks of an idle replica
BACKOFF_FIRST = 0.5  # a first failure restarts at once; repeated ones wait 0.5, 1, 2, … s
BACKOFF_MAX = 30.0
# the most bytes of tensors and images one call takes (a batch is also capped in rows): 64
# images of 224 × 224 × 3 float32 are 38 MB (issue 24)
MAX_BATCH_BYTES = 64 * 2**20
BACKOFF_RESET_AFTER = 30.0  # a replica that served this long resets its backoff
FILE_CHECK = 1.0  # seconds between looks at a changed model file, waiting for the loaded one

Outcome = Literal["ok", "timeout", "dead"]


class MakeReplica(Protocol):
    """Builds the pool's replica ``index``: a local model host (``Replica``) or any object
    with its methods (start / predict / alive / exit_description / kill / stop / health),
    e.g. a lane to a Ray Serve deployment (``winserve.backends.ray.backend``)."""

    def __call__(self, index: int, spec: ModelSpec) -> Replica: ...


class Job:
    """One request's rows on their way to a replica, and the answer once there is one.

    The first ``resolve`` wins (the dispatcher's answer, or the caller's own timeout). Its
    caller waits on a lock held from the start and released by that ``resolve``: a
    ``threading.Event`` (a Condition, a lock made for each wait, ``notify_all``) cost the web
    process more per request than the queue itself (issue 14)."""

    __slots__ = (
        "_answered",
        "_claimed",
        "asked",
        "deadline",
        "error",
        "key",
        "nbytes",
        "payload",
        "proba",
        "record",
        "result",
        "retried",
        "rows",
        "scores",
        "solo",
        "timeout",
    )

    def __init__(
        self,
        payload: Payload,
        rows: int,
        proba: bool,
        deadline: float,
        timeout: float,
        scores: bool = False,
    ) -> None:
        self.payload, self.rows, self.proba, self.scores = payload, rows, proba, scores
        self.deadline, self.timeout = deadline, timeout
        # tensors merge only with tensors of their per-row shapes, up to a size (issue 24)
        self.key, self.nbytes = batch_key(payload), payload_bytes(payload)
        self.result: Prediction | None = None
        self.error: WinserveError | None = None
        self.solo = self.retried = False
        # a host call beside predict (issue 25): (method, options), answered with its record
        self.asked: tuple[str, dict[str, Any]] | None = None
        self.record: dict[str, Any] | None = None
        self._claimed = threading.Lock()  # taken by the first resolve, never released
        self._answered = threading.Lock()  # held until the answer is there
        self._answered.acquire()

    @property
    def done(self) -> bool:
        return self._claimed.locked()

    def resolve(self, result: Prediction | None = None, error: WinserveError | None = None) -> None:
        if not self._claimed.acquire(blocking=False):  # answered already: that answer stays
            return
        self.result, self.error = result, error
        self._answered.release()

    def wait(self, timeout: float) -> bool:
        """Whether the answer came within ``timeout`` seconds (one waiter: the caller)."""
        return self._answered.acquire(timeout=timeout)

    def timed_out(self) -> ModelTimeout:
        return ModelTimeout(
            f"the model did not answer within {self.timeout:g} s (setting: timeout)"
        )


class PoolBackend(Backend):
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
        self._max_batch_bytes = max_batch_bytes
        self._batch_wait = max_batch_wait_ms / 1000.0
        self._max_queue = max_queue
        self._replicas = [make_replica(i, spec) for i in range(workers)]
        self._queue: collections.deque[Job] = collections.deque()
        self._cond = threading.Condition()
        self._closing = threading.Event()
        self._close_lock = threading.Lock()
        self._closed = threading.Event()  # close() has finished: the hosts are gone
        self._changed = threading.Condition()
        self._info: ModelInfo | None = None
        self._threads: list[threading.Thread] = []
        self._first_attempts = 0
        self._held: set[int] = set()  # replicas waiting for the loaded model file to come back
        self._busy: set[int] = set()  # replicas in a call (under self._cond)
        self._inflight = 0  # requests inside predict() (under self._cond)
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
        end = time.monotonic() + timeout
        with self._changed:
            while True:
                if self._info is not None and any(r.state == "ready" for r in self._replicas):
                    return self._info
                if self._first_attempts >= len(self._replicas) and self._info is None:
                    reasons = {r.last_error for r in self._replicas if r.last_error}
                    raise ModelLoadError("; ".join(sorted(reasons)) or "the model did not load")
                if self._closing.is_set():
                    raise ModelLoadError("stopped while the model was loading")
                remaining = end - time.monotonic()
                if remaining <= 0:
                    raise ModelLoadError(f"the model did not load within {timeout:g} s")
                self._changed.wait(min(remaining, IDLE_CHECK))

    def close(self) -> None:
        with self._close_lock:
            first = not self._closing.is_set()
            self._closing.set()
        if not first:  # another thread is closing: on return, the hosts must be gone all the same
            self._closed.wait(STOP_SECONDS + KILL_JOIN_SECONDS + 1.0)
            return
        with self._cond:
            pending = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for job in pending:
            job.resolve(error=ModelUnavailable("the server is shutting down"))
        # All hosts are asked at once; one frozen or holding the GIL is killed after
        # STOP_SECONDS, so closing takes seconds, whatever the hosts do (issue 13).
        stoppers = [
            threading.Thread(target=r.stop, name=f"winserve-stop-{r.index}", daemon=True)
            for r in self._replicas
        ]
        for thread in stoppers:
            thread.start()
        end = time.monotonic() + STOP_SECONDS + KILL_JOIN_SECONDS
        for thread in [*stoppers, *self._threads]:
            thread.join(timeout=max(0.0, end - time.monotonic()))
        with self._cond:  # jobs of a call the stop cut short, put back for a retry
            pending = list(self._queue)
            self._queue.clear()
        for job in pending:
            job.resolve(error=ModelUnavailable("the server is shutting down"))
        self._closed.set()
        self._notify()

    # -- web side ----------------------------------------------------------------------------

    def describe(self) -> ModelInfo:
        if self._info is None:
            raise ModelUnavailable("the model is still loading", retry_after=self._retry_after())
        return self._info

    def predict(self, payload: Payload, proba: bool = False, scores: bool = False) -> Prediction:
        now = time.monotonic()
        job = Job(
            payload, row_count(payload), proba, now + self._timeout, self._timeout, scores=scores
        )
        return self._submit(job)

    def _submit(self, job: Job) -> Prediction:
        """Run ``job`` on a replica (at once from this thread when one is idle and nothing
        waits, else through the queue) and wait for its answer, within its deadline."""
        if self._closing.is_set():
            raise ModelUnavailable("the server is shutting down")
        if not any(r.state == "ready" for r in self._replicas):
            if len(self._held) == len(self._replicas):  # will not recover by itself
                reasons = "; ".join(sorted({r.last_error for r in self._replicas}))
                raise ModelUnavailable(
                    f"no model replica can start: {reasons}", retry_after=self._retry_after()
                )
            states = ", ".join(sorted({r.state for r in self._replicas}))
            raise ModelUnavailable(
                f"no model replica is ready ({states}); try again shortly",
                retry_after=self._retry_after(),
            )
        with self._cond:
            if len(self._queue) >= self._max_queue:
                raise ModelUnavailable(
                    f"{len(self._queue)} requests are already waiting (setting: max_queue)",
                    retry_after=1,
                )
            self._inflight += 1
            # alone in the pool: call at once from this thread; with company, queue, so that
            # the dispatcher merges the requests into one call as it always has
            alone = self._inflight == 1 and not self._queue
            idle = self._idle_replica() if alone else None
            if idle is not None:
                self._busy.add(idle.index)
            else:
                self._queue.append(job)
                self._cond.notify_all()  # every dispatcher: a busy one would sit this one out
        try:
            if idle is not None:
                self._run_here(idle, job)
            # from its deadline, not from now: a call of this thread's own that crashed late
            # is retried in the queue, and its caller must not wait a whole timeout again
            if not job.wait(max(0.0, job.deadline + CALLER_GRACE - time.monotonic())):
                job.resolve(error=job.timed_out())
        finally:
            with self._cond:
                self._inflight -= 1
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def ask(self, method: str, payload: Payload, options: dict[str, Any]) -> dict[str, Any]:
        """``ModelHost.explain`` / ``.whatif`` through the queue (issue 25): a job of its own,
        never merged with predictions, under predict's deadlines and restarts."""
        now = time.monotonic()
        job = Job(payload, row_count(payload), False, now + self._timeout, self._timeout)
        # the host stops explaining short of the deadline, which would kill the replica
        job.asked, job.solo = (method, {**options, "seconds": self._timeout * 0.8}), True
        self._submit(job)
        assert job.record is not None
        return job.record

    def _idle_replica(self) -> Replica | None:
        """A ready replica nobody is calling (under self._cond)."""
        for replica in self._replicas:
            if replica.state == "ready" and replica.index not in self._busy:
                return replica
        return None

    def _run_here(self, replica: Replica, job: Job) -> None:
        """The caller's own call on an idle replica; anything but an answer (a timeout, a dead
        host) leaves the replica marked for its dispatcher, which restarts it."""
        try:
            self._run(replica, [job])
        finally:
            with self._cond:
                self._busy.discard(replica.index)
                # only when there is something to do (requests that queued meanwhile, a restart):
                # waking the dispatchers after every lone call cost ≈ 6 % of the GIL at c=1
                if self._queue or replica.state != "ready" or self._closing.is_set():
                    self._cond.notify_all()

    def health(self) -> Health:
        replicas = tuple(r.health() for r in self._replicas)
        states = [r.state for r in replicas]
        status: Status
        if self._closing.is_set():
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
            status,
            replicas,
            reason if status != "ready" else "",
            queue_depth=len(self._queue),
        )

    def _retry_after(self) -> int:
        loads = [r.load_seconds for r in self._replicas if r.load_seconds]
        return max(1, math.ceil(max(loads, default=2.0)))

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    # -- dispatcher side ---------------------------------------------------------------------

    def _dispatch(self, replica: Replica) -> None:
        backoff = 0.0
        while not self._closing.is_set():
            replica.state = "loading" if replica.restarts == 0 else "restarting"
            self._notify()
            if self._load(replica):
                self._notify()
                self._serve(replica)
                if time.monotonic() - replica.started_at > BACKOFF_RESET_AFTER:
                    backoff = 0.0
            if self._closing.is_set():
                break  # stop() below ends the host: asked first, killed if it does not go
            replica.kill()
            if not self._worth_retrying(replica):
                break
            replica.restarts += 1  # _serve set "restarting" (or _load "failed") already
            self._notify()
            if self._hold_while_file_changed(replica):
                backoff = 0.0  # the loaded file is back: load it at once
                continue
            log.warning(
                "replica %d: %s; restarting in %.1f s", replica.index, replica.last_error, backoff
            )
            self._closing.wait(backoff)
            backoff = min(max(backoff * 2, BACKOFF_FIRST), BACKOFF_MAX)
        failed = replica.state == "failed" and not self._closing.is_set()
        replica.stop()
        if failed:
            replica.state = "failed"  # the model cannot be loaded: say so, not "stopped"
        self._notify()

    def _worth_retrying(self, replica: Replica) -> bool:
        """After a failure: False when this was a first load and every replica's first load
        failed, i.e. the model cannot be loaded and winserve is exiting (``wait_ready`` says
        why, once); until that is known, a first failure waits for the other replicas."""
        if replica.restarts > 0:
            return True
        with self._changed:
            while not self._closing.is_set():
                if self._info is not None:
                    return True  # another replica loaded it: this failure was this replica's
                if self._first_attempts >= len(self._replicas):
                    return False
                self._changed.wait(IDLE_CHECK)
        return False

    def _hold_while_file_changed(self, replica: Replica) -> bool:
        """A restart must load the file the first load did (``ModelSpec.same_as``). When the
        file on disk is another one now (retrained and overwritten), no restart can succeed:
        the replica is "failed" with what to do, and waits, without spawning hosts, until the
        loaded file is back (or the server closes). Returns whether it waited."""
        path = Path(replica.spec.path) if replica.spec.path else None
        reason = _not_the_loaded_file(path, replica.spec.same_as)
        if path is None or not reason:
            return False
        with self._changed:
            self._held.add(replica.index)
        replica.state, replica.last_error = "failed", reason
        self._notify()
        log.error("replica %d: %s", replica.index, reason)
        seen: tuple[int, ...] | None = stamp(path)
        while not self._closing.wait(FILE_CHECK):
            now = stamp(path)
            if now == seen:
                continue
            seen = now  # taken before hashing: a write after the hash is seen next round
            if not _not_the_loaded_file(path, replica.spec.same_as):
                log.info("replica %d: %s is the loaded file again", replica.index, path.name)
                break
        with self._changed:
            self._held.discard(replica.index)
        return True

    def _load(self, replica: Replica) -> bool:
        try:
            info = replica.start(self._load_timeout)
        except ModelLoadError as exc:
            replica.last_error = str(exc)
            replica.state = "failed"
        except TimeoutError:
            replica.last_error = f"the model did not load within {self._load_timeout:g} s"
            replica.state = "failed"
        except (*HOST_GONE, OSError) as exc:
            replica.last_error = (
                f"{replica.exit_description()} while loading ({type(exc).__name__})"
            )
            replica.state = "failed"
        else:
            if self._info is None:
                self._info = ModelInfo.from_dict(info)
                if self._info.sha256:  # later loads must find this same file
                    for each in self._replicas:
                        each.spec = dataclasses.replace(each.spec, same_as=self._info.sha256)
            replica.state, replica.last_error = "ready", ""
            log.info(
                "replica %d ready (pid %s, %.2f s)",
                replica.index,
                replica.pid,
                replica.load_seconds,
            )
            return True
        finally:
            with self._changed:
                self._first_attempts += replica.restarts == 0
        # Not logged here: _dispatch says it once with what happens next, and a first load
        # that failed everywhere is said once by whoever waits for it (the console).
        return False

    def _serve(self, replica: Replica) -> None:
        while not self._closing.is_set():
            jobs = self._take(replica)
            if replica.state != "ready":  # a caller's call on it timed out or lost the host
                self._wait_idle(replica)
                return
            if not jobs:
                if not replica.alive():
                    replica.state = "restarting"
                    replica.last_error = replica.exit_description()
                    self._wait_idle(replica)
                    return
                continue
            try:
                outcome = self._run(replica, jobs)
            finally:
                with self._cond:
                    self._busy.discard(replica.index)
            if outcome != "ok":
                return

    def _wait_idle(self, replica: Replica) -> None:
        """Until no caller is in a call on ``replica`` (a dead host ends such a call at once;
        a hung one within ``timeout``), so that a restart never pulls a host from under it."""
        with self._cond:
            self._cond.wait_for(lambda: replica.index not in self._busy, self._timeout + 1)

    def _take(self, replica: Replica) -> list[Job]:
        """Every job waiting, up to max_batch_rows (at least one); [] after an idle spell, or
        while a caller is in a call on this replica. The replica is busy once jobs are taken."""
        with self._cond:
            if not self._queue or replica.index in self._busy:
                self._cond.wait(IDLE_CHECK)
            if replica.index in self._busy or replica.state != "ready":
                return []
            jobs, rows = self._pop_batch([], 0)
            if jobs:  # before any wait below: no caller may take the replica meanwhile
                self._busy.add(replica.index)
            if jobs and self._batch_wait > 0 and not jobs[0].solo:
                end = time.monotonic() + self._batch_wait
                while rows < self._max_batch_rows and (left := end - time.monotonic()) > 0:
                    self._cond.wait(left)
                    jobs, rows = self._pop_batch(jobs, rows)
            return jobs

    def _pop_batch(self, jobs: list[Job], rows: int) -> tuple[list[Job], int]:
        now = time.monotonic()
        while self._queue:
            job = self._queue[0]
            if job.done:  # its caller gave up
                self._queue.popleft()
                continue
            if job.deadline <= now:
                self._queue.popleft()
                job.resolve(error=job.timed_out())
                continue
            if jobs and (
                job.solo
                or jobs[0].solo
                or rows + job.rows > self._max_batch_rows
                or not self._joins(jobs, job)
            ):
                break
            jobs.append(self._queue.popleft())
            rows += job.rows
        return jobs, rows

    def _joins(self, jobs: list[Job], job: Job) -> bool:
        """Whether ``job`` may go into the call with ``jobs``: tensors of the same per-row
        shapes, and the call's tensors within ``max_batch_bytes`` (issue 24)."""
        if job.key != jobs[0].key:
            return False
        return not job.nbytes or sum(j.nbytes for j in jobs) + job.nbytes <= self._max_batch_bytes

    def _requeue(self, jobs: list[Job]) -> None:
        if self._closing.is_set():  # nobody will take them: say so now, not at their deadline
            for job in jobs:
                job.resolve(error=ModelUnavailable("the server is shutting down"))
            return
        with self._cond:
            self._queue.extendleft(reversed(jobs))
            self._cond.notify_all()

    def _run(self, replica: Replica, jobs: list[Job]) -> Outcome:
        payload = merge_payloads([j.payload for j in jobs])
        self.batch_rows.observe(row_count(payload))
        proba = any(j.proba for j in jobs)
        scores = any(j.scores for j in jobs)
        # The call's own deadline counts from now: time its jobs spent queued is theirs (each
        # caller gets its 504 at its own deadline), not a sign that the replica hangs.
        wait = self._timeout
        asked = jobs[0].asked  # explain / whatif: always alone in its call (issue 25)
        try:
            if asked is not None:
                jobs[0].record = replica.ask(asked[0], payload, asked[1], timeout=wait)
                jobs[0].resolve(Prediction([]))
                return "ok"
            record = replica.predict(payload, proba, timeout=wait, scores=scores)
        except TimeoutError:
            replica.state = "restarting"  # before anyone hears of it: health must not lag
            for job in jobs:
                job.resolve(error=job.timed_out())
            replica.last_error = f"a prediction took longer than {self._timeout:g} s"
            return "timeout"
        except (*HOST_GONE, OSError) as exc:
            replica.state = "restarting"
            replica.last_error = f"{replica.exit_description()} during a prediction"
            self._after_crash(jobs, exc)
            return "dead"
        except Exception as exc:  # a broken reply: never trust this connection again
            replica.state = "restarting"
            log.exception("replica %d: unexpected reply failure", replica.index)
            for job in jobs:
                job.resolve(error=ModelError(f"the model call failed: {type(exc).__name__}"))
            replica.last_error = f"unexpected reply failure ({type(exc).__name__})"
            return "dead"
        # An answer, or an error: for the rows the model rejected, the host found which in the
        # same call and answered the others (ModelHost.predict), so a bad request in a batch
        # fails alone without another call
        self._deliver(jobs, record)
        return "ok"

    def _after_crash(self, jobs: list[Job], exc: BaseException) -> None:
        """Jobs of a crashed call get one more try each, alone, on a fresh replica."""
        retry = [j for j in jobs if not j.retried]
        for job in jobs:
            if job.retried:
                job.resolve(
                    error=ModelUnavailable(
                        "the model process crashed while predicting this request, twice; "
                        "it is being restarted",
                        retry_after=self._retry_after(),
                    )
                )
        for job in retry:
            job.retried, job.solo = True, True
        self._requeue(retry)

    @staticmethod
    def _deliver(jobs: list[Job], record: dict[str, Any]) -> None:
        """Split one model call's answer back into each job's rows. After an error, a job
        with a row the host isolated as failing gets that row's error (a job alone in the
        call gets the call's, as it always has), with the answers of its rows attached for CSV
        scoring (``row_errors``); the other jobs get their predictions."""
        if len(jobs) == 1 and record.get("ok"):  # the usual call at low load: nothing to split
            job = jobs[0]
            job.resolve(
                Prediction(
                    record["predictions"],
                    record.get("probabilities") if job.proba else None,
                    record.get("scores") if job.scores else None,
                )
            )
            return
        answered = record if record.get("ok") else record.get("isolated")
        if answered is None:  # one row, or an error not about rows (no model loaded)
            for job in jobs:
                job.resolve(error=_error_of(record))
            return
        predictions = answered["predictions"]
        probabilities = answered.get("probabilities")
        scores = answered.get("scores")
        failed: dict[int, dict[str, Any]] = dict(answered.get("errors", ()))
        start = 0
        for job in jobs:
            end = start + job.rows
            mine = {
                "predictions": predictions[start:end],
                "probabilities": (
                    None if probabilities is None or not job.proba else probabilities[start:end]
                ),
                "scores": None if scores is None or not job.scores else scores[start:end],
            }
            bad = [row for row in range(start, end) if row in failed] if failed else []
            if not bad:
                job.resolve(Prediction(mine["predictions"], mine["probabilities"], mine["scores"]))
            else:
                mine["errors"] = [(row - start, failed[row]) for row in bad]
                error = record["error"] if len(jobs) == 1 else failed[bad[0]]
                job.resolve(error=_error_of({"ok": False, "error": error, "isolated": mine}))
            start = end


def _error_of(record: dict[str, Any]) -> WinserveError:
    """The error a failed host record stands for (logged once, with the model's traceback)."""
    try:
        prediction_from(record, log)
    except WinserveError as error:
        return error
    raise AssertionError("a failed record made a prediction")  # pragma: no cover


def _not_the_loaded_file(path: Path | None, loaded_sha256: str) -> str:
    """Why the model file on disk is not the one loaded first, with what to do; "" if it is."""
    if path is None or not loaded_sha256:
        return ""
    try:
        digest = sha256_of(path)
    except OSError:
        return (
            f"{path.name} is no longer where winserve loaded it from, so it cannot be loaded "
            "again: put it back, or restart winserve with another model file"
        )
    if digest == loaded_sha256:
        return ""
    return (
        f"{path.name} changed on disk since winserve loaded it (SHA-256 {loaded_sha256[:12]}… "
        f"then, {digest[:12]}… now), so it cannot be loaded again: restart winserve to serve "
        "the new file, or put the old one back"
    )
