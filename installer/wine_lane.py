"""Prepare the Windows test lane: ``python installer/wine_lane.py [--folder .wine-lane]``.

Builds, on Linux, everything ``tests/test_windows.py`` needs to exercise winserve's Windows
code paths with real Windows CPython under wine (Debian's ``wine64``):

- ``dist/``: the Windows zip and ``setup.exe`` from ``installer/build.py``, built with
  ``installer/wine-constraints.txt`` (wine 8's C runtime lacks functions that newer numpy and
  scipy call; real Windows takes current releases);
- ``python/``: the embeddable CPython 3.11 with winserve and the test tools installed (pytest,
  requests, psutil), for running tests inside wine;
- ``prefix/``: a throwaway wine prefix, initialised.

The tests find the lane through ``WINSERVE_WINE_LANE`` (default ``.wine-lane`` here).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import build  # installer/build.py, next to this file

CONSTRAINTS = Path(__file__).with_name("wine-constraints.txt")
TEST_TOOLS = ["pytest", "pytest-timeout", "requests", "psutil", "packaging"]


def wine_env(folder: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        WINEPREFIX=str(folder / "prefix"), WINEDEBUG="-all", WINEDLLOVERRIDES="mscoree,mshtml="
    )
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=build.ROOT / ".wine-lane")
    folder: Path = parser.parse_args().folder.resolve()
    wine = shutil.which("wine64") or shutil.which("wine")
    if wine is None:
        raise SystemExit("wine_lane: wine64 is not installed (Debian: apt-get install wine64)")
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    dist = folder / "dist"
    build.main(
        ["--dist", str(dist), "--constraint", str(CONSTRAINTS), "--cache", str(folder / "cache")]
    )
    house = dist / "wheelhouse"
    build.run(
        build.pip(
            "download",
            "--quiet",
            "--dest",
            str(house),
            *build.windows_target(build.INSTALLER_PYTHON),
            "--constraint",
            str(CONSTRAINTS),
            *TEST_TOOLS,
        )
    )
    python = folder / "python"
    shutil.rmtree(python, ignore_errors=True)
    build.log("installing winserve and the test tools into the lane's Windows CPython")
    build.embedded_python(
        python, house, [build.PROJECT, *TEST_TOOLS], folder / "cache", CONSTRAINTS
    )
    build.log("initialising the wine prefix")
    subprocess.run(
        [wine, "wineboot", "--init"],
        env=wine_env(folder),
        check=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=300,
    )
    check = subprocess.run(
        [
            wine,
            str(python / "python.exe"),
            "-c",
            "import sys, numpy, sklearn, winserve; print(sys.platform, winserve.__version__)",
        ],
        env=wine_env(folder),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    print(check.stdout.strip())
    if check.returncode != 0 or "win32" not in check.stdout:
        return 1
    build.log(f"wine lane ready in {folder} ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
