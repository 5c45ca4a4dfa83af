"""Payloads: validated rows on their way to the model, as plain data (see ``winserve.host.inputs``).

Several requests' payloads merge into one model call (opportunistic batching), and the result
is split back by row counts.
"""

from __future__ import annotations

from typing import Any

Payload = dict[str, Any]


def row_count(payload: Payload) -> int:
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
    if all("matrix" in p for p in payloads):
        return {"matrix": np.concatenate([p["matrix"] for p in payloads])}
    if all("columns" in p for p in payloads):
        return {
            "columns": {
                name: [v for p in payloads for v in p["columns"][name]] for name in first["columns"]
            }
        }
    return {"rows": [row for p in payloads for row in _rows(p)]}


def _rows(payload: Payload) -> list[Any]:
    if "rows" in payload:
        return list(payload["rows"])
    if "matrix" in payload:
        rows: list[Any] = payload["matrix"].tolist()
        return rows
    columns = list(payload["columns"].values())
    return [list(row) for row in zip(*columns, strict=True)]
