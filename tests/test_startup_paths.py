"""Starting winserve from a folder that holds a folder named ``winserve`` (issue 24, a new
user's finding): a clone of winserve in the home folder, run from the home folder.

The clone's root has no ``__init__.py``, so Python takes it for a namespace package named
``winserve`` when the current folder is on ``sys.path`` ahead of where the installed package
is found; with an editable install (setuptools' finder runs after the path finder) that is
always. The console script used to put the current folder first on ``sys.path`` for
``--factory``, and the spawned model hosts, which inherit it, each died with ``ImportError:
cannot import name '__version__' from 'winserve'``; ``python -m winserve`` died at once.

These run the installed winserve (no ``PYTHONPATH`` to this checkout): with a regular
install the shadowing cannot happen and they pass either way; here (``pip install -e``) they
fail without the fix.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import joblib
import pytest
from sklearn.linear_model import LogisticRegression

from tests.conftest import iris_frame
from tests.helpers import server_env

pytestmark = [pytest.mark.spawn, pytest.mark.timeout(180)]

FACTORY_CODE = """\
from sklearn.dummy import DummyClassifier


def build():
    return DummyClassifier(strategy="most_frequent").fit([[0.0], [1.0], [1.0]], [0, 1, 1])
"""


def installed_env() -> dict[str, str]:
    """The tests' environment without ``PYTHONPATH``: winserve as the user has it installed."""
    env = server_env()
    env.pop("PYTHONPATH", None)
    return env


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env=installed_env(), capture_output=True, text=True, timeout=150
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home folder with a clone of winserve in it (``winserve/winserve/__init__.py``, no
    ``__init__.py`` at the clone's root), a model file and a factory module."""
    probe = run([sys.executable, "-c", "import winserve"], tmp_path)
    if probe.returncode != 0:
        pytest.skip("winserve is not installed in this interpreter (only on PYTHONPATH)")
    clone = tmp_path / "winserve"
    (clone / "winserve").mkdir(parents=True)
    (clone / "winserve" / "__init__.py").write_text('"""a clone\'s package"""\n')
    (clone / "pyproject.toml").write_text('[project]\nname = "winserve"\n')
    frame, target = iris_frame()
    joblib.dump(LogisticRegression(max_iter=500).fit(frame, target), tmp_path / "iris.joblib")
    (tmp_path / "mybuild.py").write_text(FACTORY_CODE)
    return tmp_path


def console_script() -> Path:
    folder = Path(sys.executable).parent
    script = folder / ("winserve.exe" if os.name == "nt" else "winserve")
    if not script.is_file():
        pytest.skip(f"no winserve console script beside {sys.executable}")
    return script


def test_console_script_loads_the_model_beside_a_winserve_folder(home: Path) -> None:
    done = run([str(console_script()), "check", "iris.joblib"], home)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK: the model loads and predicts" in done.stdout
    assert "ImportError" not in done.stderr


def test_python_m_winserve_beside_a_winserve_folder(home: Path) -> None:
    version = run([sys.executable, "-m", "winserve", "--version"], home)
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("winserve ")
    done = run([sys.executable, "-m", "winserve", "check", "iris.joblib"], home)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ImportError" not in done.stderr


def test_a_factory_in_the_current_folder_still_loads(home: Path) -> None:
    """Why the current folder was on sys.path: ``--factory mybuild:build`` finds mybuild.py
    there, with the console script as with ``python -m`` (now added where the factory is
    resolved, at the end of the model host's sys.path)."""
    for command in ([str(console_script())], [sys.executable, "-m", "winserve"]):
        done = run([*command, "check", "--factory", "mybuild:build"], home)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "DummyClassifier" in done.stdout


# What a load that killed its host while Python started it says (issue 24): the condition of
# the bug above, made on purpose in a script (a folder named winserve put first on sys.path
# once winserve is imported, as cli.run did); the reason is read back from the real Loader.
LOAD_SCRIPT = """\
import sys
from pathlib import Path

import winserve
from winserve.models.loader import Loader
from winserve.server import backend_maker
from winserve.settings import Settings

if __name__ == "__main__":  # spawn imports this script again in the host, as __mp_main__
    sys.path.insert(0, sys.argv[1])  # a clone's own winserve package first: the host's import
    settings = Settings(load_timeout=60)
    loader = Loader(settings, backend_maker(settings))
    outcome = loader.load(
        "iris", Path(sys.argv[2]), private=False, serving=None, shown=lambda *_: False
    )
    print("REASON", getattr(outcome, "reason", "loaded"))
"""


# The host's last line of stderr, as the reason ends with it: its import of winserve found the
# clone's package (a regular one, first on sys.path, so with any kind of install) and not the
# installed one.
DIED_OF_THE_CLONE = r"\(EOFError\): (ImportError|ModuleNotFoundError): .*'winserve"


def test_a_host_that_dies_while_starting_says_why(home: Path) -> None:
    from winserve.models import start_probe

    script = home / "scripts" / "load.py"  # its folder is first on sys.path: not home
    script.parent.mkdir()
    script.write_text(LOAD_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), str(home / "winserve"), str(home / "iris.joblib")],
        cwd=script.parent,
        env=installed_env(),
        capture_output=True,
        text=True,
        timeout=150,
    )
    said = [x for x in done.stdout.splitlines() if x.startswith("REASON ")]
    assert said, done.stdout + done.stderr
    reason = said[0].removeprefix("REASON ")
    assert start_probe.died_starting(reason), reason
    assert re.search(DIED_OF_THE_CLONE, reason), reason


def test_a_start_that_works_adds_nothing() -> None:
    """The probe of this process's own start (which works): nothing to add to the reason."""
    from winserve.models import start_probe

    assert start_probe.probe() is None
    reason = "the model process exited with code 1 while loading (EOFError)"
    assert start_probe.explained(reason) == reason
    assert start_probe.explained("the model file is not a model") == "the model file is not a model"


def test_check_says_why_a_host_died_while_starting(home: Path) -> None:
    """``winserve check`` in the same condition: its FAILED line carries the ImportError."""
    script = home / "scripts" / "check.py"
    script.parent.mkdir()
    script.write_text(
        "import sys\nfrom winserve import cli\n"
        "if __name__ == '__main__':  # spawn imports this script again in the host\n"
        "    sys.path.insert(0, sys.argv.pop(1))  # a clone's winserve package first\n"
        "    sys.exit(cli.main(['check', sys.argv[1]]))\n"
    )
    clone = str(home / "winserve")
    done = run([sys.executable, str(script), clone, str(home / "iris.joblib")], script.parent)
    assert done.returncode == 1
    failed = [x for x in done.stdout.splitlines() if x.startswith("FAILED: ")]
    assert failed and "while loading (EOFError): " in failed[0], done.stdout
    assert re.search(DIED_OF_THE_CLONE, failed[0]), done.stdout
