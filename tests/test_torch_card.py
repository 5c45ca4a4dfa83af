"""The model card's [inputs.<name>] for files that do not declare their inputs (issue 24):
a tensor's ``shape`` and ``dtype`` (TorchScript files and saved modules name their inputs
only), parsed; an ONNX graph, which declares them, refuses a card that contradicts it. No
torch needed."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest


def test_a_tensor_may_say_its_shape_and_dtype() -> None:
    from winserve import card

    text = '[inputs.tokens]\nkind = "tensor"\nshape = [128]\ndtype = "int64"\n'
    parsed = card.parse(tomllib.loads(text))
    assert parsed.inputs == {"tokens": {"kind": "tensor", "shape": [128], "dtype": "int64"}}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[inputs.x]\nkind = "image"\nshape = [1, 8, 8]\n', "an image has size and channels"),
        ('[inputs.x]\nkind = "tensor"\nsize = 3\n', "inputs.x: only an image has size"),
        ('[inputs.x]\nkind = "tensor"\nlength = 3\n', "unknown key inputs.x.length"),
    ],
)
def test_what_a_tensor_cannot_say_is_refused(text: str, words: str) -> None:
    from winserve import card

    with pytest.raises(ValueError) as raised:
        card.parse(tomllib.loads(text))
    assert words in str(raised.value)


@pytest.mark.parametrize(
    ("card", "words"),
    [
        ("shape = [1, 8, 9]\n", "shape = [1, 8, 9], the graph says [1, 8, 8]"),
        ('dtype = "int64"\n', "dtype = 'int64', the graph says float32"),
    ],
)
def test_an_onnx_graph_refuses_a_card_that_contradicts_it(
    tmp_path: Path, card: str, words: str
) -> None:
    """An ONNX graph declares its inputs: a card's shape or dtype must agree with it."""
    pytest.importorskip("onnxruntime")
    from tests import tensor_graphs as tg
    from tests.helpers import local_client
    from winserve.model_info import ModelSpec

    text = f'[inputs.image]\nkind = "tensor"\n{card}'
    path = tg.write(tmp_path, "digits", tg.digits_graph())
    client = local_client(ModelSpec(path=str(path), inputs=tomllib.loads(text)["inputs"]))
    assert words in json.dumps(client.get("/health").get_json())


def test_an_onnx_graph_takes_a_card_that_agrees_with_it(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from tests import tensor_graphs as tg
    from tests.helpers import local_client
    from winserve.model_info import ModelSpec

    text = '[inputs.image]\nkind = "tensor"\nshape = [1, -1, 8]\ndtype = "float32"\n'
    path = tg.write(tmp_path, "digits", tg.digits_graph())
    client = local_client(ModelSpec(path=str(path), inputs=tomllib.loads(text)["inputs"]))
    assert client.get("/model").get_json()["features"][0]["shape"] == [1, 8, 8]
