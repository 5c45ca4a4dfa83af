"""The manager that spawns a model host, and a proxy whose every call has a deadline.

::

    web process                                    model-host process (spawn)
    ───────────                                    ──────────────────────────
    HostManager.start() ── spawn ─────────────────► manager server (ignores SIGINT/SIGTERM,
                                                    exits when the parent dies)
    HostProxy._call(name, args, timeout)
      conn.send((id, name, args)) ── AF_UNIX / named pipe, random authkey ─► ModelHost.name(*args)
      (a number matrix travels as its raw bytes + shape, see ``wire_payload``)
      wait readable(timeout)   no answer in time → TimeoutError, connection dropped
      conn.recv()  ◄────────────────────────────── plain-data record (``winserve.host.answers``)
      a broken or closed connection (EOFError, BrokenPipeError, …) → HostGone, connection dropped

Proxy calls of the standard library wait forever, and a call abandoned without discarding its
connection makes the *next* call on that thread read the late reply of the previous one
(measured, ``shared/reference/platform-notes.md`` §1.6). So ``HostProxy`` polls with a timeout
and drops the thread's connection on any error or timeout.

Dropping a proxy sends its host a ``decref`` and ``BaseManager.shutdown`` sends a ``shutdown``;
both wait for the host's answer without a timeout, forever from a host that holds the GIL or
is frozen (SIGSTOP), which hung the whole server (issue 13). So a host that missed a deadline
is killed first and then ``forget``-ed: its manager and proxy are cleaned up on this side
without a word to it. ``ask_to_exit`` is the polite stop, run where its wait can be abandoned.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import pickle
import select
import threading
import time
from multiprocessing import process
from multiprocessing.connection import Connection
from multiprocessing.managers import (  # type: ignore[attr-defined]
    BaseManager,
    BaseProxy,
    State,
    convert_to_error,
    dispatch,
)
from typing import Any

from winserve.backends.runner import HostGone
from winserve.host import ModelHost
from winserve.host.answers import AskAnswer, LoadAnswer, PredictAnswer
from winserve.host.inputs import MATRIX_BYTES, MATRIX_SHAPE
from winserve.rows import WITHIN_FLOAT32

# Unix: one poll(2) on the connection's descriptor. Connection.poll builds, registers and
# closes a selector for each call, ~15 µs of Python per prediction (issue 14).
_POLL = getattr(select, "poll", None)
# 5: a matrix's PickleBuffer is written from its memory, and read as a bytearray (issue 23)
PICKLE_PROTOCOL = 5

# What a dead or unreachable host looks like from this side (Linux and Windows): raised
# on as ``HostGone`` (issue 23), by this proxy and by ``Replica.start``.
HOST_GONE = (
    EOFError,
    BrokenPipeError,
    ConnectionResetError,
    ConnectionRefusedError,
    FileNotFoundError,
    ConnectionAbortedError,
)


class HostProxy(BaseProxy):
    _exposed_ = ("load", "predict", "pid", "info", "explain", "whatif")
    # BaseProxy internals used below (stable since Python 2.6, undocumented).
    _tls: Any
    _id: Any
    _token: Any
    _authkey: Any
    _Client: Any

    def _call(self, name: str, args: tuple[Any, ...], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        conn = self._connection(name, timeout)
        try:
            # plain pickle: the request is plain data, and ForkingPickler copies the copyreg
            # table on every call (4.3 us against 0.9 for a prediction; issue 14); the host
            # reads it as conn.send's bytes
            conn.send_bytes(pickle.dumps((self._id, name, args, {}), PICKLE_PROTOCOL))
            if not _answered(conn, max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"{name} did not answer within {timeout:g} s")
            kind, result = conn.recv()
        except BaseException as exc:
            try:
                conn.close()
            finally:
                del self._tls.connection  # never reuse: a late reply may still arrive
            if isinstance(exc, HOST_GONE) or _broken(exc):
                raise HostGone(f"{name}: the model host is gone ({type(exc).__name__})") from exc
            raise
        if kind == "#RETURN":
            return result
        raise convert_to_error(kind, result)

    def _connection(self, name: str, timeout: float) -> Any:
        """This thread's connection to the host, opened within ``timeout`` when it has none.

        Opening one talks to the host (``connect``, the authkey handshake, ``accept_connection``),
        and ``BaseProxy._connect`` waits for it without a timeout: forever on a host that holds
        the GIL or is stopped (issue 13). So a helper thread opens it; past ``timeout`` the
        caller gets ``TimeoutError`` and the helper, left waiting, ends when the host is killed.
        """
        try:
            return self._tls.connection
        except AttributeError:
            pass
        client = f"{process.current_process().name}|{threading.current_thread().name}"
        lock = threading.Lock()
        box: dict[str, Any] = {}

        def open_connection() -> None:
            try:
                conn = self._Client(self._token.address, authkey=self._authkey)
                dispatch(conn, None, "accept_connection", (client,))
            except BaseException as exc:
                box["error"] = exc
                return
            with lock:
                if box.get("abandoned"):
                    conn.close()  # the caller gave up on it long ago
                else:
                    box["conn"] = conn

        opener = threading.Thread(target=open_connection, name="winserve-connect", daemon=True)
        opener.start()
        opener.join(timeout)
        with lock:
            if "conn" not in box and "error" not in box:
                box["abandoned"] = True
                raise TimeoutError(f"{name} did not answer within {timeout:g} s (no connection)")
        if "error" in box:
            error = box["error"]
            if isinstance(error, HOST_GONE) or _broken(error):
                why = f"{name}: cannot reach the model host ({type(error).__name__})"
                raise HostGone(why) from error
            raise error
        self._tls.connection = box["conn"]
        return box["conn"]

    def load(self, spec: Any, timeout: float) -> LoadAnswer:
        result: LoadAnswer = self._call("load", (spec,), timeout)
        return result

    def predict(
        self, payload: dict[str, Any], proba: bool, timeout: float, scores: bool = False
    ) -> PredictAnswer:
        sent = wire_payload(payload)
        result: PredictAnswer = self._call("predict", (sent, proba, scores), timeout)
        return result

    def ask(
        self, name: str, payload: dict[str, Any], options: dict[str, Any], timeout: float
    ) -> AskAnswer:
        """``ModelHost.explain`` or ``.whatif`` (issue 25), within ``timeout``."""
        result: AskAnswer = self._call(name, (wire_payload(payload), options), timeout)
        return result

    def pid(self, timeout: float) -> int:
        return int(self._call("pid", (), timeout))


def _broken(exc: BaseException) -> bool:
    """An OS error of the connection itself (a closed handle on Windows, EBADF), not the
    call's ``TimeoutError`` (an ``OSError`` too): the host is as good as gone."""
    return isinstance(exc, OSError) and not isinstance(exc, TimeoutError)


def _answered(conn: Any, timeout: float) -> bool:
    """Whether the host's answer (or its hang-up) is there within ``timeout`` seconds."""
    if _POLL is None or type(conn) is not Connection:  # Windows: a named pipe
        return bool(conn.poll(timeout))
    poller = _POLL()
    poller.register(conn.fileno(), select.POLLIN)
    return bool(poller.poll(timeout * 1000.0))  # POLLHUP too: recv then raises EOFError


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
        or not set(payload) <= {"matrix", WITHIN_FLOAT32}
        or getattr(matrix, "dtype", None) != "float64"
        or matrix.ndim != 2
    ):
        return payload
    raw = pickle.PickleBuffer(matrix) if matrix.flags.c_contiguous else matrix.tobytes()
    sent = {MATRIX_BYTES: raw, MATRIX_SHAPE: matrix.shape}
    if payload.get(WITHIN_FLOAT32):
        sent[WITHIN_FLOAT32] = True
    return sent


class HostManager(BaseManager):
    """Starts one model-host process; always from the spawn context, on every OS."""


HostManager.register("ModelHost", ModelHost, proxytype=HostProxy)


def spawn_context() -> Any:
    return multiprocessing.get_context("spawn")


def ask_to_exit(manager: HostManager) -> None:
    """Send the host the manager's ``shutdown``; waits for its answer as long as it takes (run
    it in a thread of its own and kill the host if it does not exit in time)."""
    with contextlib.suppress(Exception):
        conn = manager._Client(manager.address, authkey=manager._authkey)  # type: ignore[attr-defined]
        try:
            dispatch(conn, None, "shutdown")
        finally:
            conn.close()


def forget(manager: HostManager, proxy: HostProxy | None) -> None:
    """Clean up a host's manager and proxy here without talking to the host (issue 13).

    Call it once the host process is dead or past saving. It cancels what would otherwise call
    into the host later: the proxy's decref finalizer, and the manager's shutdown finalizer
    (which also runs at interpreter exit); marks the manager shut down, so any other proxy of
    it skips its decref; and drops the address's thread-local connections, as ``shutdown``
    does.
    """
    close = getattr(proxy, "_close", None)  # util.Finalize of BaseProxy._decref
    if close is not None:
        close.cancel()
    state = getattr(manager, "_state", None)
    if state is not None:
        state.value = State.SHUTDOWN
    finalizer = getattr(manager, "shutdown", None)  # a util.Finalize once started
    cancel = getattr(finalizer, "cancel", None)
    if cancel is not None:
        cancel()
    if manager.address is not None:
        BaseProxy._address_to_local.pop(manager.address, None)  # type: ignore[attr-defined]
