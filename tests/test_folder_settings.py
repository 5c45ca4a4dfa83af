"""A ``winserve.toml`` inside a served folder of models: read when the folder is given on the
command line (as serving one of its files alone reads it), below the command line and the
environment as the current folder's file would be; when another settings file names the folder,
that one is read and the console says the folder's own is not, and why. Real files; real
servers on a folder of models trained here."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.helpers import running_server
from tests.model_files import ROW, constant_model
from winserve import settings

FOLDER_FILE = 'default_model = "seven"\nthreads = 5\n'


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    constant_model(folder / "seven.joblib", 7.0)
    constant_model(folder / "eight.joblib", 8.0)
    (folder / "winserve.toml").write_text(FOLDER_FILE, encoding="utf-8")
    return folder


def test_the_folders_file_is_the_one_read_below_cli_and_environment(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    constant_model(folder / "seven.joblib", 7.0)
    (folder / "winserve.toml").write_text("threads = 5\nport = 7001\n", encoding="utf-8")
    (tmp_path / "winserve.toml").write_text("threads = 9\n", encoding="utf-8")
    chosen = settings.load({"model": "models"}, env={}, cwd=tmp_path)
    assert chosen.config == folder / "winserve.toml"
    assert (chosen.threads, chosen.port) == (5, 7001)
    ranked = settings.load(
        {"model": str(folder), "port": 7003}, env={"WINSERVE_THREADS": "6"}, cwd=tmp_path
    )
    assert (ranked.threads, ranked.port) == (6, 7003)
    # one file of one model of the folder reads that same file
    one = settings.load({"model": str(folder / "seven.joblib")}, env={}, cwd=tmp_path)
    assert one.config == folder / "winserve.toml"


@pytest.mark.server
@pytest.mark.spawn
def test_a_folder_given_to_the_server_has_its_settings_file_read(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (tmp_path / "winserve.toml").write_text("threads = 9\n", encoding="utf-8")  # run.bat's
    with running_server([str(folder)], cwd=tmp_path) as server:
        answer = requests.post(f"{server.url}/predict", json=[ROW], timeout=30)
        assert answer.status_code == 200, answer.text  # default_model from the folder's file
        assert answer.json() == {"predictions": [7.0]}
        # the current folder's file (here also the one beside the folder) does not apply
        line = server.wait_for_line(lambda s: "is not read" in s, 30)
        assert str(tmp_path / "winserve.toml") + " is not read" in line
        assert str(folder / "winserve.toml") in line
        assert sum("is not read" in s for s in server.lines) == 1


@pytest.mark.server
@pytest.mark.spawn
def test_a_folder_named_by_another_settings_file_warns_that_its_own_is_not_read(
    tmp_path: Path,
) -> None:
    folder = _folder(tmp_path)
    (tmp_path / "winserve.toml").write_text('model = "models"\n', encoding="utf-8")
    with running_server([], cwd=tmp_path) as server:
        line = server.wait_for_line(lambda s: "is not read" in s, 30)
        assert str(folder / "winserve.toml") in line and "WARNING" in line
        assert str(tmp_path / "winserve.toml") in line
        answer = requests.post(f"{server.url}/predict", json=[ROW], timeout=30)
        assert answer.status_code == 404 and "default_model" in answer.text
