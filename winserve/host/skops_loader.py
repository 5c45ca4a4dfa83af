"""Load a ``.skops`` file with a trusted-type list that winserve keeps, never the file's own.

skops (https://skops.readthedocs.io) stores a model as data plus the names of the types and
functions it needs; ``skops.io.get_untrusted_types`` lists the names beyond skops' own
defaults *without importing or running any of them*. winserve decides on that list before
anything is loaded:

- a class defined in scikit-learn (``sklearn.tree._tree.Tree``, ``TreePredictor``, …), NumPy
  scalar and dtype classes (``numpy.dtype``, ``numpy.float64``), NumPy's random generators and
  SciPy's sparse containers are trusted: skops reports them for ordinary models of those
  libraries, and building them only restores data;
- everything else is refused unless the operator names it in the setting ``trust``. That
  includes *functions* of those libraries (a ``FunctionTransformer(func=numpy.load)`` calls it
  on every request) and their other classes: a prefix rule such as "anything under numpy."
  would let a crafted file construct ``numpy.memmap(path, mode="w+")``, which creates or
  truncates a file at load time.

A name is checked by importing only that library's module (scikit-learn, NumPy and SciPy are
installed already; nothing from the file is imported before it is allowed).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from winserve.errors import ModelLoadError

LIBRARIES = ("sklearn", "numpy", "scipy")
# scikit-learn's own test helpers are classes too, but no fitted model holds one
UNTRUSTED_SKLEARN_PARTS = ("tests", "_testing", "estimator_checks")
SHOWN = 5  # refused names listed in the message


def _resolve(name: str) -> Any:
    """The object a dotted name stands for, importing only the longest module prefix."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            target: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            target = getattr(target, attr)
        return target
    raise ImportError(name)


def _trusted_by_winserve(name: str) -> bool:
    if name.split(".")[0] not in LIBRARIES or not name.replace(".", "").replace("_", "x").isalnum():
        return False
    try:
        found = _resolve(name)
    except Exception:  # not importable here: unknown, so not trusted
        return False
    if not isinstance(found, type):
        return False  # functions and methods are called with the requests' data
    module = found.__module__ or ""
    if module.startswith("sklearn."):
        return not any(part in UNTRUSTED_SKLEARN_PARTS for part in module.split("."))
    if module.startswith("scipy.sparse"):
        return True
    import numpy as np

    if issubclass(found, np.generic | np.dtype):
        return True
    return module.startswith("numpy.random") and issubclass(
        found, np.random.RandomState | np.random.Generator | np.random.BitGenerator
    )


def refused_types(path: Path, trust: Iterable[str]) -> tuple[list[str], list[str]]:
    """(the names skops reports beyond its defaults, those neither winserve nor ``trust``
    allows), read from the file without loading it."""
    import skops.io as sio

    try:
        reported = list(sio.get_untrusted_types(file=path))
    except Exception as exc:  # not a zip, no schema.json, a protocol skops does not know, ...
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelLoadError(
            f"cannot load {path.name}: it is not a skops file, or it is damaged ({reason})"
        ) from None
    allowed = set(trust)
    return reported, [n for n in reported if n not in allowed and not _trusted_by_winserve(n)]


def load(path: Path, trust: Iterable[str]) -> Any:
    """The model in ``path``, or ModelLoadError naming the types it would need trusted."""
    try:
        import skops.io as sio
    except ImportError:
        raise ModelLoadError(
            f"{path.name} is a skops file and skops is not installed: pip install skops"
        ) from None
    reported, refused = refused_types(path, trust)
    if refused:
        more = len(refused) - SHOWN
        listed = ", ".join(refused[:SHOWN]) + (f" and {more} more" if more > 0 else "")
        as_toml = ", ".join(f'"{n}"' for n in refused)
        raise ModelLoadError(
            f"{path.name} was not loaded: it needs {listed}, which winserve does not trust "
            "(it trusts the scikit-learn, NumPy and SciPy classes that hold a fitted model's "
            "data, and no functions). If you know the code behind these names and where the "
            "file comes from, allow them with the setting trust: --trust NAME (once per "
            f"name), WINSERVE_TRUST=NAME,NAME, or trust = [{as_toml}] in winserve.toml"
        )
    try:
        return sio.load(path, trusted=reported)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else ""
        raise ModelLoadError(f"cannot load {path.name}: {type(exc).__name__}: {reason}") from None
