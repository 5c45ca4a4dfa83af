"""The README is the front door: its two commands must work on a fresh copy of the project."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import requests

from tests.conftest import PIP_CACHE
from tests.helpers import ROOT, ServerProcess, server_env


def readme_command(marker: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(rf"<!-- {marker} -->\n```\n(.+?)\n```", readme)
    assert found, f"README.md has no {marker} block"
    return found.group(1)


def test_ci_runs_the_readme_test_command() -> None:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert readme_command("test-command") in script.splitlines()


def _fresh_copy(target: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    for name in listed.stdout.splitlines():
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.timeout(900)
def test_readme_demo_command_on_a_fresh_copy(tmp_path: Path) -> None:
    project = _fresh_copy(tmp_path / "winserve")
    env = server_env(WINSERVE_PORT="0", WINSERVE_BROWSER="false", PIP_CACHE_DIR=PIP_CACHE)
    env.pop("PYTHONPATH")  # the fresh install alone must be enough
    server = ServerProcess(
        ["bash", "-c", readme_command("demo-command")], env, project, new_session=True
    )
    try:
        server.wait_ready(timeout=840)
        assert (project / ".venv").is_dir()
        response = requests.post(
            f"{server.url}/predict",
            timeout=10,
            json={
                "sepal length (cm)": 6.7,
                "sepal width (cm)": 3.0,
                "petal length (cm)": 5.2,
                "petal width (cm)": 2.3,
            },
        )
        assert response.json() == {"predictions": ["virginica"]}
        assert "iris-demo" in requests.get(f"{server.url}/", timeout=10).text
        os.killpg(server.proc.pid, signal.SIGINT)  # Ctrl+C in the terminal
        assert server.proc.wait(15) == 0
        assert "winserve: stopped." in server.drain()
    finally:
        server.kill_tree()
