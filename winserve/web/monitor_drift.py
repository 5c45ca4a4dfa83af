"""The drift of one model's logged inputs against its reference sample (issue 26), for the
monitor page and a folder's monitor index.

::

    held model ─► its file (info.source) or the card's ``reference`` ─► reference.read
                  (cached by path, size and mtime)                         │ frame
    prediction log (SQLite, read-only) ─► drift.logged_sample ───────────► drift.drift
                                                                           │
                                                        Drift(hint, columns, rows, every)

The web process reads the reference file itself, with the model host's own reader
(``winserve.host.reference.read``: the same columns, number conversion and fixed-seed
sample), rather than asking the model host for it: the frame is needed only here, a
page read by the owner now and then, and shipping 2,000 rows through the host's pipe would
add a method to every backend for no gain. The file read is the one the model host read:
the card's ``reference``, else ``<name>.reference.csv``/``.parquet`` beside the file loaded
(``info.source``: the loader's private copy, made with its reference sample at load,
models/loader.py), so a sample edited after the load is not compared until the model is.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from winserve.dataplane import Held
from winserve.explaining import reference_of
from winserve.host import reference as reference_sample
from winserve.model_info import ModelInfo
from winserve.predlog import drift
from winserve.predlog.writer import PredictionLog

# reference samples kept read: a folder's monitor index compares each of its models
CACHED_SAMPLES = 16

_cache: dict[tuple[str, int, int], dict[str, list[Any]]] = {}
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class Drift:
    """What a model's logged inputs say against its reference sample in one period."""

    reference: dict[str, Any] | None  # {rows, source[, problem]} or None
    hint: str  # how to add a reference sample, or why the one there cannot be used
    columns: tuple[drift.ColumnDrift, ...] = ()
    logged_rows: int = 0
    every: int = 1  # one logged request in ``every`` read (drift.SAMPLE_REQUESTS)


def _reference_path(info: ModelInfo, named: str) -> Path | None:
    if named:
        return Path(named)
    if not info.source or not info.sha256:  # the built-in demo: no file
        return None
    found = reference_sample.beside(Path(info.source))
    return found[0] if found else None


def _reference_columns(path: Path, info: ModelInfo) -> dict[str, list[Any]]:
    """The reference sample's columns as lists, read once per version of the file."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _cache_lock:
        found = _cache.get(key)
    if found is None:
        features = [{"name": f.name, "kind": f.kind} for f in info.features]
        frame = reference_sample.read(path, features)
        found = {str(c): frame[c].tolist() for c in frame.columns}
        with _cache_lock:
            while len(_cache) >= CACHED_SAMPLES:  # the oldest read goes first
                del _cache[next(iter(_cache))]
            _cache[key] = found
    return found


def drift_of(
    model: Held, info: ModelInfo, plog: PredictionLog | None, since: float, until: float
) -> Drift:
    """The drift of ``model``'s inputs logged from ``since`` to ``until`` (Unix seconds), or
    the hint that says why there is none to show."""
    described = reference_of(info)
    source = info.source if info.sha256 else ""
    if info.tensor_inputs:  # no sample would help (issue 24)
        takes = [str(f.kind) for f in info.features]
        hint = reference_sample.not_a_table(takes, "Drift against a reference sample covers")
        return Drift(described, hint)
    if described is None:
        hint = "This model has no reference sample to compare with: "
        return Drift(None, hint + reference_sample.how_to_make(source))
    if described.get("problem"):
        return Drift(described, str(described["problem"]))
    path = _reference_path(info, model.card.reference)
    if path is None or not path.is_file():
        hint = "The reference sample is gone: " + reference_sample.how_to_make(source)
        return Drift(described, hint)
    try:
        ref = _reference_columns(path, info)
    except (ValueError, OSError) as exc:
        return Drift(described, f"{path.name} cannot be used: {exc}")
    logged: dict[str, list[Any]] = {}
    logged_rows, every = 0, 1
    if plog is not None:
        logged, logged_rows, every = drift.logged_sample(
            plog.path, model.name, since, until, list(ref)
        )
    kinds = {f.name: str(f.kind) for f in info.features}
    return Drift(described, "", tuple(drift.drift(ref, logged, kinds)), logged_rows, every)
