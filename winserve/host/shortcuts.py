"""Winserve's own ways of computing a model's answers, each switched on at load only where
the load's rows get the same answers from it as from the model's own methods (issue 29).

::

    ModelHost._load ─► the sample row answered, the reference sample read
        check_labels: labels from predict_proba's answer (``labels``), a forest's trees
                      summed without joblib (``forest_proba``)
        check_direct: a linear model's arithmetic without its input checks (``linear``)
      each: the check's rows (the sample row, the reference sample's first rows, and for a
      linear model rows of every magnitude) answered both ways, labels alone and with
      probabilities ─► the same text (``_answered``: values and their types, or the error
      raised) ─► on (``Predictor._derive`` / ``_summed`` / ``_summed_predict`` / ``_direct``)
                 else off: the model's own methods, as in a notebook

A shortcut is never assumed right: its module reads the model's class and scikit-learn's
release, and this check compares its answers with the model's, to the byte.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any

from winserve.host import forest_proba, labels, linear
from winserve.host import reference as reference_sample
from winserve.host.inputs import Predictor

LOG = logging.getLogger(__name__)
LABEL_CHECK_ROWS = 500  # reference rows the labels from probabilities are checked on (#29)
RAISED = "raised "  # an answer of the load's checks that was an error


class Shortcuts(Predictor):
    """The load's checks of the shortcuts (see the module docstring); ``ModelHost`` runs them
    once the model, its sample row and its reference sample are loaded."""

    _sample_row: dict[str, Any]
    _reference: reference_sample.Reference | None

    def check_labels(self, info: dict[str, Any]) -> None:
        """Whether a call asking for probabilities can take the labels from them
        (``host.labels``, issue 29): only for a class on its list, and only when the sample
        row and the reference rows get the same answers, to the byte, both ways. A forest's
        probabilities are summed in the host (``host.forest_proba``) when that too answers
        the same; then labels alone come from them as well (its predict's own way)."""
        self._derive = self._summed = self._summed_predict = None
        derive = labels.derivation(self._model)
        summed = forest_proba.summed(self._model) if derive is not None else None
        on = False
        for candidate in (summed, None) if summed is not None else (None,):
            if derive is not None and self._labels_agree(derive, candidate):
                on, self._summed = True, candidate
                break
        self._derive = derive if on else None
        info["extra"]["labels_from"] = "predict_proba" if on else "predict"
        regression = forest_proba.summed_predict(self._model)
        if regression is not None and self._regression_agrees(regression):
            self._summed_predict = regression
        summing = self._summed is not None or self._summed_predict is not None
        info["extra"]["forest_summed"] = summing

    def check_direct(self, info: dict[str, Any]) -> None:
        """Whether a linear model's finite matrices are answered by its arithmetic alone
        (``host.linear``, issue 29): only where the sample row and the reference rows get
        the same answers, to the byte, labels alone and with probabilities."""
        self._direct = None
        direct = linear.direct(self._model)
        info["extra"]["linear_direct"] = False
        if direct is None:
            return
        used: list[bool] = []

        def counted(X: Any, proba: bool) -> Any:
            out = direct(X, proba)
            used.append(out is not None)
            return out

        def switch(on: bool) -> None:
            self._direct = counted if on else None

        # as a request and a CSV chunk bring them: one number matrix in the model's order;
        # and rows of every magnitude, for a model with no reference sample (one row of zeros)
        matrices = [m for m in map(self._as_matrix, self._check_payloads()) if m is not None]
        matrices.append({"matrix": _far_rows(len(self._features))})
        # and column-major, as a job's chunks come (rows.COLUMN_MAJOR): BLAS rounds the two
        # layouts differently, each must be scikit-learn's own
        import numpy as np

        matrices += [{"matrix": np.asfortranarray(m["matrix"])} for m in list(matrices)]
        if self._compared(matrices, (True, False), switch) is None:
            LOG.debug("a linear model's own predict kept: the answers differ")
            return
        self._direct = direct if any(used) else None
        info["extra"]["linear_direct"] = self._direct is not None

    def _as_matrix(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        """A check payload's columns as one float64 matrix in the model's column order, or
        None when a column is not numbers."""
        import numpy as np

        columns = payload["columns"]
        try:
            matrix = np.array([columns[f["name"]] for f in self._features], dtype=np.float64)
        except (KeyError, ValueError, TypeError):
            return None
        return {"matrix": np.ascontiguousarray(matrix.T)}

    def _check_payloads(self) -> list[dict[str, Any]]:
        """The sample row, and the reference sample's first rows when there is one."""
        payloads = [{"columns": {k: [v] for k, v in self._sample_row.items()}}]
        frame = self._reference.frame if self._reference is not None else None
        if frame is not None and len(frame):
            rows = frame.head(LABEL_CHECK_ROWS)
            payloads.append(
                {"columns": {f["name"]: rows[f["name"]].tolist() for f in self._features}}
            )
        return payloads

    def _regression_agrees(self, summed: Callable[[Any], Any]) -> bool:
        """Whether a regression forest's trees summed here answer the check's rows exactly
        as its own predict (``host.forest_proba``, issue 29)."""

        def switch(on: bool) -> None:
            self._summed_predict = summed if on else None

        owns = self._compared(self._check_payloads(), (False,), switch)
        if owns is None:
            LOG.debug("a regression forest's own predict kept: the sums differ")
            return False
        # rows that only raised (both ways) show nothing
        return any(not own.startswith(RAISED) for own in owns)

    def _answered(self, payload: dict[str, Any], proba: bool) -> str:
        """The answer to ``payload`` as text that tells apart what its JSON would ("1", 1,
        1.0, True), or the error it raised: what the load's checks compare (issue 29)."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got = self._answer(payload, proba, False)
            return repr([got["predictions"], got["probabilities"]])
        except Exception as exc:
            return f"{RAISED}{type(exc).__name__}"

    def _labels_agree(
        self, derive: Callable[[Any], Any], summed: Callable[[Any], Any] | None
    ) -> bool:
        """Whether the rows get the same answers, labels alone and with probabilities, from
        the model's own predict and predict_proba as from ``derive`` (after ``summed``)."""
        derived: list[bool] = []

        def counted(raw: Any) -> Any:
            out = derive(raw)
            derived.append(out is not None)
            return out

        def switch(on: bool) -> None:
            self._derive, self._summed = (counted, summed) if on else (None, None)

        if self._compared(self._check_payloads(), (True, False), switch) is None:
            # not alarming: the model keeps its two calls, as every model did before
            LOG.debug("labels from probabilities stay off: they differ from predict's")
            return False
        return any(derived)

    def _compared(
        self,
        payloads: list[dict[str, Any]],
        probas: tuple[bool, ...],
        switch: Callable[[bool], None],
    ) -> list[str] | None:
        """The model's own answers to each payload, asked with each of ``probas``, when the
        shortcut ``switch(True)`` turns on gives every one of them the same, to the byte
        (``_answered``); None at the first that differs. The shortcut is left off."""
        owns: list[str] = []
        for payload, proba in [(p, asked) for p in payloads for asked in probas]:
            switch(False)
            own = self._answered(payload, proba)
            switch(True)
            ours = self._answered(payload, proba)
            switch(False)
            if own != ours:
                return None
            owns.append(own)
        return owns


def _far_rows(width: int) -> Any:
    """24 rows of ``width`` numbers from 0.001 to 10,000 in size, either sign (seeded): where
    arithmetic that differs from the model's would show, though its sample row may not."""
    import numpy as np

    rng = np.random.default_rng(29)
    scale = 10.0 ** np.repeat(np.arange(-3, 5), 3)[:, None]
    return np.ascontiguousarray(rng.normal(size=(24, width)) * scale)
