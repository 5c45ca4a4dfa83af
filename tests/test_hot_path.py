"""The prediction routes' cheaper steps answer exactly as the general ones (issue 14)."""

from __future__ import annotations

import inspect
import json
from typing import Any

import pytest
from flask import Flask, jsonify

from winserve.errors import BadRequest
from winserve.protocols import native
from winserve.rows import Columns, Rows
from winserve.settings import Settings
from winserve.web.bodies import json_response, parse_json


def test_no_view_or_hook_is_async() -> None:
    """WinserveFlask skips Flask's coroutine check per hook: there must be none to run."""
    from winserve.backends.local import LocalBackend
    from winserve.model_info import ModelSpec
    from winserve.web import create_app

    app = create_app(Settings(), LocalBackend(ModelSpec(path="")))
    hooks = [
        *app.view_functions.values(),
        *(f for funcs in app.before_request_funcs.values() for f in funcs),
        *(f for funcs in app.after_request_funcs.values() for f in funcs),
        *(f for funcs in app.teardown_request_funcs.values() for f in funcs),
        *(f for funcs in app.url_value_preprocessors.values() for f in funcs),
    ]
    assert hooks
    assert not [f for f in hooks if inspect.iscoroutinefunction(f)]


@pytest.mark.parametrize(
    "body",
    [
        {"predictions": [1, 0.5, None, "é", True]},
        {"predictions": [[1.0, 2.0]], "classes": ["a", "b"], "probabilities": [[0.25, 0.75]]},
        {"error": {"code": "bad_request", "message": "row 1: ✗ <b>"}},
    ],
)
def test_json_response_is_jsonify_byte_for_byte(body: Any) -> None:
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # as create_app sets it
    with app.app_context():
        ours, theirs = json_response(body), jsonify(body)
        assert ours.get_data() == theirs.get_data()
        assert ours.headers == theirs.headers


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the body is empty; send JSON"),
        ("  \n", "the body is empty; send JSON"),
        ("\ufeff[1]", "the body is not valid JSON: Unexpected UTF-8 BOM (decode using utf-8-sig)"),
        ("[1,", "the body is not valid JSON: Expecting value at line 1, column 4"),
        ("[NaN]", "NaN is not valid JSON; send a number"),
        ('{"a": -Infinity}', "-Infinity is not valid JSON; send a number"),
        ("[" * 5000 + "]" * 5000, "the JSON is nested too deeply"),
    ],
)
def test_parse_json_errors_are_as_before(text: str, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_json(text)
    assert str(caught.value).startswith(message)


def test_parse_json_reads_what_json_loads_reads() -> None:
    text = '[{"a": 1.5, "b": "x", "c": null}]'
    assert parse_json(text) == json.loads(text)


@pytest.mark.parametrize(
    "rows",
    [
        [{"a": 1, "b": "x"}],
        [{"a": 1, "b": "x"}, {"b": "y", "a": 2}],
        [{}],
        [{"a": 1}, {"a": 2, "b": 3}],  # the general path: row 1 misses "b"
    ],
)
def test_records_decode_as_the_general_path_does(rows: list[dict[str, Any]]) -> None:
    try:
        fast = native.decode(rows, False)
    except BadRequest as exc:
        assert "missing column" in str(exc)
        return
    names = list(dict.fromkeys(k for row in rows for k in row))
    data = fast.data
    if len(rows) == 1:  # one record: its row under its names, in its order (issue 29)
        assert isinstance(data, Rows)
        data = Columns({n: [v] for n, v in zip(data.names or [], data.rows[0], strict=True)})
    assert data == Columns({n: [row[n] for row in rows] for n in names})
    assert fast.n_rows == len(rows)


@pytest.mark.parametrize(
    "row",
    [
        [1.5, 2, -3.0],
        [1e308, 1e308, 1.0],  # finite, though the sum overflows
        [10**308, 10**308, 0.5],  # ints whose sum cannot be added to a float
        [float("nan"), 1.0],
        [float("inf"), float("-inf")],
        [float("-inf"), 0.0],
        [10**400, 1.0],  # too large for a float at all
    ],
)
def test_the_number_matrix_is_made_exactly_when_numpy_finds_it_finite(row: list[Any]) -> None:
    """The quick finiteness check (a sum in Python) agrees with NumPy's, for one row as
    records (columns) and as a list (rows), and for many rows."""
    import numpy as np

    from winserve.validate import _numbers_only

    try:
        expected = np.array([row], dtype=np.float64)
        finite = bool(np.isfinite(expected).all())
    except OverflowError:
        finite = False
    for values, transpose in (([row], False), ([[v] for v in row], True), ([row] * 3, False)):
        got = _numbers_only(values, transpose=transpose)
        assert (got is not None) == finite
        if got is not None:
            np.testing.assert_array_equal(got[:1], expected)
