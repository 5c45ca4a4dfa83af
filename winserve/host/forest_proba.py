"""A forest's ``predict_proba`` (and a regression forest's ``predict``) as scikit-learn
computes it, without joblib's wrapper around each tree (issue 29).

::

    ModelHost load ─► summed(model): an exact RandomForestClassifier / ExtraTreesClassifier
                      of exact DecisionTreeClassifier / ExtraTreeClassifier trees, one job?
                   ─► the load's rows answered the same, to the byte (shortcuts.check_labels)
                   ─► Predictor._summed: X ─► the forest's own X check ─► each tree's
                      predict_proba added in the forest's order ─► ÷ trees

``ForestClassifier.predict_proba`` (read in scikit-learn 1.3.2, 1.5.2 and 1.9.1, the same
code in each) checks X once, then runs ``_accumulate_prediction`` per tree through
``Parallel(n_jobs=1)``: each tree's ``predict_proba(X, check_input=False)`` added into one
float64 array per output, in ``estimators_`` order, then divided by the number of trees. With
one job joblib runs them in that order, but its per-call wrapper (scikit-learn's config and
warning filters copied around each tree) cost 4.7 of the 6.0 ms CPU a one-row call of a
200-tree forest took (1.34 ms for the same loop without it; 9.4 → 5.0 ms for 1,000 rows;
the same arrays, ``np.array_equal``; measured on this machine, load 2). This is that loop,
the same additions in the same order, so the same bits.

``ForestRegressor.predict`` (the same code in the same three releases) is the same loop over
each tree's ``predict(X, check_input=False)`` into one float64 array (rows, or rows × outputs):
``summed_predict``.

Only for the exact classes (a subclass may override any of it), with more than one job never
(the order of additions is then the threads'), and only where the load found the answers
identical; anything else calls the model's own ``predict_proba`` / ``predict``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from winserve.host.labels import changed, release

__all__ = ["summed", "summed_predict"]

FORESTS = ("RandomForestClassifier", "ExtraTreesClassifier")  # in sklearn.ensemble
TREES = ("DecisionTreeClassifier", "ExtraTreeClassifier")  # in sklearn.tree
REGRESSION_FORESTS = ("RandomForestRegressor", "ExtraTreesRegressor")
REGRESSION_TREES = ("DecisionTreeRegressor", "ExtraTreeRegressor")
# the scikit-learn releases whose forest code was read (1.3.2, 1.5.2, 1.9.1: the same loop):
# a later release may change it in ways the load's rows do not show, so it calls its own
READ_RELEASES = ((1, 3), (1, 9))


def summed(model: Any) -> Callable[[Any], Any] | None:
    """``model.predict_proba`` computed the forest's own way without joblib, or None when
    ``model`` is not exactly such a forest of such trees, run in one job."""
    if not _exact(model, FORESTS, TREES, "predict_proba"):
        return None
    return lambda X: _proba(model, X)


def summed_predict(model: Any) -> Callable[[Any], Any] | None:
    """``model.predict`` of a regression forest computed its own way without joblib, or None
    when ``model`` is not exactly such a forest of such trees, run in one job."""
    if not _exact(model, REGRESSION_FORESTS, REGRESSION_TREES, "predict"):
        return None
    return lambda X: _predict(model, X)


def _exact(
    model: Any, forest_names: tuple[str, ...], tree_names: tuple[str, ...], method: str
) -> bool:
    """``model`` is exactly one of the forests named, of trees exactly of the classes named,
    with ``method`` its class's own (on the forest and each tree), in one job."""
    if type(model).__name__ not in forest_names or not str(type(model).__module__).startswith(
        "sklearn."
    ):
        return False  # nothing imported for a class not even named so
    import sklearn
    import sklearn.ensemble
    import sklearn.tree

    if not _read_release(str(sklearn.__version__)):
        return False
    forests = {getattr(sklearn.ensemble, name) for name in forest_names}
    trees = {getattr(sklearn.tree, name) for name in tree_names}
    estimators = getattr(model, "estimators_", None)
    return not (
        type(model) not in forests
        or changed(model, method, "_validate_X_predict")
        or getattr(model, "n_jobs", None) not in (None, 1)
        or not estimators
        or any(type(e) not in trees or changed(e, method) for e in estimators)
        or not callable(getattr(model, "_validate_X_predict", None))
    )


def _proba(model: Any, X: Any) -> Any:
    """ForestClassifier.predict_proba's own steps (see the docstring), joblib left out."""
    import numpy as np

    X = model._validate_X_predict(X)
    all_proba = [
        np.zeros((X.shape[0], j), dtype=np.float64) for j in np.atleast_1d(model.n_classes_)
    ]
    for estimator in model.estimators_:
        prediction = estimator.predict_proba(X, check_input=False)
        if len(all_proba) == 1:
            all_proba[0] += prediction
        else:
            for i in range(len(all_proba)):
                all_proba[i] += prediction[i]
    for proba in all_proba:
        proba /= len(model.estimators_)
    return all_proba[0] if len(all_proba) == 1 else all_proba


def _predict(model: Any, X: Any) -> Any:
    """ForestRegressor.predict's own steps (see the docstring), joblib left out."""
    import numpy as np

    X = model._validate_X_predict(X)
    if model.n_outputs_ > 1:
        y_hat = np.zeros((X.shape[0], model.n_outputs_), dtype=np.float64)
    else:
        y_hat = np.zeros((X.shape[0]), dtype=np.float64)
    for estimator in model.estimators_:
        y_hat += estimator.predict(X, check_input=False)
    y_hat /= len(model.estimators_)
    return y_hat


def _read_release(version: str) -> bool:
    """``version`` (scikit-learn's) is one of the releases whose forest code was read (one not
    understood is not)."""
    return READ_RELEASES[0] <= release(version) <= READ_RELEASES[1]
