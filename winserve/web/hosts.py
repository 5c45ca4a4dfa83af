"""The Host header check, against DNS rebinding (issue 13, item 4).

A web page on any domain can make its own name resolve to 127.0.0.1 (or a LAN address) and
then read this server's answers as if they were its own: same origin as far as the browser
knows. Its requests still carry that domain in ``Host``, so the server answers only to the
names it is known by: ``localhost``, ``127.0.0.1`` and ``[::1]`` on any port; when it listens
on the network also this machine's names and addresses; and the ``allowed_hosts`` setting.
A request without ``Host`` (HTTP/1.0, not a browser) cannot be a rebinding and passes.
"""

from __future__ import annotations

import contextlib
import socket

from flask import Flask, request

from winserve.banner import lan_addresses
from winserve.errors import WinserveError
from winserve.settings import Settings

LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
WILDCARDS = frozenset({"", "0.0.0.0", "::", "[::]"})
ALLOWED_KEY = "winserve.allowed_hosts"  # the names allowed, for the Origin check of /mcp
KNOWN_HEADERS = 64  # Host headers remembered as allowed (any client may send any, so bounded)


class HostNotAllowed(WinserveError):
    status = 400
    code = "host_not_allowed"


def _normal(name: str) -> str:
    """Lower case, no trailing dot, IPv6 addresses in brackets as a Host header has them."""
    name = name.strip().lower().rstrip(".")
    if ":" in name and not name.startswith("["):
        name = f"[{name}]"
    return name


def hostname(header: str) -> str:
    """The name in a Host header, without its port."""
    header = header.strip()
    if header.startswith("["):
        return _normal(header.partition("]")[0] + "]")
    name, _, port = header.rpartition(":")
    return _normal(name if name and port.isdigit() else header)


def machine_names() -> set[str]:
    """The names and addresses other machines reach this one by (no packets sent beyond DNS)."""
    names = set(lan_addresses())
    for lookup in (socket.gethostname, socket.getfqdn):
        with contextlib.suppress(OSError):
            names.add(lookup())
    return {_normal(n) for n in names if n}


def allowed_names(settings: Settings) -> frozenset[str] | None:
    """The names this server answers to; ``None`` when any name is allowed ("*")."""
    extra = {_normal(n) for n in settings.allowed_hosts}
    if "*" in extra:
        return None
    names = set(LOCAL_NAMES) | extra
    if settings.binds_lan:
        names |= machine_names()
        if settings.host.strip().lower() not in WILDCARDS:
            names.add(_normal(settings.host))
    return frozenset(names)


def is_allowed(name: str, allowed: frozenset[str]) -> bool:
    if name in allowed:
        return True
    # ".example.org" in allowed_hosts: that domain and every name under it
    return any(a.startswith(".") and (name.endswith(a) or name == a[1:]) for a in allowed)


def install(app: Flask, settings: Settings) -> None:
    allowed = allowed_names(settings)
    # /mcp checks a page's Origin against the same names (issue 27): looked up once
    app.extensions[ALLOWED_KEY] = allowed
    if allowed is None:
        return

    # the few Host headers a server sees, once found allowed, are not parsed again (issue 14)
    known: set[str] = set()

    @app.before_request
    def check_host() -> None:
        header = request.environ.get("HTTP_HOST")
        if header is None or header in known:
            return
        if is_allowed(hostname(header), allowed):
            if len(known) < KNOWN_HEADERS:
                known.add(header)
            return
        raise HostNotAllowed(
            f"this server does not answer to the host name {hostname(header)!r}: open it by "
            "an address it listens on (e.g. 127.0.0.1), or add the name to the setting "
            "allowed_hosts"
        )
