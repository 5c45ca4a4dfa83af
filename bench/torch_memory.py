"""Issue 24: memory of one and two replicas of a large PyTorch or ONNX model, rerunnable:
``.torch-venv/bin/python bench/torch_memory.py [--mb 320] [--format torch|onnx|onnx-external]``.

Saves a whole ``nn.Module`` of about ``--mb`` megabytes of float32 weights (a stack of square
linear layers, its class in ``<name>_code.py``) with ``torch.save``, serves it with
``python -m winserve FILE --port 0 --workers N --no-browser`` for N = 1 and 2, sends one
prediction, and sums the proportional set size (PSS: a page shared by k processes counts 1/k
in each) of the model processes. winserve loads such a file with ``torch.load(mmap=True)``:
the weights are pages of the file, shared by the replicas through the page cache, so two
replicas should cost little more than one. The issue's target: two at most 1.3 × one. Run it
with ``--mb 16`` too: what a model host costs with (almost) no weights, which the target does
not leave out.

``--format onnx`` serves the same stack of layers as an ONNX graph (MatMul, Add, Tanh; its
weights inside the ``.onnx`` file); ``--format onnx-external`` as a graph whose weights are in
an external data file beside it (``onnx.save_model(..., save_as_external_data=True)``), which
onnxruntime memory-maps and winserve's replicas then share (``winserve.host.onnx_model``).

Needs torch (winserve's ``torch`` extra) and psutil (the ``test`` extra); Linux (PSS).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import running_server  # noqa: E402

WIDTH = 2048  # one layer: 2048 × 2048 float32 = 16 MB
CODE = """
import torch
from torch import nn


class Stack(nn.Module):
    def __init__(self, layers: int, width: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(layers))
        self.out = nn.Linear(width, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.tanh(layer(x))
        return self.out(x)
"""


def save_model(folder: Path, megabytes: int) -> Path:
    import torch

    namespace: dict[str, object] = {"__name__": "__main__"}
    exec(compile(CODE, "stack_code.py", "exec"), namespace)
    stack = namespace["Stack"]
    layers = max(1, megabytes * 1024 * 1024 // (WIDTH * WIDTH * 4))
    model = stack(layers, WIDTH).eval()  # type: ignore[operator]
    main = sys.modules["__main__"]
    main.Stack = stack  # type: ignore[attr-defined]  # pickled as the notebook's __main__.Stack
    path = folder / "stack.pth"
    torch.save(model, path)
    (folder / "stack_code.py").write_text(CODE, encoding="utf-8")
    (folder / "stack.toml").write_text(
        f'[inputs.x]\nkind = "tensor"\nshape = [{WIDTH}]\ndtype = "float32"\n', encoding="utf-8"
    )
    return path


def save_onnx(folder: Path, megabytes: int, external: bool) -> Path:
    """The same stack as an ONNX graph, its card saying its input is a tensor."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    layers = max(1, megabytes * 1024 * 1024 // (WIDTH * WIDTH * 4))
    generator = np.random.default_rng(24)
    nodes, weights, last = [], [], "x"
    for i in range(layers):
        matrix = generator.standard_normal((WIDTH, WIDTH), np.float32) / np.float32(WIDTH**0.5)
        weights += [
            numpy_helper.from_array(matrix, f"w{i}"),
            numpy_helper.from_array(np.zeros(WIDTH, np.float32), f"b{i}"),
        ]
        nodes += [
            helper.make_node("MatMul", [last, f"w{i}"], [f"m{i}"]),
            helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"]),
            helper.make_node("Tanh", [f"a{i}"], [f"t{i}"]),
        ]
        last = f"t{i}"
    weights.append(numpy_helper.from_array(generator.standard_normal((WIDTH, 4), np.float32), "o"))
    nodes.append(helper.make_node("MatMul", [last, "o"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "stack",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, WIDTH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "stack.onnx"
    if external:
        onnx.save_model(model, path, save_as_external_data=True, location="stack.weights")
    else:
        onnx.save_model(model, path)
    (folder / "stack.toml").write_text(
        f'[inputs.x]\nkind = "tensor"\nshape = [{WIDTH}]\ndtype = "float32"\n', encoding="utf-8"
    )
    return path


def hosts_pss(server_pid: int) -> tuple[int, float]:
    """The model processes (the server's children that hold torch) and their summed PSS, in
    MB; each one's PSS and USS (its private pages) printed."""
    count, total = 0, 0.0
    for process in psutil.Process(server_pid).children(recursive=True):
        memory = process.memory_full_info()
        if memory.rss < 50e6:  # multiprocessing's resource tracker, not a model host
            continue
        count, total = count + 1, total + memory.pss / 1e6
        pss, uss = memory.pss / 1e6, memory.uss / 1e6
        print(f"  pid {process.pid}: PSS {pss:,.0f} MB, USS {uss:,.0f} MB")
    return count, total


def measure(path: Path, workers: int) -> tuple[int, float, float]:
    args = [str(path), "--workers", str(workers), "--no-log"]  # its writer: not a host
    started = time.perf_counter()
    with running_server(args, cwd=path.parent, ready=False) as server:
        server.wait_ready(timeout=600)
        ready = time.perf_counter() - started
        row = {"inputs": {"x": [[0.1] * WIDTH]}}
        answer = requests.post(f"{server.url}/predict", json=row, timeout=60)
        answer.raise_for_status()
        time.sleep(1)
        count, pss = hosts_pss(server.proc.pid)
    return count, pss, ready


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=320, help="weights, in MB (default 320)")
    parser.add_argument("--format", choices=("torch", "onnx", "onnx-external"), default="torch")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        if options.format == "torch":
            path = save_model(Path(folder), options.mb)
            how = "torch.save of a whole nn.Module"
        else:
            path = save_onnx(Path(folder), options.mb, options.format == "onnx-external")
            how = "ONNX, weights " + (
                "in stack.weights beside it" if "ext" in options.format else "inside"
            )
        size = sum(f.stat().st_size for f in Path(folder).iterdir() if f.suffix != ".toml") / 1e6
        print(f"model files: {size:,.0f} MB ({path.name}, {how})")
        results = {}
        for workers in (1, 2):
            count, pss, ready = measure(path, workers)
            results[workers] = pss
            print(
                f"workers={workers}: {count} model processes, PSS {pss:,.0f} MB in all, "
                f"ready in {ready:.1f} s"
            )
        ratio = results[2] / results[1]
        print(f"two replicas / one: {ratio:.2f} x (target: at most 1.3 x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
