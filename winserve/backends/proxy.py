"""The manager that spawns a model host, and a proxy whose every call has a deadline.

::

    web process                                    model-host process (spawn)
    ───────────                                    ──────────────────────────
    HostManager.start() ── spawn ─────────────────► manager server (ignores SIGINT/SIGTERM,
                                                    exits when the parent dies)
    HostProxy._call(name, args, timeout)
      conn.send((id, name, args)) ── AF_UNIX / named pipe, random authkey ─► ModelHost.name(*args)
      conn.poll(timeout)   no answer in time → TimeoutError, connection dropped
      conn.recv()  ◄──────────────────────────────────────────────────────── plain-data record

Proxy calls of the standard library wait forever, and a call abandoned without discarding its
connection makes the *next* call on that thread read the late reply of the previous one
(measured, ``shared/reference/platform-notes.md`` §1.6). So ``HostProxy`` polls with a timeout
and drops the thread's connection on any error or timeout.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.managers import BaseManager, BaseProxy, convert_to_error  # type: ignore[attr-defined]
from typing import Any

from winserve.host import ModelHost

# What a dead or unreachable host looks like from this side (Linux and Windows).
HOST_GONE = (
    EOFError,
    BrokenPipeError,
    ConnectionResetError,
    ConnectionRefusedError,
    FileNotFoundError,
    ConnectionAbortedError,
)


class HostProxy(BaseProxy):
    _exposed_ = ("load", "predict", "pid", "info")
    # BaseProxy internals used below (stable since Python 2.6, undocumented).
    _tls: Any
    _id: Any
    _connect: Any

    def _call(self, name: str, args: tuple[Any, ...], timeout: float) -> Any:
        try:
            conn = self._tls.connection
        except AttributeError:
            self._connect()
            conn = self._tls.connection
        try:
            conn.send((self._id, name, args, {}))
            if not conn.poll(timeout):
                raise TimeoutError(f"{name} did not answer within {timeout:g} s")
            kind, result = conn.recv()
        except BaseException:
            try:
                conn.close()
            finally:
                del self._tls.connection  # never reuse: a late reply may still arrive
            raise
        if kind == "#RETURN":
            return result
        raise convert_to_error(kind, result)

    def load(self, spec: Any, timeout: float) -> dict[str, Any]:
        result: dict[str, Any] = self._call("load", (spec,), timeout)
        return result

    def predict(self, payload: dict[str, Any], proba: bool, timeout: float) -> dict[str, Any]:
        result: dict[str, Any] = self._call("predict", (payload, proba), timeout)
        return result

    def pid(self, timeout: float) -> int:
        return int(self._call("pid", (), timeout))


class HostManager(BaseManager):
    """Starts one model-host process; always from the spawn context, on every OS."""


HostManager.register("ModelHost", ModelHost, proxytype=HostProxy)


def spawn_context() -> Any:
    return multiprocessing.get_context("spawn")
