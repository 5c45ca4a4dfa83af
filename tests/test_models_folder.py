"""A folder of models (issue 15): each model at its own routes, hot reload without downtime,
versions, a broken file, files added and removed, the model repository endpoints. Real
servers (waitress, spawned model hosts) on folders of models trained here."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from tests.helpers import csrf_token, running_server, wait_until
from tests.model_files import IRIS_ROW, ROW, constant_model

pytestmark = [pytest.mark.server, pytest.mark.spawn, pytest.mark.timeout(240)]

WATCH = 0.5


def predict(url: str, model: str, row: dict[str, float] | None = None) -> requests.Response:
    return requests.post(f"{url}/models/{model}/predict", json=[row or ROW], timeout=30)


def test_each_model_answers_at_its_own_routes(tmp_path: Path, iris_forest: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copyfile(iris_forest, folder / "iris.joblib")
    constant_model(folder / "const.joblib", 7.0)
    (folder / "const.toml").write_text('title = "Always seven"\n', encoding="utf-8")
    (folder / "broken.pkl").write_bytes(b"not a model")
    (folder / "notes.txt").write_text("not a model file, not listed", encoding="utf-8")
    with running_server([str(folder), "--watch-seconds", str(WATCH)], cwd=tmp_path) as server:
        url = server.url
        console = "\n".join(server.lines)
        assert "/models/iris/" in console and "/models/const/" in console
        assert "broken" in console and "NOT served" in console

        iris = predict(url, "iris", IRIS_ROW)
        assert iris.status_code == 200 and iris.json()["predictions"] == ["setosa"]
        assert iris.headers["X-Model-Version"] == "1"
        const = predict(url, "const")
        assert const.json() == {"predictions": [7.0]}
        mlflow = requests.post(
            f"{url}/models/const/invocations", json={"dataframe_records": [ROW]}, timeout=30
        )
        assert mlflow.json() == {"predictions": [7.0]}
        oip = requests.post(
            f"{url}/v2/models/iris/infer",
            json={
                "inputs": [
                    {"name": k, "datatype": "FP64", "shape": [1], "data": [v]}
                    for k, v in IRIS_ROW.items()
                ]
            },
            timeout=30,
        )
        assert oip.status_code == 200, oip.text
        assert oip.json()["outputs"][0]["data"] == ["setosa"]
        assert requests.get(f"{url}/v2/models/const/versions/1", timeout=5).status_code == 200
        assert requests.get(f"{url}/v2/models/const/versions/2", timeout=5).status_code == 404

        described = requests.get(f"{url}/models/const", timeout=5).json()
        assert described["version"] == 1 and len(described["sha256"]) == 64
        assert described["loaded_at"] and described["file"] == "const.joblib"

        # several models and no default_model: the bare routes name them
        bare = requests.post(f"{url}/predict", json=[ROW], timeout=5)
        assert bare.status_code == 404
        assert "const" in bare.json()["error"]["message"] and "default_model" in bare.text
        bare_mlflow = requests.post(f"{url}/invocations", json={"instances": [[1, 2]]}, timeout=5)
        assert bare_mlflow.status_code == 404 and "error_code" in bare_mlflow.json()

        health = requests.get(f"{url}/health", timeout=5)
        assert health.status_code == 200
        body = health.json()
        # issue 23: degraded means replicas of a loaded model are down, nothing else; a
        # file that did not load is failed in its own entry, and the server is ready
        assert body["status"] == "ready"
        assert body["models"]["iris"]["status"] == "ready"
        assert body["models"]["broken"]["serving"] is False
        assert "broken.pkl" in body["models"]["broken"]["reason"]
        assert str(tmp_path) not in health.text  # file names only, never a server path

        listing = requests.get(f"{url}/", timeout=5).text
        assert "Always seven" in listing and "/models/iris/" in listing
        assert "broken.pkl" in listing
        page = requests.get(f"{url}/models/const/", timeout=5)
        assert page.status_code == 200 and 'action="/models/const/"' in page.text
        assert 'data-status-url="/models/const/page-status"' in page.text
        api_page = requests.get(f"{url}/models/const/api", timeout=5).text
        assert f"{url}/models/const/predict" in api_page and f"{url}/predict" not in api_page

        metrics = requests.get(f"{url}/metrics", timeout=5).text
        assert 'winserve_model_version{model="const"} 1' in metrics
        assert 'model="iris"' in metrics

        # the repository extension
        index = requests.post(f"{url}/v2/repository/index", timeout=5).json()
        states = {m["name"]: m for m in index}
        assert states["const"]["state"] == "READY" and states["const"]["version"] == "1"
        assert states["broken"]["state"] == "UNAVAILABLE" and states["broken"]["reason"]
        from_page = requests.post(
            f"{url}/v2/repository/models/const/unload",
            headers={"Origin": "http://evil.example"},
            timeout=5,
        )
        assert from_page.status_code == 403
        unloaded = requests.post(f"{url}/v2/repository/models/const/unload", timeout=5)
        assert unloaded.status_code == 200
        assert predict(url, "const").status_code == 404
        loaded = requests.post(f"{url}/v2/repository/models/const/load", timeout=60)
        assert loaded.status_code == 200, loaded.text
        again = predict(url, "const")
        assert again.json() == {"predictions": [7.0]} and again.headers["X-Model-Version"] == "2"
        refused = requests.post(f"{url}/v2/repository/models/broken/load", timeout=60)
        assert refused.status_code == 400 and "broken.pkl" in refused.json()["error"]

        # a file added appears; a file removed disappears
        constant_model(tmp_path / "added.tmp", 3.0)
        os.replace(tmp_path / "added.tmp", folder / "added.joblib")
        wait_until(lambda: predict(url, "added").status_code == 200, timeout=60)
        assert predict(url, "added").json() == {"predictions": [3.0]}
        (folder / "iris.joblib").unlink()
        wait_until(lambda: predict(url, "iris", IRIS_ROW).status_code == 404, timeout=30)
        assert "iris" not in requests.get(f"{url}/health", timeout=5).json()["models"]


def _hammer(url: str, stop: threading.Event, seen: list[tuple[float, int, float | None]]) -> None:
    session = requests.Session()
    while not stop.is_set():
        try:
            answer = session.post(f"{url}/models/const/predict", json=[ROW], timeout=30)
            value = answer.json()["predictions"][0] if answer.status_code == 200 else None
            seen.append((time.monotonic(), answer.status_code, value))
        except requests.RequestException:
            seen.append((time.monotonic(), -1, None))


def test_a_retrained_file_is_served_without_one_failed_request(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    constant_model(folder / "const.joblib", 1.0)
    constant_model(folder / "other.joblib", 9.0)
    args = [str(folder), "--watch-seconds", str(WATCH), "--default-model", "const"]
    with running_server(args, cwd=tmp_path) as server:
        url = server.url
        assert requests.post(f"{url}/predict", json=[ROW], timeout=10).json() == {
            "predictions": [1.0]
        }
        seen: list[tuple[float, int, float | None]] = []
        stop = threading.Event()
        clients = [
            threading.Thread(target=_hammer, args=(url, stop, seen), daemon=True) for _ in range(8)
        ]
        for client in clients:
            client.start()
        try:
            time.sleep(2)
            # 1. written under another name, then os.replace: the usual retrain script
            constant_model(tmp_path / "const.tmp", 2.0)
            replaced_at = time.monotonic()
            os.replace(tmp_path / "const.tmp", folder / "const.joblib")
            wait_until(lambda: seen and seen[-1][2] == 2.0, timeout=30)
            first_new = min(t for t, _, v in seen if v == 2.0 and t > replaced_at)
            # 2. copied over in place, slowly: a half-written file is never loaded
            constant_model(tmp_path / "three.joblib", 3.0)
            data = (tmp_path / "three.joblib").read_bytes()
            with (folder / "const.joblib").open("r+b") as file:
                file.truncate(0)
                for start in range(0, len(data), max(1, len(data) // 8)):
                    file.write(data[start : start + max(1, len(data) // 8)])
                    file.flush()
                    time.sleep(WATCH * 0.4)
            copied_at = time.monotonic()
            wait_until(lambda: seen and seen[-1][2] == 3.0, timeout=30)
            # 3. a broken file: the version serving keeps serving and says why
            (folder / "const.joblib").write_bytes(b"garbage")
            reason = wait_until(
                lambda: (
                    requests.get(f"{url}/health", timeout=5).json()["models"]["const"].get("reason")
                ),
                timeout=30,
            )
            assert "const.joblib" in reason
            time.sleep(max(0.0, 20 - (time.monotonic() - replaced_at)))
        finally:
            stop.set()
            for client in clients:
                client.join(timeout=35)
        statuses = Counter(status for _, status, _ in seen)
        assert set(statuses) == {200}, statuses
        assert len(seen) > 200
        # the new model answers within watch_seconds + load time + 2 s (the load as the
        # console said it: a new host's start is seconds on a busy machine)
        said = server.wait_for_line(lambda line: "version 2 serving" in line, timeout=10)
        load_seconds = float(said.split("loaded in ")[1].split(" s")[0])
        assert first_new - replaced_at < WATCH * 2 + load_seconds + 2, (first_new, said)
        # once the new version answers, the old one only finishes what it had begun; and
        # nothing but versions 2 and 3 answered: the half-written file was never loaded
        assert {v for t, _, v in seen if t > first_new + 1} <= {2.0, 3.0}
        first_three = min(t for t, _, v in seen if v == 3.0)
        assert first_three > copied_at - WATCH  # not before the copy had ended
        assert {v for t, _, v in seen if t > first_three + 1} == {3.0}
        assert seen[-1][2] == 3.0  # the broken file did not replace version 3
        described = requests.get(f"{url}/models/const", timeout=5).json()
        assert described["version"] == 3
        page = requests.get(f"{url}/models/const/", timeout=5)
        assert page.status_code == 200
        other = requests.post(f"{url}/models/other/predict", json=[ROW], timeout=10)
        assert other.json() == {"predictions": [9.0]}
        assert other.headers["X-Model-Version"] == "1"


def test_one_file_is_reloaded_too_with_the_bare_routes(tmp_path: Path) -> None:
    model = constant_model(tmp_path / "model.joblib", 1.0)
    with running_server([str(model), "--watch-seconds", str(WATCH)], cwd=tmp_path) as server:
        url = server.url
        first = requests.post(f"{url}/predict", json=[ROW], timeout=10)
        assert first.json() == {"predictions": [1.0]} and first.headers["X-Model-Version"] == "1"
        constant_model(tmp_path / "model.tmp", 2.0)
        os.replace(tmp_path / "model.tmp", model)
        wait_until(
            lambda: (
                requests.post(f"{url}/predict", json=[ROW], timeout=10).json()
                == {"predictions": [2.0]}
            ),
            timeout=30,
        )
        assert requests.get(f"{url}/model", timeout=5).json()["version"] == 2
        answer = requests.post(f"{url}/invocations", json={"dataframe_records": [ROW]}, timeout=5)
        assert answer.headers["X-Model-Version"] == "2"
        assert requests.get(f"{url}/v2/models/model/versions/2", timeout=5).status_code == 200
        health = requests.get(f"{url}/health", timeout=5).json()
        assert health["status"] == "ready" and health["version"] == 2
        server.wait_for_line(lambda line: "version 2 serving" in line, timeout=10)
        (tmp_path / "model.tmp").write_bytes(b"garbage")  # a broken file: version 2 goes on
        os.replace(tmp_path / "model.tmp", model)

        def told() -> str:
            answer = requests.get(f"{url}/health", timeout=5)
            assert answer.status_code == 200
            problem: str = answer.json().get("file_problem", "")
            return problem

        problem = wait_until(told, timeout=30)
        assert "model.joblib" in problem and "version 2 keeps serving" in problem, problem
        assert requests.post(f"{url}/predict", json=[ROW], timeout=10).json() == {
            "predictions": [2.0]
        }


@pytest.mark.timeout(120)
def test_a_csv_job_finishes_on_the_version_it_started_with(tmp_path: Path) -> None:
    """In process (LocalBackend, Flask's client): a new version serves while a CSV file is
    being scored; the job ends on version 1 and says so, then version 1 stops."""
    from winserve.backends.local import LocalBackend
    from winserve.models.registry import Registry
    from winserve.settings import Settings
    from winserve.web import create_app

    folder = tmp_path / "models"
    folder.mkdir()
    constant_model(folder / "const.joblib", 1.0)
    settings = Settings(model=folder)
    registry = Registry(settings, lambda spec, workers: LocalBackend(spec))
    registry.start()
    registry.wait_loaded(60)
    client = create_app(settings, registry=registry).test_client()
    try:
        token = csrf_token(client.get("/models/const/").get_data(as_text=True))
        rows = "a,b\n" + "1,2\n" * 200_000  # seconds of scoring: the swap lands inside it
        # pasted, not uploaded: the test client leaves a large upload's spool file open
        sent = client.post("/models/const/jobs", data={"csrf_token": token, "rows": rows})
        assert sent.status_code == 303
        job = sent.headers["Location"]
        assert job.startswith("/models/const/jobs/")
        wait_until(lambda: client.get(job + "/status").json["state"] == "running", 30)
        constant_model(tmp_path / "const.tmp", 2.0)
        os.replace(tmp_path / "const.tmp", folder / "const.joblib")
        assert registry.load("const", folder / "const.joblib")
        assert client.post("/models/const/predict", json=[ROW]).json == {"predictions": [2.0]}
        old = registry.entry("const").older[0]
        assert client.get(job + "/status").json["state"] == "running"  # a real overlap
        assert old.state == "draining"
        status = wait_until(
            lambda: (s := client.get(job + "/status").json)["state"] == "done" and s, 60
        )
        assert status["model_version"] == 1
        with client.get(job + "/result.csv") as response:
            result = response.get_data(as_text=True).splitlines()
        assert len(result) == 200_001, result[:3]
        assert {line.split(",")[2] for line in result[1:]} == {"1.0"}, result[:3]
        assert "version 1" in client.get(job).get_data(as_text=True)
        wait_until(lambda: old.state == "stopped", 10)
    finally:
        registry.close()


@pytest.mark.timeout(120)
def test_the_repository_needs_the_token_or_this_computer(tmp_path: Path) -> None:
    """In process: with a token, load/unload/index need it; without one, another computer
    gets 403, and so does a web page (its Origin)."""
    from winserve.backends.local import LocalBackend
    from winserve.models.registry import Registry
    from winserve.settings import Settings
    from winserve.web import create_app

    folder = tmp_path / "models"
    folder.mkdir()
    constant_model(folder / "const.joblib", 1.0)
    token = "repository-token-1"
    for settings in (Settings(model=folder, token=token), Settings(model=folder)):
        registry = Registry(settings, lambda spec, workers: LocalBackend(spec))
        registry.start()
        registry.wait_loaded(60)
        client = create_app(settings, registry=registry).test_client()
        try:
            index = "/v2/repository/index"
            if settings.token:
                assert client.post(index).status_code == 401
                bearer = {"Authorization": f"Bearer {token}"}
                answer = client.post(index, headers=bearer)
                assert answer.json == [{"name": "const", "state": "READY", "version": "1"}]
                unload = client.post("/v2/repository/models/const/unload", headers=bearer)
                assert unload.status_code == 200
                gone = client.post("/models/const/predict", json=[ROW], headers=bearer)
                assert gone.status_code == 404
                load = client.post("/v2/repository/models/const/load", headers=bearer)
                assert load.status_code == 200
                back = client.post("/models/const/predict", json=[ROW], headers=bearer)
                assert back.headers["X-Model-Version"] == "2"
            else:
                away = client.post(index, environ_base={"REMOTE_ADDR": "10.1.2.3"})
                assert away.status_code == 403 and "token" in away.json["error"]
                page = client.post(index, headers={"Origin": "http://localhost"})
                assert page.status_code == 403
                assert client.post(index).status_code == 200
                missing = client.post("/v2/repository/models/nothing/load")
                assert missing.status_code == 404 and "error" in missing.json
        finally:
            registry.close()


def test_check_looks_at_every_model_of_a_folder(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.helpers import server_env

    folder = tmp_path / "models"
    folder.mkdir()
    constant_model(folder / "good.joblib", 1.0)
    (folder / "broken.pkl").write_bytes(b"not a pickle")
    result = subprocess.run(
        [sys.executable, "-m", "winserve", "check", str(folder)],
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "the folder models (2 models)" in result.stdout
    assert "OK: the model loads and predicts" in result.stdout  # good.joblib
    assert result.stdout.strip().endswith("FAILED: 1 of 2 models failed: broken")
