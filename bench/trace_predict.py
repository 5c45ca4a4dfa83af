"""What one prediction passes through: ``python bench/trace_predict.py [--verbose]``.

Issue 23's method, as a command, so "before" and "after" are one run each: start a real winserve
(the demo model, one replica) with a profile hook (``sys.setprofile`` and ``threading.setprofile``)
installed at start-up in the web process AND in its spawned model host, send warm-up requests,
then for each case arm the hook in both processes (SIGUSR1), send ONE request, disarm it and
read what each process recorded::

    this script ── SIGUSR1 (arm) ──► web process ──────── proxy ───────► model host
                │                    (every thread)                     (every thread)
                └─ one POST ───────► records calls  ─── pickled payload ─► records calls
                └─ SIGUSR1 (disarm) ► each writes its calls to TRACE_PREDICT_DIR/<pid>.json

The table counts, per process:

- **functions, modules**: distinct Python functions of ``winserve/`` that ran (and their files);
- **form changes**: the times the rows are rebuilt in another shape: JSON text decoded or
  encoded (``JSONDecoder.decode``, ``JSONEncoder.encode``), a pickle written or read (the
  process boundary), and these calls made from winserve code:
  ``numpy.array``/``asarray``/``ascontiguousarray``/``frombuffer``/``concatenate``,
  ``ndarray.copy``/``tobytes``/``tolist``/``reshape``/``astype``, a pandas ``DataFrame``;
- **copies**: of those, the ones that copy a matrix (``ndarray.copy``, ``ndarray.tobytes``,
  ``ascontiguousarray``);
- **finiteness checks**: the winserve functions that check the numbers are finite: those
  calling ``sum`` (of the values: NaN or an infinity makes it so), ``math.isfinite``,
  ``ndarray.all`` (as in ``np.isfinite(m).all()``) or ``ndarray.max`` (the host's float32
  range check, ``np.abs(m).max()``).

A second table splits each process's modules into the request's **own path** (what a newcomer
follows from the view to the model and back: issue 23 asks for at most 8) and the **hooks
every route runs** (``HOOKS``: the connection's bounds, the gate, the throttle, the Host check,
auth, the request's id and metrics, the version it holds, the prediction log, the app's own
glue and its dispatch of those hooks), by module: ``web/held.py`` counts as a hook though the
view calls its ``held()`` (it is the hook that takes and releases the version), and a module
of the own path a hook also calls (``dataplane``'s release) stays on the own path.

These are counted from what ran, not written down, so a change to the request path moves them;
``--verbose`` lists every function and every counted call. NumPy's ufuncs (``np.isfinite``
itself) are invisible to a profile hook; the ``.all()``/``.max()`` that follows them is not.
The demo model's columns are all numbers: the fast path a matrix takes. Linux only (SIGUSR1).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PACKAGE = str(ROOT / "winserve") + os.sep
ENV = "TRACE_PREDICT_DIR"  # not WINSERVE_*: winserve refuses unknown ones
# requests of each case before tracing, over THREADS waitress threads: imports made, caches
# filled, and every thread's connection to the host open (a first call opens one)
WARMUP, THREADS = 100, 4
# traces of each case, the one with the fewest functions shown: a thread of the server that
# wakes up inside the window (a replica's dispatcher, the accept loop) adds its own calls
TRIES = 3
COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
ROW = [5.1, 3.5, 1.4, 0.2]
CASES = {
    "POST /predict (1 record)": ("/predict", dict(zip(COLUMNS, ROW, strict=True))),
    "POST /invocations (dataframe_split)": (
        "/invocations",
        {"dataframe_split": {"columns": COLUMNS, "data": [ROW]}},
    ),
    # the same record at the model's own route (the demo is served as "iris-demo"; issue 23)
    "POST /models/<name>/predict (1 record)": (
        "/models/iris-demo/predict",
        dict(zip(COLUMNS, ROW, strict=True)),
    ),
}
FORMS = {  # calls from winserve code that rebuild rows in another shape
    "numpy.array",
    "numpy.asarray",
    "numpy.ascontiguousarray",
    "numpy.frombuffer",
    "numpy.concatenate",
    "ndarray.copy",
    "ndarray.tobytes",
    "ndarray.tolist",
    "ndarray.reshape",
    "ndarray.astype",
    "pandas.DataFrame",
}
COPIES = {"ndarray.copy", "ndarray.tobytes", "numpy.ascontiguousarray"}
FINITE = {"builtins.sum", "math.isfinite", "ndarray.all", "ndarray.max"}
# called from anywhere: the pickles across the process boundary (the host answers through
# ForkingPickler), the JSON text of the body and of the answer
BOUNDARY = {"pickle.dumps", "pickle.loads", "Pickler.dump", "ForkingPickler.dump"}
JSON = {"JSONDecoder.decode", "JSONEncoder.encode"}
# the modules of the hooks every route runs (Flask's before/after/teardown hooks, waitress's
# channel and parser), by hook; the rest of what ran is the request's own path
HOOKS = {
    "connections": ("connections.py",),
    "gate": ("web/gate.py",),
    "throttle": ("web/throttle.py",),
    "hosts": ("web/hosts.py",),
    "auth": ("web/auth.py",),
    "observe": ("web/observe.py",),
    "held": ("web/held.py",),
    "log": ("web/prediction_log.py", "predlog/record.py", "predlog/writer.py"),
    # the app's glue, and its per-request dispatch specialised for those hooks (issue 29)
    "app": ("web/app.py", "web/dispatch.py"),
}
HOOK_MODULES = {module for modules in HOOKS.values() for module in modules}


# ---- the hook, installed by the sitecustomize this script writes (web process and hosts) ----

# ("py", file, function, caller's file) or ("c", caller, C function, caller's file)
_events: list[tuple[str, str, str, str]] = []
_armed = [False]


def _name(function: Any) -> str:
    owner = getattr(function, "__self__", None)
    qualname = getattr(function, "__qualname__", None) or getattr(function, "__name__", "?")
    if owner is None or isinstance(owner, type(os)):
        module = getattr(owner, "__name__", None) or getattr(function, "__module__", None) or ""
        module = {"_pickle": "pickle", "numpy.core.multiarray": "numpy"}.get(module, module)
        if module.startswith("numpy"):
            module = "numpy"
        return f"{module}.{qualname}"
    return str(qualname)


def _profile(frame: Any, event: str, arg: Any) -> None:
    if not _armed[0]:
        return
    if event == "call":
        code = frame.f_code
        caller = frame.f_back.f_code.co_filename if frame.f_back else ""
        _events.append(("py", code.co_filename, code.co_qualname, caller))
    elif event == "c_call":
        code = frame.f_code
        _events.append(("c", code.co_qualname, _name(arg), code.co_filename))


def _toggle(signum: int, frame: Any) -> None:
    folder = Path(os.environ[ENV])
    if not _armed[0]:
        _events.clear()
        _armed[0] = True
        (folder / f"{os.getpid()}.armed").touch()
        return
    _armed[0] = False
    record = {"pid": os.getpid(), "argv": sys.argv, "events": list(_events)}
    target = folder / f"{os.getpid()}.json"
    target.with_suffix(".tmp").write_text(json.dumps(record))
    target.with_suffix(".tmp").replace(target)


def install() -> None:
    """Called at every start-up of a Python process of the traced server (sitecustomize)."""
    signal.signal(signal.SIGUSR1, _toggle)
    sys.setprofile(_profile)
    threading.setprofile(_profile)


# ---- the run ----


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def post(url: str, body: Any) -> bytes:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: bytes = response.read()
        return answer


def wait_for(condition: Any, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.02)
    raise RuntimeError(f"trace: timed out waiting for {what}")


def hosts_of(pid: int) -> list[int]:
    import psutil

    found = []
    for child in psutil.Process(pid).children(recursive=True):
        with_cmdline = " ".join(child.cmdline())
        # the prediction log's writer (issue 26, named so on Linux) is a helper, not a host:
        # it writes the records after the answer has gone, off the request's path
        if child.name() == "winserve-log":
            continue
        if "spawn_main" in with_cmdline and "resource_tracker" not in with_cmdline:
            found.append(child.pid)
    return found


def traced(folder: Path, pids: list[int], send: Any) -> dict[int, list[list[str]]]:
    """Arm the hook in ``pids``, run ``send()``, disarm, and read each process's calls."""
    for stale in folder.glob("*.*"):
        stale.unlink()
    for pid in pids:
        os.kill(pid, signal.SIGUSR1)
    wait_for(lambda: all((folder / f"{p}.armed").exists() for p in pids), 10, "arming")
    send()
    time.sleep(0.05)  # the host's answer is back; let the web thread finish its response
    for pid in pids:
        os.kill(pid, signal.SIGUSR1)
    wait_for(lambda: all((folder / f"{p}.json").exists() for p in pids), 10, "the traces")
    return {p: json.loads((folder / f"{p}.json").read_text())["events"] for p in pids}


def count(events: list[list[str]]) -> dict[str, Any]:
    functions: Counter[str] = Counter()
    modules: set[str] = set()
    forms: Counter[str] = Counter()
    checks: set[str] = set()  # the winserve functions that check finiteness
    for kind, file, name, caller in events:
        ours = caller.startswith(PACKAGE)
        if kind == "py":
            if file.startswith(PACKAGE):
                module = file[len(PACKAGE) :].replace(os.sep, "/")
                functions[f"{module}:{name}"] += 1
                modules.add(module)
            elif name in JSON and f"{os.sep}json{os.sep}" in file:
                forms[name] += 1
            elif ours and name == "DataFrame.__init__":
                forms["pandas.DataFrame"] += 1
        elif name in BOUNDARY or (ours and (name in FORMS or name in FINITE)):
            forms[name] += 1
            if name in FINITE:
                checks.add(f"{caller[len(PACKAGE) :]}:{file}")
    changes = sum(n for k, n in forms.items() if k in FORMS | BOUNDARY | JSON)
    return {
        "functions": functions,
        "modules": modules,
        "forms": forms,
        "changes": changes,
        "copies": sum(n for k, n in forms.items() if k in COPIES),
        "finite": len(checks),
        "checks": sorted(checks),
    }


def split(found: dict[str, Any]) -> dict[str, Any]:
    """``found`` (a process's ``count``) split into the request's own path and the hooks
    every route runs: each side's modules and functions."""
    own = sorted(m for m in found["modules"] if m not in HOOK_MODULES)
    hooks = sorted(m for m in found["modules"] if m in HOOK_MODULES)
    functions = [f for f in found["functions"] if f.split(":", 1)[0] not in HOOK_MODULES]
    return {
        "own": own,
        "hooks": hooks,
        "own_functions": len(functions),
        "hook_functions": len(found["functions"]) - len(functions),
    }


def path_table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    """The request's own path vs the hooks every route runs, per process and in all."""
    head = (
        "| request | process | own path: modules | own path: functions "
        "| hooks every route runs: modules | hooks: functions |"
    )
    lines = [head, "|---|---|---:|---:|---:|---:|"]
    for case, by_process in results.items():
        own: set[str] = set()
        hooks: set[str] = set()
        sums = Counter[str]()
        for process, found in by_process.items():
            parts = split(found)
            own |= {f"{process}:{m}" for m in parts["own"]}
            hooks |= {f"{process}:{m}" for m in parts["hooks"]}
            sums["own"] += parts["own_functions"]
            sums["hook"] += parts["hook_functions"]
            lines.append(
                f"| {case} | {process} | {len(parts['own'])} | {parts['own_functions']} "
                f"| {len(parts['hooks'])} | {parts['hook_functions']} |"
            )
        lines.append(
            f"| {case} | **both** | **{len(own)}** | **{sums['own']}** | **{len(hooks)}** "
            f"| **{sums['hook']}** |"
        )
    return "\n".join(lines)


def path_lists(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Each case's own path, module by module, per process (the hooks' modules after)."""
    out = []
    for case, by_process in results.items():
        out.append(f"{case}:")
        for process, found in by_process.items():
            parts = split(found)
            out.append(f"  own path, {process}: " + ", ".join(_short(parts["own"])))
            if parts["hooks"]:
                out.append(f"  hooks, {process}: " + ", ".join(_short(parts["hooks"])))
    return "\n".join(out)


def _short(modules: list[str]) -> list[str]:
    return [m.removesuffix(".py") for m in modules]


def table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    head = (
        "| request | process | winserve functions | modules | form changes | matrix copies "
        "| finiteness checks |"
    )
    lines = [head, "|---|---|---:|---:|---:|---:|---:|"]
    for case, by_process in results.items():
        total_functions: set[str] = set()
        total_modules: set[str] = set()
        sums = Counter[str]()
        for process, found in by_process.items():
            total_functions |= set(found["functions"])
            total_modules |= found["modules"]
            for key in ("changes", "copies", "finite"):
                sums[key] += found[key]
            lines.append(
                f"| {case} | {process} | {len(found['functions'])} | {len(found['modules'])} "
                f"| {found['changes']} | {found['copies']} | {found['finite']} |"
            )
        lines.append(
            f"| {case} | **both** | **{len(total_functions)}** | **{len(total_modules)}** "
            f"| **{sums['changes']}** | **{sums['copies']}** | **{sums['finite']}** |"
        )
    return "\n".join(lines)


def details(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    out = []
    for case, by_process in results.items():
        for process, found in by_process.items():
            out.append(f"\n## {case}: {process}")
            out.append("modules: " + ", ".join(sorted(found["modules"])))
            for name, calls in found["functions"].items():  # in the order they first ran
                out.append(f"  {calls:3d} × {name}")
            out.append(
                "counted calls: " + ", ".join(f"{k} ×{n}" for k, n in found["forms"].items())
            )
            out.append("finiteness checked in: " + (", ".join(found["checks"]) or "none"))
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="list every function and call")
    args = parser.parse_args()
    if not hasattr(signal, "SIGUSR1"):
        print("trace: needs SIGUSR1 (Linux, macOS)", file=sys.stderr)
        return 2
    results = trace()
    print(table(results))
    print()
    print(path_table(results))
    print()
    print(path_lists(results))
    if args.verbose:
        print(details(results))
    return 0


def trace() -> dict[str, dict[str, dict[str, Any]]]:
    """Each case's counts (``count``) by process ("web", "model host"), from a real server."""
    with tempfile.TemporaryDirectory(prefix="winserve-trace-") as work:
        folder = Path(work)
        hook = folder / "hook"
        hook.mkdir()
        (hook / "sitecustomize.py").write_text(
            "import os\n"
            f"if os.environ.get({ENV!r}):\n"
            "    import trace_predict\n"
            "    trace_predict.install()\n"
        )
        events = folder / "events"
        events.mkdir()
        port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(hook), str(HERE), str(ROOT)]),
            ENV: str(events),
            "WINSERVE_THREADS": str(THREADS),
        }
        command = [sys.executable, "-m", "winserve", "--port", str(port), "--no-browser"]
        command += ["--workers", "1", "--log-level", "warning"]
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: _ready(url, proc), 180, "the server")
            pids = [proc.pid, *hosts_of(proc.pid)]
            if len(pids) != 2:
                raise RuntimeError(f"trace: expected one model host, found {pids[1:]}")
            roles = {proc.pid: "web", pids[1]: "model host"}
            results: dict[str, dict[str, dict[str, Any]]] = {}
            for case, (path, body) in CASES.items():
                for _ in range(WARMUP):
                    post(url + path, body)
                answers: list[bytes] = []
                tries = []
                for _ in range(TRIES):
                    send = functools.partial(_send, url + path, body, answers)
                    found = traced(events, pids, send)
                    tries.append({roles[p]: count(e) for p, e in found.items()})
                print(f"trace: {case} → {answers[0][:80]!r}", file=sys.stderr)
                results[case] = min(tries, key=_functions)
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
    return results


def _send(url: str, body: Any, answers: list[bytes]) -> None:
    answers.append(post(url, body))


def _functions(by_process: dict[str, dict[str, Any]]) -> int:
    return sum(len(found["functions"]) for found in by_process.values())


def _ready(url: str, proc: subprocess.Popen[bytes]) -> bool:
    if proc.poll() is not None:
        raise RuntimeError(f"trace: the server exited with {proc.returncode}")
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
