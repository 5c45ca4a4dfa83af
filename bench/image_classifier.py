"""An image classifier of realistic size served four ways (issue 24), one command:
``.torch-venv/bin/python bench/image_classifier.py [--seconds 10] [--requests N] [--runs 1]``.

Builds a ResNet-18-shaped network (the torchvision layout, 11.7 M parameters, 47 MB of float32
weights) with random weights from a fixed seed, here (no download, no torchvision), saves it as
TorchScript (``resnet18.pt``) and exports it to ONNX (``resnet18.onnx``, a symbolic batch
dimension), each with a model card (``[inputs.x] kind = "image"``, 224 × 224 RGB, ImageNet's
mean and std). One 224 × 224 RGB PNG (random pixels, ~150 KB) is sent to every server as a
``multipart/form-data`` upload to ``POST /predict``, the way a colleague's script sends a photo::

    wrk (c = 1, then c = 8) ─ the PNG ─► winserve, TorchScript file  (model host, batching)
                                        winserve, ONNX file         (model host, batching)
                                        LitServe, batching          (``serve-litserve`` below)
                                        Flask + waitress, global    (``serve-flask`` below)

Every server decodes the PNG with Pillow, scales it to floats, normalises it (the same
arithmetic as ``winserve.host.images``) and answers the argmax class. The baselines are
written as their docs and tutorials show: LitServe's ``LitAPI`` with ``max_batch_size`` and
``batch_timeout`` on the API (its image-classifier example: ``batch`` stacks, ``unbatch``
splits), run with ``accelerator="cpu"``; Flask with the TorchScript module in a global, one
call per request in waitress's threads, torch's own thread count.

Reported per server and level: req/s, p50 and p99 (wrk), errors, and the CPU seconds the
whole process tree used per request (``psutil`` user + system of the server and every
process it started, before and after the level): a figure that holds up on a busy machine
when req/s does not. The machine's load average is printed beside the table. Each server's
answer for the PNG is checked against the network's own in-process answer before it is
measured (a server that answers another class is reported, not timed).

``--workers N`` gives winserve N replicas (default 1). ``--runs N`` goes N rounds over the
servers (a drift in the machine's load falls on each; the targets use the medians);
``--threads N`` gives every server N torch/onnxruntime threads (0, the default: each its own
default: torch's every core for Flask and LitServe, winserve's cores ÷ replicas; winserve's
model host also sets ``OMP_WAIT_POLICY=PASSIVE`` and onnxruntime's ``allow_spinning=0``, see
``winserve.host.torch_files``). ``--requests N`` runs each level for a fixed number of
requests instead of seconds (wrk has no such option: the level runs ``N / (its c=1 rate)``
seconds, at least one). Writes the table to stdout and to ``bench/out/image_classifier.md``.
Needs torch, onnxruntime, onnx, Pillow (winserve's ``torch`` extra and base), litserve (the
``bench`` extra; skipped, and said so, without it), wrk (Debian's ``wrk``) and psutil (the
``test`` extra). The server sub-commands are how the bench starts its baselines:
``python bench/image_classifier.py serve-flask MODEL PORT THREADS`` and
``python bench/image_classifier.py serve-litserve MODEL PORT MAX_BATCH TIMEOUT THREADS``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SIZE = 224
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
LEVELS = (1, 8)
FLASK_THREADS = 8  # waitress threads of the hand-written server (one per client at c=8)
# LitServe's image-classifier example batches up to 16 requests, waiting up to 10 ms for them;
# at c=8 no more than 8 can come: 8 it is
LITSERVE_BATCH, LITSERVE_TIMEOUT = 8, 0.01
WORKERS = [1]  # winserve's replicas: main() sets it from --workers
BOUNDARY = "winservebenchboundary24"
SERVERS = ("winserve (TorchScript)", "winserve (ONNX)", "LitServe (batching)", "Flask (global)")
CARD = f"""[inputs.x]
kind = "image"
size = [{SIZE}, {SIZE}]
channels = "RGB"
layout = "NCHW"
mean = {list(MEAN)}
std = {list(STD)}
"""


# -- the network -------------------------------------------------------------------------------


def resnet18(classes: int = 1000) -> Any:
    """torchvision's ResNet-18 layout (BasicBlock, [2, 2, 2, 2]), written out."""
    from torch import nn

    class Block(nn.Module):
        def __init__(self, inputs: int, outputs: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(outputs)
            self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(outputs)
            self.relu = nn.ReLU(inplace=True)
            self.down = nn.Sequential()
            if stride != 1 or inputs != outputs:
                self.down = nn.Sequential(
                    nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs)
                )

        def forward(self, x: Any) -> Any:
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + self.down(x))

    class ResNet18(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(
                nn.Conv2d(3, 64, 7, 2, 3, bias=False),
                nn.BatchNorm2d(64),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, 2, 1),
            )
            widths = [(64, 64, 1), (64, 128, 2), (128, 256, 2), (256, 512, 2)]
            self.layers = nn.Sequential(
                *(nn.Sequential(Block(i, o, s), Block(o, o, 1)) for i, o, s in widths)
            )
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(512, classes)

        def forward(self, x: Any) -> Any:
            return self.fc(self.pool(self.layers(self.stem(x))).flatten(1))

    return ResNet18()


def build(folder: Path) -> dict[str, Path]:
    """The network with random weights (seed 24), as TorchScript and ONNX files with cards."""
    import torch

    warnings.filterwarnings("ignore", message=".*is deprecated", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export")
    torch.manual_seed(24)
    network = resnet18().eval()
    with torch.no_grad():  # BatchNorm's running statistics: not the identity, as trained ones
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    scripted = folder / "resnet18.pt"
    example = torch.zeros(1, 3, SIZE, SIZE)
    with torch.no_grad():  # traced: the network has no branch that depends on its input
        torch.jit.save(torch.jit.trace(network, (example,)), str(scripted))
    graph = folder / "resnet18.onnx"
    # a graph ending in Softmax is a classifier to winserve (its raw logits would be served as
    # they are, 1,000 numbers, not a class): exported as a data scientist exports for serving
    torch.onnx.export(
        torch.nn.Sequential(network, torch.nn.Softmax(dim=1)).eval(),
        (example,),
        str(graph),
        input_names=["x"],
        output_names=["probabilities"],
        dynamic_axes={"x": {0: "batch"}, "probabilities": {0: "batch"}},
        dynamo=False,  # the TorchScript-based exporter: needs no onnxscript
    )
    for path in (scripted, graph):
        path.with_suffix(".toml").write_text(CARD, encoding="utf-8")
    return {"TorchScript": scripted, "ONNX": graph}


def png(seed: int = 24) -> bytes:
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def prepare(data: bytes) -> Any:
    """A PNG as the network's [3, 224, 224] float32 array (winserve.host.images' arithmetic)."""
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    pixels = pixels * np.float32(1 / 255)
    pixels = (pixels - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def expected_class(scripted: Path, data: bytes) -> int:
    import torch

    network = torch.jit.load(str(scripted))
    with torch.inference_mode():
        return int(network(torch.from_numpy(prepare(data))[None]).argmax(1)[0])


def multipart(data: bytes) -> bytes:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="x"; filename="photo.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode()


# -- the baselines, as their users write them -----------------------------------------------------


def serve_flask(model: str, port: int, threads: int) -> None:
    import torch
    from flask import Flask, jsonify, request
    from waitress import serve

    if threads:  # else torch's own default: every core
        torch.set_num_threads(threads)
    network = torch.jit.load(model).eval()  # the model in a global, loaded once
    app = Flask(__name__)

    @app.post("/predict")
    def predict():  # type: ignore[no-untyped-def]
        batch = torch.from_numpy(prepare(request.files["x"].read()))[None]
        with torch.inference_mode():
            label = int(network(batch).argmax(1)[0])
        return jsonify({"predictions": [label]})

    @app.get("/health")
    def health():  # type: ignore[no-untyped-def]
        return jsonify({"status": "ready"})

    serve(app, host="127.0.0.1", port=port, threads=FLASK_THREADS, _quiet=True)


def serve_litserve(model: str, port: int, max_batch: int, timeout: float, threads: int) -> None:
    import litserve as ls
    import litserve.server as litserve_server

    # see bench/litserve_server.py: litserve 0.2.19 turns MCP on when ``mcp`` is installed
    # and then dies without ``fastmcp``; the bench serves no MCP
    litserve_server._MCP_AVAILABLE = False
    api = ImageClassifier(model, threads, max_batch_size=max_batch, batch_timeout=timeout)
    server = ls.LitServer(api, accelerator="cpu")
    server.run(host="127.0.0.1", port=port, log_level="warning", generate_client_file=False)


try:  # LitServe's worker process is spawned: its API class must be importable from here
    import litserve as _ls
except ImportError:  # the bench says it skipped LitServe
    _ls = None

if _ls is not None:

    class ImageClassifier(_ls.LitAPI):  # type: ignore[misc]
        def __init__(
            self, path: str, threads: int, max_batch_size: int, batch_timeout: float
        ) -> None:
            super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout)
            self.path, self.threads = path, threads

        def setup(self, device: str) -> None:
            import torch

            if self.threads:  # else torch's own default: every core
                torch.set_num_threads(self.threads)
            self.network = torch.jit.load(self.path).eval()

        # no annotations: LitServe builds its FastAPI endpoint from them
        def decode_request(self, request):  # type: ignore[no-untyped-def]
            return prepare(request["x"].file.read())  # a multipart upload: a form

        def batch(self, inputs):  # type: ignore[no-untyped-def]
            import numpy as np
            import torch

            return torch.from_numpy(np.stack(inputs))

        def predict(self, x):  # type: ignore[no-untyped-def]
            import torch

            with torch.inference_mode():
                return self.network(x).argmax(1)

        def unbatch(self, output):  # type: ignore[no-untyped-def]
            return [int(label) for label in output]

        def encode_response(self, output):  # type: ignore[no-untyped-def]
            return {"predictions": [output]}


# -- measuring ------------------------------------------------------------------------------------


@dataclass
class Level:
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    cpu_ms: float  # CPU time of the server's whole process tree per request


@dataclass
class Result:
    server: str
    ready_s: float
    levels: list[Level]
    note: str = ""
    run: int = 1


def command(
    server: str, files: dict[str, Path], port: int, folder: Path, threads: int
) -> list[str]:
    if server.startswith("winserve"):
        model = files["ONNX" if "ONNX" in server else "TorchScript"]
        return [
            sys.executable,
            "-m",
            "winserve",
            str(model),
            "--port",
            str(port),
            "--no-browser",
            "--log-level",
            "warning",
            # the prediction log stays on (the default, as users run it), in the run's folder
            "--log-path",
            str(folder / f"{model.stem}-{port}.predictions.sqlite"),
            "--intra-op-threads",
            str(threads),
            "--workers",
            str(WORKERS[0]),
        ]
    script = [sys.executable, str(Path(__file__).resolve())]
    if server.startswith("LitServe"):
        return [
            *script,
            "serve-litserve",
            str(files["TorchScript"]),
            str(port),
            str(LITSERVE_BATCH),
            str(LITSERVE_TIMEOUT),
            str(threads),
        ]
    return [*script, "serve-flask", str(files["TorchScript"]), str(port), str(threads)]


def tree_cpu(pid: int) -> float:
    import psutil
    from run import tree  # type: ignore[import-not-found]  # bench/run.py

    total = 0.0
    for process in tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def post(url: str, body: bytes) -> Any:
    ask = urllib.request.Request(
        f"{url}/predict",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    with urllib.request.urlopen(ask, timeout=60) as answer:
        return json.loads(answer.read())


def wrk(url: str, script: Path, concurrency: int, seconds: float, pid: int) -> Level:
    from run import _ms  # type: ignore[import-not-found]

    before = tree_cpu(pid)
    out = subprocess.run(
        [
            "wrk",
            f"-t{min(2, concurrency)}",
            f"-c{concurrency}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "--timeout",
            "30s",
            "-s",
            str(script),
            f"{url}/predict",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
    ).stdout
    used = tree_cpu(pid) - before

    def found(pattern: str) -> str:
        match = re.search(pattern, out, re.M)
        if match is None:
            raise RuntimeError(f"wrk's output has no {pattern!r}:\n{out}")
        return match.group(1)

    total = int(found(r"(\d+) requests in"))
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    if sockets:
        errors += sum(int(n) for n in sockets.groups())
    return Level(
        concurrency,
        float(found(r"Requests/sec:\s+([\d.]+)")),
        _ms(found(r"^\s+50%\s+(\S+)")),
        _ms(found(r"^\s+99%\s+(\S+)")),
        errors,
        total,
        1000 * used / total if total else 0.0,
    )


def measure(
    server: str,
    files: dict[str, Path],
    folder: Path,
    sent: tuple[Path, bytes, int],
    length: tuple[float, int, int],
) -> Result:
    """``sent``: wrk's script, the body, the class the network answers; ``length``: seconds
    a level, requests a level (0: by seconds), the threads (0: the server's default)."""
    from run import free_port, stop, wait_ready  # type: ignore[import-not-found]

    script, body, expected = sent
    seconds, requests, threads = length
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        command(server, files, port, folder, threads),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ready = wait_ready(proc, url, timeout=600)
        answer = post(url, body)["predictions"][0]
        if answer != expected:
            return Result(
                server, ready, [], f"answered class {answer}, the network says {expected}"
            )
        for _ in range(5):  # warm up: the first calls of a network are slower
            post(url, body)
        levels, duration = [], seconds
        for concurrency in LEVELS:
            level = wrk(url, script, concurrency, duration, proc.pid)
            if requests and concurrency == LEVELS[0]:  # a fixed number: from the c=1 rate
                duration = max(1.0, requests / max(level.rps, 1e-9))
            levels.append(level)
        return Result(server, ready, levels)
    finally:
        stop(proc)


def litserve_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("litserve") is not None


def table(results: list[Result]) -> str:
    lines = [
        "| server | run | c | req/s | p50 ms | p99 ms | errors | requests | server CPU ms/req |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for result in results:
        if result.note:
            notes.append(f"- {result.server}: {result.note}")
        for level in result.levels:
            lines.append(
                f"| {result.server} | {result.run} | {level.concurrency} | {level.rps:,.1f} | "
                f"{level.p50_ms:,.1f} | {level.p99_ms:,.1f} | {level.errors} | {level.requests} "
                f"| {level.cpu_ms:,.1f} |"
            )
    lines += ["", *notes]
    lines += _targets(results)
    return "\n".join(lines)


def _targets(results: list[Result]) -> list[str]:
    def rps(server: str, concurrency: int) -> float | None:
        """The median over the runs."""
        found = [
            level.rps
            for result in results
            for level in result.levels
            if result.server == server and level.concurrency == concurrency
        ]
        return statistics.median(found) if found else None

    lit = rps(SERVERS[2], 8)
    out = []
    for server in SERVERS[:2]:
        ours = rps(server, 8)
        if ours is not None and lit:
            verdict = "met" if ours >= lit else "not met"
            out.append(
                f"- target (issue 24) at c=8, {server} ≥ LitServe (medians of the runs): "
                f"{ours:,.1f} vs {lit:,.1f} "
                f"req/s = {ours / lit:.2f}× ({verdict})"
            )
    return out


def header(seconds: float, requests: int, cores: int, threads: int) -> str:
    import torch

    length = f"{requests} requests a level" if requests else f"{seconds:g} s a level"
    length += f", {threads} torch/onnxruntime threads" if threads else ", default threads"
    length += f", winserve --workers {WORKERS[0]}"
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (
        f"ResNet-18 shape, random weights, one 224×224 RGB PNG per request (multipart); {length}; "
        f"torch {torch.__version__}, {cores} cores; load average before: {load}"
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve-flask"]:
        serve_flask(argv[1], int(argv[2]), int(argv[3]))
        return 0
    if argv[:1] == ["serve-litserve"]:
        serve_litserve(argv[1], int(argv[2]), int(argv[3]), float(argv[4]), int(argv[5]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="each level's length")
    parser.add_argument("--requests", type=int, default=0, help="each level's requests instead")
    parser.add_argument("--runs", type=int, default=1, help="rounds over every server")
    parser.add_argument("--workers", type=int, default=1, help="winserve's replicas (default 1)")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch/onnxruntime threads of every server (0: each one's default)",
    )
    parser.add_argument("--only", action="append", default=[], help="servers whose name has this")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "image_classifier.md")
    options = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))  # bench/run.py's helpers (free port, wrk's units, stop)
    WORKERS[0] = options.workers
    servers = [s for s in SERVERS if not options.only or any(o in s for o in options.only)]
    skipped = []
    if not litserve_installed() and SERVERS[2] in servers:
        servers.remove(SERVERS[2])
        skipped.append("LitServe skipped: not installed (pip install 'winserve[bench]')")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    top = header(options.seconds, options.requests, cores or 1, options.threads)
    print(top, flush=True)
    with tempfile.TemporaryDirectory(prefix="winserve-images-") as name:
        folder = Path(name)
        files = build(folder)
        body = multipart(png())
        script = folder / "post.lua"
        (folder / "body.bin").write_bytes(body)
        script.write_text(
            f'local f = io.open("{folder / "body.bin"}", "rb")\nwrk.method = "POST"\n'
            'wrk.body = f:read("*a")\nf:close()\n'
            f'wrk.headers["Content-Type"] = "multipart/form-data; boundary={BOUNDARY}"\n',
            encoding="utf-8",
        )
        expected = expected_class(files["TorchScript"], png())
        sizes = ", ".join(f"{k} {p.stat().st_size / 1e6:.0f} MB" for k, p in files.items())
        print(f"model files: {sizes}; the PNG: {len(png()) / 1e3:.0f} KB", flush=True)
        results = []
        for run in range(1, options.runs + 1):  # rounds: a drift in the load falls on all
            for server in servers:
                result = measure(
                    server,
                    files,
                    folder,
                    (script, body, expected),
                    (options.seconds, options.requests, options.threads),
                )
                result.run = run
                results.append(result)
                print("\n".join(table([result]).splitlines()[2:]).strip(), flush=True)
    after = " / ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    text = "\n".join([top, "", table(results), *skipped, "", f"load average after: {after}"])
    print("\n" + text)
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
