"""What an ONNX graph says of itself, read once at load for ``onnx_model``'s wrapper: a graph
(its protobuf, its session's input and output specs) and the model card's ``[inputs.<name>]``
tables in; out, whether it takes tensors or table columns (``tensor_mode``), each input as a
feature (a column's kind and categories, a tensor's shape and dtype, an image's preprocessing),
which output holds probabilities and the class labels. Nothing here runs the graph.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from winserve.errors import ModelLoadError

FLOAT_TYPES = {"tensor(float)": "float32", "tensor(double)": "float64"}

INT_TYPES = {"tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(uint8)": "uint8"}

STRING_TYPE = "tensor(string)"

LABEL_NAMES = ("label", "output_label")

PROBA_NAMES = ("probabilities", "output_probability")

CLASS_ATTRIBUTES = ("classlabels_strings", "classlabels_int64s")


def tensor_mode(inputs: list[Any], card: dict[str, dict[str, Any]]) -> bool:
    """Whether the graph takes tensors rather than table columns (see the module's doc)."""
    if any(i.name in card for i in inputs):
        return True
    if any(len(i.shape) >= 3 for i in inputs):
        return True
    if len(inputs) == 1 and len(inputs[0].shape) == 2 and width(inputs[0]) is None:
        # [N, T]: a sequence of any length (token ids, a signal), not a table, whose columns
        # are counted; served as columns it had no features, no form and no sample
        # prediction (issue 24, a new user's finding)
        return True
    return len(inputs) > 1 and any(len(i.shape) == 2 and width(i) != 1 for i in inputs)


def tensor_feature(spec: Any, card: dict[str, Any]) -> dict[str, Any]:
    """One input as a feature: its per-row shape and dtype; an image's preprocessing."""
    dtype = {**FLOAT_TYPES, **INT_TYPES}.get(spec.type)
    if dtype is None:
        raise ModelLoadError(
            f"input {spec.name!r} is a {spec.type} tensor; winserve feeds tensors of float, "
            "double or integers"
        )
    shape = [d if isinstance(d, int) else None for d in list(spec.shape)[1:]]
    _card_agrees(spec.name, shape, dtype, card)
    kind = card.get("kind", "tensor")
    if kind == "image":
        from winserve.host import images

        try:
            image = images.prepare_spec(card, list(spec.shape), dtype)
        except ValueError as exc:
            raise ModelLoadError(f"[inputs.{spec.name}] in the model card: {exc}") from None
        return {
            "name": spec.name,
            "kind": "image",
            "shape": images.shape_of(image),
            "dtype": dtype,
            "image": image,
        }
    if kind != "tensor":
        raise ModelLoadError(f"[inputs.{spec.name}] kind is image or tensor, not {kind!r}")
    return {"name": spec.name, "kind": "tensor", "shape": shape, "dtype": dtype}


def _card_agrees(name: str, shape: list[int | None], dtype: str, card: dict[str, Any]) -> None:
    """The card's ``shape`` and ``dtype`` (written for files that do not declare them, issue
    24) must not contradict the graph, which does: a card that says otherwise is refused."""
    where = f"[inputs.{name}] in the model card"
    if "dtype" in card and card["dtype"] != dtype:
        raise ModelLoadError(f"{where}: dtype = {card['dtype']!r}, the graph says {dtype}")
    given = card.get("shape")
    if given is None:
        return
    fits = isinstance(given, list) and len(given) == len(shape)
    fits = fits and all(d is None or g == -1 or g == d for g, d in zip(given, shape, strict=False))
    if not fits:
        shown = ["any" if d is None else d for d in shape]
        raise ModelLoadError(f"{where}: shape = {given!r}, the graph says {shown}")


def producers_of(graph: Any) -> dict[str, Any]:
    return {name: node for node in graph.node for name in node.output}


def is_probability(name: str, proto: Any, producers: dict[str, Any]) -> bool:
    """skl2onnx's probability output, or an output computed by Softmax (through Identity)."""
    if proto.producer_name == "skl2onnx" and name in PROBA_NAMES:
        return True
    node = producers.get(name)
    while node is not None and node.op_type == "Identity":
        node = producers.get(node.input[0])
    return node is not None and node.op_type == "Softmax"


def class_labels(graph: Any, outputs: Sequence[str]) -> list[Any] | None:
    """The class labels of the node that computes the outputs (a ZipMap, a classifier),
    else of the first node that has any (a stacked model's inner ones come later)."""
    producers = producers_of(graph)
    own = [producers[name] for name in outputs if name in producers]
    for node in [*own, *graph.node]:
        for attribute in node.attribute:
            if attribute.name == "classlabels_strings" and attribute.strings:
                return [s.decode("utf-8") for s in attribute.strings]
            if attribute.name == "classlabels_int64s" and attribute.ints:
                return [int(i) for i in attribute.ints]
    return None


def proba_width(session: Any, name: str) -> int | None:
    for output in session.get_outputs():
        if output.name == name and len(output.shape) == 2 and isinstance(output.shape[1], int):
            return int(output.shape[1])
    return None


def width(spec: Any) -> int | None:
    shape = list(spec.shape)
    if len(shape) == 1:
        return 1
    if len(shape) == 2 and isinstance(shape[1], int):
        return int(shape[1])
    return None


def metadata_names(raw: str, width: int | None) -> list[str]:
    if not raw:
        return []
    try:
        names = json.loads(raw)
    except ValueError:
        names = [n.strip() for n in raw.split(",")]
    if not isinstance(names, list) or len(names) != width:
        return []
    return [str(n) for n in names]


def column(spec: Any, graph: Any) -> dict[str, Any]:
    """How the page and the validation treat one per-column input."""
    if spec.type != STRING_TYPE:
        return {"name": spec.name, "kind": "number"}
    for node in _consumers(spec.name, graph):
        if node.op_type == "OneHotEncoder":
            attributes = {a.name: a for a in node.attribute}
            if "cats_strings" in attributes:
                zeros = attributes["zeros"].i if "zeros" in attributes else 1
                return {
                    "name": spec.name,
                    "kind": "category",
                    "categories": [s.decode("utf-8") for s in attributes["cats_strings"].strings],
                    "strict_categories": zeros == 0,  # zeros=0: an unknown value is an error
                }
    return {"name": spec.name, "kind": "string"}


PASS_THROUGH = {"Identity", "Gather", "Reshape", "Cast", "Squeeze", "Unsqueeze", "Flatten"}


def _consumers(name: str, graph: Any, depth: int = 4) -> list[Any]:
    """Nodes that read ``name``, looking through selections and reshapes (skl2onnx puts a
    Gather before a ColumnTransformer's encoder)."""
    found = []
    for node in graph.node:
        if name in node.input:
            found.append(node)
            if node.op_type in PASS_THROUGH and depth > 0:
                found.extend(_consumers(node.output[0], graph, depth - 1))
    return found


def takes_tensors(proto: Any, card: dict[str, dict[str, Any]]) -> bool:
    """``tensor_mode`` read from the graph itself, before its session exists (its threads
    are chosen when the session is made)."""
    stored = {i.name for i in proto.graph.initializer}
    inputs = [
        _Declared(i.name, [d.dim_value or None for d in i.type.tensor_type.shape.dim])
        for i in proto.graph.input
        if i.name not in stored
    ]
    return bool(inputs) and tensor_mode(inputs, card)


class _Declared:
    """A graph input as ``tensor_mode`` reads one (a name and a shape)."""

    def __init__(self, name: str, shape: list[int | None]) -> None:
        self.name, self.shape = name, shape
