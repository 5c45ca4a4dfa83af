"""Fuzzing the request decoders: any JSON either decodes or is refused with a 4xx of our own."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from winserve.errors import WinserveError
from winserve.model_info import Feature, ModelInfo
from winserve.protocols import native
from winserve.service import prepare

INFO = ModelInfo(
    "m",
    "Pipeline",
    "classification",
    (Feature("a"), Feature("b"), Feature("c", "category", ("x", "y"), True)),
    True,
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.sampled_from(["a", "b", "c", "x", "1.5"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["a", "b", "c", "columns", "data", "z"]), inner, max_size=4
        )
    ),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(body=json_values, proba=st.booleans())
def test_decoders_raise_only_client_errors(body: Any, proba: bool) -> None:
    try:
        request = native.decode(body, proba)
        prepared = prepare(request, INFO, max_rows=50)
    except WinserveError as error:
        assert 400 <= error.status < 500, error
        assert error.message
        return
    assert prepared.n_rows >= 1
    assert set(prepared.payload) == {"columns"}
