"""A number matrix against float32's range, in the model host (issue 22).

::

    ModelHost._answer(payload)
      payload marked WITHIN_FLOAT32 by the web process (checked as it built the matrix), or
      within(payload) ─► True: predicted with scikit-learn's own finiteness check off
      the model raised an input error ─► beyond(names, payload): which columns hold a number
                                         beyond float32, in words, for the error's message

A number beyond float32 (1e300) is finite in float64, but a forest casts it to float32, where
it becomes an infinity its own check refuses and ``assume_finite`` would let through.
"""

from __future__ import annotations

from typing import Any

from winserve.host.inputs import MATRIX_BYTES, MATRIX_SHAPE, WITHIN_FLOAT32

# The largest float32: a forest (or anything else casting to float32) turns a larger number
# into an infinity, which scikit-learn's own check refuses (issue 22); one constant with the
# web process's check of the same (winserve.validate, issue 23)
from winserve.rows import FLOAT32_MAX


def within(payload: dict[str, Any]) -> bool:
    """Whether ``payload`` is a number matrix without NaN, infinities or numbers beyond
    float32's range: the only input predicted with scikit-learn's finiteness check off. One
    pass over the matrix, as the finiteness check alone was."""
    if payload.get(WITHIN_FLOAT32):  # checked as the web process built it (issue 23)
        return True
    import numpy as np

    if MATRIX_BYTES not in payload:
        matrix = payload.get("matrix")
        if matrix is None or getattr(matrix, "dtype", None) != np.float64:
            return False
    values = matrix_of(payload)
    if values.size == 0:
        return True
    # NaN compares False, an infinity is beyond the range: both keep the check
    return bool(np.abs(values).max() <= FLOAT32_MAX)


def beyond(names: list[str], payload: dict[str, Any]) -> str:
    """The columns of ``payload`` (named ``names``, in order) holding a number beyond
    float32's range, in words; "" when there is none (or the payload has no named columns)."""
    import numpy as np

    found: list[str] = []
    if MATRIX_BYTES in payload or "matrix" in payload:
        matrix = matrix_of(payload)
        if matrix.ndim != 2 or matrix.shape[1] != len(names):
            return ""
        with np.errstate(invalid="ignore"):
            big = np.abs(matrix) > FLOAT32_MAX
        for column in np.flatnonzero(big.any(axis=0)):
            value = matrix[np.flatnonzero(big[:, column])[0], column]
            found.append(f"column {names[column]!r}: {value:g}")
    elif "columns" in payload:
        for name, values in payload["columns"].items():
            value = next((v for v in values if too_large(v)), None)
            if value is not None:
                found.append(f"column {name!r}: {value:g}")
    if not found:
        return ""
    return "; ".join(found) + f" is beyond the model's range of ±{FLOAT32_MAX:.7g} (float32)"


def matrix_of(payload: dict[str, Any]) -> Any:
    """A matrix payload's numbers as an array (its bytes read in place, not copied)."""
    import numpy as np

    if MATRIX_BYTES in payload:
        flat = np.frombuffer(payload[MATRIX_BYTES], dtype=np.float64)
        return flat.reshape(payload[MATRIX_SHAPE])
    return np.asarray(payload["matrix"])


def too_large(value: Any) -> bool:
    # NaN compares False; an int too large for a float compares exactly
    return (
        isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) > FLOAT32_MAX
    )
