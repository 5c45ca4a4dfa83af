"""A linear model's answers as scikit-learn computes them, without its input checks (issue 29).

::

    ModelHost load ─► direct(model): an exact LogisticRegression, LinearRegression or Ridge,
                      alone or at the end of a Pipeline of exact StandardScalers?
                   ─► the load's rows answered the same, to the byte (shortcuts.check_direct)
                   ─► Predictor._direct = Direct
    Predictor._outputs, a float64 matrix known finite (checked in the host, ~4 µs):
        Direct(X, proba) ─► each scaler: X − mean_, ÷ scale_ (a new array)
                         ─► X @ coef_.T + intercept_ ─► labels (argmax, or > 0) and, asked,
                            probabilities (softmax, or the binary sigmoid pair)
                         └► None (not such a matrix): the model's own predict, as before

A one-row ``predict`` of the demo's scaler + logistic regression pipeline costs ~185 µs of
CPU in the model host, nearly all of it scikit-learn checking its input at each step
(``validate_data``: the array namespace, DataFrame detection, dtype and shape, finiteness);
the arithmetic is a few µs. winserve has already checked what those checks check: the web
process made the matrix from the model's own columns, and the host found it finite and
within float32 (``host/float32.py``). This module does the arithmetic alone, in the same
steps on the same arrays, so the same bits (read in scikit-learn 1.8.0 and 1.9.1, the same
code in each for NumPy input):

- ``StandardScaler.transform``: X copied (``copy=True``), ``X -= mean_`` if ``with_mean``,
  ``X /= scale_`` if ``with_std``; here ``X - mean_`` and ``/ scale_`` into a new array (the
  same operations, the same bits, the caller's matrix untouched); ``Pipeline.predict`` passes
  each step's output on.
- ``LinearClassifierMixin.decision_function``: ``X @ coef_.T + intercept_``, one column made
  a vector; ``predict``: ``classes_`` at ``scores > 0`` (a vector) or at the row's argmax.
- ``LogisticRegression.predict_proba``: two classes, ``expit`` of the scores in place and
  ``[1 − p, p]``; more, ``softmax`` (the row's maximum subtracted, ``exp`` in place, ÷ the
  row's sum).
- ``LinearModel._decision_function`` (LinearRegression, Ridge ``predict``): ``X @ coef_ +
  intercept_`` for a vector of coefficients, ``X @ coef_.T + intercept_`` for a matrix.

Only for the exact classes with these methods scikit-learn's own (a subclass may override
any of it, and code beside a model file may patch a class), on the releases read, for a
float64 matrix of the model's width, row- or column-major (a job's chunks:
``rows.COLUMN_MAJOR``); and only where the load found the answers identical both ways, in
both layouts (labels alone and with probabilities; ``host/shortcuts.py``); anything else
calls the model's own methods. A NaN never gets here: such a matrix keeps scikit-learn's
checks and their error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from winserve.host.labels import changed, release

__all__ = ["Direct", "by_call", "direct"]

# X, probabilities asked → (predictions, probabilities or None), or None: not such a matrix
Direct = Callable[[Any, bool], "tuple[Any, Any] | None"]

# the scikit-learn releases whose code was read (1.8.0, 1.9.1: the same arithmetic); 1.7 and
# before chose between one-vs-rest and multinomial probabilities by ``multi_class``
READ_RELEASES = ((1, 8), (1, 9))
REGRESSORS = ("LinearRegression", "Ridge")


def direct(model: Any) -> Direct | None:
    """``model``'s answers computed its own way without its input checks, or None when it is
    not exactly such a model (see the docstring)."""
    if not str(type(model).__module__).startswith("sklearn."):
        return None  # nothing imported for a model that is not scikit-learn's
    import sklearn

    if not READ_RELEASES[0] <= release(str(sklearn.__version__)) <= READ_RELEASES[1]:
        return None
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    scalers: list[Any] = []
    final = model
    if type(model) is Pipeline:
        steps = [step for _, step in model.steps]
        if (
            not steps
            or changed(model, "predict", "predict_proba")
            or any(type(s) is not StandardScaler or changed(s, "transform") for s in steps[:-1])
        ):
            return None
        scalers, final = steps[:-1], steps[-1]
        if not all(_float64(s) for s in scalers):
            return None
    width = getattr(model if not scalers else scalers[0], "n_features_in_", None)
    if not isinstance(width, int):
        return None
    answer = _classifier(final) or _regressor(final)
    if answer is None:
        return None

    def run(X: Any, proba: bool) -> tuple[Any, Any] | None:
        import numpy as np

        if (
            type(X) is not np.ndarray
            or X.dtype != np.float64
            or X.ndim != 2
            or X.shape[1] != width
            or not (X.flags.c_contiguous or X.flags.f_contiguous)
        ):
            return None
        for scaler in scalers:
            # scikit-learn copies X, then subtracts and divides in place: the same operations
            # on the same numbers give the same bits out of place (the caller's X untouched;
            # no second copy of the matrix on its path, issue 29)
            if scaler.with_mean:
                X = X - scaler.mean_
                if scaler.with_std:
                    X /= scaler.scale_
            elif scaler.with_std:
                X = X / scaler.scale_
        return answer(X, proba)

    return run


def by_call(run: Direct, X: Any, proba: bool, starts: list[int] | None) -> tuple[Any, Any] | None:
    """``run`` on each call's rows of a batch the pool merged (``starts``: each call's first
    row; None: one call), the answers joined in order. BLAS computes a row by its place in
    the matrix (the last rows that make no whole block of its kernel otherwise), so a row's
    last digits depended on the other users' rows batched with it: measured, 275 of 400 rows
    in batches of 1-32 differed from the row alone, none computed call by call. Each call's
    rows are a view of the batch with the strides of the call alone (a few us a call)."""
    if not starts or len(starts) < 2:
        return run(X, proba)
    import numpy as np

    ends = [*starts[1:], X.shape[0]]
    parts = [run(X[start:end], proba) for start, end in zip(starts, ends, strict=True)]
    if any(part is None for part in parts):
        return None
    labels = np.concatenate([part[0] for part in parts if part is not None])
    if not proba or parts[0] is None or parts[0][1] is None:
        return labels, None
    return labels, np.concatenate([part[1] for part in parts if part is not None])


def _float64(scaler: Any) -> bool:
    """The scaler's mean and scale, as it uses them, are float64 vectors (``astype(X.dtype)``
    is then no change for a float64 X)."""
    import numpy as np

    for name, used in (("mean_", scaler.with_mean), ("scale_", scaler.with_std)):
        value = getattr(scaler, name, None)
        if used and not (isinstance(value, np.ndarray) and value.dtype == np.float64):
            return False
    return True


def _classifier(model: Any) -> Direct | None:
    from sklearn.linear_model import LogisticRegression

    cls = type(model)
    if (
        cls is not LogisticRegression
        or changed(model, "predict", "predict_proba", "decision_function")
        or cls.decision_function.__qualname__ != "LinearClassifierMixin.decision_function"
        or cls.predict.__qualname__ != "LinearClassifierMixin.predict"
        or cls.predict_proba.__qualname__ != "LogisticRegression.predict_proba"
        or getattr(model, "coef_", None) is None
        or getattr(model, "classes_", None) is None
    ):
        return None

    def answer(X: Any, proba: bool) -> tuple[Any, Any] | None:
        import numpy as np
        from scipy import special  # type: ignore[import-untyped]  # scikit-learn's own expit

        coef = model.coef_
        scores = X @ (coef.T if coef.ndim == 2 else coef) + model.intercept_
        if scores.ndim > 1 and scores.shape[1] == 1:
            scores = np.reshape(scores, (-1,))
        vector = scores.ndim == 1
        indices = (scores > 0).astype(np.intp) if vector else np.argmax(scores, axis=1)
        labels = np.take(model.classes_, indices, axis=0)
        if not proba:
            return labels, None
        if model.classes_.size <= 2:
            p = special.expit(scores, out=scores)
            if p.ndim == 1:
                return labels, np.stack([1 - p, p], axis=1)
            return None  # two score columns for two classes: the model's own way
        scores -= np.reshape(np.max(scores, axis=1), (-1, 1))
        np.exp(scores, out=scores)
        scores /= np.reshape(np.sum(scores, axis=1), (-1, 1))
        return labels, scores

    return answer


def _regressor(model: Any) -> Direct | None:
    import sklearn.linear_model

    cls = type(model)
    if (
        cls not in {getattr(sklearn.linear_model, name) for name in REGRESSORS}
        or changed(model, "predict", "_decision_function")
        or cls._decision_function.__qualname__ != "LinearModel._decision_function"
        or getattr(model, "coef_", None) is None
    ):
        return None

    def answer(X: Any, proba: bool) -> tuple[Any, Any] | None:
        if proba:
            return None  # the model's own predict_proba, and its own error (it has none)
        coef = model.coef_
        if coef.ndim == 1:
            return X @ coef + model.intercept_, None
        return X @ coef.T + model.intercept_, None

    return answer
