"""``python -m winserve`` as a user runs it: a real waitress server on a free port, real hosts."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import joblib
import numpy as np
import psutil
import pytest
import requests

from tests.conftest import diabetes_with_text, iris_frame
from tests.helpers import ROOT, model_hosts, running_server, server_env, wait_until

pytestmark = [pytest.mark.server, pytest.mark.spawn]

TIMEOUT = 10


def _winserve(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m winserve ARGS`` to completion, as a user would type it."""
    return subprocess.run(
        [sys.executable, "-m", "winserve", *args],
        cwd=cwd,
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_demo_serves_the_same_predictions_as_in_process(tmp_path: Path) -> None:
    with running_server([], cwd=tmp_path) as server:
        console = "\n".join(server.lines)
        assert "iris-demo" in console and "DEMO" in console and "sha256" in console
        assert "this computer only" in console
        x, y = iris_frame()
        response = requests.post(
            f"{server.url}/predict", json=x.to_dict(orient="records"), timeout=TIMEOUT
        )
        assert response.status_code == 200
        accuracy = np.mean(np.array(response.json()["predictions"]) == y.to_numpy())
        assert accuracy > 0.9
        hosts = model_hosts(server.proc.pid)
        assert len(hosts) == 1 and hosts[0].pid != server.proc.pid
        web_maps = Path(f"/proc/{server.proc.pid}/maps").read_text()
        host_maps = Path(f"/proc/{hosts[0].pid}/maps").read_text()
        assert "/sklearn/" in host_maps and "/sklearn/" not in web_maps  # the web stays light
        assert requests.get(f"{server.url}/health", timeout=TIMEOUT).json()["status"] == "ready"


def test_the_demo_has_one_name_everywhere(tmp_path: Path) -> None:
    """A new user's finding (issue 23): the demo was "demo" in the prediction log, the OIP
    repository index and /metrics, and "iris-demo" on the page, /model and OIP's own routes
    (where /v2/models/demo answered 404)."""
    log = tmp_path / "log.sqlite"
    with running_server(["--log-path", str(log)], cwd=tmp_path) as server:
        name = requests.get(f"{server.url}/model", timeout=TIMEOUT).json()["name"]
        assert name == "iris-demo"
        index = requests.post(f"{server.url}/v2/repository/index", timeout=TIMEOUT).json()
        assert [model["name"] for model in index] == [name]
        assert requests.get(f"{server.url}/v2/models/{name}", timeout=TIMEOUT).status_code == 200
        x, _ = iris_frame()
        row = x.iloc[:1].to_dict(orient="records")
        assert requests.post(f"{server.url}/predict", json=row, timeout=TIMEOUT).ok
        metrics = requests.get(f"{server.url}/metrics", timeout=TIMEOUT).text
        assert f'model="{name}"' in metrics and 'model="demo"' not in metrics

        def logged() -> list[str]:
            text = requests.get(f"{server.url}/log.csv", timeout=TIMEOUT).text
            return [line.split(",")[2] for line in text.splitlines()[1:]]

        wait_until(lambda: bool(logged()), 10)  # the writer process writes it soon after
        assert set(logged()) == {name}


def test_string_column_pipeline_is_served_correctly(tmp_path: Path, text_pipeline: Path) -> None:
    with running_server([str(text_pipeline), "--workers", "2"], cwd=tmp_path) as server:
        x, _ = diabetes_with_text()
        rows = x.iloc[:40]
        split = {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}
        response = requests.post(f"{server.url}/predict", json=split, timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        expected = joblib.load(text_pipeline).predict(rows)
        assert np.allclose(response.json()["predictions"], expected)
        bad = requests.post(
            f"{server.url}/predict", json=[{**rows.iloc[0].to_dict(), "sex": "x"}], timeout=TIMEOUT
        )
        assert bad.status_code == 400 and "column 'sex': unknown value 'x'" in bad.text


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_stop_everything(tmp_path: Path, sig: int) -> None:
    with running_server(["--factory", "tests.models:chaos"], cwd=tmp_path) as server:
        hosts = model_hosts(server.proc.pid)
        assert hosts
        started = time.monotonic()
        assert server.stop(sig) == 0
        assert time.monotonic() - started < 5
        assert "winserve: stopped." in server.drain()
        for host in hosts:
            wait_until(lambda h=host: not h.is_running() or h.status() == psutil.STATUS_ZOMBIE, 5)


def test_in_flight_request_finishes_on_ctrl_c(tmp_path: Path) -> None:
    import threading

    with running_server(["--factory", "tests.models:batch_size"], cwd=tmp_path) as server:
        answers: list[int] = []

        def slow_call() -> None:
            answers.append(
                requests.post(
                    f"{server.url}/predict", json=[[1, 2]] * 3, timeout=TIMEOUT
                ).status_code
            )

        caller = threading.Thread(target=slow_call)
        caller.start()
        time.sleep(0.02)
        assert server.stop(signal.SIGINT) == 0
        caller.join(TIMEOUT)
        assert answers == [200]


def test_killing_the_web_process_takes_the_host_with_it(tmp_path: Path) -> None:
    with running_server(["--factory", "tests.models:chaos"], cwd=tmp_path) as server:
        hosts = model_hosts(server.proc.pid)
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(5)
        started = time.monotonic()
        for host in hosts:
            wait_until(lambda h=host: not h.is_running() or h.status() == psutil.STATUS_ZOMBIE, 5)
        assert time.monotonic() - started < 5


def test_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _winserve("--port", str(port), "--no-browser", cwd=tmp_path)
    assert result.returncode == 1
    assert f"port {port} is already in use" in result.stderr


def test_an_unloadable_model_exits_1_with_the_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad model.joblib"
    bad.write_bytes(b"not a model")
    with running_server([str(bad)], cwd=tmp_path, ready=False) as server:
        assert server.proc.wait(60) == 1
        output = server.drain()
        assert "the model could not be loaded: cannot load bad model.joblib" in output
        assert "Traceback" not in output


def test_bad_settings_exit_2(tmp_path: Path) -> None:
    result = _winserve("--workers", "0", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "winserve: command line: workers: expected a number from 1 to 64, got 0"
    )


def test_check_reports_the_model_and_exits_0(tmp_path: Path, text_pipeline: Path) -> None:
    result = _winserve("check", str(text_pipeline), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sex (category)" in result.stdout and "outputs   predict" in result.stdout
    assert "sklearn   saved with" in result.stdout and "OK: the model loads" in result.stdout


def test_check_reports_the_model_card(tmp_path: Path, iris_forest: Path) -> None:
    model = tmp_path / "iris.joblib"
    shutil.copy(iris_forest, model)
    bare = _winserve("check", str(model), cwd=tmp_path)
    assert "  card      none (iris.toml next to the model adds a title" in bare.stdout
    model.with_suffix(".toml").write_text(
        'title = "Iris"\n[example]\n"petal size" = 1\n', encoding="utf-8"
    )
    carded = _winserve("check", str(model), cwd=tmp_path)
    assert carded.returncode == 0, carded.stdout
    assert (
        "  card      iris.toml: title 'Iris', 0 inputs described, an example row" in carded.stdout
    )
    assert "WARNING   the model card names 'petal size', which is not an input" in carded.stdout
    model.with_suffix(".toml").write_text("title = ", encoding="utf-8")
    broken = _winserve("check", str(model), cwd=tmp_path)
    assert "WARNING   the model card iris.toml was not used:" in broken.stdout


def test_check_fails_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.joblib"
    bad.write_bytes(b"\x00\x01")
    result = _winserve("check", str(bad), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.strip().splitlines()[-1].startswith("FAILED: cannot load bad.joblib")


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "winserve"
    assert script.exists(), "pip install . puts a winserve command next to python"
    result = subprocess.run(
        [str(script), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        env=server_env(),
        cwd=ROOT,
    )
    assert result.returncode == 0 and result.stdout.startswith("winserve ")
