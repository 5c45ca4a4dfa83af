"""The web app's own CPU per request, no server, no model host: ``python bench/app_cpu.py``.

What Flask, werkzeug and winserve's hooks cost a ``POST /predict`` (issue 29), measured so that
a busy machine moves it little: the real app (``create_app``, the settings a user runs with,
the prediction log's hook on) over bench/run.py's logistic regression loaded in this process,
whose ``predict`` answers at once with a fixed prediction (the model host's round trip is
B's; the view's decoding and validation run as usual). Each round makes ``--requests`` WSGI
calls with a fresh environ and reads the answer; the figure is ``time.process_time`` per call,
best of ``--rounds``. ``--calls`` also counts the Python function calls of one request
(``sys.setprofile``), by package, which a busy machine does not move at all.

::

    this script ── environ ──► app(environ, start_response) ──► hooks, view, service ──►
                                                                backend.predict: [0] at once
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def train_logistic(folder: Path) -> tuple[Path, bytes]:
    """bench/run.py's logistic regression (30 columns), and its first row as a record."""
    import joblib
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer(as_frame=True)
    x, y = data.data, data.target
    path = folder / "logistic.joblib"
    joblib.dump(make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(x, y), path)
    return path, json.dumps(x.iloc[[0]].to_dict(orient="records")).encode()


def make_app(folder: Path, log: bool, token: str = "") -> tuple[Any, bytes]:
    """The app a user runs over bench/run.py's logistic regression, and one row's body."""
    from winserve.backends.base import Prediction
    from winserve.backends.local import LocalBackend
    from winserve.model_info import ModelSpec
    from winserve.settings import Settings
    from winserve.web import create_app

    model, body = train_logistic(folder)
    answer = Prediction([0])

    class AtOnce(LocalBackend):
        def predict(self, payload: Any, proba: bool = False, scores: bool = False) -> Prediction:
            return answer

    backend = AtOnce(ModelSpec(path=str(model)))
    backend.start()
    backend.wait_ready(60)
    settings = Settings(model=model, token=token)
    plog = Sink() if log else None
    return create_app(settings, backend, prediction_log=plog), body  # type: ignore[arg-type]


class Sink:
    """The prediction log's queue, without its writer process: entries counted, dropped."""

    def __init__(self) -> None:
        self.entries = 0

    def put(self, entry: Any) -> None:
        self.entries += 1

    def status(self) -> Any:
        raise NotImplementedError


def environ(body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """What waitress hands the app for one keep-alive POST /predict from 127.0.0.1."""
    env = {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/predict",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_SOFTWARE": "waitress",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_HOST": "127.0.0.1",
        "REMOTE_PORT": "50000",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "wsgi.file_wrapper": None,
    }
    env.update({"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()})
    return env


def call(app: Any, base: dict[str, Any], body: bytes) -> tuple[str, bytes]:
    env = dict(base)
    env["wsgi.input"] = io.BytesIO(body)
    status: list[str] = []

    def start_response(s: str, headers: Any, exc_info: Any = None) -> Any:
        status.append(s)

    result = app(env, start_response)
    try:
        data = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return status[0], data


def per_call(app: Any, base: dict[str, Any], body: bytes, requests: int) -> float:
    started = time.process_time()
    for _ in range(requests):
        call(app, base, body)
    return (time.process_time() - started) / requests


def calls_by_package(app: Any, base: dict[str, Any], body: bytes) -> collections.Counter[str]:
    counted: collections.Counter[str] = collections.Counter()

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            name = frame.f_code.co_filename
            for package in ("winserve", "flask", "werkzeug", "prometheus_client", "json"):
                if f"/{package}/" in name:
                    counted[package] += 1
                    return
            counted["other"] += 1
        elif event == "c_call":
            counted["(C functions)"] += 1

    sys.setprofile(profile)
    try:
        call(app, base, body)
    finally:
        sys.setprofile(None)
    return counted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="WSGI calls per round")
    parser.add_argument("--rounds", type=int, default=7, help="rounds; the best is shown")
    parser.add_argument("--no-log", action="store_true", help="the prediction log off")
    parser.add_argument("--token", default="", help="a token set, and sent as Bearer")
    parser.add_argument("--calls", action="store_true", help="count one request's calls")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="winserve-app-cpu-") as folder:
        app, body = make_app(Path(folder), not args.no_log, args.token)
        headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
        base = environ(body, headers)
        status, data = call(app, base, body)
        if not status.startswith("200"):
            print(f"app_cpu: {status} {data[:300]!r}", file=sys.stderr)
            return 1
        per_call(app, base, body, 300)  # warm: imports, caches
        if args.calls:
            counted = calls_by_package(app, base, body)
            print(json.dumps(dict(counted.most_common()), indent=1))
            print(f"python calls: {sum(v for k, v in counted.items() if not k.startswith('('))}")
        rounds = [per_call(app, base, body, args.requests) for _ in range(args.rounds)]
        shown = " ".join(f"{r * 1e6:.1f}" for r in rounds)
        print(f"µs of CPU per POST /predict: best {min(rounds) * 1e6:.1f} (rounds: {shown})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
