"""Explanations and what-if curves in the model host (issue 25): from the host's validated
payload to plain-data answers, with the model's own input building (``ModelHost._answer``).

::

    web process                          model host
    ───────────                          ──────────
    pool.ask("explain", payload) ──────► ModelHost.explain ─► why.explain(target, payload)
                                           rows of the payload as a frame of user columns
                                           the number explained: a regressor's value, or the
                                             probability of the class predicted for the row
                                           engine.shapley(row, reference, score) per row:
                                             coalition rows scored in chunks of one call each
    ◄──────── {"ok": True, "explanations": [{baseline, output, contributions, ...}]}

    pool.ask("whatif", payload, {"columns"}) ─► why.whatif: for each column, the row with that
                                           column swept over its reference range, all in one
                                           model call; the predictions (and probabilities)
    ◄──────── {"ok": True, "curves": [{column, values, predictions, probabilities?}]}

Every answer is a record (``answers.failure`` on error), as ``predict``'s. No reference
sample is ``NoReference`` (the web process answers 409 with what file to add).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from winserve.host import explain as engine
from winserve.host.inputs import MATRIX_BYTES, MATRIX_SHAPE
from winserve.host.reference import Reference, how_to_make, not_a_table

NO_REFERENCE = "NoReference"
NOT_EXPLAINABLE = "NotExplainable"
TOO_SLOW = "ExplainTooSlow"
MAX_EXPLAINED_ROWS = 10  # rows one explain call takes (each costs up to engine.MAX_ROWS)

Answer = Callable[[dict[str, Any], bool, bool], dict[str, Any]]


@dataclass(frozen=True)
class Target:
    """What the host knows that an explanation needs."""

    answer: Answer  # ModelHost._answer: payload, proba, scores → record (raises on error)
    features: list[dict[str, Any]]
    classes: list[Any]
    has_proba: bool
    reference: Reference | None
    model_path: str
    task: str = ""

    @property
    def names(self) -> list[str]:
        return [str(f["name"]) for f in self.features]


def unavailable(target: Target) -> dict[str, Any] | None:
    """The failure record when ``target`` cannot be explained; None when it can."""
    from winserve.host.answers import ask_failure as failure

    reference = target.reference
    tensors = not_a_table([str(f.get("kind", "")) for f in target.features])
    if tensors:  # before the sample: none would help (issue 24)
        return failure(NOT_EXPLAINABLE, tensors)
    if reference is None:
        return failure(
            NO_REFERENCE,
            "this model has no reference sample, which explanations and what-if curves "
            f"are computed against: {how_to_make(target.model_path)}",
        )
    if reference.frame is None:
        return failure(NO_REFERENCE, reference.problem)
    if not target.features or any(f.get("shape") for f in target.features):
        return failure(NOT_EXPLAINABLE, "explanations are for models that take columns")
    return None


def frame_of(payload: dict[str, Any], names: list[str]) -> Any:
    """The payload's rows as a frame of the user's columns."""
    import numpy as np
    import pandas as pd

    if MATRIX_BYTES in payload:
        flat = np.frombuffer(payload[MATRIX_BYTES], dtype=np.float64)
        return pd.DataFrame(flat.reshape(payload[MATRIX_SHAPE]), columns=names)
    if "matrix" in payload:
        return pd.DataFrame(np.asarray(payload["matrix"], dtype=np.float64), columns=names)
    return pd.DataFrame({name: list(payload["columns"][name]) for name in names})


def payload_of(frame: Any, target: Target) -> dict[str, Any]:
    """A frame of the user's columns as the host's payload (a number matrix when every column
    is a number, as the web process sends such rows)."""
    import numpy as np

    if all(f["kind"] == "number" for f in target.features):
        return {"matrix": frame[target.names].to_numpy(dtype=np.float64)}
    return {"columns": {name: frame[name].tolist() for name in target.names}}


def _scorer(target: Target, row: Any) -> tuple[Callable[[Any], Any], dict[str, Any]]:
    """The number explained for ``row`` (a one-row frame): a classifier's probability of the
    class it predicts for the row, else the prediction itself; and what it is, in words."""
    import numpy as np

    if target.task in ("clustering", "outlier_detection"):
        # a cluster's number or an outlier's -1/1 is a label, not a quantity to share out
        raise ExplainError(
            "explanations need a number to share out: this model's answers are "
            + ("cluster numbers" if target.task == "clustering" else "outlier labels (-1, 1)")
        )
    first = target.answer(payload_of(row, target), target.has_proba, False)
    predicted = first["predictions"][0]
    if target.has_proba and first.get("probabilities"):
        probabilities = first["probabilities"][0]
        if (
            isinstance(probabilities, list)
            and probabilities
            and not isinstance(probabilities[0], list)
        ):
            column = (
                target.classes.index(predicted)
                if predicted in target.classes
                else int(np.argmax(probabilities))
            )

            def probability(frame: Any) -> Any:
                record = target.answer(payload_of(frame, target), True, False)
                return np.asarray(record["probabilities"], dtype=np.float64)[:, column]

            return probability, {"explained": "probability", "class": predicted}
    if isinstance(predicted, list):
        raise ExplainError(
            "explanations need a number to share out: this model predicts "
            f"{len(predicted)} outputs per row (one output at a time is not offered yet)"
        )
    if isinstance(predicted, bool) or not isinstance(predicted, (int, float)):
        raise ExplainError(
            "explanations need a number to share out: this model predicts "
            f"{type(predicted).__name__} values and gives no class probabilities"
        )

    def value(frame: Any) -> Any:
        record = target.answer(payload_of(frame, target), False, False)
        return np.asarray(record["predictions"], dtype=np.float64)

    return value, {"explained": "prediction"}


class ExplainError(Exception):
    """The model cannot be explained this way (a 409, not the model's fault)."""


class TooSlow(Exception):
    """The explanation ran out of its time: answered before the pool's deadline would kill
    the replica for it (a 504, and the model keeps serving)."""


def _bounded(score: Callable[[Any], Any], deadline: float | None) -> Callable[[Any], Any]:
    """``score``, refusing to start another model call past ``deadline`` (time.monotonic)."""
    if deadline is None:
        return score

    def bounded(frame: Any) -> Any:
        if time.monotonic() > deadline:
            raise TooSlow
        return score(frame)

    return bounded


def explain(
    target: Target, payload: dict[str, Any], max_rows: int, seconds: float | None = None
) -> dict[str, Any]:
    """Shapley values of each row of ``payload`` against the reference sample, in at most
    about ``seconds`` (the pool's deadline, less a margin: past it the replica is killed)."""
    from winserve.host.answers import ask_error as error_record
    from winserve.host.answers import ask_failure as failure

    deadline = None if seconds is None else time.monotonic() + seconds

    refused = unavailable(target)
    if refused is not None:
        return refused
    assert target.reference is not None
    reference = target.reference.frame[target.names]
    rows = frame_of(payload, target.names)
    if len(rows) > MAX_EXPLAINED_ROWS:
        return failure(
            "TooManyRows",
            f"{len(rows)} rows asked to be explained; at most {MAX_EXPLAINED_ROWS} per request",
            input_error=True,
        )
    explanations = []
    try:
        for i in range(len(rows)):
            row = rows.iloc[i : i + 1].reset_index(drop=True)
            score, what = _scorer(target, row)
            found = engine.shapley(row, reference, _bounded(score, deadline), max_rows)
            explanations.append({**found.to_dict(), **what})
    except ExplainError as exc:
        return failure(NOT_EXPLAINABLE, str(exc))
    except TooSlow:
        return failure(
            TOO_SLOW,
            f"explaining {len(rows)} row{'s' if len(rows) > 1 else ''} takes this model longer "
            f"than {seconds:g} s (the model's timeout allows no more); {len(explanations)} "
            "explained in that time: ask for fewer rows at a time",
        )
    except Exception as exc:
        return error_record(exc)
    return {"ok": True, "explanations": explanations}


def whatif(target: Target, payload: dict[str, Any], columns: list[str]) -> dict[str, Any]:
    """For the one row of ``payload``: each of ``columns`` (all when empty) swept over its
    reference range, with the model's prediction at each value; one model call."""
    import pandas as pd

    from winserve.host.answers import ask_error as error_record
    from winserve.host.answers import ask_failure as failure

    refused = unavailable(target)
    if refused is not None:
        return refused
    assert target.reference is not None
    reference = target.reference.frame
    row = frame_of(payload, target.names)
    if len(row) != 1:
        return failure("OneRow", f"what-if takes one row; {len(row)} were sent", input_error=True)
    kinds = {str(f["name"]): str(f["kind"]) for f in target.features}
    chosen = columns or target.names
    unknown = [c for c in chosen if c not in kinds]
    if unknown:
        return failure(
            "UnknownColumn",
            f"unknown column {unknown[0]!r} in 'columns'; the model takes "
            + ", ".join(target.names),
            input_error=True,
        )
    sweeps = [(c, engine.sweep_values(reference[c], kinds[c])) for c in chosen]
    frames = [engine.sweep_frame(row, c, values) for c, values in sweeps if values]
    try:
        record = (
            target.answer(
                payload_of(pd.concat(frames, ignore_index=True), target), target.has_proba, False
            )
            if frames
            else {"predictions": [], "probabilities": None}
        )
    except Exception as exc:
        return error_record(exc)
    curves = []
    at = 0
    for column, values in sweeps:
        end = at + len(values)
        curve: dict[str, Any] = {
            "column": column,
            "kind": kinds[column],
            "values": values,
            "predictions": record["predictions"][at:end],
        }
        if record.get("probabilities") is not None:
            curve["probabilities"] = record["probabilities"][at:end]
        curves.append(curve)
        at = end
    return {"ok": True, "curves": curves, "classes": target.classes}
