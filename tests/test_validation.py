"""Decoding the native formats and checking rows against the model (no processes)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from winserve.backends.batch import merge_payloads, row_count
from winserve.errors import BadRequest, PayloadTooLarge
from winserve.model_info import Feature, ModelInfo
from winserve.protocols import native
from winserve.service import prepare

NUMERIC = ModelInfo(
    "m",
    "LogisticRegression",
    "classification",
    (Feature("a"), Feature("b")),
    True,
    classes=("x", "y"),
    has_proba=True,
)
MIXED = ModelInfo(
    "m",
    "Pipeline",
    "regression",
    (
        Feature("age"),
        Feature("sex", "category", ("female", "male"), True),
        Feature("note", "string"),
    ),
    True,
)


REQUIRED_B = ModelInfo(
    "m",
    "LogisticRegression",
    "classification",
    (Feature("a", missing="accepted"), Feature("b", missing="refused", missing_reason="NaN!")),
    True,
)


def _prepare(body: Any, info: ModelInfo = NUMERIC, max_rows: int = 100) -> Any:
    return prepare(native.decode(body, False), info, max_rows=max_rows)


@pytest.mark.parametrize(
    "body",
    [
        [{"a": 1, "b": 2.5}, {"b": 4, "a": 3}],
        {"columns": ["b", "a"], "data": [[2.5, 1], [4, 3]]},
        [[1, 2.5], [3, 4]],
        [["1", " 2.5 "], [3, 4]],
    ],
)
def test_every_native_shape_gives_the_same_matrix(body: Any) -> None:
    prepared = _prepare(body)
    assert prepared.payload["matrix"].tolist() == [[1.0, 2.5], [3.0, 4.0]]
    assert prepared.n_rows == 2


def test_a_single_object_is_one_row() -> None:
    assert _prepare({"a": 1, "b": 2}).payload["matrix"].tolist() == [[1.0, 2.0]]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([{"a": 1}], "missing column 'b'. The model expects: 'a', 'b'"),
        ([{"a": 1, "b": 2, "c": 3}], "unknown column 'c'"),
        ([{"a": 1, "b": 2}, {"a": 1}], "row 2: missing column 'b'"),
        ([{"a": 1, "b": "seven"}], "row 1, column 'b': expected a number, got 'seven'"),
        ([[1, 2], [3, 1e400]], "row 2, column 'b': expected a finite number"),
        ([[1, 2], [3, "inf"]], "expected a finite number"),
        ([[1, 2], [3, [4]]], "expected a number, got list [4]"),
        ([[1, 2, 3]], "row 1: has 3 values; the model expects 2 ('a', 'b')"),
        ([], "no rows to predict"),
        ({"columns": ["a", "a"], "data": [[1, 2]]}, "column names appear more than once: 'a'"),
        ({"columns": ["a", "b"], "data": [[1]]}, 'row 1 has 1 value; "columns" names 2'),
        ({"columns": "a", "data": []}, '"columns" must be a list of column names'),
        ({"columns": ["a", "b"], "data": [], "extra": 1}, "unexpected: 'extra'"),
        ([[1, 2], {"a": 1}], "not a mix of both"),
        ("rows", "expected a JSON object"),
        (42, "expected a JSON object"),
    ],
)
def test_bad_rows_name_the_problem(body: Any, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        _prepare(body)
    assert message in caught.value.message
    assert caught.value.status == 400


def test_many_problems_are_counted_not_all_listed() -> None:
    with pytest.raises(
        BadRequest, match=r"^row 1, column 'a'.*row 3, column 'a'[^;]*\(and 5 more problems\)"
    ):
        _prepare([["x", "y"]] * 5)


def test_too_many_rows_is_413_naming_the_setting() -> None:
    with pytest.raises(PayloadTooLarge, match="setting: max_rows") as caught:
        _prepare([[1, 2]] * 11, max_rows=10)
    assert caught.value.status == 413


def test_mixed_kinds_keep_columns_and_check_categories() -> None:
    body = [{"age": 41, "sex": "female", "note": 7}, {"age": "50", "sex": "male", "note": "x"}]
    prepared = _prepare(body, MIXED)
    assert prepared.payload == {
        "columns": {"age": [41.0, 50.0], "sex": ["female", "male"], "note": ["7", "x"]}
    }
    with pytest.raises(
        BadRequest, match="column 'sex': unknown value 'other'; expected one of 'female', 'male'"
    ):
        _prepare([{"age": 1, "sex": "other", "note": ""}], MIXED)


def test_partial_keeps_good_rows_and_reports_bad_ones() -> None:
    request = native.decode([[1, 2], ["x", 2], [3, 4]], False)
    prepared = prepare(request, NUMERIC, max_rows=10, partial=True)
    assert prepared.good_rows == [0, 2]
    assert prepared.payload["matrix"].tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert [str(p) for p in prepared.problems] == ["row 2, column 'a': expected a number, got 'x'"]


def test_a_model_without_columns_takes_lists_only() -> None:
    info = ModelInfo("m", "PlainModel", "unknown", (), False)
    assert _prepare([[1, 2, 3]], info).payload == {"rows": [[1, 2, 3]]}
    with pytest.raises(BadRequest, match="declares no column names"):
        _prepare([{"a": 1}], info)


def test_payloads_merge_and_count() -> None:
    one = {"matrix": np.array([[1.0, 2.0]])}
    two = {"matrix": np.array([[3.0, 4.0], [5.0, 6.0]])}
    merged = merge_payloads([one, two])
    assert merged["matrix"].tolist() == [[1, 2], [3, 4], [5, 6]] and row_count(merged) == 3
    cols = merge_payloads([{"columns": {"a": [1]}}, {"columns": {"a": [2, 3]}}])
    # each call's first row rides along: the host answers each alone if the batch fails
    assert cols == {"columns": {"a": [1, 2, 3]}, "call_starts": [0, 1]} and row_count(cols) == 3
    rows = merge_payloads([{"rows": [[1]]}, one])
    assert rows == {"rows": [[1], [1.0, 2.0]], "call_starts": [0, 1]}
    assert merged["call_starts"] == [0, 1] and merge_payloads([two]) is two  # alone: as sent


def test_encode_adds_classes_with_probabilities() -> None:
    from winserve.backends.base import Prediction

    body = native.encode(Prediction(["x"], [[0.25, 0.75]]), NUMERIC, True)
    assert body == {"predictions": ["x"], "classes": ["x", "y"], "probabilities": [[0.25, 0.75]]}
    assert native.encode(Prediction([1.5]), NUMERIC, False) == {"predictions": [1.5]}
    assert math.isclose(sum(body["probabilities"][0]), 1.0)


def test_text_longer_than_the_limit_names_row_column_and_setting() -> None:
    rows = [{"age": 1, "sex": "male", "note": "fine"}, {"age": 2, "sex": "male", "note": "x" * 51}]
    with pytest.raises(
        BadRequest,
        match=r"row 2, column 'note': the text has 51 characters, more than the 50 allowed "
        r"\(setting: max_text_length\)",
    ):
        prepare(native.decode(rows, False), MIXED, max_rows=10, max_text=50)
    kept = prepare(native.decode(rows[:1], False), MIXED, max_rows=10, max_text=50)
    assert kept.payload["columns"]["note"] == ["fine"]


@pytest.mark.parametrize("missing", [None, "", "  ", float("nan"), "nan"])
def test_a_missing_number_reaches_the_model_as_nan(missing: Any) -> None:
    matrix = _prepare([[1, missing], [missing, 2]]).payload["matrix"]
    assert matrix[0, 0] == 1 and matrix[1, 1] == 2
    assert math.isnan(matrix[0, 1]) and math.isnan(matrix[1, 0])


def test_a_missing_value_the_model_refuses_names_row_column_and_the_models_reason() -> None:
    assert math.isnan(_prepare([[None, 2]], REQUIRED_B).payload["matrix"][0, 0])
    with pytest.raises(BadRequest) as caught:
        _prepare([[1, 2], [3, None]], REQUIRED_B)
    assert caught.value.message == (
        "row 2, column 'b': missing value, which the model does not accept in this column "
        "(it said: NaN!)"
    )


def test_a_row_of_the_wrong_length_is_its_only_problem() -> None:
    """Its values are not read into the model's columns: it was also listed as missing a
    value in each column the model needs one in (a tester's 6 values to a 5-input model)."""
    with pytest.raises(BadRequest) as caught:
        _prepare([[1, 2, 3], [1, 2], [4], [5, None]], REQUIRED_B)
    assert caught.value.message == (
        "row 1: has 3 values; the model expects 2 ('a', 'b'); "
        "row 3: has 1 value; the model expects 2 ('a', 'b'); "
        "row 4, column 'b': missing value, which the model does not accept in this column "
        "(it said: NaN!)"
    )


def test_missing_text_and_category_values_are_nan_and_unknown_categories_still_refused() -> None:
    columns = _prepare([{"age": 1, "sex": None, "note": None}], MIXED).payload["columns"]
    assert math.isnan(columns["sex"][0]) and math.isnan(columns["note"][0])
    with pytest.raises(BadRequest, match="unknown value 'x'"):
        _prepare([{"age": 1, "sex": "x", "note": ""}], MIXED)


def test_plain_values_are_rows_of_a_one_input_model() -> None:
    text = ModelInfo("t", "Pipeline", "classification", (Feature("text", "string"),), False)
    prepared = _prepare(["good", None, "bad"], text)
    assert prepared.payload["columns"]["text"][::2] == ["good", "bad"]
    with pytest.raises(BadRequest, match="fits a model with one input; this one has 2"):
        _prepare([1, 2])


def test_a_model_without_column_names_takes_columns_in_the_order_given() -> None:
    unnamed = ModelInfo("u", "Ridge", "regression", (Feature("x0"), Feature("x1")), False)
    matrix = _prepare([{"first": 1, "second": 2}], unnamed).payload["matrix"]
    assert matrix.tolist() == [[1.0, 2.0]]


def test_bools_in_a_number_column_are_one_and_zero_as_pandas_hands_them_to_the_model() -> None:
    """A bool column that no encoder declares (HistGradientBoosting on a DataFrame) is a
    number column to winserve: true/false from JSON, True/FALSE cells from a CSV."""
    assert _prepare([[1, True], [False, "TRUE"], ["false", 2]]).payload["matrix"].tolist() == [
        [1.0, 1.0],
        [0.0, 1.0],
        [0.0, 2.0],
    ]
