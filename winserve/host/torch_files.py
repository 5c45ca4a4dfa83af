"""A PyTorch file to something to call and what its inputs are (issue 24), in the model host.

Three kinds of file are served without code, told apart by what is inside them (all three are
zip archives; the suffix alone does not say: ``.pt`` is used for each)::

    .pt2 ─ torch.export.load ─ ExportedProgram: .module() is called; its inputs' names,
           dtypes and shapes (symbolic batch dimension: ``None``) come from the program
    .pt / .pth with code/… inside ─ torch.jit.load ─ a TorchScript module: inputs' names
           from forward's schema; shapes and dtypes from the model card's [inputs.<name>]
    .pt / .pth, any other ─ torch.load ─ a whole nn.Module (its class from the operator's
           <name>_code.py, as for a pickled scikit-learn model): names from forward's
           signature; shapes and dtypes from the card

A state dict (weights without the network) is refused, saying how to save a servable file.
``torch.load(weights_only=False)`` runs the pickle's code, so it is used only for a whole
module, and only for the file the operator chose (the trust of a ``.joblib`` file, SECURITY.md);
it is asked first with ``weights_only=True``, which loads no code: a state dict is told apart
without running anything. ``mmap=True`` maps the file's tensors instead of copying them, so
replicas of a large model share its weights through the page cache (copy-on-write).

The answer is a ``TorchFile``: the callable, the inputs as ``Declared`` (name, per-row shape
or ``None`` when the file does not say, dtype or ``""``), and a word for the runtime line.
"""

from __future__ import annotations

import inspect
import os
import pickle
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from winserve.errors import ModelLoadError

NEEDS = "serving a PyTorch file needs torch: pip install torch (see pytorch.org for a CPU build)"
SUFFIXES = (".pt2", ".pt", ".pth")
PICKLE_PROTO = 0x80  # the first byte of torch.save's old format (before 1.6): a pickle
# torch's dtypes as the NumPy dtype the web process checks a request against; half precision
# is sent as float32 and cast in the host (JSON and OIP clients send float32 numbers)
DTYPES = {
    "float32": "float32",
    "float64": "float64",
    "float16": "float32",
    "bfloat16": "float32",
    "int64": "int64",
    "int32": "int32",
    "uint8": "uint8",
}


@dataclass(frozen=True)
class Declared:
    name: str
    shape: list[int | None] | None  # per row (no batch dimension); None: the file does not say
    dtype: str  # a key of DTYPES, "" when the file does not say
    batch: int | None = None  # a fixed batch size the program was exported with


@dataclass
class TorchFile:
    call: Any  # inputs in the declared order → the outputs
    inputs: list[Declared]
    kind: str  # "torch.export program", "TorchScript module", "nn.Module"
    module: Any  # the nn.Module (or ScriptModule, GraphModule) behind ``call``
    notes: list[str] = field(default_factory=list)  # warnings torch gave while loading
    device: str = "cpu"  # where ``module`` is: set by torch_model.wrap (issue 24)


def is_torch_file(path: Path) -> bool:
    return path.suffix.lower() in SUFFIXES


def load(path: Path, *, mmap: bool) -> TorchFile:
    # torch's OpenMP threads sleep when idle instead of spinning, unless the operator chose
    # (read when torch is first imported, in this model host): on a shared machine a spinning
    # thread waits for a busy core (measured, ResNet-18 on 2 cores at load 5, 2 threads: 150
    # ms a call and 94 ms CPU spinning, 37 ms and 34 ms CPU passive; issue 24)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import torch
    except ImportError:
        raise ModelLoadError(NEEDS) from None
    names = _archive_names(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = _load(torch, path, names, mmap)
    # torch's own notes (TorchScript is deprecated from 2.14 on, …) go to the operator
    found.notes = list(dict.fromkeys(str(w.message).splitlines()[0] for w in caught))
    return found


def _load(torch: Any, path: Path, names: list[str] | None, mmap: bool) -> TorchFile:
    try:
        if names is None:  # torch.save's format before PyTorch 1.6: a pickle, never mapped
            return _pickled(torch, path, mmap=False)
        if path.suffix.lower() == ".pt2" or any(
            n.endswith("serialized_exported_program.json") for n in names
        ):
            return _exported(torch, path)
        if any("/code/" in n or n.endswith("constants.pkl") for n in names):
            return _scripted(torch, path)
        return _pickled(torch, path, mmap)
    except ModelLoadError:
        raise
    except (ModuleNotFoundError, AttributeError) as exc:
        from winserve.host import model_code

        explained = model_code.explain(exc, path)
        raise ModelLoadError(explained or f"cannot load {path.name}: {_reason(exc)}") from None
    except Exception as exc:  # torch's own errors: a damaged file, another torch's format
        raise ModelLoadError(f"cannot load {path.name} with torch: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _archive_names(path: Path) -> list[str] | None:
    """The zip archive's names; None for a file of torch.save's old format (a pickle)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError):
        with path.open("rb") as handle:
            legacy = handle.read(1) == bytes([PICKLE_PROTO])
        if legacy and path.suffix.lower() != ".pt2":
            return None
        raise ModelLoadError(
            f"cannot load {path.name}: it is not a PyTorch file (torch.save, torch.jit.save and "
            "torch.export.save write zip archives), or it is damaged or incomplete"
        ) from None


# -- torch.export --------------------------------------------------------------------------


def _exported(torch: Any, path: Path) -> TorchFile:
    program = torch.export.load(str(path))
    from torch.export.graph_signature import InputKind

    user = [
        s.arg.name for s in program.graph_signature.input_specs if s.kind == InputKind.USER_INPUT
    ]
    values = {
        node.name: node.meta.get("val") for node in program.graph.nodes if node.op == "placeholder"
    }
    inputs = [_from_example(name, values.get(name)) for name in user]
    module = program.module()
    return TorchFile(module, inputs, "torch.export program", module)


def _from_example(name: str, value: Any) -> Declared:
    """An exported input: its example's dtype, and its shape with symbolic sizes as None."""
    shape = list(getattr(value, "shape", None) or [])
    if not shape:
        raise ModelLoadError(
            f"input {name!r} of the exported program is not a tensor with a batch dimension"
        )
    dims: list[int | None] = [d if isinstance(d, int) else None for d in shape]
    dtype = str(getattr(value, "dtype", "")).removeprefix("torch.")
    return Declared(name, dims[1:], dtype, batch=dims[0])


# -- TorchScript ---------------------------------------------------------------------------


def _scripted(torch: Any, path: Path) -> TorchFile:
    module = torch.jit.load(str(path), map_location="cpu")
    module.eval()
    arguments = list(module.forward.schema.arguments)[1:]  # [0] is self
    names = [a.name for a in arguments if not a.has_default_value()]
    return TorchFile(module, [Declared(n, None, "") for n in names], "TorchScript module", module)


# -- torch.save of a whole module ------------------------------------------------------------


def _pickled(torch: Any, path: Path, mmap: bool) -> TorchFile:
    from winserve.host import model_code

    options = {"map_location": "cpu", "mmap": mmap}
    try:  # loads no code: a state dict (or plain tensors) answers here
        found = torch.load(str(path), weights_only=True, **options)
    except pickle.UnpicklingError:  # it holds a class: a whole module, as the operator chose
        model_code.prepare(path)
        found = torch.load(str(path), weights_only=False, **options)
    if not isinstance(found, torch.nn.Module):
        what = "a state dict" if isinstance(found, dict) else f"a {type(found).__name__}"
        raise ModelLoadError(
            f"{path.name} holds {what}, not a network winserve can call: save the whole "
            "module (torch.save(model, path), its class in "
            f"{model_code.code_file(path).name}), a TorchScript file "
            "(torch.jit.save(torch.jit.script(model), path)) or a torch.export program "
            "(torch.export.save(torch.export.export(model, example), 'model.pt2'))"
        )
    found.eval()
    parameters = inspect.signature(found.forward).parameters.values()
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    names = [p.name for p in parameters if p.kind in positional and p.default is p.empty]
    return TorchFile(found, [Declared(n, None, "") for n in names], "nn.Module", found)
