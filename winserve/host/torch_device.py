"""Where one replica of a PyTorch or ONNX model runs, and on how many threads (issue 24), in
the model host.

::

    ModelSpec: device ("cpu", "cuda", "cuda:N"), replica (this host's index), replicas,
               intra_op_threads (0: cores ÷ replicas)
        ─ placement(spec) ─► Placement(device "cpu" or "cuda:K", threads)
              torch_model: the module and each call's tensors .to(device); torch.set_num_threads
              onnx_model: CUDAExecutionProvider(device_id=K) before the CPU one;
                          SessionOptions.intra_op_num_threads

``cuda`` spreads the replicas over the visible GPUs, replica i on GPU i mod their count; with
``workers`` left at one, the pool starts one replica per visible GPU (``replicas_for``,
counted in the web process without torch: ``CUDA_VISIBLE_DEVICES``, else ``nvidia-smi -L``).
``cuda:N`` puts every replica on GPU N.
Asked for a GPU where none is visible, the load fails with the reason (the model is
``failed``, its entry says why), never silently on the CPU.

The CUDA branches cannot run on a machine without a GPU (winserve's CI has none): they are
kept to the few calls PyTorch's and onnxruntime's documentation give (``torch.cuda``,
``.to(device)``, the provider's ``device_id`` option); what is tested is the CPU path, the
choice of the GPU, and the refusals.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from winserve.errors import ModelLoadError

CPU = "cpu"
ONNX_CUDA = "CUDAExecutionProvider"


@dataclass(frozen=True)
class Placement:
    device: str  # "cpu" or "cuda:K": a GPU chosen
    threads: int  # intra-op threads of this replica
    replicas: int = 1  # how many replicas hold the model (onnx_model: share its weights)

    @property
    def gpu(self) -> int | None:
        return int(self.device.split(":")[1]) if self.device.startswith("cuda:") else None


def threads_for(replicas: int) -> int:
    """The cores this process may use (its affinity where the OS says), shared by the
    replicas."""
    if hasattr(os, "sched_getaffinity"):  # Linux; Windows and macOS: every core
        cores = len(os.sched_getaffinity(0))
    else:
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, replicas))


def threads(intra_op_threads: int, replicas: int) -> int:
    """The setting where given (above 0), else the cores shared by the replicas."""
    return intra_op_threads if intra_op_threads > 0 else threads_for(replicas)


def gpu_for(device: str, replica: int, count: int) -> int:
    """The GPU of replica ``replica`` among ``count`` visible ones (``count`` > 0)."""
    if device == "cuda":
        return replica % count
    index = int(device.split(":")[1])
    if index >= count:
        raise ModelLoadError(
            f"device {device} asked but only {count} GPU(s) are visible (cuda:0 to "
            f"cuda:{count - 1}); check CUDA_VISIBLE_DEVICES"
        )
    return index


def for_torch(device: str, replica: int, intra_op_threads: int, replicas: int) -> Placement:
    """This replica's place for a PyTorch model; ``ModelLoadError`` when no GPU is visible."""
    count = threads(intra_op_threads, replicas)
    if device == CPU:
        return Placement(CPU, count, replicas)
    try:
        import torch
    except ImportError:
        from winserve.host.torch_files import NEEDS

        raise ModelLoadError(NEEDS) from None
    if not torch.cuda.is_available():
        raise ModelLoadError(
            f"device {device} asked but no GPU is visible (torch.cuda.is_available() is False): "
            "set device = cpu, or install a CUDA build of torch on a machine with an NVIDIA GPU"
        )
    gpu = gpu_for(device, replica, torch.cuda.device_count())  # pragma: no cover (no GPU in CI)
    return Placement(f"cuda:{gpu}", count, replicas)  # pragma: no cover


def for_onnx(device: str, replica: int, intra_op_threads: int, replicas: int) -> Placement:
    """This replica's place for an ONNX graph. Without the setting, table graphs keep one
    thread (see ``onnx_model.session_options``); ``threads`` here is for tensor graphs."""
    count = threads(intra_op_threads, replicas)
    if device == CPU:
        return Placement(CPU, count, replicas)
    try:
        import onnxruntime as ort
    except ImportError:
        from winserve.host.onnx_model import NEEDS

        raise ModelLoadError(NEEDS) from None

    providers = list(ort.get_available_providers())
    if ONNX_CUDA not in providers:
        raise ModelLoadError(
            f"device {device} asked but onnxruntime has no CUDA provider (its providers: "
            f"{', '.join(providers)}): set device = cpu, or pip install onnxruntime-gpu on a "
            "machine with an NVIDIA GPU"
        )
    gpu = gpu_for(device, replica, _gpus())  # pragma: no cover (no GPU in CI)
    return Placement(f"cuda:{gpu}", count, replicas)  # pragma: no cover


def _gpus() -> int:  # pragma: no cover (no GPU in CI)
    """Visible GPUs, as torch counts them where it is installed; else CUDA_VISIBLE_DEVICES's
    list, else one (onnxruntime has no count of its own)."""
    try:
        import torch

        return max(1, int(torch.cuda.device_count()))
    except ImportError:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
        return len([d for d in visible.split(",") if d.strip()]) or 1


def onnx_providers(placement: Placement) -> list[Any]:
    """onnxruntime's providers for the placement: the CPU's alone, or CUDA's on its GPU first
    (the CPU one runs what CUDA's does not implement)."""
    if placement.gpu is None:
        return ["CPUExecutionProvider"]
    return [(ONNX_CUDA, {"device_id": placement.gpu}), "CPUExecutionProvider"]  # pragma: no cover


def give_back_freed_memory() -> None:
    """After a large model is loaded, hand the heap pages its loading freed back to the OS
    (glibc keeps them for the process otherwise: a parsed 336 MB ONNX graph left 84 MB that
    ``malloc_trim`` returned; issue 24, memory of replicas). Linux with glibc only; elsewhere
    nothing to do (Windows' heap gives large blocks back when they are freed)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # another C library (musl): no malloc_trim
        return


def visible_gpus(env: Mapping[str, str] | None = None) -> int:
    """The NVIDIA GPUs this machine shows, counted without importing torch (the web process
    decides how many replicas to start): ``CUDA_VISIBLE_DEVICES`` where set (empty or -1:
    none), else the lines ``nvidia-smi -L`` lists (Linux and Windows drivers install it), else
    none."""
    listed = (os.environ if env is None else env).get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        devices = [d.strip() for d in listed.split(",") if d.strip()]
        return 0 if not devices or devices[0] == "-1" else len(devices)
    try:
        found = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):  # no driver: no GPU
        return 0
    return sum(line.startswith("GPU ") for line in found.stdout.splitlines())


def replicas_for(device: str, workers: int) -> int:
    """``workers`` replicas; with ``device = "cuda"`` and one replica asked (the default), one
    per visible GPU (issue 24: "one replica per device by default"). Without a GPU, the one
    replica, whose load then says why it cannot run there."""
    if device != "cuda" or workers != 1:
        return workers
    return max(1, visible_gpus())
