"""Run winserve: the backend, the Flask app under waitress, signals, and a clean stop.

The main thread runs waitress. A readiness thread waits for the model, then prints what is
served and opens the browser; if the first load fails it says why and stops the server. Ctrl+C
and SIGTERM give in-flight requests up to 2 s to finish, then the backend closes: requests
still waiting are answered, the model hosts are stopped (one that does not go within a second,
frozen or holding the GIL, is killed), and the exit code is 0.
"""

from __future__ import annotations

import _thread
import dataclasses
import errno
import logging
import signal
import socket
import sys
import threading
import time
import webbrowser
from typing import TYPE_CHECKING, Any, TextIO

from winserve import banner, model_file
from winserve.backends.base import Backend
from winserve.backends.local import LocalBackend
from winserve.backends.pool import PoolBackend
from winserve.dataplane import DataPlane
from winserve.load_progress import size_of, size_text
from winserve.model_info import ModelInfo, ModelSpec, sample_failed
from winserve.models import loader
from winserve.models.loader import LOAD_GRACE, MakeBackend
from winserve.models.registry import Registry
from winserve.platform import IS_WINDOWS
from winserve.predlog import events
from winserve.predlog.location import log_file
from winserve.predlog.writer import PredictionLog
from winserve.settings import Settings
from winserve.winconsole import install_close_handler

if TYPE_CHECKING:
    from winserve.connections import ConnectionLimits  # imports waitress: only once serving

log = logging.getLogger("winserve")


# waitress refuses bodies above its own limit with a plain-text 413 before the app sees them;
# its limit sits well above ours so that winserve's JSON 413, naming the setting, answers.
def waitress_body_limit(max_body_bytes: int) -> int:
    return 2 * max_body_bytes + 1024 * 1024


def connection_limits(settings: Settings) -> ConnectionLimits:
    """How many connections, from one address and in all, and how fast a request must arrive
    (issue 28: slow clients cannot starve the server; see winserve/connections.py)."""
    from winserve.connections import ConnectionLimits

    return ConnectionLimits(
        total=settings.max_connections,
        per_address=settings.max_connections_per_address,
        header_timeout=settings.header_timeout,
        min_body_rate=settings.min_upload_rate_kb * 1024,
    )


def model_spec(settings: Settings) -> ModelSpec:
    """What the model hosts load for the one model of ``settings`` as the operator named it
    (``winserve check``; serving loads a private copy, see ``winserve.models.loader``)."""
    from winserve import card

    found = card.load(settings.model, demo=settings.is_demo, quiet=True)
    return loader.model_spec(settings, settings.model, found)


def backend_maker(settings: Settings) -> MakeBackend:
    """How a model's backend is built: for the one file, and for each version in a folder."""

    def make(spec: ModelSpec, workers: int) -> Backend:
        if settings.in_process:
            return LocalBackend(spec)
        if settings.backend == "ray":
            return _ray(spec, workers, settings)
        return _pool(spec, workers, settings)

    return make


def _ray(spec: ModelSpec, workers: int, settings: Settings) -> Backend:
    from winserve.backends.ray.backend import RayBackend, RayOptions  # Ray itself: at start

    options = RayOptions(settings.ray_address, workers, settings.max_workers, settings.ray_cpus)
    return RayBackend(spec, options, **_queue_settings(settings))


def _queue_settings(settings: Settings) -> dict[str, Any]:
    """The pool's deadlines and batching, the same in front of local and of Ray replicas."""
    return {
        "timeout": settings.timeout,
        "load_timeout": settings.load_timeout,
        "max_batch_rows": settings.max_batch_rows,
        "max_batch_wait_ms": settings.max_batch_wait_ms,
        "max_batch_bytes": int(settings.max_batch_mb * 2**20),  # tensors and images (issue 24)
        "max_queue": settings.max_queue,
    }


def serving_where(settings: Settings, workers: int) -> str:
    """Where the replicas run, for the console."""
    if settings.in_process:
        return "in this process"
    if settings.backend == "ray":
        count = (
            f"1 to {settings.max_workers} replicas (autoscaled)"
            if workers == 0
            else f"{workers} replica{'s' if workers > 1 else ''}"
        )
        return f"{count} on the Ray cluster at {settings.ray_address}"
    return f"{workers} replica{'s' if workers > 1 else ''}"


def _pool(spec: ModelSpec, workers: int, settings: Settings) -> PoolBackend:
    from winserve.host.torch_device import replicas_for

    # device = "cuda" with one replica asked: one per visible GPU (issue 24)
    workers = replicas_for(spec.device, workers)
    return PoolBackend(spec, workers=workers, **_queue_settings(settings))


def listening_socket(host: str, port: int) -> socket.socket:
    """Bind exclusively: on Windows, waitress's SO_REUSEADDR would let a second server take
    a port already in use without an error, so winserve binds the socket itself."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        if IS_WINDOWS:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)  # type: ignore[attr-defined]
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
    except BaseException:
        sock.close()
        raise
    return sock


def configure_logging(level: str, stream: TextIO) -> None:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    )
    root = logging.getLogger("winserve")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    logging.getLogger("waitress").setLevel(logging.WARNING)


IN_FLIGHT_GRACE = 2.0  # seconds requests in flight get after Ctrl+C before the hosts stop


def install_signal_handlers(stopping: threading.Event) -> None:
    """Ctrl+C, SIGTERM (and Ctrl+Break) stop the server; ``stopping`` is set at once (the
    readiness thread's and the console-close handler's ``interrupt_main`` come here too)."""

    def interrupt(signum: int, frame: Any) -> None:
        stopping.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    if IS_WINDOWS:
        signal.signal(signal.SIGBREAK, interrupt)  # type: ignore[attr-defined]


def _close_backend_when_stopping(stopping: threading.Event, server: Any, backend: Any) -> None:
    """Requests in flight get ``IN_FLIGHT_GRACE``; then the backend closes, which answers those
    still waiting. waitress waits up to 5 s for them before ``serve`` goes on, and a host that
    holds the GIL or is frozen never answers them: without this, Ctrl+C took those 5 s and
    the hosts' stop after them (issue 13)."""
    stopping.wait()
    end = time.monotonic() + IN_FLIGHT_GRACE
    while server.task_dispatcher.threads and time.monotonic() < end:
        time.sleep(0.05)  # waitress's threads end as their requests do, once it stops
    backend.close()


def open_prediction_log(settings: Settings) -> PredictionLog | None:
    """The prediction log's writer, started (issue 26); None with ``log = false``."""
    path = log_file(settings)
    if path is None:
        return None
    writer = PredictionLog(
        path,
        days=settings.log_days,
        max_bytes=int(settings.log_max_mb * 1024 * 1024),
        keep_inputs=settings.log_inputs,
    )
    writer.start()  # the file is opened on the writer's thread: a bad disk never stops serving
    log.info("prediction log: %s", path)
    return writer


def serve(settings: Settings, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    configure_logging(settings.log_level, err)
    try:
        sock = listening_socket(settings.host, settings.port)
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1)):
            reason = (
                f"port {settings.port} is already in use (another winserve?); "
                "choose another with --port"
            )
        else:
            reason = f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}"
        print(f"winserve: {reason}", file=err, flush=True)
        return 1
    port = sock.getsockname()[1]
    # before the models load: their first "loaded" event is the timeline's first (issue 26)
    prediction_log = open_prediction_log(settings)
    # loads, restarts, failed loads: the monitor page's timeline (issue 26), until the close
    stop_events = events.listen(prediction_log.event) if prediction_log is not None else None
    registry = Registry(settings, backend_maker(settings))
    registry.sweep()  # what a killed winserve left: job files, model copies (issue 28)
    # Every model (a folder's, the one file, a factory, the demo) loads in a thread of its own,
    # (winserve/models/loader.py), while this process imports the web stack (issue 23)
    registry.start()
    from winserve import connections
    from winserve.web import create_app

    plane = DataPlane(registry)  # what the web side and the banner ask (issue 23)
    app = create_app(settings, plane=plane, prediction_log=prediction_log)
    server = connections.create_server(
        app,
        sock,
        connection_limits(settings),
        threads=settings.threads,
        channel_timeout=60,  # idle keep-alive connections; requests being read: connections.py
        max_request_body_size=waitress_body_limit(settings.max_upload_bytes),
        max_request_header_size=65536,
        expose_tracebacks=False,
        ident="winserve",
        asyncore_use_poll=True,
        asyncore_loop_timeout=1,
        clear_untrusted_proxy_headers=True,
    )
    from winserve.web import gate

    gate.install_waitress(server, app)  # bodies judged from their headers first (issue 28)
    failure: list[str] = []

    def when_ready() -> None:
        registry.wait_loaded(settings.load_timeout + LOAD_GRACE + 30)
        if stopping.is_set():  # stopped while loading: nothing was served (issue 22)
            return
        allowed = banner.access(settings)  # who may call: the tokens in force (issue 26)
        if settings.is_folder:
            print(banner.folder(plane.health(), settings.host, port, allowed), file=out, flush=True)
        else:
            info = _one_model_ready(registry, failure, err, banner.urls(settings.host, port)[0])
            if info is None:
                return
            print(
                banner.ready(
                    info, settings.host, port, serving_where(settings, settings.workers), allowed
                ),
                file=out,
                flush=True,
            )
        if settings.browser:
            webbrowser.open(banner.urls(settings.host, port)[0])
        if settings.watch:
            registry.watch()  # a changed file is loaded beside the old one (issue 15)
        elif not settings.is_folder and settings.model is not None:
            loaded = registry.status()[0].current
            if loaded is not None and loaded.sha256:  # --no-watch: say when the file changes
                threading.Thread(
                    target=model_file.watch,
                    args=(settings.model, loaded.sha256, stopped, log.warning),
                    name="winserve-model-file",
                    daemon=True,
                ).start()

    label = f"the models in {settings.model}" if settings.is_folder else model_spec(settings).label
    size = 0 if settings.is_folder else size_of(settings.model)  # its size, first (issue 24)
    shown = f"{label} ({size_text(size)})" if size else label
    print(f"winserve: loading {shown} …", file=out, flush=True)
    stopping = threading.Event()
    install_signal_handlers(stopping)
    threading.Thread(
        target=_close_backend_when_stopping,
        args=(stopping, server, registry),
        name="winserve-stopping",
        daemon=True,
    ).start()
    stopped = threading.Event()
    install_close_handler(_thread.interrupt_main, stopped)
    try:
        # Started inside the try: a load that fails at once interrupts this thread while it
        # is still starting the readiness thread, and that must end in the clean stop too.
        threading.Thread(target=when_ready, name="winserve-ready", daemon=True).start()
        server.run()  # returns after Ctrl+C / SIGTERM, in-flight requests finished (≤ 2 s)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl+C must not skip cleanup
        print("winserve: stopping …", file=out, flush=True)
        stopping.set()
        server.close()
        registry.close()  # every version's jobs and backend; waits for a close under way
        if stop_events is not None:
            stop_events()
        if prediction_log is not None:
            prediction_log.close()  # what is queued is written, within 2 s (issue 26)
        stopped.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)
    print("winserve: stopped.", file=out, flush=True)
    return 1 if failure else 0


def _one_model_ready(
    registry: Registry, failure: list[str], err: TextIO, url: str
) -> ModelInfo | None:
    """One model (a file, a factory, the demo) once its first load ended: its description for
    the banner; or None, with why on the console: a model that loads but fails its sample
    prediction stays up, not ready (its page and /health say why); any other failure stops
    the server with exit code 1 (``failure``)."""
    statuses = registry.status()
    model = statuses[0] if statuses else None
    if model is not None and model.current is not None and model.current.loaded:
        slot = registry.acquire(model.name)
        try:
            info = slot.info()
        finally:
            registry.release(slot)
        if slot.source is not None and info.source:  # the operator's file, not the copy
            info = dataclasses.replace(info, source=str(slot.source))
        return info
    reason = (model.reason if model is not None else "") or "the model did not load"
    failure.append(reason)
    if sample_failed(reason):
        # The model loads but cannot answer one row: stay up, not ready, so that
        # /health and the page say so too, while the console says what to do.
        print(
            f"winserve: {reason}\nwinserve: NOT serving predictions; /health and the page "
            f"at {url} say why. Press Ctrl+C to stop.",
            file=err,
            flush=True,
        )
        return None
    print(f"winserve: the model could not be loaded: {reason}", file=err, flush=True)
    _thread.interrupt_main()
    return None
