"""The plumbing of a model host's process: the manager that spawns it, the connection a
replica calls it on, and how to let go of it without a word to it.

::

    web process                                    model-host process (spawn)
    ───────────                                    ──────────────────────────
    HostManager.start() ── spawn ─────────────────► manager server (ignores SIGINT/SIGTERM,
                                                    exits when the parent dies)
    manager.ModelHost() ─► HostProxy (its id) ────► a ModelHost in the server
    connect(proxy, timeout) ── AF_UNIX / named pipe, random authkey ─► the connection that
                                                    ``Replica._call`` sends every call on
    ask_to_exit(manager)   the polite stop         forget(manager, proxy)   the silent one

The calls themselves (``Replica._call``: send, wait with a deadline, receive) live with the
replica (``replica.py``), so that one prediction's path is the pool and one replica (issue 23).

Dropping a proxy sends its host a ``decref`` and ``BaseManager.shutdown`` sends a ``shutdown``;
both wait for the host's answer without a timeout, forever from a host that holds the GIL or
is frozen (SIGSTOP), which hung the whole server (issue 13). So a host that missed a deadline
is killed first and then ``forget``-ed: its manager and proxy are cleaned up on this side
without a word to it. ``ask_to_exit`` is the polite stop, run where its wait can be abandoned.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
from multiprocessing import process
from multiprocessing.connection import Connection
from multiprocessing.managers import (  # type: ignore[attr-defined]
    BaseManager,
    BaseProxy,
    State,
    dispatch,
)
from typing import Any

from winserve.backends.runner import HostGone
from winserve.host import ModelHost

# What a dead or unreachable host looks like from this side (Linux and Windows): raised
# on as ``HostGone`` (issue 23), by ``connect`` and by ``Replica``.
HOST_GONE = (
    EOFError,
    BrokenPipeError,
    ConnectionResetError,
    ConnectionRefusedError,
    FileNotFoundError,
    ConnectionAbortedError,
)


class HostProxy(BaseProxy):
    """The model host's id in its manager's server, and the address, authkey and client a
    connection to it needs (``connect``); its calls are ``Replica._call``'s."""

    _exposed_ = ("load", "predict", "pid", "info", "explain", "whatif")
    # BaseProxy internals used (stable since Python 2.6, undocumented).
    _id: Any
    _token: Any
    _authkey: Any
    _Client: Any


def connect(proxy: HostProxy, name: str, timeout: float) -> Connection:
    """A new connection to ``proxy``'s host, opened within ``timeout``.

    Opening one talks to the host (``connect``, the authkey handshake, ``accept_connection``),
    and ``BaseProxy._connect`` waits for it without a timeout: forever on a host that holds
    the GIL or is stopped (issue 13). So a helper thread opens it; past ``timeout`` the
    caller gets ``TimeoutError`` and the helper, left waiting, ends when the host is killed.
    A broken one raises ``HostGone``.
    """
    client = f"{process.current_process().name}|{threading.current_thread().name}"
    lock = threading.Lock()
    box: dict[str, Any] = {}

    def open_connection() -> None:
        try:
            conn = proxy._Client(proxy._token.address, authkey=proxy._authkey)
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
        if isinstance(error, HOST_GONE) or broken(error):
            why = f"{name}: cannot reach the model host ({type(error).__name__})"
            raise HostGone(why) from error
        raise error
    conn: Connection = box["conn"]
    return conn


def broken(exc: BaseException) -> bool:
    """An OS error of the connection itself (a closed handle on Windows, EBADF), not the
    call's ``TimeoutError`` (an ``OSError`` too): the host is as good as gone."""
    return isinstance(exc, OSError) and not isinstance(exc, TimeoutError)


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
