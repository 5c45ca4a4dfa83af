"""One model replica: a spawned model-host process, and every call to it, with a deadline.

::

    web process                                    model-host process (spawn)
    ───────────                                    ──────────────────────────
    Replica.start ── spawn (proxy.py) ────────────► manager server + ModelHost; load(spec)
    Replica.predict(payload, proba, timeout)
      wire_payload: a number matrix as its raw bytes + shape
      _call: conn.send((id, "predict", args)) ── AF_UNIX / named pipe ─► ModelHost.predict
             wait readable(timeout)   no answer in time → TimeoutError, connection dropped
             conn.recv() ◄──────────────────────────── plain-data record (``host.answers``)
             a broken or closed connection (EOFError, BrokenPipeError, …) → HostGone
    Replica.kill ── SIGKILL / TerminateProcess, then ``forget`` (proxy.py)

The local ``ReplicaRunner`` (``backends/runner.py``): its failures are ``ModelLoadError``,
``TimeoutError`` or ``HostGone``, and its state is ``Lifecycle``'s.

One thread at a time calls ``start``, ``predict`` and ``ask`` (the pool's dispatcher, or a
caller the pool let make its lone call; the Ray keeper under its lock), so a replica has one
connection to its host (``_conn``), opened at the first call after a start and dropped on any
error or timeout. ``kill`` and ``stop`` may come from any thread (shutdown, a watchdog) and
unblock a call in progress by ending the process.

Proxy calls of the standard library wait forever, and a call abandoned without discarding its
connection makes the *next* call read the late reply of the previous one (measured,
``shared/reference/platform-notes.md`` §1.6). So ``_call`` polls with a timeout and drops the
connection on any error or timeout.

A host may hold the GIL for hours or be frozen (SIGSTOP), and then it answers nothing, not
even multiprocessing's own messages (issue 13). So ``kill`` ends the process first, by signal
(SIGKILL / TerminateProcess), and then ``forget``s its manager and proxy without a call into
it; ``stop`` asks politely and turns into a kill when the host has not gone within
``STOP_SECONDS``; and every wait of ``start`` is bounded by the load timeout.
"""

from __future__ import annotations

import contextlib
import pickle
import select
import threading
import time
from multiprocessing.connection import Connection
from multiprocessing.managers import convert_to_error  # type: ignore[attr-defined]
from typing import Any

from winserve.backends.proxy import (
    HOST_GONE,
    HostManager,
    HostProxy,
    ask_to_exit,
    broken,
    connect,
    forget,
    spawn_context,
)
from winserve.backends.runner import HostGone, Lifecycle
from winserve.errors import ModelLoadError
from winserve.host import watchdog
from winserve.host.answers import AskAnswer, HostInfo, LoadAnswer, PredictAnswer
from winserve.host.inputs import MATRIX_BYTES, MATRIX_SHAPE
from winserve.model_info import ModelSpec
from winserve.platform import adopt_child
from winserve.rows import CALL_STARTS, COLUMN_MAJOR, TEXTS, WITHIN_FLOAT32

KILL_JOIN_SECONDS = 5.0  # a SIGKILLed process is gone in milliseconds; this is the bound
STOP_SECONDS = 1.0  # a host asked to exit that is still there after this is killed
# Unix: one poll(2) on the connection's descriptor. Connection.poll builds, registers and
# closes a selector for each call, ~15 µs of Python per prediction (issue 14).
_POLL = getattr(select, "poll", None)
# 5: a matrix's PickleBuffer is written from its memory, and read as a bytearray (issue 23)
PICKLE_PROTOCOL = 5


class Replica(Lifecycle):
    """A model host spawned on this machine, loaded once, called through its proxy."""

    def __init__(self, index: int, spec: ModelSpec) -> None:
        super().__init__(index, spec)
        self._lock = threading.Lock()
        self._manager: HostManager | None = None
        self._proxy: HostProxy | None = None
        self._conn: Connection | None = None  # to the host; one caller at a time uses it
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
                    self._proxy, self._conn = proxy, None
            left = max(0.01, began + load_timeout - time.monotonic())
            record: LoadAnswer = self._call("load", (self.spec,), left)
        finally:
            guard.cancel()
        if not record["ok"]:
            raise ModelLoadError(record["error"]["message"])
        self.loaded_since(began)
        return record["info"]

    def predict(
        self, payload: dict[str, Any], proba: bool, timeout: float, scores: bool = False
    ) -> PredictAnswer:
        record: PredictAnswer = self._call(
            "predict", (wire_payload(payload), proba, scores), timeout
        )
        return record

    def ask(
        self, name: str, payload: dict[str, Any], options: dict[str, Any], timeout: float
    ) -> AskAnswer:
        """``ModelHost.explain`` or ``.whatif`` (issue 25), within ``timeout``."""
        record: AskAnswer = self._call(name, (wire_payload(payload), options), timeout)
        return record

    def _call(self, name: str, args: tuple[Any, ...], timeout: float) -> Any:
        """``ModelHost.<name>(*args)`` in the host, within ``timeout``: its answer, or
        ``TimeoutError`` / ``HostGone`` with the connection dropped."""
        deadline = time.monotonic() + timeout
        proxy, conn = self._proxy, self._conn
        if proxy is None:
            raise HostGone("the model host is not running")
        if conn is None:
            conn = self._conn = connect(proxy, name, timeout)
        try:
            # plain pickle: the request is plain data, and ForkingPickler copies the copyreg
            # table on every call (4.3 us against 0.9 for a prediction; issue 14); the host
            # reads it as conn.send's bytes
            conn.send_bytes(pickle.dumps((proxy._id, name, args, {}), PICKLE_PROTOCOL))
            left = max(0.0, deadline - time.monotonic())
            if _POLL is None or type(conn) is not Connection:  # Windows: a named pipe
                answered = conn.poll(left)
            else:
                poller = _POLL()
                poller.register(conn.fileno(), select.POLLIN)
                answered = bool(poller.poll(left * 1000.0))  # POLLHUP too: recv raises EOFError
            if not answered:
                raise TimeoutError(f"{name} did not answer within {timeout:g} s")
            kind, result = conn.recv()
        except BaseException as exc:
            self._conn = None  # never reuse: a late reply may still arrive
            with contextlib.suppress(OSError):
                conn.close()
            if isinstance(exc, HOST_GONE) or broken(exc):
                raise HostGone(f"{name}: the model host is gone ({type(exc).__name__})") from exc
            raise
        if kind == "#RETURN":
            return result
        raise convert_to_error(kind, result)

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
            self._conn = None
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


def wire_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """What crosses to the host: a float64 matrix as its raw buffer and shape (pickling an
    ndarray costs ~25 µs here and ~10 µs in the host for one row, bytes ~5 and ~1, measured;
    issue 14), with the web process's range check (``WITHIN_FLOAT32``); anything else as it
    is. ``winserve.host.inputs.build_input`` takes both. The buffer is a ``PickleBuffer`` of
    the matrix, pickled (protocol 5) straight from its memory: no ``tobytes`` copy first, and
    the host copies it once (issue 23: the matrix was copied twice)."""
    matrix = payload.get("matrix")
    if (
        matrix is None
        or not set(payload) <= {"matrix", WITHIN_FLOAT32, CALL_STARTS, TEXTS, COLUMN_MAJOR}
        or getattr(matrix, "dtype", None) != "float64"
        or matrix.ndim != 2
    ):
        return payload
    raw = pickle.PickleBuffer(matrix) if matrix.flags.c_contiguous else matrix.tobytes()
    sent = {MATRIX_BYTES: raw, MATRIX_SHAPE: matrix.shape}
    if payload.get(WITHIN_FLOAT32):
        sent[WITHIN_FLOAT32] = True
    if CALL_STARTS in payload:  # a merged batch's calls (host.isolate, issue 23)
        sent[CALL_STARTS] = payload[CALL_STARTS]
    if TEXTS in payload:  # a CSV job's chunk, answered as text (host.answer_text)
        sent[TEXTS] = payload[TEXTS]
    if payload.get(COLUMN_MAJOR):  # a job's chunk: laid out as the notebook's (host.inputs)
        sent[COLUMN_MAJOR] = True
    return sent
