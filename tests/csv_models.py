"""Importable test models for CSV scoring on the page (a spawned host imports them by name)."""

from __future__ import annotations

from typing import Any

import numpy as np

# labels a spreadsheet would run as formulas, and labels that are numbers (they must stay so)
FORMULA_LABELS = ['=HYPERLINK("http://evil.example","x")', "-2+3", "@SUM(A1)", "+1", "-3", "ok"]
FORMULA_ERROR = "=cmd|' /C calc'!A0"


class FormulaModel:
    """A classifier whose labels, and whose error for a = 99, look like formulas."""

    feature_names_in_ = np.array(["a", "b"], dtype=object)
    n_features_in_ = 2
    # the columns' kinds, declared as a model object may (issue 22: a column no step of the
    # model declares is passed as sent, and a form's "1,5" would reach predict() as text)
    winserve_features = ({"name": "a", "kind": "number"}, {"name": "b", "kind": "number"})
    classes_ = np.array(FORMULA_LABELS, dtype=object)

    def _index(self, frame: Any) -> np.ndarray:
        a = np.asarray(frame["a"], dtype=float)
        if (a == 99).any():
            raise ValueError(FORMULA_ERROR)
        return a.astype(int) % len(self.classes_)

    def predict(self, frame: Any) -> np.ndarray:
        return self.classes_[self._index(frame)]

    def predict_proba(self, frame: Any) -> np.ndarray:
        return np.eye(len(self.classes_))[self._index(frame)]


def formula() -> FormulaModel:
    return FormulaModel()


class TwoOutputModel:
    """A multi-output regressor: each prediction is [a + b, a - b]."""

    feature_names_in_ = np.array(["a", "b"], dtype=object)
    n_features_in_ = 2
    # the columns' kinds, declared as a model object may (issue 22: a column no step of the
    # model declares is passed as sent, and a form's "1,5" would reach predict() as text)
    winserve_features = ({"name": "a", "kind": "number"}, {"name": "b", "kind": "number"})

    def predict(self, frame: Any) -> np.ndarray:
        a, b = (np.asarray(frame[c], dtype=float) for c in ("a", "b"))
        return np.column_stack([a + b, a - b])


def two_outputs() -> TwoOutputModel:
    return TwoOutputModel()
