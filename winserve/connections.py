"""Connections bounded before they are authorised: slow clients cannot starve the server.

waitress keeps at most ``connection_limit`` connections and closes one only after
``channel_timeout`` seconds *without a byte*: 120 connections that trickled a header line or a
body byte now and then held every slot, and normal clients waited in the listen backlog until
they gave up (issue 28, finding 3). ``BoundedServer`` is waitress's TCP server with three bounds
on the *reading of a request* (never on the answer: a prediction of 20 s or a slow download is
not cut):

::

    accept ──► per-address cap ──► global cap ──► BoundedChannel ──► request read ──► Flask
               (over it: closed     (full: the       (clock: headers     (the app's
                at once)             slowest reader   in header_timeout;  time is not
                                     makes room)      body ≥ min rate)    bounded here)

- **A read deadline per request.** Its headers must arrive within ``header_timeout`` seconds
  (timed from the connection's accept for its first request, from its first byte for the
  next); its body at ``min_upload_rate_kb`` KB/s at least, averaged from the end of the
  headers, after a grace of ``header_timeout`` seconds. Checked once a second in waitress's
  ``maintenance`` pass; an overdue connection gets a 408 and is closed.
- **A per-address cap** (``max_connections_per_address``): a connection beyond it is accepted
  and closed at once, so one machine cannot hold every slot (IPv6 counts per /64).
- **A global cap that never locks the door** (``max_connections``): when every slot is taken,
  the connection that reads its request slowest (an idle keep-alive one first), if it has been
  at it for a second or more, is closed to make room for the new one; only when every slot is
  busy answering does the server stop accepting, as waitress does.

The global cap is sized for ``select()``: on Windows waitress watches its sockets with
``select()``, which takes at most 512 (CPython's ``FD_SETSIZE`` there), and the map also holds
the listening socket and waitress's wake-up socket; ``select_limit`` keeps the cap under that.
On Linux and macOS ``poll()`` has no such limit but each connection may hold up to three file
descriptors (the socket, a spooled body, a spooled answer); ``raise_descriptor_limit`` raises
the soft limit towards the hard one so that a full server cannot run out of them.
"""

from __future__ import annotations

import collections
import logging
import socket
import time
from dataclasses import dataclass
from typing import Any

from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher, WSGITask

from winserve.platform import IS_WINDOWS

log = logging.getLogger("winserve")

WINDOWS_SELECT_SOCKETS = 512  # CPython's FD_SETSIZE on Windows (Modules/selectmodule.c)
WAITRESS_OWN_SOCKETS = 2  # the listening socket and the trigger's (wake-up) socket
EVICT_AFTER = 1.0  # seconds a connection may read its request before it can be evicted
CLOSE_GRACE = 5.0  # seconds a 408 may take to leave before the socket is closed regardless
# a first body chunk up to this size leaves with the response's head in one send (issue 29);
# a larger one is sent after it, as waitress does, rather than copied to be joined
ONE_SEND_BYTES = 64 * 1024


@dataclass(frozen=True)
class ConnectionLimits:
    """The bounds (settings ``max_connections``, ``max_connections_per_address``,
    ``header_timeout``, ``min_upload_rate_kb``)."""

    total: int = 400
    per_address: int = 64
    header_timeout: float = 10.0
    min_body_rate: float = 10 * 1024  # bytes per second

    def for_platform(self, windows: bool = IS_WINDOWS) -> ConnectionLimits:
        """The caps as they can be kept here: under ``select()``'s limit on Windows, and the
        per-address cap never above the global one."""
        total = min(self.total, select_limit()) if windows else self.total
        if total < self.total:
            log.warning(
                "max_connections %d is more than select() can watch on Windows; using %d",
                self.total,
                total,
            )
        return ConnectionLimits(
            total, min(self.per_address, total), self.header_timeout, self.min_body_rate
        )


def select_limit() -> int:
    """The most connections waitress can watch with Windows' ``select()`` (512 sockets)."""
    return WINDOWS_SELECT_SOCKETS - WAITRESS_OWN_SOCKETS - 10  # 10 spare: a margin, not a need


def client_key(address: str) -> str:
    """The address counted against the per-address cap (an IPv6 client per /64)."""
    from winserve.web.throttle import client_key as key  # the token lockout counts alike

    return key(address)


def raise_descriptor_limit(connections: int) -> None:
    """Let the process hold three descriptors per connection and room for the rest (POSIX;
    on Windows sockets are handles, not C runtime descriptors, and have no such limit)."""
    if IS_WINDOWS:
        return
    import resource

    want = 3 * connections + 512
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= want:
        return
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):  # a platform that refuses: the cap stays, the risk is logged
        target = soft
    if target < want:
        log.warning(
            "only %d file descriptors may be open (ulimit -n); %d connections may need %d",
            target,
            connections,
            want,
        )


def _answer(status: str, message: str) -> bytes:
    body = ('{"error": "' + message + '"}\n').encode()
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\nServer: winserve\r\n\r\n"
    )
    return head.encode() + body


class _Held:
    """A channel's stand-in while a task writes its response's first part: what it writes is
    kept (``parts``); everything else is the channel's."""

    def __init__(self, channel: Any) -> None:
        self.parts: list[bytes] = []
        self._channel = channel

    def write_soon(self, data: bytes) -> int:
        self.parts.append(data)
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._channel, name)


class OneSendTask(WSGITask):  # type: ignore[misc]  # waitress is untyped
    """waitress's WSGI task, sending a response's head and its first body chunk together:
    waitress sends each at once (``send_bytes`` is 1): two ``send`` calls, two packets and
    two reads for the client, for a small JSON answer (issue 29). The head is waitress's
    own, built by its ``write`` with the channel's ``write_soon`` held back for that call."""

    channel: Any  # waitress's, set in its __init__

    def write(self, data: bytes) -> None:
        if self.wrote_header or not self.complete or len(data) > ONE_SEND_BYTES:
            super().write(data)
            return
        channel = self.channel
        held = _Held(channel)
        self.channel = held
        try:
            super().write(data)  # waitress's own: the head built, the body cut to its length
        finally:
            self.channel = channel
        if held.parts:
            channel.write_soon(b"".join(held.parts))


class BoundedChannel(HTTPChannel):  # type: ignore[misc]  # waitress is untyped
    """waitress's channel with a clock on the request it is reading."""

    server: BoundedServer
    task_class = OneSendTask

    def __init__(self, server: Any, sock: Any, addr: Any, adj: Any, map: Any = None) -> None:
        super().__init__(server, sock, addr, adj, map=map)
        self.key = ""  # set by the server once it has counted the connection
        self.accepted = time.monotonic()
        self.first = True  # nothing received yet: the first request's clock runs from accept
        self.reading: Any = None  # the parser of the request being read, None when idle
        self.started = self.accepted  # when that request began
        self.body_started: float | None = None
        self.body_bytes = 0
        self.idle_since = self.accepted
        self.timed_out: float | None = None

    def received(self, data: bytes) -> bool:
        now = time.monotonic()
        first, self.first = self.first, False
        result: bool = super().received(data)
        request = self.request
        if request is None:  # nothing partial: idle until the next request begins
            if self.reading is not None or first:
                self.idle_since = now
            self.reading = None
            return result
        if request is not self.reading:
            self.reading = request
            self.started = self.accepted if first else now
            self.body_started, self.body_bytes = None, 0
        if request.headers_finished:
            if self.body_started is None:
                self.body_started = now
            else:
                self.body_bytes += len(data)
        return result

    def busy(self) -> bool:
        """Answering a request, still sending its answer, or closing: no read bound applies,
        and the connection is never closed to make room (an answer would be cut)."""
        return bool(
            self.requests or self.total_outbufs_len or self.will_close or self.close_when_flushed
        )

    def overdue(self, now: float, limits: ConnectionLimits) -> str | None:
        """Why this connection's request is too slow to arrive, or None."""
        if self.busy():
            return None
        if self.reading is None:
            # Idle between requests is waitress's channel_timeout; before the first, the clock
            if self.first and now - self.accepted > limits.header_timeout:
                return f"no request within {limits.header_timeout:g} s"
            return None
        if not self.reading.headers_finished:
            if now - self.started > limits.header_timeout:
                return f"the headers took more than {limits.header_timeout:g} s"
            return None
        assert self.body_started is not None
        late = now - self.body_started - limits.header_timeout
        if late > 0 and self.body_bytes < limits.min_body_rate * late:
            return f"the body arrived slower than {limits.min_body_rate / 1024:g} KB/s"
        return None

    def progress(self, now: float) -> tuple[float, float] | None:
        """How fast this connection is reading its request (bytes/s, then -seconds), for
        choosing whom to close when the server is full; None: not to be closed."""
        if self.busy():
            return None
        if self.reading is None:
            since = self.accepted if self.first else self.idle_since
            return (0.0, -(now - since)) if now - since >= EVICT_AFTER else None
        age = now - self.started
        if age < EVICT_AFTER:
            return None
        received = self.reading.header_bytes_received + self.body_bytes
        return (received / age, -age)

    def time_out(self, now: float, why: str) -> None:
        """Answer 408 and close once it is written (no task runs: the outbuf is ours)."""
        log.debug("closing a slow connection from %s: %s", self.addr[0], why)
        self.timed_out = now
        answer = _answer("408 Request Timeout", f"request timeout: {why}")
        with self.outbuf_lock:
            self.outbufs[-1].append(answer)
            self.total_outbufs_len += len(answer)
        self.close_when_flushed = True

    def del_channel(self, map: Any = None) -> None:
        super().del_channel(map)
        if self.key:
            self.server.forget(self.key)
            self.key = ""


class BoundedServer(TcpWSGIServer):  # type: ignore[misc]  # waitress is untyped
    """waitress's TCP server with per-request read deadlines and per-address and global caps."""

    channel_class = BoundedChannel
    next_channel_cleanup = 0.0  # waitress's; typed here

    def __init__(self, *args: Any, limits: ConnectionLimits, **kw: Any) -> None:
        self.limits = limits
        self.per_address: collections.Counter[str] = collections.Counter()
        self.refused = 0  # connections closed at accept (per-address cap)
        self.evicted = 0  # slowest readers closed to make room
        self.timed_out = 0  # 408s for a deadline
        self.reported = (0, 0, 0)  # the counts above when the console was last told
        self.next_report = 0.0
        super().__init__(*args, **kw)

    def forget(self, key: str) -> None:
        self.per_address[key] -= 1
        if self.per_address[key] <= 0:
            del self.per_address[key]

    def channels(self) -> list[BoundedChannel]:
        return list(self.active_channels.values())

    def slowest(self, now: float) -> BoundedChannel | None:
        """The connection to close for a new one, when every slot is taken."""
        ranked = [(p, c) for c in self.channels() if (p := c.progress(now)) is not None]
        return min(ranked, key=lambda pair: pair[0])[1] if ranked else None

    def readable(self) -> bool:
        # waitress's own readable(), but a full server keeps accepting while a slot can be
        # freed: the backlog is where normal clients waited for ever (issue 28)
        now = time.time()
        if now >= self.next_channel_cleanup:
            self.next_channel_cleanup = now + self.adj.cleanup_interval
            self.maintenance(now)
        if not self.accepting:
            return False
        if len(self.active_channels) < self.limits.total:
            return True
        return self.slowest(time.monotonic()) is not None

    def handle_accept(self) -> None:
        try:
            accepted = self.accept()
            if accepted is None:
                return
            conn, addr = accepted
            self.set_socket_options(conn)
        except OSError:
            return  # as waitress: a client gone before its accept is not the server's fault
        key = client_key(addr[0]) if isinstance(addr, tuple) else "?"
        if self.per_address[key] >= self.limits.per_address:
            self.refused += 1
            _close_now(conn)
            return
        if len(self.active_channels) >= self.limits.total:
            victim = self.slowest(time.monotonic())
            if victim is None:  # every slot began answering since readable(): never above the cap
                _close_now(conn)
                return
            self.evicted += 1
            victim.handle_close()
        channel = self.channel_class(self, conn, addr, self.adj, map=self._map)
        channel.key = key
        self.per_address[key] += 1

    def maintenance(self, now: float) -> None:
        super().maintenance(now)  # waitress: idle keep-alive connections past channel_timeout
        clock = time.monotonic()
        for channel in self.channels():
            if channel.timed_out is not None:
                if clock - channel.timed_out > CLOSE_GRACE:  # a 408 the client never reads
                    channel.handle_close()
                continue
            why = channel.overdue(clock, self.limits)
            if why is not None:
                self.timed_out += 1
                channel.time_out(clock, why)
        self.report(clock)

    def report(self, clock: float) -> None:
        """Tell the console, at most once a minute, that connections were closed: an operator
        sees a flood (or a cap too small for a proxy) without a line per connection."""
        counts = (self.timed_out, self.refused, self.evicted)
        if counts == self.reported or clock < self.next_report:
            return
        late, refused, evicted = (a - b for a, b in zip(counts, self.reported, strict=True))
        log.warning(
            "connections closed: %d too slow to send their request (408), %d over "
            "max_connections_per_address, %d to make room under max_connections",
            late,
            refused,
            evicted,
        )
        self.reported, self.next_report = counts, clock + 60


def _close_now(conn: socket.socket) -> None:
    conn.close()  # nothing was read or written: the client sees the connection end


def create_server(app: Any, sock: socket.socket, limits: ConnectionLimits, **kw: Any) -> Any:
    """waitress's ``create_server`` for one listening socket, with the bounds above."""
    limits = limits.for_platform()
    raise_descriptor_limit(limits.total)
    kw.setdefault("cleanup_interval", 1)  # the deadlines are checked once a second
    adj = Adjustments(sockets=[sock], connection_limit=limits.total, **kw)
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(adj.threads)
    return BoundedServer(
        app,
        {},
        True,
        sock,
        dispatcher=dispatcher,
        adj=adj,
        bind_socket=False,
        sockinfo=(sock.family, sock.type, sock.proto, sock.getsockname()),
        limits=limits,
    )
