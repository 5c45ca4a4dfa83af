"""The page's tensor field (issue 24, ``winserve.web.tensor_page``): a model whose inputs are
tensors gets a text area of numbers per input, with its dtype and shape said under it.

A new user found that anything typed in such a model's form came back as "row 1, input 'seq':
text is not a number (float32 expected)": the form was the table's, and sent its text as a
string. Here three small ONNX graphs of ``tests/tensor_graphs.py`` (a row ``seq`` [N, 5]
float32 the card declares a tensor, a ``grid`` [N, 2, 3] float32, ``tokens`` [N, T] int64 of
any length, a tensor without a card: it has no columns to count) are served by one real
server as a folder of models, their pages filled in real Chromium (tests/chromium.py's
fixtures and axe check), and the answers compared with onnxruntime's in this process on the
same arrays. The reading of the text itself (spaces, commas, JSON, a spreadsheet's decimal
comma; how many numbers) is checked without a server.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import requests

from tests import chromium
from tests import tensor_graphs as tg
from tests.helpers import csrf_token, running_server
from winserve.errors import BadRequest
from winserve.model_info import Feature
from winserve.web import tensor_page

browser = chromium.browser  # one Chromium per module, a page per test
page = chromium.page
shot = chromium.shot

SERVED = (pytest.mark.server, pytest.mark.spawn, pytest.mark.timeout(240))


def marked(*marks: Any) -> Any:
    """The test with ``marks`` (the server's tests; the rest of the module is the fast layer)."""

    def apply(test: Any) -> Any:
        for mark in marks:
            test = mark(test)
        return test

    return apply


GRAPHS = {
    "seq": (tg.row_sequence_graph, 'title = "A row of five"\n[inputs.seq]\nkind = "tensor"\n'),
    "grid": (tg.grid_graph, ""),  # rank 3: a tensor without a card
    "tokens": (tg.token_graph, ""),  # [N, T]: a sequence of any length, not a table
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("tensor-page")
    for name, (graph, card) in GRAPHS.items():
        tg.write(folder, name, graph(), card)
    with running_server([str(folder), "--workers", "1"], cwd=folder) as running:
        yield running.url


def in_process(name: str, row: Any) -> np.ndarray:
    """The graph's answer for one row, run here (the batch of one the page sends)."""
    dtype = np.int64 if name == "tokens" else np.float32
    (out,) = tg.run(GRAPHS[name][0](), {name: np.asarray([row], dtype=dtype)})
    return np.asarray(out[0])


def assert_same_classes(shown: list[tuple[str, float]], probabilities: np.ndarray) -> None:
    order = np.argsort(-probabilities, kind="stable")
    assert [label for label, _ in shown] == [str(c) for c in order]
    assert [p for _, p in shown] == pytest.approx(probabilities[order].tolist(), abs=tg.TOLERANCE)


@marked(*SERVED, pytest.mark.browser)
@pytest.mark.parametrize(
    ("name", "typed", "row"),
    [
        ("seq", "0.5 -1 2 0 1.5", [0.5, -1, 2, 0, 1.5]),
        ("grid", "[[1, 2, 3], [4, 5, -6.5]]", [[1, 2, 3], [4, 5, -6.5]]),
        ("grid", "1\t2,5\t3\n4\t5\t6", [[1, 2.5, 3], [4, 5, 6]]),  # copied from Excel
        ("tokens", "3, 1, 4, 1, 5, 9, 2, 6", [3, 1, 4, 1, 5, 9, 2, 6]),
    ],
    ids=["seq-spaces", "grid-json", "grid-excel", "tokens-commas"],
)
def test_typed_numbers_get_the_graphs_answer(
    page: Any, server: str, name: str, typed: str, row: Any
) -> None:
    page.goto(f"{server}/models/{name}/")
    assert page.locator("#f1").count() == 0  # one text area, not a field per column
    hint = page.inner_text("#f0-help")
    feature_shape = {"seq": "[N, 5]", "grid": "[N, 2, 3]", "tokens": "[N, any]"}[name]
    assert feature_shape in hint and ("int64" if name == "tokens" else "float32") in hint
    dtype = "int64" if name == "tokens" else "float32"
    assert page.get_by_role("cell", name=f"tensor {dtype} {feature_shape}, required").count() == 1
    page.fill("#f0", typed)
    with page.expect_response(lambda r: r.request.method == "POST") as answered:
        page.get_by_role("button", name="Predict").click()
    assert answered.value.status == 200
    page.wait_for_selector("#prediction")
    expected = in_process(name, row)
    if name == "grid":  # a regression: one number
        assert float(page.inner_text("#prediction")) == pytest.approx(float(expected[0]), 1e-5)
        assert page.locator("#top-classes").count() == 0
    else:
        assert page.inner_text("#prediction") == str(int(expected.argmax()))
        assert_same_classes(chromium.top_classes(page), expected)
    assert page.input_value("#f0") == typed  # what was typed stays, to change and try again
    shot(page, f"tensor-{name}-answer")  # styled, and axe finds nothing wrong


@marked(*SERVED, pytest.mark.browser)
@pytest.mark.parametrize(
    ("name", "typed", "said"),
    [
        ("seq", "1 2 3 4", "input 'seq' (shape [N, 5]) takes 5 numbers a row; 4 were typed"),
        ("grid", "[[1, 2], [3, 4]]", "input 'grid': expected shape [N, 2, 3] (N: the rows), got"),
        ("tokens", "1 2.5 3", "input 'tokens' takes whole numbers (int64)"),
        ("seq", "1 2 three 4 5", "input 'seq': 'three' is not a number (the 3rd value;"),
    ],
)
def test_a_wrong_row_gets_the_inputs_error_on_the_page(
    page: Any, server: str, name: str, typed: str, said: str
) -> None:
    page.goto(f"{server}/models/{name}/")
    page.fill("#f0", typed)
    with page.expect_response(lambda r: r.request.method == "POST") as answered:
        page.get_by_role("button", name="Predict").click()
    assert answered.value.status == 400
    page.wait_for_selector("#f0[aria-invalid=true]")
    assert said in page.inner_text("#f0-error")
    assert "row 1" not in page.inner_text("#f0-error")  # the form sends one row
    assert page.locator("#prediction").count() == 0
    assert page.input_value("#f0") == typed
    if name == "seq" and "three" not in typed:
        shot(page, "tensor-seq-wrong-shape")


@marked(*SERVED)
def test_the_form_works_without_the_script(server: str) -> None:
    """The form posted as a browser without JavaScript posts it; an empty field is named."""
    session = requests.Session()
    base = f"{server}/models/tokens"
    front = session.get(base + "/", timeout=30).text
    token = csrf_token(front)
    # a spreadsheet's cells hold no tensors: no CSV form, which refused every row
    assert 'id="no-batch"' in front and 'id="csv-form"' not in front
    posted = session.post(
        base + "/",
        data={"csrf_token": token, "f0": "[[7, 7, 0]]"},  # a batch of one, as /predict takes
        headers={"Origin": server},
        timeout=30,
    )
    assert posted.status_code == 200, posted.text[:500]
    expected = in_process("tokens", [7, 7, 0])
    assert f'id="prediction">{int(expected.argmax())}<' in posted.text
    empty = session.post(base + "/", data={"csrf_token": token, "f0": " "}, timeout=30)
    assert empty.status_code == 400
    error = re.search(r'id="f0-error">([^<]*)<', empty.text)
    assert error is not None
    assert html.unescape(error.group(1)) == (
        "input 'tokens' (shape [N, any]) is empty: type its whole numbers (int64)"
    )
    # what /predict answers for the same row: the page asks as a program does
    answer = session.post(
        server + "/models/tokens/predict", json={"inputs": [[7, 7, 0]]}, timeout=30
    )
    assert answer.status_code == 200
    assert answer.json()["predictions"] == [int(expected.argmax())]


# -- the text read as one row, without a server --------------------------------------------


def _feature(shape: tuple[int | None, ...], dtype: str = "float32") -> Feature:
    return Feature("x", "tensor", dtype=dtype, shape=shape)


@pytest.mark.parametrize(
    ("shape", "typed", "row"),
    [
        ((5,), "1 2 3 4 5", [1, 2, 3, 4, 5]),
        ((5,), "1, 2,3 ,4\n5", [1, 2, 3, 4, 5]),
        ((5,), "[1, 2, 3, 4, 5]", [1, 2, 3, 4, 5]),
        ((5,), "[[1, 2, 3, 4, 5]]", [1, 2, 3, 4, 5]),  # a batch of one, as /predict's inputs
        ((2, 3), "1 2 3 4 5 6", [[1, 2, 3], [4, 5, 6]]),  # filled row by row
        ((2, 3), "1 2 3\n4 5 6", [[1, 2, 3], [4, 5, 6]]),
        ((2, 3), "1,5\t2\t3\n4\t5\t6,25", [[1.5, 2, 3], [4, 5, 6.25]]),  # Excel, decimal comma
        ((2, 3), "1,5;2;3;4;5;6", [[1.5, 2, 3], [4, 5, 6]]),
        ((None,), "3 1 4 1 5 9", [3, 1, 4, 1, 5, 9]),
        ((None, 2), "1 2 3 4 5 6", [[1, 2], [3, 4], [5, 6]]),
        ((None, None), "[[1, 2], [3, 4]]", [[1, 2], [3, 4]]),
        ((), "2.5", 2.5),
        ((1,), "-1e-3", [-0.001]),
    ],
)
def test_one_row_read_from_the_text(shape: tuple[int | None, ...], typed: str, row: Any) -> None:
    assert tensor_page.one_row(typed, _feature(shape)) == row


def test_int64_numbers_stay_exact() -> None:
    big = 2**62 + 1  # beyond float64's exact integers: read as a whole number, not a float
    assert tensor_page.one_row(f"{big} 1", _feature((2,), "int64")) == [big, 1]


@pytest.mark.parametrize(
    ("shape", "typed", "said"),
    [
        ((5,), "1 2 3", "input 'x' (shape [N, 5]) takes 5 numbers a row; 3 were typed"),
        ((None, 4), "1 2 3 4 5", "input 'x' (shape [N, any, 4]) takes its numbers in groups of 4"),
        ((2, 3), "1 2 x", "input 'x': 'x' is not a number (the 3rd value; numbers (float32)"),
        ((None, None), "1 2 3 4", "type it as JSON nested lists"),
        ((2, 3), "[[1, 2, 3]", "input 'x': not valid JSON"),
        ((2, 3), "[" * 50_000, "input 'x': lists nested too deeply; expected nested lists"),
        ((2, 3), "", "input 'x' (shape [N, 2, 3]) is empty: type its numbers (float32)"),
    ],
)
def test_a_text_that_is_not_a_row_is_named(
    shape: tuple[int | None, ...], typed: str, said: str
) -> None:
    with pytest.raises(BadRequest) as refused:
        tensor_page.one_row(typed, _feature(shape))
    assert said in refused.value.message
    assert refused.value.status == 400


@pytest.mark.parametrize(
    ("shape", "dtype", "hint"),
    [
        ((5,), "float32", "5 numbers (float32), shape [N, 5] (N: the rows; this form sends one)"),
        ((2, 3), "float32", "filled in row by row, or as JSON: [[a, b, c], [d, e, f]]."),
        ((None,), "int64", "As many whole numbers (int64) as you like, shape [N, any]"),
        ((None, 4), "float32", "Numbers (float32), in groups of 4, shape [N, any, 4]"),
        ((3, 224, 224), "float32", "150,528 numbers (float32)"),
    ],
)
def test_the_hint_says_dtype_and_shape(
    shape: tuple[int | None, ...], dtype: str, hint: str
) -> None:
    assert hint in tensor_page.hint(_feature(shape, dtype))


def test_a_checks_message_goes_under_the_input_it_names() -> None:
    from winserve.model_info import ModelInfo

    info = ModelInfo("m", "onnx", "classification", (_feature((2,)), Feature("y")), True)
    assert tensor_page.field_of("row 1, input 'x' takes whole numbers (int64)", info) == (
        "x",
        "input 'x' takes whole numbers (int64)",
    )
    assert tensor_page.field_of("the model failed", info) == ("", "the model failed")


def test_only_a_model_of_tensors_gets_text_areas() -> None:
    from winserve import card as cards
    from winserve.model_info import ModelInfo

    tensors = ModelInfo("m", "onnx", "classification", (_feature((5,)),), True)
    table = ModelInfo("t", "forest", "classification", (Feature("a"), Feature("b")), True)
    image = ModelInfo("i", "onnx", "classification", (Feature("p", "image"),), True)
    card = cards.ModelCard(example={"x": [1, 2, 3, 4, 5]})
    (field,) = tensor_page.fields(card, tensors)
    assert (field.field, field.value, field.label) == ("f0", "[1, 2, 3, 4, 5]", "x")
    assert tensor_page.fields(card, table) == tensor_page.fields(card, image) == []
    assert tensor_page.fields(card, None) == []


def test_a_single_input_of_any_length_is_a_tensor() -> None:
    """[N, T] (token ids, a signal) is a sequence: a tensor with a form; [N, 5] stays a table
    of five number columns, [N, 1] one column."""
    from types import SimpleNamespace

    from winserve.host import onnx_graph

    def graph(*dims: Any) -> list[Any]:
        return [SimpleNamespace(name="x", shape=["N", *dims])]

    assert onnx_graph.tensor_mode(graph("T"), {})
    assert onnx_graph.tensor_mode(graph(None), {})
    assert not onnx_graph.tensor_mode(graph(5), {})
    assert not onnx_graph.tensor_mode(graph(1), {})
