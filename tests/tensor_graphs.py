"""Small ONNX graphs that take tensors and images (issue 24), built at test time.

- ``digits``: a softmax regression trained on scikit-learn's ``load_digits`` (8 × 8 grey
  images), as a graph over ``[N, 1, 8, 8]`` float32 (Flatten → MatMul → Add → Softmax), and
  the digits as PNG files (pixel = value × 255 / 16);
- ``sequence``: ``[N, T, 4]`` float32 with T symbolic (ReduceMean over T → MatMul → Softmax);
- ``two_inputs``: ``a`` ``[N, 2, 3]`` float32 and ``b`` ``[N, 3]`` int64 → one number per row.

Every answer a test expects comes from onnxruntime run in the test process on the same arrays.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path
from typing import Any

import numpy as np

OPSET = 17


def _model(
    nodes: list[Any],
    inputs: list[Any],
    outputs: list[Any],
    inits: list[Any],
    ir_version: int | None = None,
) -> bytes:
    from onnx import helper

    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits)
    model = helper.make_model(
        graph, producer_name="pytorch", opset_imports=[helper.make_opsetid("", OPSET)]
    )
    if ir_version is not None:  # an older onnxruntime refuses the newest onnx's IR version
        model.ir_version = ir_version
    return bytes(model.SerializeToString())


@functools.cache  # read once per run: each PNG of a digit comes from it (issue 23: fast layer)
def digits_data() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    digits.images.flags.writeable = False  # shared by every caller
    digits.target.flags.writeable = False
    return digits.images, digits.target


@functools.cache
def _digits_regression() -> tuple[np.ndarray, np.ndarray]:
    """The softmax regression's weights ``[64, 10]`` and bias, fitted once per run: every
    digits graph (NCHW, NHWC, uint8) is the same model laid out otherwise, and its three fits
    were the fast layer's slowest steps (issue 23)."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    images, target = digits_data()
    x = (np.round(images * 255 / 16) / 255).reshape(len(images), -1)
    # one BLAS thread: the same fit, but OpenBLAS's two threads spin against each other on a
    # busy machine (0.2 s alone, 22 s with the team's tests running; issue 23)
    with threadpool_limits(1):
        model = LogisticRegression(max_iter=300).fit(x, target)
    weights = model.coef_.T.astype(np.float32)  # [64, 10]
    bias = model.intercept_.astype(np.float32)
    weights.flags.writeable = bias.flags.writeable = False
    return weights, bias


def digits_graph(input_name: str = "image", layout: str = "NCHW", uint8: bool = False) -> bytes:
    """A softmax regression on the digits, trained on images scaled to 0…1; with ``uint8``,
    the graph takes the pixels 0…255 as they are and scales them itself (as Keras exports do)."""
    from onnx import TensorProto, helper, numpy_helper

    weights, bias = _digits_regression()
    shape = ["N", 1, 8, 8] if layout == "NCHW" else ["N", 8, 8, 1]
    inits = [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "B")]
    source = input_name
    nodes = []
    if uint8:
        inits.append(numpy_helper.from_array(np.array(1 / 255, dtype=np.float32), "S"))
        nodes += [
            helper.make_node("Cast", [input_name], ["pixels"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["pixels", "S"], ["scaled"]),
        ]
        source = "scaled"
    nodes += [
        helper.make_node("Flatten", [source], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["logits0"]),
        helper.make_node("Add", ["logits0", "B"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    dtype = TensorProto.UINT8 if uint8 else TensorProto.FLOAT
    return _model(
        nodes,
        [helper.make_tensor_value_info(input_name, dtype, shape)],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])],
        inits,
    )


def digit_png(index: int) -> bytes:
    from PIL import Image

    images, _ = digits_data()
    pixels = np.round(images[index] * 255 / 16).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(out, format="PNG")
    return out.getvalue()


def by_hand(png: bytes) -> np.ndarray:
    """The card's preprocessing done by hand: grey, 8 × 8, / 255, as [1, 8, 8]."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        grey = image.convert("L").resize((8, 8), Image.Resampling.BILINEAR)
    return (np.asarray(grey, dtype=np.float32) * np.float32(1 / 255))[None, :, :]


def sequence_graph() -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    weights = np.arange(12, dtype=np.float32).reshape(4, 3) / 10 - 0.5
    nodes = [
        helper.make_node("ReduceMean", ["seq"], ["mean"], axes=[1], keepdims=0),
        helper.make_node("MatMul", ["mean", "W"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("seq", TensorProto.FLOAT, ["N", "T", 4])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(weights, "W")],
    )


def two_inputs_graph() -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    weights = (np.arange(9, dtype=np.float32) - 4).reshape(9, 1) / 4
    nodes = [
        helper.make_node("Flatten", ["a"], ["a_flat"], axis=1),
        helper.make_node("Cast", ["b"], ["b_float"], to=TensorProto.FLOAT),
        helper.make_node("Concat", ["a_flat", "b_float"], ["both"], axis=1),
        helper.make_node("MatMul", ["both", "W"], ["y"]),
    ]
    return _model(
        nodes,
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 2, 3]),
            helper.make_tensor_value_info("b", TensorProto.INT64, ["N", 3]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
        [numpy_helper.from_array(weights, "W")],
    )


def run(graph: bytes, feed: dict[str, Any]) -> list[np.ndarray]:
    """The graph's answer in this process (onnxruntime, one thread)."""
    import onnxruntime as ort

    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    return [np.asarray(out) for out in session.run(None, feed)]


DIGITS_CARD = """
[inputs.image]
kind = "image"
channels = "L"
layout = "NCHW"
size = [8, 8]
scale = 0.00392156862745098
"""


def write(folder: Path, name: str, graph: bytes, card: str = "") -> Path:
    path = folder / f"{name}.onnx"
    path.write_bytes(graph)
    if card:
        path.with_suffix(".toml").write_text(card, encoding="utf-8")
    return path


TOLERANCE = 1e-5  # probabilities served against the in-process ones (float32 kernels differ)


def assert_same_digits(body: dict[str, Any], labels: list[int], probabilities: np.ndarray) -> None:
    """A served answer of a digits classifier equals the in-process one: the labels exactly,
    the ten classes, the probabilities within ``TOLERANCE``."""
    assert body["predictions"] == labels
    assert body["classes"] == list(range(10))
    np.testing.assert_allclose(body["probabilities"], probabilities, atol=TOLERANCE, rtol=0)


# The Windows lane's onnxruntime (1.20, pinned by installer/wine-constraints.txt) reads IR
# versions up to 10; opset 17 needs 8. The onnx installed here writes its newest (14 with 1.20).
IR_FOR_WINDOWS = 8


@functools.cache
def conv_digits_graph() -> bytes:
    """A small convolutional classifier of the digits, ``[N, 1, 8, 8]`` float32 (issue 24: the
    Windows lane serves it): Conv 3 × 3 (4 fixed filters, padding 1) → Relu → MaxPool 2 × 2 →
    Flatten → MatMul → Add → Softmax; the last layer is fitted on the pooled features."""
    from onnx import TensorProto, helper, numpy_helper
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    kernels = np.array(
        [
            [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],  # vertical edges
            [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],  # horizontal edges
            [[0, 1, 0], [1, -4, 1], [0, 1, 0]],  # spots
            [[1, 1, 1], [1, 1, 1], [1, 1, 1]],  # ink
        ],
        dtype=np.float32,
    )[:, None, :, :] / np.float32(4)
    conv_inits = [
        numpy_helper.from_array(kernels, "K"),
        numpy_helper.from_array(np.zeros(4, dtype=np.float32), "KB"),
    ]
    conv = [
        helper.make_node("Conv", ["image", "K", "KB"], ["edges"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["edges"], ["active"]),
        helper.make_node("MaxPool", ["active"], ["pooled"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
    ]
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 8, 8])
    flat = helper.make_tensor_value_info("flat", TensorProto.FLOAT, ["N", 64])
    images, target = digits_data()
    x = (np.round(images * 255 / 16) / 255).astype(np.float32)[:, None, :, :]
    (features,) = run(_model(conv, [image], [flat], conv_inits), {"image": x})
    with threadpool_limits(1):  # as _digits_regression: one BLAS thread on a busy machine
        fitted = LogisticRegression(max_iter=500).fit(features, target)
    inits = [
        *conv_inits,
        numpy_helper.from_array(fitted.coef_.T.astype(np.float32), "W"),
        numpy_helper.from_array(fitted.intercept_.astype(np.float32), "B"),
    ]
    nodes = [
        *conv,
        helper.make_node("MatMul", ["flat", "W"], ["logits0"]),
        helper.make_node("Add", ["logits0", "B"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    return _model(
        nodes,
        [image],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])],
        inits,
        ir_version=IR_FOR_WINDOWS,
    )


# -- the page's tensor form (issue 24, tests/test_tensor_page.py): one graph per input layout --


def row_sequence_graph() -> bytes:
    """``seq`` ``[N, 5]`` float32 → three class probabilities (MatMul → Softmax)."""
    from onnx import TensorProto, helper, numpy_helper

    weights = (np.arange(15, dtype=np.float32).reshape(5, 3) - 7) / 8
    nodes = [
        helper.make_node("MatMul", ["seq", "W"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("seq", TensorProto.FLOAT, ["N", 5])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(weights, "W")],
    )


def grid_graph() -> bytes:
    """``grid`` ``[N, 2, 3]`` float32 → one number per row (a regression: Flatten → MatMul)."""
    from onnx import TensorProto, helper, numpy_helper

    weights = (np.arange(6, dtype=np.float32) - 2.5).reshape(6, 1) / 3
    nodes = [
        helper.make_node("Flatten", ["grid"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["y"]),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("grid", TensorProto.FLOAT, ["N", 2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
        [numpy_helper.from_array(weights, "W")],
    )


VOCABULARY = 10  # the token ids token_graph takes: 0 … 9


def token_graph() -> bytes:
    """``tokens`` ``[N, T]`` int64 (T symbolic: any length) → four class probabilities: each
    token's embedding (Gather), averaged over the sequence, MatMul → Softmax."""
    from onnx import TensorProto, helper, numpy_helper

    embedding = np.sin(np.arange(VOCABULARY * 3, dtype=np.float32)).reshape(VOCABULARY, 3)
    weights = np.cos(np.arange(12, dtype=np.float32)).reshape(3, 4) * 2
    nodes = [
        helper.make_node("Gather", ["E", "tokens"], ["embedded"], axis=0),
        helper.make_node("ReduceMean", ["embedded"], ["mean"], axes=[1], keepdims=0),
        helper.make_node("MatMul", ["mean", "W"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["N", "T"])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 4])],
        [numpy_helper.from_array(embedding, "E"), numpy_helper.from_array(weights, "W")],
    )
