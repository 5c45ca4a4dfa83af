"""What crosses to a model host: a number matrix as raw bytes + shape (issue 14)."""

from __future__ import annotations

import pickle

import numpy as np

from winserve.backends.replica import PICKLE_PROTOCOL, wire_payload
from winserve.host.inputs import MATRIX_BYTES, build_input

FEATURES = [{"name": "a", "kind": "number"}, {"name": "b", "kind": "number"}]


def test_a_matrix_travels_as_bytes_and_arrives_equal_and_writable() -> None:
    matrix = np.array([[1.5, np.nan], [-2.0, 1e300]])
    # its raw buffer, pickled as the proxy pickles it (issue 23: a PickleBuffer, no tobytes copy)
    sent = pickle.loads(pickle.dumps(wire_payload({"matrix": matrix}), PICKLE_PROTOCOL))
    assert isinstance(sent[MATRIX_BYTES], (bytes, bytearray))
    got = build_input(sent, FEATURES, names_known=False, arrays_ok=False)
    np.testing.assert_array_equal(got, matrix)
    assert got.dtype == np.float64 and got.flags.writeable  # a model may scale in place


def test_a_matrix_arrives_as_a_dataframe_for_a_model_fitted_on_one() -> None:
    matrix = np.array([[1.0, 2.0]])
    got = build_input(wire_payload({"matrix": matrix}), FEATURES, names_known=True, arrays_ok=False)
    assert list(got.columns) == ["a", "b"]
    assert got.to_numpy().tolist() == [[1.0, 2.0]]


def test_other_payloads_travel_as_they_are() -> None:
    columns = {"columns": {"a": [1.0], "b": ["x"]}}
    rows = {"rows": [[1, "x"]]}
    ints = {"matrix": np.array([[1, 2]])}
    assert wire_payload(columns) is columns
    assert wire_payload(rows) is rows
    assert wire_payload(ints) is ints


def test_the_host_knows_a_finite_matrix_from_one_with_nan_or_infinity() -> None:
    from winserve.host.inputs import all_finite_matrix

    assert all_finite_matrix(wire_payload({"matrix": np.array([[1.0, 1e308]])}))
    assert not all_finite_matrix(wire_payload({"matrix": np.array([[1.0, np.nan]])}))
    assert not all_finite_matrix({"matrix": np.array([[np.inf, 1.0]])})
    assert not all_finite_matrix({"columns": {"a": [1.0]}})
