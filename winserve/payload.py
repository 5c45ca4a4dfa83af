"""Payloads: validated rows on their way to the model, as plain data (see ``winserve.host.inputs``).

Several requests' payloads merge into one model call (opportunistic batching), and the result
is split back by row counts. Tensors (``{"tensors": {name: array | [image bytes, ...]}}``,
issue 24) merge only with tensors of the same per-row shapes and dtypes (``batch_key``), and
a batch is capped in bytes as well as in rows (``payload_bytes``).

A number matrix may carry ``WITHIN_FLOAT32: True``: the web process found every number finite
and within float32's range while it built the matrix (``winserve.validate``), so the model host
skips its own check of the same (issue 23: the finiteness of a row was checked twice). Merged
payloads keep it only when every one of them had it.
"""

from __future__ import annotations

from typing import Any

Payload = dict[str, Any]

WITHIN_FLOAT32 = "matrix_within_float32"  # key of a matrix payload: checked finite, float32-sized
FLOAT32_MAX = 3.4028234663852886e38  # float(np.finfo(np.float32).max)


def row_count(payload: Payload) -> int:
    if "tensors" in payload:
        return len(next(iter(payload["tensors"].values()), []))
    if "matrix" in payload:
        return int(payload["matrix"].shape[0])
    if "columns" in payload:
        return len(next(iter(payload["columns"].values()), []))
    return len(payload["rows"])


def merge_payloads(payloads: list[Payload]) -> Payload:
    """One payload holding every row of ``payloads``, in order (for a batched model call)."""
    if len(payloads) == 1:
        return payloads[0]
    import numpy as np

    first = payloads[0]
    if "tensors" in first:  # the pool merges only payloads of one batch_key
        return {
            "tensors": {
                name: _stacked([p["tensors"][name] for p in payloads]) for name in first["tensors"]
            }
        }
    if all("matrix" in p for p in payloads):
        merged: Payload = {"matrix": np.concatenate([p["matrix"] for p in payloads])}
        if all(p.get(WITHIN_FLOAT32) for p in payloads):
            merged[WITHIN_FLOAT32] = True
        return merged
    if all("columns" in p for p in payloads):
        return {
            "columns": {
                name: [v for p in payloads for v in p["columns"][name]] for name in first["columns"]
            }
        }
    return {"rows": [row for p in payloads for row in _rows(p)]}


def batch_key(payload: Payload) -> Any:
    """What payloads must share to go into one call: ``None`` for rows of a table (any of
    them merge), each input's per-row shape and dtype for tensors (images: any size, they
    are resized in the host)."""
    tensors = payload.get("tensors")
    if tensors is None:
        return None
    return tuple(
        (name, "image") if isinstance(value, list) else (name, value.shape[1:], value.dtype.str)
        for name, value in tensors.items()
    )


def payload_bytes(payload: Payload) -> int:
    """About how many bytes ``payload`` carries to the model (tensors and images; 0 else)."""
    tensors = payload.get("tensors")
    if tensors is None:
        return 0
    return sum(
        sum(map(len, value)) if isinstance(value, list) else int(value.nbytes)
        for value in tensors.values()
    )


def _stacked(values: list[Any]) -> Any:
    if isinstance(values[0], list):
        return [item for value in values for item in value]
    import numpy as np

    return np.concatenate(values)


def _rows(payload: Payload) -> list[Any]:
    if "rows" in payload:
        return list(payload["rows"])
    if "matrix" in payload:
        rows: list[Any] = payload["matrix"].tolist()
        return rows
    columns = list(payload["columns"].values())
    return [list(row) for row in zip(*columns, strict=True)]
