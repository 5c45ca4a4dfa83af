"""The settings table: precedence, conversion, rejection, and the README kept equal to it."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import requests

from tests.helpers import ServerProcess, server_env
from winserve import cli, settings
from winserve.errors import SettingsError

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_bind_this_computer_only(tmp_path: Path) -> None:
    chosen = settings.load({}, env={}, cwd=tmp_path)
    assert chosen.host == "127.0.0.1"
    assert chosen.port == 8000
    assert chosen.workers == 1
    assert chosen.is_demo and not chosen.binds_lan


def test_cli_beats_environment_beats_file_beats_default(tmp_path: Path) -> None:
    (tmp_path / "winserve.toml").write_text("port = 7001\nthreads = 3\nworkers = 2\n")
    env = {"WINSERVE_PORT": "7002", "WINSERVE_THREADS": "5"}
    chosen = settings.load(cli.parse(["--port", "7003"]), env=env, cwd=tmp_path)
    assert (chosen.port, chosen.threads, chosen.workers, chosen.timeout) == (7003, 5, 2, 30.0)
    assert chosen.config == tmp_path / "winserve.toml"


def test_config_next_to_the_model_and_relative_paths(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "m.joblib").write_bytes(b"x")
    (folder / "winserve.toml").write_text('[winserve]\nhost = "0.0.0.0"\nno-such = 1\n')
    with pytest.raises(SettingsError, match="unknown setting 'no-such'"):
        settings.load(cli.parse([str(folder / "m.joblib")]), env={}, cwd=tmp_path)
    (folder / "winserve.toml").write_text('model = "m.joblib"\nhost = "0.0.0.0"\n')
    chosen = settings.load({"config": str(folder / "winserve.toml")}, env={}, cwd=tmp_path)
    assert chosen.model == folder / "m.joblib"
    assert chosen.binds_lan


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--port", "http"], {}, "port: expected a whole number, got 'http'"),
        (["--port", "70000"], {}, "port: expected a number from 0 to 65535, got 70000"),
        (["--timeout", "0"], {}, "timeout: expected a number from 0.05"),
        ([], {"WINSERVE_WORKERS": "two"}, "environment WINSERVE_WORKERS: workers"),
        ([], {"WINSERVE_PROT": "1"}, "unknown environment setting WINSERVE_PROT"),
        (["--factory", "nocolon"], {}, "expected package.module:callable"),
        (["no-such-model.joblib"], {}, "model file not found"),
        (["--in-process", "--workers", "2"], {}, "cannot be combined with --workers"),
        (["--log-level", "loud"], {}, "log_level: expected debug, info"),
        (["--workers", "auto"], {}, "--workers auto lets Ray Serve scale the replicas"),
        (["--backend", "spark"], {}, "backend: expected local or ray, got 'spark'"),
        (["--backend", "ray", "--in-process"], {}, "--in-process and --backend ray exclude"),
        (["--backend", "ray", "--ray-address", "ray://h:10001"], {}, "(ray://) are not supported"),
        (["--backend", "ray", "--ray-address", "192.0.2.2"], {}, "'192.0.2.2' is not an address"),
        (["--backend", "ray", "--ray-address", "nonsense"], {}, "give auto, local or the head's"),
        (["--backend", "ray", "--ray-address", "head:99999"], {}, "'head:99999' is not an"),
    ],
)
def test_bad_settings_are_one_clear_line(
    tmp_path: Path, argv: list[str], env: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        settings.load(cli.parse(argv), env=env, cwd=tmp_path)


def test_workers_auto_is_ray_serves_autoscaling(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    chosen = settings.load(
        cli.parse(["--backend", "ray", "--workers", "auto", "--max-workers", "6"]),
        env={"WINSERVE_RAY_ADDRESS": "head:6379"},
        cwd=tmp_path,
    )
    assert (chosen.backend, chosen.workers, chosen.max_workers) == ("ray", 0, 6)
    assert chosen.ray_address == "head:6379"


def test_model_and_factory_contradict(tmp_path: Path) -> None:
    (tmp_path / "m.joblib").write_bytes(b"x")
    with pytest.raises(SettingsError, match="either a model file or --factory"):
        settings.load(cli.parse(["m.joblib", "--factory", "a.b:c"]), env={}, cwd=tmp_path)


def test_cli_main_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--port", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["winserve: command line: port: expected a whole number, got 'nope'"]
    assert cli.main(["--no-such-option"]) == 2
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err


def test_boolean_flags_both_ways(tmp_path: Path) -> None:
    assert settings.load(cli.parse(["--no-browser"]), env={}, cwd=tmp_path).browser is False
    env = {"WINSERVE_BROWSER": "off"}
    assert settings.load(cli.parse(["--browser"]), env=env, cwd=tmp_path).browser is True
    assert settings.load({}, env=env, cwd=tmp_path).browser is False


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- settings:start -->\n(.*?)<!-- settings:end -->", readme, re.S)
    assert block, "README.md lacks the settings table markers"
    assert block.group(1) == settings.markdown_table(), (
        "README settings table differs from the code; regenerate it with "
        "python -c 'from winserve.settings import markdown_table; print(markdown_table())'"
    )


def test_every_setting_has_a_flag_and_help() -> None:
    parser_help = cli.build_parser().format_help()
    for spec in settings.table():
        assert spec.metadata["help"].strip()
        flag = spec.metadata["metavar"] if spec.metadata["positional"] else spec.metadata["cli"]
        assert flag in parser_help


@pytest.mark.server
@pytest.mark.spawn
def test_the_console_script_finds_a_factory_in_the_current_folder(tmp_path: Path) -> None:
    """README: `winserve` and `python -m winserve` are the same, --factory from here included
    (the spawned model host must find the module too, not only the web process)."""
    script = Path(sys.executable).parent / (
        "winserve.exe" if sys.platform == "win32" else "winserve"
    )
    if not script.exists():
        pytest.skip(f"no console script next to {sys.executable}")
    (tmp_path / "my_model_here.py").write_text(
        "class Doubler:\n"
        "    def predict(self, rows):\n"
        "        return [2 * row[0] for row in rows]\n\n\n"
        "def build():\n"
        "    return Doubler()\n",
        encoding="utf-8",
    )
    command = [str(script), "--factory", "my_model_here:build", "--port", "0", "--no-browser"]
    server = ServerProcess(command, server_env(), tmp_path)
    try:
        server.wait_ready()
        answer = requests.post(f"{server.url}/predict", json=[[21]], timeout=10)
        assert answer.status_code == 200 and answer.json() == {"predictions": [42]}
    finally:
        server.kill_tree()
