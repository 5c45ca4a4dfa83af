"""A classifier's labels from its probabilities, for the classes whose own ``predict`` is
exactly that (issue 29: one model call where there were two).

::

    ModelHost load ─► derivation(model): the model's exact class (or a Pipeline's final
                      step's) on ALLOWED? ─► Derive | None
                   ─► the sample and reference rows answered both ways (shortcuts.check_labels)
                      ─► the same answers (types too) ─► Predictor._derive = Derive
                                                         else None (two calls, as before)
    Predictor._outputs, probabilities asked:
        raw = model.predict_proba(X) ─► Derive(raw) ─► labels, as model.predict(X) gives them
                                                    └► None (a row it cannot be sure of)
                                                       ─► model.predict(X), as before

When a request asks for probabilities (every CSV chunk, the page, ``?proba=true``), the host
called ``predict`` and ``predict_proba``: for a 200-tree forest ~7 ms fixed each, plus the
rows. The classes below compute ``predict`` from the same numbers ``predict_proba`` returns,
read in scikit-learn's source (1.3.2, 1.5.2 and 1.9.1: ``pyproject.toml`` allows >= 1.3, the
Windows lane pins 1.5.2):

- ``RandomForestClassifier``, ``ExtraTreesClassifier`` (``ForestClassifier.predict``): it
  calls ``self.predict_proba(X)`` and takes ``classes_`` at the argmax, per output into an
  array of ``classes_[0]``'s dtype. Copied as it is: the same numbers, the same labels.
- ``DecisionTreeClassifier``, ``ExtraTreeClassifier``: ``predict`` takes the argmax of the
  tree's leaf values, ``predict_proba`` returns the same values (1.5.2, 1.9.1; 1.3.2 divided
  them by the row's sum, which keeps a strict maximum where it was but may make two close
  values equal: before ``UNDIVIDED`` a row whose maximum is not strict asks ``predict``).
  Several outputs: ``predict`` also sees the padding columns of the outputs with fewer
  classes (zeros), so a row whose top value is not above zero asks ``predict``.
- ``HistGradientBoostingClassifier``: ``predict`` takes the argmax of the raw scores (two
  classes: score > 0; 1.3.2: the argmax of ``predict_proba``), ``predict_proba`` is their
  softmax (sigmoid): the same order, but two near-equal scores can round to equal
  probabilities. A row whose top probability is not ahead of the next by ``MARGIN``
  (relative; far beyond exp's rounding) makes the call ask ``predict``.

A row that asks ``predict`` makes the whole call ask it (one more call, as before).

Any other class, a subclass (it may override ``predict``), a wrapper or a version whose
``predict`` answered otherwise on the load's rows keeps the two calls.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

__all__ = ["ALLOWED", "MARGIN", "Derive", "changed", "derivation", "release"]

Derive = Callable[[Any], Any]  # predict_proba's answer → predict's labels, or None

# module, class name → how its predict reads predict_proba's numbers (see the docstring)
ALLOWED = {
    ("sklearn.ensemble", "RandomForestClassifier"): "forest",
    ("sklearn.ensemble", "ExtraTreesClassifier"): "forest",
    ("sklearn.tree", "DecisionTreeClassifier"): "tree",
    ("sklearn.tree", "ExtraTreeClassifier"): "tree",
    ("sklearn.ensemble", "HistGradientBoostingClassifier"): "boosting",
}
MARGIN = 1e-9  # a boosting's top probability ahead of the next by this much, relatively
UNDIVIDED = (1, 5)  # the first release read whose tree predict_proba is predict's values


def derivation(model: Any) -> Derive | None:
    """How to make ``model.predict``'s labels from ``model.predict_proba``'s answer, or None
    when its class is not one whose source says so (the caller verifies on rows too)."""
    if "sklearn" not in sys.modules or not str(type(model).__module__).startswith("sklearn."):
        return None  # nothing of scikit-learn's: nothing on the list (and nothing imported)
    from sklearn.pipeline import Pipeline

    if type(model) is Pipeline:
        # Pipeline.predict and .predict_proba run the same transforms, then the final step's
        # predict / predict_proba: the final step decides
        steps = getattr(model, "steps", None)
        if not steps or changed(model, "predict", "predict_proba"):
            return None
        return derivation(steps[-1][1])
    kind = _kind(model)
    if kind is None or changed(model, "predict", "predict_proba"):
        return None  # not scikit-learn's own methods: set on the object, or its class patched
    if getattr(model, "classes_", None) is None:
        return None
    # classes_ and n_outputs_ read at each call, as predict reads them
    if kind == "boosting":
        return lambda raw: _boosting(model.classes_, raw)
    if model.n_outputs_ != 1:
        strict = kind == "tree"
        return lambda raw: _per_output(model.classes_, raw, model.n_outputs_, strict)
    if kind == "forest":
        return lambda raw: _forest(model.classes_, raw)
    if _version() >= UNDIVIDED:
        return lambda raw: _forest(model.classes_, raw)  # the same values, the same argmax
    return lambda raw: _tree(model.classes_, raw)


def _version() -> tuple[int, int]:
    import sklearn

    return release(str(sklearn.__version__))


def changed(model: Any, *methods: str) -> bool:
    """Whether any of ``methods`` is not scikit-learn's own for ``model``: set on the instance,
    or its class's replaced by code of another module (a ``<name>_code.py`` beside a model file
    may patch scikit-learn's classes; the load's rows might not show it)."""
    cls = type(model)
    for method in methods:
        if method in vars(model):
            return True
        function = getattr(cls, method, None)
        if function is not None and not str(getattr(function, "__module__", "")).startswith(
            "sklearn."
        ):
            return True
    return False


def release(version: str) -> tuple[int, int]:
    """A scikit-learn version's (major, minor); (0, 0) for one not understood: the careful way
    (older than every release whose code was read)."""
    try:
        major, minor = version.split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        return (0, 0)


def _kind(model: Any) -> str | None:
    """The model's entry in ALLOWED when its class is exactly the one listed (a subclass is not:
    it may override ``predict``)."""
    import importlib

    for (module, name), kind in ALLOWED.items():
        if type(model).__name__ != name:
            continue  # no module imported for a class not even named so
        listed = getattr(importlib.import_module(module), name, None)
        if listed is not None and type(model) is listed:
            return kind
    return None


def _forest(classes: Any, proba: Any) -> Any:
    import numpy as np

    return classes.take(np.argmax(proba, axis=1), axis=0)  # ForestClassifier.predict's own


def _tree(classes: Any, proba: Any) -> Any:
    import numpy as np

    if not _strict_top(proba):
        return None
    return classes.take(np.argmax(proba, axis=1), axis=0)


def _per_output(classes: Any, probas: Any, outputs: int, strict: bool) -> Any:
    """Several outputs, as ForestClassifier.predict (and the tree's) fills them: an array of
    the first output's classes' dtype."""
    import numpy as np

    if not isinstance(probas, list) or len(probas) != outputs or len(classes) != outputs:
        return None
    if strict and not all(bool((p.max(axis=1) > 0).all()) for p in probas):
        return None  # the tree's padding columns (zeros) could hold predict's argmax
    if strict and _version() < UNDIVIDED and not all(_strict_top(p) for p in probas):
        return None
    labels = np.empty((probas[0].shape[0], outputs), dtype=classes[0].dtype)
    for k in range(outputs):
        labels[:, k] = classes[k].take(np.argmax(probas[k], axis=1), axis=0)
    return labels


def _boosting(classes: Any, proba: Any) -> Any:
    import numpy as np

    if proba.ndim != 2 or proba.shape[1] < 2:
        return None
    ordered = np.sort(proba, axis=1)
    if not bool((ordered[:, -1] > ordered[:, -2] * (1 + MARGIN)).all()):
        return None  # a near tie: the raw scores decide, which only predict sees
    return classes[np.argmax(proba, axis=1)]  # HistGradientBoostingClassifier.predict's way


def _strict_top(proba: Any) -> bool:
    """Every row's largest value is there once."""
    import numpy as np

    if proba.ndim != 2 or proba.shape[1] < 2:
        return bool(proba.ndim == 2)
    ordered = np.sort(proba, axis=1)
    return bool((ordered[:, -1] > ordered[:, -2]).all())
