"""The model card's [inputs.<name>] for files that do not declare their inputs (issue 24):
a tensor's ``shape`` and ``dtype`` (TorchScript files and saved modules name their inputs
only). Parsing only: no torch needed."""

from __future__ import annotations

import tomllib

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
