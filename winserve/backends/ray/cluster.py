"""The web process's connection to Ray and to Ray Serve: one per process, shared by every model.

``connect`` joins the cluster at the address given (``auto``: the one ``ray start`` made on
this machine or ``RAY_ADDRESS``; ``host:port``; ``local``: a Ray of winserve's own, stopped
at exit) and starts Serve without its HTTP proxy (winserve answers HTTP
itself). The last ``disconnect`` stops Serve only when winserve started it and no other
application is left, and Ray only when winserve started it: a cluster winserve joined is left
as it was.

Every wait here has a deadline: ``ray.init`` against an address nobody answers retries for
minutes, so the session runs in a thread of its own and is given up on.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from winserve.errors import ModelLoadError

log = logging.getLogger("winserve.ray")

CONNECT_SECONDS = 60.0  # ray.init of a local Ray took 15-23 s on a 2-core desktop
STOP_SECONDS = 10.0
T = TypeVar("T")


@dataclass(eq=False)
class Connection:
    address: str  # as given
    started_ray: bool  # winserve started this Ray (address "local")
    started_serve: bool  # Serve was not running before winserve came
    users: int = 0
    joined: str = ""  # the GCS address of the cluster joined
    error: str = ""
    thread: threading.Thread | None = None
    opened: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    stopped: threading.Event = field(default_factory=threading.Event)


_lock = threading.Lock()
_connection: Connection | None = None


def bounded(call: Callable[[], T], seconds: float, what: str) -> T:
    """``call()`` in a daemon thread, given up on after ``seconds`` (``TimeoutError``)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, name=f"winserve-ray-{what}", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TimeoutError(f"{what} did not finish within {seconds:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


def connect(address: str, timeout: float = CONNECT_SECONDS) -> Connection:
    """Join (or start) Ray and Serve; ``ModelLoadError`` naming the address if that fails."""
    global _connection
    with _lock:
        if _connection is None:
            _connection = _open(address, timeout)
        elif _connection.address != address:
            raise ModelLoadError(
                f"this winserve is connected to the Ray cluster at {_connection.address}; "
                f"it cannot use {address} as well"
            )
        _connection.users += 1
        return _connection


def _open(address: str, timeout: float) -> Connection:
    """Ray's session lives in a thread of its own from ``ray.init`` to ``ray.shutdown``: a local
    Ray's processes die with the thread that started them (Ray arms ``PR_SET_PDEATHSIG``)."""
    refused = _refused(address)
    if refused:  # at once, not after ray.init's minute of retries and warnings
        raise ModelLoadError(
            f"no Ray cluster answers at {address} ({refused}; setting: ray_address; is "
            f"`ray start --head` running there, and its port reachable from this machine?)"
        )
    connection = Connection(address, started_ray=address == "local", started_serve=False)
    thread = threading.Thread(
        target=_session, args=(connection,), name="winserve-ray-session", daemon=True
    )
    connection.thread = thread
    thread.start()
    if not connection.opened.wait(timeout):
        connection.stop.set()
        raise ModelLoadError(
            f"no Ray cluster answered at {address} in time "
            f"(setting: ray_address; is `ray start` running there, and its port reachable?"
            f"{_auth_hint()})"
        )
    if connection.error:
        raise ModelLoadError(connection.error)
    return connection


def _refused(address: str) -> str:
    """Why nothing accepts a connection at a HOST:PORT address ("" when something does, and
    for ``auto`` and ``local``)."""
    from winserve.settings import host_and_port

    parts = host_and_port(address)
    if parts is None:  # auto, local (the settings refused anything else)
        return ""
    try:
        socket.create_connection(parts, timeout=5.0).close()
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return ""


def _session(connection: Connection) -> None:
    import ray
    from ray import serve

    began = time.monotonic()
    address = connection.address
    options: dict[str, Any] = {
        "address": address,
        "log_to_driver": False,  # replicas' lines would interleave with winserve's console
        "logging_level": logging.ERROR,  # its notes on threads and tokens are not the user's
    }
    if connection.started_ray:
        options["include_dashboard"] = False
    # A driver that loses the cluster's GCS for 60 s is ended by Ray ("The program will
    # terminate"); winserve's web process must outlive a lost cluster and say so on /health
    os.environ.setdefault("RAY_gcs_rpc_server_reconnect_timeout_s", str(7 * 24 * 3600))
    try:
        context = ray.init(**options)
    except Exception as exc:
        connection.error = f"cannot connect to the Ray cluster at {address}: {exc}{_auth_hint()}"
        connection.opened.set()
        return
    connection.joined = str(getattr(context, "address_info", {}).get("gcs_address") or address)
    # Serve logs every call and every slow queue-length probe at INFO/WARNING: winserve says
    # what matters itself (console, /health)
    logging.getLogger("ray.serve").setLevel(logging.ERROR)
    try:
        connection.started_serve = not _serve_running()
        serve.start(http_options={"location": "NoServer"})
    except Exception as exc:
        connection.error = f"cannot start Ray Serve on the cluster at {address}: {exc}"
    else:
        joined = f" ({connection.joined})" if connection.joined != address else ""
        log.info("connected to Ray at %s%s in %.1f s", address, joined, time.monotonic() - began)
        _remove_stale_applications()
    connection.opened.set()
    if not connection.error:
        connection.stop.wait()
        if connection.started_serve and not connection.started_ray:
            try:
                if not serve.status().applications:
                    serve.shutdown()
            except Exception as exc:
                log.warning("could not stop Ray Serve on the cluster: %s", exc)
    try:
        ray.shutdown()
    except Exception as exc:
        log.warning("Ray did not shut down cleanly: %s", exc)
    if connection.started_ray:
        log.info("stopped the local Ray")
    connection.stopped.set()


def disconnect() -> None:
    """One user fewer; the last one leaves Ray as winserve found it."""
    global _connection
    with _lock:
        connection = _connection
        if connection is None:
            return
        connection.users -= 1
        if connection.users > 0:
            return
        _connection = None
    connection.stop.set()
    if not connection.stopped.wait(STOP_SECONDS):
        log.warning("Ray did not shut down within %g s", STOP_SECONDS)


_deploy_lock = threading.Lock()


def deploy(build: Callable[[], Any], name: str) -> Any:
    """Build the application and ``serve.run`` it, one model at a time: two models of a folder
    deployed at once raced inside Serve, which registers and unregisters its modules for
    pickling by value around each ("… request_router is not registered for pickle by value")."""
    from ray import serve

    with _deploy_lock:
        return serve.run(build(), name=name, route_prefix=None)


def _auth_hint() -> str:
    """What to check when a cluster refuses the connection and Ray's token auth is off here."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "token":
        return ""
    return (
        "; if the cluster uses Ray's token authentication (its `ray start` printed \"Token "
        'authentication is enabled"), set RAY_AUTH_MODE=token for winserve too, with the '
        "cluster's token in ~/.ray/auth_token or RAY_AUTH_TOKEN"
    )


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c == "-" else "-" for c in text)[:40]


def app_name(stem: str, number: int) -> str:
    """``winserve_<model>_<this machine>_<pid>_<n>``: unique per winserve process and model
    version, and telling which machine's winserve made it (see ``_remove_stale_applications``).
    No dots: Ray shortens an actor's process title to what follows the last dot."""
    return f"winserve_{_safe(stem)}_{_safe(socket.gethostname())}_{os.getpid()}_{number}"


def _remove_stale_applications() -> None:
    """Remove the Serve applications of a winserve of this machine that is no longer running
    (killed outright, it could not remove them): their replicas would hold the cluster's CPUs."""
    from ray import serve

    here = _safe(socket.gethostname())
    try:
        names = list(serve.status().applications)
    except Exception:
        return
    for name in names:
        parts = name.split("_")
        if len(parts) != 5 or parts[0] != "winserve" or parts[2] != here:
            continue
        pid = int(parts[3]) if parts[3].isdigit() else 0
        if pid and pid != os.getpid() and not _running(pid):
            log.warning("removing %s, left on the cluster by a winserve that was killed", name)
            try:
                serve.delete(name)
            except Exception as exc:
                log.warning("could not remove %s: %s", name, exc)


def _running(pid: int) -> bool:
    if sys.platform == "win32":  # os.kill(pid, 0) there sends Ctrl+C; Ray there is one PC
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: running
        return True
    return True


def _serve_running() -> bool:
    import ray

    try:
        ray.get_actor("SERVE_CONTROLLER_ACTOR", namespace="serve")
    except ValueError:
        return False
    return True
