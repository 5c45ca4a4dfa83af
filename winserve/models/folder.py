"""Where the models come from: a folder's model files, one file (a folder of one), or one item
without a file (a factory, the built-in demo); and the watcher that follows a folder (issue 23).

::

    Source.of(settings)           folder of models │ one file            │ factory / demo
      find() ─► {name: path}      every model file  │ that file only      │ {name: None}
                                  (discover)        │ (the name filter)   │
      watched                     yes               │ yes                 │ no (no file)

    watcher thread: every watch_seconds, find() and stat each file; a file unchanged for one
      interval and different from the one last tried ─► Registry.load_later(name, path);
      in a folder of models, a file gone for one interval ─► Registry.unload(name, gone=True)

A single model file is the folder it lives in, watched with a name filter: it is found,
copied, loaded, swapped and drained exactly as a folder's models are.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from winserve.errors import NotFound
from winserve.host.demo import DEMO_NAME
from winserve.model_file import Stamp, stamp
from winserve.settings import CONFIG_NAME, Settings

log = logging.getLogger("winserve")

# .pt2, .pt, .pth: PyTorch files, served when torch is installed; .keras: Keras 3 files, on
# its torch backend (issue 24)
MODEL_SUFFIXES = (
    ".joblib",
    ".pkl",
    ".pickle",
    ".skops",
    ".onnx",
    ".pt2",
    ".pt",
    ".pth",
    ".keras",
)


def discover(folder: Path, only: str = "") -> tuple[dict[str, Path], dict[str, str]]:
    """The models in ``folder`` by name (file stem; an MLflow model folder's name), and the
    files that cannot be served under a name of their own, with why. ``only``: the one file
    of that name, whatever its suffix (the operator named it), under its stem."""
    if only:
        item = folder / only
        return ({item.stem: item} if item.exists() else {}), {}
    found: dict[str, Path] = {}
    refused: dict[str, str] = {}
    try:
        items = sorted(folder.iterdir(), key=lambda p: p.name.lower())
    except OSError:
        return found, refused
    for item in items:
        if item.name.startswith((".", "~")):
            continue  # editors' and Office's temporary files, hidden folders
        if item.is_dir():
            if not (item / "MLmodel").is_file():
                continue
            name = item.name
        elif item.suffix.lower() in MODEL_SUFFIXES:
            name = item.stem
        else:
            continue
        if name in found:
            refused[item.name] = (
                f"{item.name} is not served: {found[name].name} already has the name {name!r}"
            )
            continue
        found[name] = item
    return found, refused


@dataclass(frozen=True)
class Source:
    """What the registry serves: the model files of ``folder`` (all, or the one named
    ``only``), or one item without a file, named ``item`` (a factory, the demo)."""

    folder: Path | None
    only: str = ""
    item: str = ""

    @classmethod
    def of(cls, settings: Settings) -> Source:
        model = settings.model
        if model is None:  # the factory's attribute name, as it always was; else the demo's
            # own name, as /model and OIP name it (issue 23: it was "demo" in the log, the
            # repository index and /metrics)
            return cls(None, item=settings.factory.rpartition(":")[2] or DEMO_NAME)
        if settings.is_folder:
            return cls(model)
        return cls(model.parent, only=model.name)  # one file: the folder of one

    @property
    def many(self) -> bool:
        """A folder of models (each at /models/<name>/…), not one model."""
        return self.folder is not None and not self.only

    @property
    def watched(self) -> bool:
        return self.folder is not None

    def open(self, settings: Settings) -> tuple[dict[str, Path | None], dict[str, str]]:
        """``find`` at start: the folder's own modules made importable by the model hosts,
        and what is not served (a file, a settings file not read) said on the console."""
        if self.folder is not None:
            importable(self.folder)
        found, refused = self.find()
        for reason in refused.values():
            log.warning("%s", reason)
        if self.many and self.folder is not None:
            for ignored in ignored_settings_files(self.folder, settings.config, Path.cwd()):
                log.warning("%s", ignored)
        return found, refused

    def find(self) -> tuple[dict[str, Path | None], dict[str, str]]:
        """The models to serve by name (None: the item without a file), and the files served
        under no name, with why."""
        if self.folder is None:
            return {self.item: None}, {}
        found, refused = discover(self.folder, self.only)
        return dict(found), refused


class Followed(Protocol):
    """What the watcher asks of the registry."""

    def known(self) -> dict[str, tuple[Stamp | None, bool, bool]]:
        """Each name: the stamp of its file when its last load began, whether a load of it
        runs, whether it was unloaded."""
        ...

    def found(self, refused: dict[str, str]) -> None: ...

    def load_later(self, name: str, path: Path | None) -> None: ...

    def unload(self, name: str, gone: bool = False) -> None: ...

    def file_gone(self, name: str) -> None: ...


def follow(source: Source, models: Followed, interval: float, stop: threading.Event) -> None:
    """Every ``interval`` until ``stop``: a file whose stamp stayed the same for one interval
    and is not the one last tried is loaded; in a folder of models, a file gone for one
    interval is unloaded (one file that goes keeps serving what it loaded, and says its file
    is gone)."""
    seen: dict[str, Stamp | None] = {}
    while not stop.wait(interval):
        found, refused = source.find()
        models.found(refused)
        known = models.known()
        for name, (_, _, removed) in known.items():
            if name not in found and not removed and source.watched:
                if seen.get(name, ()) is None:  # gone for one interval: not a replace
                    if source.many:
                        with contextlib.suppress(NotFound):
                            models.unload(name, gone=True)
                    else:
                        models.file_gone(name)
                seen[name] = None
        for name, path in found.items():
            if path is None:
                continue
            now = stamp(path)
            previous, seen[name] = seen.get(name, ()), now
            if now is None or now != previous:
                continue  # changing (or just appeared): look again next round
            held = known.get(name)
            if held is not None and (held[0] == now or held[1]):
                continue  # this very file was loaded, tried and failed, or unloaded
            models.load_later(name, path)


def importable(folder: Path) -> None:
    """The folder's own modules (``features.py`` beside the model files) must be importable in
    the model hosts, which load private copies elsewhere: spawned processes inherit this
    process's ``sys.path`` (at the end, as model_code does: it never shadows a package)."""
    resolved = str(folder.resolve())
    if resolved not in sys.path:
        sys.path.append(resolved)


def ignored_settings_files(folder: Path, config: Path | None, cwd: Path) -> list[str]:
    """Why a settings file that might be expected to apply is not read (winserve reads one,
    settings.load): the folder's own, when another file (``--config``, or the file that names
    the folder as ``model``) was read; or, when the folder's own was read, the one beside the
    folder and the current folder's (run.bat's), whose settings then do not apply."""
    if config is None:
        return []
    inside = folder / CONFIG_NAME
    if not _same_file(config, inside):
        if not inside.is_file():
            return []
        return [
            f"{inside} is not read: winserve reads one settings file, and this run's is "
            f"{config} (given with --config, or the file that names this folder as model); put "
            "the settings there, or start winserve with the folder itself (python -m winserve "
            "FOLDER, or the folder dropped on run.bat) and without --config to use the folder's "
            "own file"
        ]
    others: list[Path] = []
    for other in (folder.parent / CONFIG_NAME, cwd / CONFIG_NAME):
        if other.is_file() and not any(_same_file(other, o) for o in [inside, *others]):
            others.append(other)
    return [
        f"{other} is not read: winserve reads one settings file, and this run's is the models "
        f"folder's own {inside}; put the settings there (or give the other with --config)"
        for other in others
    ]


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False
