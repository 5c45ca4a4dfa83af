"""The page's tensor field (issue 24): a model whose inputs are tensors (an ONNX graph's
``seq`` ``[N, T]``, a ``[N, 2, 3]`` array, token ids; a TorchScript input the card declares)
gets a text area per input, where one row's numbers are typed or pasted, in place of the
form's columns; the answer is shown as an image model's is (the value, or the top classes)::

    browser ─ POST {model}/ (the page's form: f0, f1, … one text per input, the CSRF field)
       ─► ui.predict_form ─► read_form(info): each text as the input's one row, nested lists of
          its shape (numbers separated by spaces or commas: "1 2 3 4 5", filled in row by row;
          or JSON: [[1, 2, 3], [4, 5, 6]]) ─► {name: [row]}, or the field's error
       ─► Held.check / predict_prepared: the {"inputs": {name: [row]}} that /predict takes,
          checked there (dtype, range, shape: winserve.tensors) ─► top classes, or the value

Before this a tensor input got the table's text box, whose text went to the model as a
string: "row 1, input 'seq': text is not a number (float32 expected)" for anything typed.
The form's text is read here, in the web process, into plain lists (what the prediction log
keeps); every check of the values against the input stays in ``winserve.tensors``, whose
message is shown under the field it names.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from flask import request

from winserve import card as cards
from winserve.errors import BadRequest
from winserve.model_info import Feature, ModelInfo
from winserve.spreadsheet import typed_number
from winserve.tensors import shape_text

# numbers separated by spaces, line ends or commas; where a tab or a semicolon separates
# them (a row copied from Excel, a European CSV), a comma is a decimal comma: "1,5;2,5"
SPACED = re.compile(r"[\s,]+")
SPREADSHEET = re.compile(r"[\s;]+")
MAX_SHOWN = 40  # characters of a value quoted in an error
ORDINALS = {1: "st", 2: "nd", 3: "rd"}


@dataclass(frozen=True)
class TensorField:
    """One tensor input's text area (``f0``, ``f1``, … in the form, as the columns' fields)."""

    name: str
    label: str
    help: str
    hint: str  # its dtype and shape, and how to type it
    shape: str  # "float32 [N, 5]": the page's table of inputs says it
    field: str
    value: str
    error: str


def takes_tensors(info: ModelInfo | None) -> bool:
    """Whether the page's form is text areas of numbers: every input is a tensor."""
    return (
        info is not None and bool(info.features) and all(f.kind == "tensor" for f in info.features)
    )


def fields(
    card: cards.ModelCard,
    info: ModelInfo | None,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> list[TensorField]:
    """The text areas of a model whose every input is a tensor; none otherwise. Prefilled
    with what was typed, else the card's ``[example]`` for the input."""
    if info is None or not takes_tensors(info):
        return []
    shown = []
    for index, feature in enumerate(info.features):
        doc = card.features.get(feature.name, cards.FeatureDoc())
        if values is not None:
            value = values.get(feature.name, "")
        elif feature.name in card.example:
            value = json.dumps(card.example[feature.name])
        else:
            value = ""
        shown.append(
            TensorField(
                name=feature.name,
                label=doc.label or feature.name,
                help=doc.help,
                hint=hint(feature),
                shape=f"{feature.dtype} {shape_text(feature)}".strip(),
                field=f"f{index}",
                value=value,
                error=(errors or {}).get(feature.name, ""),
            )
        )
    return shown


def _numbers_word(feature: Feature) -> str:
    whole = feature.dtype.startswith(("int", "uint"))
    return f"whole numbers ({feature.dtype})" if whole else f"numbers ({feature.dtype or 'float'})"


def hint(feature: Feature) -> str:
    """What the field takes, said once under it: how many numbers, the shape, two ways."""
    words = _numbers_word(feature)
    shape = f"shape {shape_text(feature)} (N: the rows; this form sends one)"
    fixed = [d for d in feature.shape if d is not None]
    unknown = len(feature.shape) - len(fixed)
    size = math.prod(fixed)
    if not feature.shape:  # one number a row: nothing to lay out
        return f"One {words.replace('numbers', 'number', 1)}, {shape}."
    if unknown == 0:
        count = f"{size:,} " + (words.replace("numbers", "number", 1) if size == 1 else words)
    elif unknown == 1 and size == 1:
        count = f"as many {words} as you like"
    elif unknown == 1:
        count = f"{words}, in groups of {size:,}"
    else:
        return f"{_upper(words)}, {shape}: type them as JSON nested lists of that shape."
    layout = ", filled in row by row" if len(feature.shape) > 1 else ""
    return (
        f"{_upper(count)}, {shape}: separated by spaces or commas{layout}, "
        f"or as JSON: {_json_example(feature)}."
    )


def _upper(text: str) -> str:
    return text[:1].upper() + text[1:]


def _json_example(feature: Feature) -> str:
    """A small JSON value of the input's shape (an unknown length shown as 2), with letters
    for the numbers; a long dimension is cut short with "…"."""
    letters = iter("abcdefghijklmnopqrstuvwxyz")

    def nested(dims: tuple[int | None, ...]) -> str:
        if not dims:
            return next(letters, "…")
        length = 2 if dims[0] is None else dims[0]
        if length > 1 and math.prod(d or 2 for d in dims) > 8:
            return "[" + nested(dims[1:]) + ", …]"
        return "[" + ", ".join(nested(dims[1:]) for _ in range(length)) + "]"

    return nested(feature.shape) if feature.shape else "a"


def read_form(info: ModelInfo) -> tuple[dict[str, str], dict[str, list[Any]], dict[str, str]]:
    """The form's texts by input name, each read as one row ``{name: [row]}`` (what
    ``PredictRequest.from_inputs`` takes), and an error per field that cannot be read."""
    values = {f.name: request.form.get(f"f{i}", "") for i, f in enumerate(info.features)}
    inputs: dict[str, list[Any]] = {}
    errors: dict[str, str] = {}
    for feature in info.features:
        try:
            inputs[feature.name] = [one_row(values[feature.name], feature)]
        except BadRequest as exc:
            errors[feature.name] = exc.message
    return values, inputs, errors


def one_row(text: str, feature: Feature) -> Any:
    """``text`` as one row of ``feature``: nested lists of its per-row shape. Only the layout
    is settled here (how many numbers, which shape); ``winserve.tensors`` checks the values."""
    typed = text.strip()
    if not typed:
        raise BadRequest(
            f"input {feature.name!r} (shape {shape_text(feature)}) is empty: type its "
            + _numbers_word(feature)
        )
    if typed.startswith("["):
        return _json_row(typed, feature)
    numbers = _numbers(typed, feature)
    return _shaped(numbers, feature)


def _json_row(text: str, feature: Feature) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"input {feature.name!r}: not valid JSON ({exc.msg}, line {exc.lineno} column "
            f"{exc.colno}); expected nested lists of shape {_row_shape(feature)}"
        ) from None
    except RecursionError:  # "[[[[…" nested thousands deep: json's own limit (a 500 before)
        raise BadRequest(
            f"input {feature.name!r}: lists nested too deeply; expected nested lists of shape "
            f"{_row_shape(feature)}"
        ) from None
    depth = _depth(value)
    # a batch of one, as /predict's "inputs" takes it ([[1, 2, 3, 4, 5]] for [N, 5]), is the
    # row it holds; a row has as many levels as the input's shape per row
    if depth == len(feature.shape) + 1 and isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


def _depth(value: Any) -> int:
    depth = 0
    while isinstance(value, list) and value:
        depth, value = depth + 1, value[0]
    return depth


def _numbers(text: str, feature: Feature) -> list[int | float]:
    spreadsheet = "\t" in text or ";" in text
    tokens = [t for t in (SPREADSHEET if spreadsheet else SPACED).split(text) if t]
    numbers: list[int | float] = []
    for position, token in enumerate(tokens, start=1):
        cell = typed_number(token) if spreadsheet else token
        try:
            numbers.append(int(cell))  # whole numbers stay exact (int64 ids beyond 2**53)
        except ValueError:
            try:
                numbers.append(float(cell))
            except ValueError:
                shown = token if len(token) <= MAX_SHOWN else token[:MAX_SHOWN] + "…"
                raise BadRequest(
                    f"input {feature.name!r}: {shown!r} is not a number (the "
                    f"{_ordinal(position)} value; {_numbers_word(feature)} expected)"
                ) from None
    return numbers


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else ORDINALS.get(n % 10, "th")
    return f"{n:,}{suffix}"


def _row_shape(feature: Feature) -> str:
    return "[" + ", ".join("any" if d is None else str(d) for d in feature.shape) + "]"


def _shaped(numbers: list[int | float], feature: Feature) -> Any:
    """The numbers laid out in the input's per-row shape, row by row (C order)."""
    dims = list(feature.shape)
    fixed = math.prod(d for d in dims if d is not None)
    unknown = [i for i, d in enumerate(dims) if d is None]
    count = len(numbers)
    where = f"input {feature.name!r} (shape {shape_text(feature)})"
    if len(unknown) > 1:
        raise BadRequest(
            f"{where}: type it as JSON nested lists, as its shape has "
            f"{len(unknown)} lengths of its own"
        )
    if unknown and fixed == 0:  # a dimension of length 0: nothing to type
        raise BadRequest(f"{where}: a row of this input holds no numbers; use the API")
    if unknown:
        if count % fixed:
            raise BadRequest(
                f"{where} takes its numbers in groups of {fixed:,}; {count:,} were typed"
            )
        dims[unknown[0]] = count // fixed
    elif count != fixed:
        raise BadRequest(f"{where} takes {fixed:,} numbers a row; {count:,} were typed")
    return _nest(numbers, [d for d in dims if d is not None])


def _nest(flat: list[Any], dims: list[int]) -> Any:
    if not dims:
        return flat[0]
    if len(dims) == 1:
        return flat
    step = len(flat) // dims[0]
    return [_nest(flat[i * step : (i + 1) * step], dims[1:]) for i in range(dims[0])]


def field_of(message: str, info: ModelInfo) -> tuple[str, str]:
    """The input a check's message names (``input 'seq': …``) and the message as the field
    shows it (this form sends one row: its "row 1, " is dropped); ("", message) when it
    names none."""
    shown = message.removeprefix("row 1, ")
    for feature in info.features:
        if f"input {feature.name!r}" in message:
            return feature.name, shown
    return "", shown
