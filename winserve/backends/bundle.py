"""A model by value: its file (or MLflow folder) and its code file as bytes, and back on disk.

The Ray backend sends the model to every node through Ray's object store, so the cluster needs no
shared disk: the web process packs what a model host would read next to the model
(``churn.joblib`` and ``churn_code.py``, or every file of an MLflow folder), each node unpacks it
into a folder of its own and loads it from there, pinned to the SHA-256 the web process computed.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from winserve.host.model_code import code_file

PREFIX = "winserve-ray-model-"


@dataclass(frozen=True)
class Bundle:
    root: str  # the model's file or folder name, e.g. "churn.joblib"
    files: dict[str, bytes] = field(default_factory=dict)  # POSIX path under the parent → bytes

    @property
    def size(self) -> int:
        return sum(len(data) for data in self.files.values())


def pack(path: Path) -> Bundle:
    """What a host reads for the model at ``path``."""
    files: dict[str, bytes] = {}
    if path.is_dir():
        for file in sorted(path.rglob("*")):
            relative = file.relative_to(path.parent).as_posix()
            if file.is_file() and "__pycache__" not in relative.split("/"):
                files[relative] = file.read_bytes()
    else:
        files[path.name] = path.read_bytes()
        code = code_file(path)
        if code.is_file():
            files[code.name] = code.read_bytes()
    return Bundle(path.name, files)


def unpack(bundle: Bundle) -> Path:
    """Write the bundle into a new temporary folder; returns the model's path in it."""
    folder = Path(tempfile.mkdtemp(prefix=PREFIX))
    for name, data in bundle.files.items():
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts:  # never outside the folder
            raise ValueError(f"unsafe path in the model bundle: {name!r}")
        target = folder.joinpath(*relative.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return folder / bundle.root


def remove(model_path: Path) -> None:
    """Delete the folder ``unpack`` made (idempotent)."""
    folder = model_path.parent
    if folder.name.startswith(PREFIX):
        shutil.rmtree(folder, ignore_errors=True)
