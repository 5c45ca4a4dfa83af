"""The settings ``device`` and ``intra_op_threads`` (issue 24): where a PyTorch or ONNX model
runs and on how many threads. This machine (and CI) has no GPU: what is tested is the setting's
checks, the choice of a GPU for each replica, the refusal where no GPU is visible (the model
``failed``, its reason named, on /health and in the console), and the CPU path. The threads
reaching torch itself are in ``test_torch_threads.py``."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests import tensor_graphs as tg
from tests.helpers import local_client, running_server, server_env
from winserve import cli, settings
from winserve.errors import ModelLoadError, SettingsError
from winserve.host import torch_device
from winserve.model_info import ModelSpec

ONNX_NO_GPU = "device cuda asked but onnxruntime has no CUDA provider"
TORCH_NO_GPU = "device cuda asked but no GPU is visible (torch.cuda.is_available() is False)"
IMAGE = tomllib.loads(tg.DIGITS_CARD)["inputs"]  # the digits graph's card, as its tests use


# -- the settings ------------------------------------------------------------------------------


@pytest.mark.parametrize("given", ["cpu", "cuda", "CUDA:1", "cuda:12"])
def test_a_device_is_cpu_cuda_or_a_gpus_number(tmp_path: Path, given: str) -> None:
    chosen = settings.load(cli.parse(["--device", given]), env={}, cwd=tmp_path)
    assert chosen.device == given.lower()


@pytest.mark.parametrize("given", ["gpu", "cuda:", "cuda:x", "cuda:1234", "cpu:0", "mps"])
def test_another_device_is_one_clear_line(tmp_path: Path, given: str) -> None:
    message = f"device: expected cpu, cuda or cuda:N (a GPU's number), got {given!r}"
    with pytest.raises(SettingsError, match=re.escape(message)):
        settings.load(cli.parse(["--device", given]), env={}, cwd=tmp_path)


def test_the_defaults_are_the_cpu_and_the_cores_shared(tmp_path: Path) -> None:
    chosen = settings.load({}, env={}, cwd=tmp_path)
    assert (chosen.device, chosen.intra_op_threads) == ("cpu", 0)
    env = {"WINSERVE_DEVICE": "cuda:0", "WINSERVE_INTRA_OP_THREADS": "3"}
    chosen = settings.load({}, env=env, cwd=tmp_path)
    assert (chosen.device, chosen.intra_op_threads) == ("cuda:0", 3)
    with pytest.raises(SettingsError, match="intra_op_threads: expected a number from 0"):
        settings.load(cli.parse(["--intra-op-threads", "-1"]), env={}, cwd=tmp_path)


def test_the_settings_reach_every_replicas_spec(tmp_path: Path) -> None:
    from winserve.backends.pool import PoolBackend
    from winserve.card import ModelCard
    from winserve.models.loader import model_spec

    argv = ["--device", "cuda", "--intra-op-threads", "2"]
    chosen = settings.load(cli.parse(argv), env={}, cwd=tmp_path)
    spec = model_spec(chosen, tmp_path / "net.onnx", ModelCard())
    seen: list[ModelSpec] = []

    def make_replica(index: int, given: ModelSpec) -> Any:
        seen.append(given)
        return None  # never started: only what it was given is looked at

    PoolBackend(spec, workers=3, make_replica=make_replica)  # type: ignore[arg-type]
    assert [(s.device, s.intra_op_threads, s.replica, s.replicas) for s in seen] == [
        ("cuda", 2, 0, 3),
        ("cuda", 2, 1, 3),
        ("cuda", 2, 2, 3),
    ]


# -- the choice of a GPU, and of threads --------------------------------------------------------


def test_cuda_puts_one_replica_on_each_gpu_then_wraps_around() -> None:
    assert [torch_device.gpu_for("cuda", i, 2) for i in range(5)] == [0, 1, 0, 1, 0]
    assert [torch_device.gpu_for("cuda:1", i, 2) for i in range(3)] == [1, 1, 1]


def test_a_gpu_that_is_not_there_is_refused_naming_the_ones_that_are() -> None:
    with pytest.raises(ModelLoadError, match=re.escape("device cuda:2 asked but only 2 GPU(s)")):
        torch_device.gpu_for("cuda:2", 0, 2)


def test_the_setting_wins_over_the_cores_shared_by_the_replicas() -> None:
    assert torch_device.threads(0, 1) == torch_device.threads_for(1)
    assert torch_device.threads(0, 10_000) == 1
    assert torch_device.threads(5, 10_000) == 5
    assert torch_device.for_onnx("cpu", 3, 7, 2) == torch_device.Placement("cpu", 7, 2)
    assert torch_device.onnx_providers(torch_device.Placement("cpu", 1)) == ["CPUExecutionProvider"]


def test_visible_gpus_are_counted_without_torch() -> None:
    assert torch_device.visible_gpus({"CUDA_VISIBLE_DEVICES": "0,1"}) == 2
    assert torch_device.visible_gpus({"CUDA_VISIBLE_DEVICES": "GPU-8f0c"}) == 1
    assert torch_device.visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == 0
    assert torch_device.visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == 0


def test_cuda_starts_one_replica_per_gpu_unless_workers_says_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from winserve import server

    chosen = settings.load(cli.parse(["--device", "cuda"]), env={}, cwd=tmp_path)
    make = server.backend_maker(chosen)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert torch_device.replicas_for("cuda", 1) == 2
    assert torch_device.replicas_for("cuda", 3) == 3  # asked for: as many
    assert torch_device.replicas_for("cuda:1", 1) == 1  # one GPU named
    assert torch_device.replicas_for("cpu", 1) == 1
    backend = make(ModelSpec(path="net.onnx", device="cuda"), 1)  # not started: no process
    assert [r.replica for r in backend.health().replicas] == [0, 1]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert torch_device.replicas_for("cuda", 1) == 1  # none: one, whose load says why


# -- an ONNX graph: threads in its session, and no GPU here ------------------------------------


def test_a_tensor_graph_gets_the_threads_a_table_graph_one() -> None:
    pytest.importorskip("onnxruntime")
    from winserve.host import onnx_model

    image = onnx_model.from_bytes(
        tg.digits_graph(), "d.onnx", IMAGE, torch_device.Placement("cpu", 3)
    )
    session = image._session.get_session_options()
    assert session.intra_op_num_threads == 3
    assert session.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert image.winserve_runtime.endswith("; cpu, 3 threads)")
    table = onnx_model.from_bytes(_table_graph(), "t.onnx", {}, torch_device.Placement("cpu", 3))
    assert table._session.get_session_options().intra_op_num_threads == 1


def _table_graph() -> bytes:
    """A 2-column linear regression as an ONNX graph: a table, not a tensor."""
    from onnx import TensorProto, helper

    weights = helper.make_tensor("w", TensorProto.FLOAT, [2, 1], [1.0, 2.0])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "table",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = tg.IR_FOR_WINDOWS
    return bytes(model.SerializeToString())


def test_an_onnx_model_on_cuda_without_a_gpu_failed_saying_why(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has a CUDA provider")
    path = tg.write(tmp_path, "digits", tg.digits_graph())
    client = local_client(ModelSpec(path=str(path), inputs=IMAGE, device="cuda"))
    health = client.get("/health").get_json()
    assert health["status"] == "failed", health
    assert ONNX_NO_GPU in health["reason"] and "onnxruntime-gpu" in health["reason"]
    answer = client.post("/predict", json={"inputs": {"image": [[[[0.0] * 8] * 8]]}})
    assert answer.status_code == 503 and ONNX_NO_GPU in answer.get_data(as_text=True)


def test_the_same_model_on_the_cpu_answers(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    graph = tg.digits_graph()
    path = tg.write(tmp_path, "digits", graph)
    client = local_client(ModelSpec(path=str(path), inputs=IMAGE, device="cpu"))
    png = tg.digit_png(3)
    answer = client.post("/predict?proba=true", json={"image": {"b64": _b64(png)}})
    assert answer.status_code == 200, answer.get_json()
    batch = tg.by_hand(png)[None]
    (probabilities,) = tg.run(graph, {"image": batch})
    tg.assert_same_digits(answer.get_json(), probabilities.argmax(1).tolist(), probabilities)


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode("ascii")


@pytest.mark.spawn
@pytest.mark.server
def test_a_server_asked_for_cuda_without_a_gpu_exits_saying_why(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has a CUDA provider")
    path = tg.write(tmp_path, "digits", tg.digits_graph(), tg.DIGITS_CARD)
    command = [sys.executable, "-m", "winserve", str(path), "--port", "0", "--no-browser"]
    done = subprocess.run(
        [*command, "--device", "cuda"],
        cwd=tmp_path,
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert ONNX_NO_GPU in done.stdout + done.stderr


@pytest.mark.spawn
@pytest.mark.server
def test_a_served_graph_runs_on_the_threads_set(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    import requests

    path = tg.write(tmp_path, "digits", tg.digits_graph(), tg.DIGITS_CARD)
    args = [str(path), "--workers", "2", "--intra-op-threads", "3", "--no-log"]
    with running_server(args, cwd=tmp_path) as server:
        described = requests.get(f"{server.url}/model", timeout=30).json()
    assert described["runtime"].endswith("; cpu, 3 threads)"), described["runtime"]


# -- PyTorch (the torch lane) ------------------------------------------------------------------


def test_a_pytorch_model_on_cuda_without_a_gpu_failed_saying_why(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    path = tmp_path / "tiny.pt2"
    batch = torch.export.Dim("batch")
    program = torch.export.export(
        torch.nn.Linear(3, 2).eval(), (torch.zeros(2, 3),), dynamic_shapes=[{0: batch}]
    )
    torch.export.save(program, str(path))
    spec = ModelSpec(path=str(path), device="cuda")
    client = local_client(spec)
    health = client.get("/health").get_json()
    assert health["status"] == "failed", health
    assert TORCH_NO_GPU in health["reason"]
    served = local_client(dataclasses.replace(spec, device="cpu"))
    answer = served.post("/predict", json={"inputs": {"input": [[1.0, 2.0, 3.0]]}})
    assert answer.status_code == 200, answer.get_json()
    assert "; cpu, " in served.get("/model").get_json()["runtime"]
