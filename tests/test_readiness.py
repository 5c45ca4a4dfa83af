"""One verdict on whether a model can be served: the sample prediction that ``winserve check``
runs gates serving too. It uses the model card's ``[example]`` row where there is one; when it
fails, ``check`` exits 1 and the server does not say ready, and both say what the model takes
and where a working row goes (issue 12)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import joblib
import pytest
import requests

from tests.helpers import running_server, server_env
from tests.models import PositiveOnlyModel

pytestmark = [pytest.mark.server, pytest.mark.spawn]


def _check(model: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "winserve", "check", str(model)],
        cwd=cwd,
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def positive_only(tmp_path: Path) -> Path:
    path = tmp_path / "positive.joblib"
    joblib.dump(PositiveOnlyModel(), path)
    return path


def test_a_failed_sample_is_not_served_and_says_where_the_example_goes(
    tmp_path: Path, positive_only: Path
) -> None:
    checked = _check(positive_only, tmp_path)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    verdict = checked.stdout.strip().splitlines()[-1]
    assert "the sample prediction failed" in verdict
    assert "must be positive" in verdict and "positive.toml" in verdict and "[example]" in verdict
    with running_server([str(positive_only)], cwd=tmp_path, ready=False) as server:
        server.wait_for_line(lambda s: "NOT serving predictions" in s, 60)
        url = _url(server)
        health = requests.get(f"{url}/health", timeout=10)
        assert health.status_code == 503
        assert health.json()["status"] == "failed"
        assert "under [example]" in health.json()["reason"]
        page = requests.get(f"{url}/", timeout=10).text
        assert "The model failed and is not served" in page and "must be positive" in page
        assert "updates by itself" not in page  # it never will (issue 22)
        answer = requests.post(f"{url}/predict", json=[{"a": 1, "b": 2}], timeout=10)
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "model_failed"  # not "still loading"
        assert "must be positive" in answer.json()["error"]["message"]
        described = requests.get(f"{url}/model", timeout=10)
        assert described.status_code == 503 and described.json()["error"]["code"] == "model_failed"
        assert server.proc.poll() is None  # still up, saying why


def _url(server: object) -> str:
    """The address the server listens on, from its /health (no ready banner is printed)."""
    import psutil

    proc = psutil.Process(server.proc.pid)  # type: ignore[attr-defined]
    ports = [c.laddr.port for c in proc.net_connections() if c.status == psutil.CONN_LISTEN]
    assert ports, "the server listens on no port"
    return f"http://127.0.0.1:{ports[0]}"


def test_the_model_cards_example_makes_the_sample_and_the_model_served(
    tmp_path: Path, positive_only: Path
) -> None:
    positive_only.with_suffix(".toml").write_text("[example]\na = 2.0\nb = 3\n", encoding="utf-8")
    checked = _check(positive_only, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    with running_server([str(positive_only)], cwd=tmp_path) as server:
        answer = requests.post(f"{server.url}/predict", json=[{"a": 1, "b": 1}], timeout=10)
        assert answer.json() == {"predictions": [0.0]}
