"""Windows-only code paths, run by Windows CPython: in CI's wine lane (``tests/test_windows.py``
starts this file under wine) and on a real Windows runner. Skipped elsewhere."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "win32", reason="Windows CPython only")

ROOT = Path(__file__).resolve().parents[2]


def test_the_manager_listens_on_a_named_pipe_with_spawn() -> None:
    import pickle

    from winserve.backends.proxy import HostManager, connect

    manager = HostManager(ctx=multiprocessing.get_context("spawn"))
    manager.start()
    try:
        assert str(manager.address).startswith("\\\\.\\pipe\\")
        assert manager._ctx.get_start_method() == "spawn"  # type: ignore[attr-defined]
        host = manager.ModelHost()  # type: ignore[attr-defined]
        # one call as a replica makes it (backends/replica.py): winserve's own connection to
        # the host over the named pipe, the request as pickled bytes, the answer received
        conn = connect(host, "pid", 30)
        try:
            conn.send_bytes(pickle.dumps((host._id, "pid", (), {})))
            assert conn.poll(30), "the model host did not answer over the named pipe"
            kind, pid = conn.recv()
        finally:
            conn.close()
        assert kind == "#RETURN"
        assert isinstance(pid, int) and pid != os.getpid()
    finally:
        manager.shutdown()


def test_a_model_host_loads_and_predicts_over_the_pipe(tmp_path: Path) -> None:
    from winserve.backends.pool import PoolBackend
    from winserve.model_info import ModelSpec

    backend = PoolBackend(ModelSpec(factory="tests.models:chaos"), timeout=20)
    backend.start()
    try:
        info = backend.wait_ready(120)
        assert info.feature_names == ["a", "b"]
        matrix = __import__("numpy").array([[1.0, 2.0], [3.0, 4.0]])
        assert backend.predict({"matrix": matrix}).predictions == [3.0, 7.0]
    finally:
        backend.close()
    assert backend.health().status == "stopped"


def test_a_second_server_cannot_take_a_port_in_use() -> None:
    from winserve.server import listening_socket

    first = listening_socket("127.0.0.1", 0)
    port = first.getsockname()[1]
    try:
        with pytest.raises(OSError) as caught:
            listening_socket("127.0.0.1", port).close()
        assert caught.value.errno in (10048, 98) or caught.value.winerror == 10048  # type: ignore[attr-defined]
    finally:
        first.close()


def test_the_console_close_handler_registers() -> None:
    from winserve import winconsole

    stopped = threading.Event()
    assert winconsole.install_close_handler(lambda: None, stopped) is True
    # Delivering CTRL_CLOSE_EVENT needs a real console window being closed; the handler's logic
    # is tested on every OS in tests/test_platform.py.


def test_a_child_in_the_job_dies_with_the_job() -> None:
    """Kill-on-close: closing the job handle (what Windows does when winserve dies, however it
    dies) ends every process in the job."""
    from winserve import winjob

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        kernel32 = winjob._kernel32()
        job = winjob._create_job(kernel32)
        handle = kernel32.OpenProcess(
            winjob.PROCESS_SET_QUOTA | winjob.PROCESS_TERMINATE, False, child.pid
        )
        assert handle, ctypes.get_last_error()
        assert kernel32.AssignProcessToJobObject(job, handle), ctypes.get_last_error()
        kernel32.CloseHandle(handle)
        kernel32.CloseHandle(job)
        end = time.monotonic() + 10
        while child.poll() is None and time.monotonic() < end:
            time.sleep(0.05)
        assert child.poll() is not None, "the child outlived its kill-on-close job"
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(10)


def test_adopt_child_puts_a_real_process_in_the_job() -> None:
    from winserve import platform

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        platform.adopt_child(child.pid)  # raises WinError if Windows refuses
    finally:
        child.kill()
        child.wait(10)


def test_freeze_support_entry_point_is_import_safe() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import winserve.__main__, winserve.service; print('quiet')"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0 and result.stdout.strip() == "quiet", result.stderr


def test_a_notebook_function_comes_from_the_code_file_in_a_folder_with_spaces(
    tmp_path: Path,
) -> None:
    """On Windows the spawned host's ``__main__`` is ``__mp_main__``: the model's reference to
    the training notebook's function must still be found in ``<name>_code.py``."""
    from winserve.backends.pool import PoolBackend
    from winserve.errors import ModelLoadError
    from winserve.model_info import ModelSpec

    folder = tmp_path / "My Models"
    folder.mkdir()
    model = folder / "churn model.joblib"
    script = (
        "import joblib, numpy as np\n"
        "from sklearn.linear_model import LinearRegression\n"
        "from sklearn.pipeline import make_pipeline\n"
        "from sklearn.preprocessing import FunctionTransformer\n"
        "def double(x):\n    return x * 2\n"
        "X = np.arange(20, dtype=float).reshape(10, 2)\n"
        "m = make_pipeline(FunctionTransformer(double), LinearRegression()).fit(X, X.sum(1) * 2)\n"
        f"joblib.dump(m, {str(model)!r})\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)

    def serve() -> list[float]:
        backend = PoolBackend(ModelSpec(str(model)), timeout=20)
        backend.start()
        try:
            backend.wait_ready(180)
            matrix = __import__("numpy").array([[1.0, 2.0]])
            return list(backend.predict({"matrix": matrix}).predictions)
        finally:
            backend.close()

    expected = re.escape("in churn model_code.py next to churn model.joblib")
    with pytest.raises(ModelLoadError, match=expected):
        serve()
    code = "def double(x):\n    return x * 2\n"
    (folder / "churn model_code.py").write_text(code, encoding="utf-8")
    assert serve() == pytest.approx([6.0])


FIDELITY_SCRIPT = """
import joblib, numpy as np, pandas as pd, sys
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
rng = np.random.default_rng(0)
frame = pd.DataFrame({"x": rng.normal(size=200), "plan": rng.choice(["a", "b", "c"], 200)})
frame.loc[::5, "x"] = np.nan
frame.loc[::7, "plan"] = np.nan
y = np.where(frame["x"].fillna(0) + (frame["plan"] == "b") > 0.4, "yes", "no")
cat = make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore"))
prepare = ColumnTransformer([("x", SimpleImputer(), ["x"]), ("plan", cat, ["plan"])])
model = make_pipeline(prepare, LogisticRegression()).fit(frame, y)
joblib.dump(model, sys.argv[1])
rows = pd.DataFrame({"x": [np.nan, 0.5, np.nan], "plan": [np.nan, "b", "c"]})
joblib.dump(model.predict_proba(rows).tolist(), sys.argv[2])
texts = ["good value", "bad quality", "great", "awful"] * 5
text = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(texts, [1, 0, 1, 0] * 5)
joblib.dump(text, sys.argv[3])
"""


def test_missing_values_and_a_text_model_are_answered_as_in_process(tmp_path: Path) -> None:
    """Issue 12 on Windows CPython with the lane's pinned pandas and scikit-learn: NaN for a
    missing value reaches an imputer pipeline, and a raw-text pipeline takes plain texts."""
    import joblib
    import numpy as np

    from winserve.backends.pool import PoolBackend
    from winserve.model_info import ModelSpec

    model, expected, text = (tmp_path / n for n in ("m.joblib", "want.joblib", "t.joblib"))
    subprocess.run(
        [sys.executable, "-c", FIDELITY_SCRIPT, str(model), str(expected), str(text)],
        check=True,
        timeout=300,
    )
    backend = PoolBackend(ModelSpec(str(model)), timeout=20)
    backend.start()
    try:
        info = backend.wait_ready(180)
        assert {f.name: f.missing for f in info.features} == {"x": "accepted", "plan": "accepted"}
        columns = {"x": [np.nan, 0.5, np.nan], "plan": [np.nan, "b", "c"]}
        got = backend.predict({"columns": columns}, proba=True).probabilities
    finally:
        backend.close()
    assert np.allclose(got, joblib.load(expected), rtol=0, atol=1e-12)
    backend = PoolBackend(ModelSpec(str(text)), timeout=20)
    backend.start()
    try:
        info = backend.wait_ready(180)
        assert info.text_input and info.feature_names == ["text"]
        answer = backend.predict({"columns": {"text": ["good", "awful"]}}).predictions
    finally:
        backend.close()
    assert answer == [1, 0]


def test_a_model_holding_the_gil_is_cut_at_the_deadline_and_replaced() -> None:
    """Issue 13: a model call that never releases the GIL (a regular expression backtracking
    for hours) gets its 504 at the deadline; TerminateProcess ends the host without a call
    into it, and a new host serves."""
    import numpy as np

    from tests.models import GIL_HOG
    from winserve.backends.pool import PoolBackend
    from winserve.errors import ModelTimeout
    from winserve.model_info import ModelSpec

    backend = PoolBackend(ModelSpec(factory="tests.models:gil_hog"), timeout=3)
    backend.start()
    try:
        backend.wait_ready(120)
        old = backend.health().replicas[0].pid
        started = time.monotonic()
        with pytest.raises(ModelTimeout, match="did not answer within 3 s"):
            backend.predict({"matrix": np.array([[GIL_HOG, 1.0]])})
        waited = time.monotonic() - started
        assert waited < 3 + 2, waited
        end = time.monotonic() + 120
        while time.monotonic() < end:
            health = backend.health()
            if health.status == "ready" and health.replicas[0].pid != old:
                break
            time.sleep(0.1)
        assert backend.health().status == "ready", backend.health()
        assert backend.health().replicas[0].restarts == 1
        assert backend.predict({"matrix": np.array([[1.0, 2.0]])}).predictions == [3.0]
        back = time.monotonic() - started - waited
        print(f"GIL hog: 504 after {waited:.2f} s, serving again {back:.2f} s later")
    finally:
        started = time.monotonic()
        backend.close()
        assert time.monotonic() - started < 10


WEB_PROCESS_WITH_A_GIL_HOG = """
import sys, threading, time
sys.path.insert(0, sys.argv[1])  # the checkout: tests.models for the host to import
import numpy as np
from tests.models import GIL_HOG
from winserve.backends.pool import PoolBackend
from winserve.model_info import ModelSpec

backend = PoolBackend(ModelSpec(factory="tests.models:gil_hog"), timeout=120)
backend.start()
backend.wait_ready(120)
print(backend.health().replicas[0].pid, flush=True)
hog = threading.Thread(
    target=backend.predict, args=({"matrix": np.array([[GIL_HOG, 1.0]])},), daemon=True
)
hog.start()
time.sleep(1.0)
print("hogging", flush=True)
time.sleep(600)
"""


def test_a_host_holding_the_gil_dies_with_a_killed_web_process() -> None:
    """Issue 13: the host's watchdog thread cannot run while the model holds the GIL; the
    kill-on-close Job Object ends the host when the web process is terminated (Task Manager,
    ``taskkill /F``)."""
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    kernel32.OpenProcess.restype = ctypes.c_void_p
    kernel32.OpenProcess.argtypes = (ctypes.c_uint32, ctypes.c_int, ctypes.c_uint32)
    kernel32.WaitForSingleObject.argtypes = (ctypes.c_void_p, ctypes.c_uint32)
    kernel32.CloseHandle.argtypes = (ctypes.c_void_p,)
    web = subprocess.Popen(
        [sys.executable, "-c", WEB_PROCESS_WITH_A_GIL_HOG, str(ROOT)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.PIPE,  # under wine, a child with a file for a std stream dies
        text=True,
    )
    assert web.stdout is not None
    try:
        first = web.stdout.readline()
        assert first.strip().isdigit(), first + web.stdout.read()
        host = int(first)
        assert web.stdout.readline().strip() == "hogging"
        handle = kernel32.OpenProcess(0x00100000 | 0x0001, False, host)  # SYNCHRONIZE|TERMINATE
        assert handle, ctypes.get_last_error()
        try:
            web.kill()  # TerminateProcess: nothing of the web process runs any more
            web.wait(30)
            killed = time.monotonic()
            gone = kernel32.WaitForSingleObject(handle, 5000) == 0  # WAIT_OBJECT_0
            if not gone:
                kernel32.TerminateProcess(handle, 1)
            assert gone, "the model host outlived the killed web process by 5 s"
            print(f"host gone {time.monotonic() - killed:.3f} s after the web process")
        finally:
            kernel32.CloseHandle(handle)
    finally:
        if web.poll() is None:
            web.kill()
        web.wait(30)
        for stream in (web.stdin, web.stdout):
            if stream is not None:
                stream.close()


def test_an_onnx_file_and_a_compiled_model_answer_as_onnxruntime(tmp_path: Path) -> None:
    """Issue 16 on Windows CPython with the lane's pinned NumPy 2.0.2 and scikit-learn: an
    .onnx file built here (skl2onnx) is served by onnxruntime, and --compile onnx verifies a
    forest and answers from its graph."""
    import joblib
    import numpy as np
    import onnxruntime
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    from winserve.backends.pool import PoolBackend
    from winserve.model_info import ModelSpec

    rng = np.random.default_rng(16)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    rows = rng.normal(size=(5, 3))
    graph = to_onnx(LogisticRegression().fit(x, y), x[:1].astype(np.float32))
    path = tmp_path / "logistic.onnx"
    path.write_bytes(graph.SerializeToString())
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    label, proba = session.run(None, {"X": rows.astype(np.float32)})
    backend = PoolBackend(ModelSpec(str(path)), timeout=20)
    backend.start()
    try:
        info = backend.wait_ready(180)
        assert info.runtime.startswith("onnxruntime ") and info.classes == (0, 1)
        answer = backend.predict({"matrix": rows}, proba=True)
    finally:
        backend.close()
    assert answer.predictions == label.tolist()
    assert answer.probabilities == [[row[0], row[1]] for row in proba]
    forest = tmp_path / "forest.joblib"
    joblib.dump(RandomForestClassifier(n_estimators=10, random_state=0).fit(x, y), forest)
    backend = PoolBackend(ModelSpec(str(forest), compile="onnx"), timeout=20)
    backend.start()
    try:
        info = backend.wait_ready(300)
        assert "compiled, verified on" in info.runtime, info.runtime
        compiled = backend.predict({"matrix": rows}).predictions
    finally:
        backend.close()
    assert compiled == joblib.load(forest).predict(rows).tolist()


def _constant_model(path: Path, value: float) -> None:
    import joblib
    import pandas as pd
    from sklearn.dummy import DummyRegressor

    frame = pd.DataFrame({"a": [0.0, 1.0], "b": [1.0, 0.0]})
    joblib.dump(DummyRegressor(strategy="constant", constant=value).fit(frame, [0, 0]), path)


def _post(url: str, body: object) -> object:
    import json
    import urllib.request

    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def _post_when_loaded(url: str, body: object) -> object | None:
    """The answer, or None while the model is still loading (503)."""
    import urllib.error

    try:
        return _post(url, body)
    except urllib.error.HTTPError as error:
        if error.code == 503:
            return None
        raise


WATCH = ("--no-browser", "--watch-seconds", "0.5")
# ``python -m winserve`` as of this tree: the lane's embeddable Python has a ._pth file, so
# neither the current folder nor PYTHONPATH is on its path, only the winserve installed there
SERVE_THIS_TREE = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); from winserve import cli; cli.run()"
)


def test_a_folder_of_models_is_served_and_a_replaced_file_picked_up(tmp_path: Path) -> None:
    """Issue 15 on Windows CPython: Windows refuses to replace a file that is open (and an
    uncompressed joblib file stays memory-mapped while its model lives), so winserve loads
    each version from a private copy; the retrain script's os.replace and an overwrite in
    place both succeed while the model is served, and the new versions answer."""
    folder = tmp_path / "my models"
    folder.mkdir()
    _constant_model(folder / "const.joblib", 1.0)
    _constant_model(folder / "other.joblib", 9.0)
    # issue 28: a long file name; its private copy (cache/loaded/<8 characters>/<name>) must stay
    # under Windows' 260-character path limit, which the copy's old path (the name twice) passed
    long_name = "quarterly_churn_model_" + "x" * 100
    _constant_model(folder / f"{long_name}.joblib", 5.0)
    web = subprocess.Popen(
        [sys.executable, "-c", SERVE_THIS_TREE, str(ROOT), str(folder), "--port", "0", *WATCH],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.PIPE,  # under wine, a child with a file for a std stream dies
        text=True,
    )
    assert web.stdout is not None
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:  # all along: a full pipe would block the server's log lines
        assert web.stdout is not None
        for line in web.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl+C"):
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(300), "".join(lines)
        opened = [s.split()[-1] for s in lines if s.strip().startswith("open ")]
        assert opened, "".join(lines)
        url = opened[0].rstrip("/")
        row = [{"a": 1.0, "b": 2.0}]
        # the port opens once the first model has loaded; the others may still be loading (503)
        for name, value in (("const", 1.0), ("other", 9.0), (long_name, 5.0)):
            end = time.monotonic() + 120
            while (answer := _post_when_loaded(f"{url}/models/{name}/predict", row)) is None:
                assert time.monotonic() < end, f"{name} never loaded: " + "".join(lines)
                time.sleep(0.5)
            assert answer == {"predictions": [value]}, name
        for value, how in ((2.0, "replace"), (3.0, "overwrite")):
            new = tmp_path / "retrained.joblib"
            _constant_model(new, value)
            if how == "replace":
                os.replace(new, folder / "const.joblib")  # PermissionError if it were open
            else:
                (folder / "const.joblib").write_bytes(new.read_bytes())
            end = time.monotonic() + 120
            while _post(f"{url}/models/const/predict", row) != {"predictions": [value]}:
                assert time.monotonic() < end, f"{value} never answered: " + "".join(lines)
                time.sleep(0.2)
    finally:
        web.kill()  # TerminateProcess; the Job Object ends the model hosts
        web.wait(30)
        for stream in (web.stdin, web.stdout):
            if stream is not None:
                stream.close()
