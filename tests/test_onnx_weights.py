"""An ONNX graph whose weights are in a file of their own (issue 24, big models): served from
the file alone (the loader's private copy takes the weights file the graph names, never one
outside its folder), onnxruntime reading the graph from its path, and replicas keeping the
weights as onnxruntime memory-mapped them (not repacked per process) so they share them.
The memory itself is measured by ``bench/torch_memory.py --format onnx-external``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from tests import tensor_graphs as tg
from tests.helpers import running_server
from winserve.host import onnx_model
from winserve.host.torch_device import Placement

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

WIDTH = 16
CARD = f'[inputs.x]\nkind = "tensor"\nshape = [{WIDTH}]\n'
PREPACKING = "session.disable_prepacking"


def stack(folder: Path, location: str = "weights/stack.bin") -> Path:
    """Two layers (MatMul, Tanh) and a 3-class softmax, every weight in ``location``."""
    from onnx import TensorProto, helper, numpy_helper

    generator = np.random.default_rng(24)
    first = generator.standard_normal((WIDTH, WIDTH)).astype(np.float32)
    last = generator.standard_normal((WIDTH, 3)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["m"]),
            helper.make_node("Tanh", ["m"], ["t"]),
            helper.make_node("MatMul", ["t", "o"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "stack",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, WIDTH])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 3])],
        [numpy_helper.from_array(first, "w"), numpy_helper.from_array(last, "o")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = tg.IR_FOR_WINDOWS
    (folder / location).parent.mkdir(parents=True, exist_ok=True)
    path = folder / "stack.onnx"
    onnx.save_model(
        model, str(path), save_as_external_data=True, location=location, size_threshold=0
    )
    path.with_suffix(".toml").write_text(CARD, encoding="utf-8")
    return path


def in_process(path: Path, rows: np.ndarray) -> Any:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": rows})[0]


def _config(model: Any, key: str) -> str:
    try:
        return str(model._session.get_session_options().get_session_config_entry(key))
    except RuntimeError:  # onnxruntime: an entry never set
        return ""


def test_the_weights_file_is_found_and_nothing_outside_the_folder(tmp_path: Path) -> None:
    path = stack(tmp_path)
    assert onnx_model.external_files(path) == [(tmp_path / "weights" / "stack.bin").resolve()]
    inside = tmp_path / "inside"
    inside.mkdir()
    # a graph naming a weights file outside its folder (onnx itself refuses to write one)
    graph = onnx.load(str(path), load_external_data=False)
    for tensor in graph.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../weights/stack.bin"
    outside = inside / "stack.onnx"
    outside.write_bytes(graph.SerializeToString())
    assert onnx_model.external_files(outside) == []  # named, but not the graph's folder's
    assert onnx_model.external_files(tg.write(tmp_path, "digits", tg.digits_graph())) == []


def test_replicas_keep_the_mapped_weights_one_replica_repacks(tmp_path: Path) -> None:
    path = stack(tmp_path)
    rows = np.random.default_rng(1).standard_normal((5, WIDTH)).astype(np.float32)
    card = {"x": {"kind": "tensor"}}
    shared = onnx_model.load(path, card, Placement("cpu", 1, replicas=2))
    alone = onnx_model.load(path, card, Placement("cpu", 1, replicas=1))
    assert _config(shared, PREPACKING) == "1"
    assert _config(alone, PREPACKING) in ("", "0")
    expected = in_process(path, rows)
    for model in (shared, alone):
        np.testing.assert_allclose(model.predict_proba({"x": rows}), expected, atol=1e-6)
        assert model.predict({"x": rows}).tolist() == expected.argmax(1).tolist()
    embedded = onnx_model.load(
        tg.write(tmp_path, "digits", tg.digits_graph()), {}, Placement("cpu", 1, replicas=2)
    )
    assert _config(embedded, PREPACKING) in ("", "0")  # nothing mapped to share


@pytest.mark.spawn
@pytest.mark.server
def test_two_replicas_serve_a_graph_from_its_file_and_its_weights_file(tmp_path: Path) -> None:
    path = stack(tmp_path)
    rows = np.random.default_rng(2).standard_normal((4, WIDTH)).astype(np.float32)
    expected = in_process(path, rows)
    with running_server([str(path), "--workers", "2", "--no-log"], cwd=tmp_path) as server:
        deadline = time.monotonic() + 120  # the second replica loads beside the first
        health: dict[str, Any] = {}
        while time.monotonic() < deadline and health.get("status") != "ready":
            health = requests.get(f"{server.url}/health", timeout=30).json()
            time.sleep(0.2)
        answer = requests.post(
            f"{server.url}/predict?proba=true", json={"inputs": {"x": rows.tolist()}}, timeout=30
        )
    assert health["status"] == "ready", health  # both replicas loaded the copy's weights
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["predictions"] == expected.argmax(1).tolist()
    np.testing.assert_allclose(body["probabilities"], expected, atol=1e-6)
