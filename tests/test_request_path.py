"""The request path of issue 23: a tagged PredictRequest, one finiteness check, one copy.

No processes: the protocols' decoders, ``winserve.validate.prepare``, the payload as the proxy
pickles it and as the model host reads it (``build_input``), all in this process.
"""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

import numpy as np
import pytest

from winserve.backends.batch import merge_payloads
from winserve.backends.replica import PICKLE_PROTOCOL, wire_payload
from winserve.host.inputs import MATRIX_BYTES, build_input
from winserve.model_info import Feature, ModelInfo
from winserve.protocols import mlflow, native
from winserve.rows import (
    FLOAT32_MAX,
    WITHIN_FLOAT32,
    Columns,
    Matrix,
    PredictRequest,
    Rows,
    Tensors,
    Values,
)
from winserve.validate import prepare

pytestmark = pytest.mark.timeout(60)

NUMBERS = ModelInfo("m", "test", "regression", (Feature("a"), Feature("b")), True)
FEATURES = [{"name": "a", "kind": "number"}, {"name": "b", "kind": "number"}]


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ({"a": 1, "b": 2}, Rows),  # one record: a row under its names (issue 29)
        ([{"a": 1, "b": 2}, {"b": 3, "a": 4}], Columns),
        ({"columns": ["b", "a"], "data": [[1, 2]]}, Rows),
        ([[1, 2], [3, 4]], Rows),
        (["some text", "more"], Values),
        ({"inputs": {"image": [[1.0]]}}, Tensors),
    ],
)
def test_each_body_decodes_to_its_own_kind(body: Any, kind: type) -> None:
    request = native.decode(body, False)
    assert type(request.data) is kind
    rows = 0 if kind is Tensors else len(body) if isinstance(body, list) else 1
    assert request.n_rows == rows


def test_a_split_body_keeps_its_names_and_a_csv_body_says_its_cells_are_text() -> None:
    split = native.decode({"columns": ["b", "a"], "data": [[1, 2]]}, True)
    assert split.data == Rows([[1, 2]], ["b", "a"]) and split.proba
    csv = mlflow.decode_csv("a,b\n1,x\n").request
    assert csv.data == Rows([["1", "x"]], ["a", "b"]) and csv.cells


def test_the_kinds_are_frozen() -> None:
    request = PredictRequest.from_rows([[1, 2]], names=["a", "b"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.data.rows = []  # type: ignore[misc]
    assert request.data == Rows([[1, 2]], ["a", "b"]) and request.n_rows == 1


def test_a_request_is_made_whole_by_its_decoder() -> None:
    """What the caller asks (proba, scores) is given to the decoder, not set afterwards; the
    rows are counted as they are decoded (issue 23: a typed record, no code of its own)."""
    scored = native.decode([[1, 2], [3, 4]], True, scores=True)
    assert (scored.proba, scored.scores, scored.cells, scored.n_rows) == (True, True, False, 2)
    plain = native.decode({"a": 1, "b": 2}, False)
    assert (plain.proba, plain.scores, plain.n_rows) == (False, False, 1)
    assert native.from_uploads({"image": [b"x"]}, False, True).scores
    with pytest.raises(TypeError):  # what is asked is named, never a position
        PredictRequest(Columns({"a": [1]}), 1, True)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("built", "expected"),
    [
        (PredictRequest.from_columns({"a": [1, 2]}), Columns({"a": [1, 2]})),
        (PredictRequest.from_rows([[1]], names=["a"]), Rows([[1]], ["a"])),
        (PredictRequest.from_values(["x"]), Values(["x"])),
        (PredictRequest.from_inputs({"image": [b"x"]}), Tensors({"image": [b"x"]})),
    ],
)
def test_the_constructors_build_their_kind(built: PredictRequest, expected: object) -> None:
    assert built.data == expected


def test_a_matrix_request_counts_its_rows() -> None:
    request = PredictRequest.from_matrix(np.zeros((3, 2)))
    assert isinstance(request.data, Matrix) and request.n_rows == 3


@pytest.mark.parametrize(
    "rows",
    [
        [[1.5, 2]],
        [[3.4e38, -3.4e38]],  # within float32, just
        [[3.5e38, 0.0]],  # finite, beyond float32
        [[1e300, 1.0]],
        [[1e308, 1e308]],  # finite, though their sum is not
        [[10**30, 2]],  # ints
        [[1.0, 2.0]] * 3000,  # 6,000 values: NumPy's check
        [[1.0, 2.0]] * 2999 + [[1e300, 2.0]],
    ],
)
def test_the_matrix_is_checked_once_and_says_when_it_is_within_float32(
    rows: list[list[Any]],
) -> None:
    """The web process's one check agrees with NumPy's: the flag is there exactly when every
    number is finite and within float32's range, as records and as lists."""
    expected = np.array(rows, dtype=np.float64)
    within = bool(np.isfinite(expected).all() and np.abs(expected).max() <= FLOAT32_MAX)
    records = [{"a": a, "b": b} for a, b in rows]
    for body in (rows, records):
        payload = prepare(native.decode(body, False), NUMBERS, max_rows=10_000).payload
        np.testing.assert_array_equal(payload["matrix"], expected)
        assert payload.get(WITHIN_FLOAT32, False) == within


@pytest.mark.parametrize("bad", [float("nan"), None, float("inf")])
def test_a_missing_or_infinite_value_leaves_the_host_to_check(bad: Any) -> None:
    try:
        payload = prepare(native.decode([[1.0, bad]], False), NUMBERS, max_rows=10).payload
    except Exception as exc:  # an infinity is refused, with its row and column
        assert "row 1, column 'b'" in str(exc)
        return
    assert WITHIN_FLOAT32 not in payload and np.isnan(payload["matrix"][0, 1])


def test_merged_payloads_keep_the_flag_only_when_all_had_it() -> None:
    checked = {"matrix": np.ones((1, 2)), WITHIN_FLOAT32: True}
    unchecked = {"matrix": np.ones((1, 2))}
    assert merge_payloads([checked, checked])[WITHIN_FLOAT32] is True
    assert WITHIN_FLOAT32 not in merge_payloads([checked, unchecked])


def test_the_matrix_crosses_without_a_copy_and_the_host_copies_it_once() -> None:
    matrix = np.array([[1.5, 2.5], [3.5, 4.5]])
    sent = wire_payload({"matrix": matrix, WITHIN_FLOAT32: True})
    assert np.shares_memory(np.frombuffer(sent[MATRIX_BYTES]), matrix)  # no tobytes here
    received = pickle.loads(pickle.dumps(sent, PICKLE_PROTOCOL))
    assert received[WITHIN_FLOAT32] is True
    got = build_input(received, FEATURES, names_known=False, arrays_ok=True)
    np.testing.assert_array_equal(got, matrix)
    got[0, 0] = -1.0  # a model writing into its input leaves the payload as sent
    assert np.frombuffer(received[MATRIX_BYTES])[0] == 1.5


def test_the_host_trusts_the_web_process_check() -> None:
    from winserve.host.float32 import within as _within_float32

    beyond = np.array([[1e300, 1.0]])
    assert not _within_float32(wire_payload({"matrix": beyond}))
    assert _within_float32(wire_payload({"matrix": np.ones((1, 2)), WITHIN_FLOAT32: True}))
