"""Load the operator's model: a joblib/pickle file, a factory callable, or the built-in demo.

A model file is code (pickle): only the path the operator chose is ever loaded. Uncompressed
joblib files are memory-mapped so replicas share the model's large arrays through the page
cache. A file saved with another scikit-learn version loads with a warning naming both
versions, or is refused under ``strict_versions``. Other formats have loaders of their own:
``.skops``, ``.onnx``, MLflow folders, PyTorch files (``.pt2``/``.pt``/``.pth``:
``torch_files`` and ``torch_model``) and Keras 3 files (``.keras``: ``keras_model``).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from winserve.errors import ModelLoadError
from winserve.host import mlflow_folder, model_code, skops_loader, torch_device
from winserve.host.torch_device import Placement
from winserve.model_file import sha256_of
from winserve.model_info import ModelSpec

PICKLE_MAGIC = 0x80  # an uncompressed pickle starts with the PROTO opcode


@dataclass
class Loaded:
    model: Any
    name: str
    source: str
    sha256: str = ""
    file_size: int = 0
    demo: bool = False
    mmap: bool = False
    saved_with_sklearn: str = ""
    warnings: list[str] = field(default_factory=list)
    code_file: str = ""  # the <name>_code.py run before loading, if any
    mlflow: dict[str, Any] = field(default_factory=dict)  # an MLflow folder's predict_fn, params


def sklearn_version() -> str:
    try:
        import sklearn
    except ImportError:
        return ""
    return str(sklearn.__version__)


def _is_uncompressed(path: Path) -> bool:
    with path.open("rb") as handle:
        first = handle.read(1)
    return bool(first) and first[0] == PICKLE_MAGIC


def _version_notes(caught: list[warnings.WarningMessage], strict: bool) -> tuple[str, list[str]]:
    saved, notes = "", []
    for item in caught:
        original = getattr(item.message, "original_sklearn_version", None)
        if original is not None:
            saved = str(original)
            estimator = getattr(item.message, "estimator_name", "estimator")
            note = (
                f"{estimator} was saved with scikit-learn {original} and runs here with "
                f"{sklearn_version()}; predictions may differ. Re-save the model with "
                f"{sklearn_version()} or install scikit-learn=={original}."
            )
            if strict:
                raise ModelLoadError(note.split(";")[0] + " (refused: strict_versions is on)")
            if note not in notes:
                notes.append(note)
        else:
            notes.append(str(item.message).splitlines()[0])
    return saved, notes


def load_file(
    path: Path,
    *,
    strict_versions: bool,
    mmap: bool,
    sha256: str = "",
    same_as: str = "",
    trust: tuple[str, ...] = (),
    inputs: dict[str, dict[str, Any]] | None = None,
    replicas: int = 1,
    placement: Placement | None = None,
) -> Loaded:
    """``inputs``: the model card's [inputs.<name>] tables, for a graph's tensors (issue 24);
    ``replicas``: how many processes hold this model (a PyTorch file's threads, issue 24);
    ``placement``: where a PyTorch or ONNX model runs and on how many threads (issue 24;
    None: the CPU, the cores divided by ``replicas``)."""
    import joblib

    folder = mlflow_folder.is_model_folder(path)
    if not path.is_file() and not folder:
        raise ModelLoadError(f"model file not found: {path.name}")  # no server path in /health
    digest = sha256_of(path)
    if sha256 and digest != sha256:
        raise ModelLoadError(
            f"{path.name} has SHA-256 {digest}, not the pinned {sha256} "
            "(setting: model_sha256); refused without loading it"
        )
    if same_as and digest != same_as:
        raise ModelLoadError(
            f"{path.name} changed on disk since winserve loaded it (SHA-256 {same_as[:12]}… "
            f"then, {digest[:12]}… now), so it was not loaded again: restart winserve to serve "
            "the new file, or put the old one back"
        )
    if folder:  # pinned as a whole (every file in it) above; its model file is loaded below
        return mlflow_folder.load(path, digest, strict_versions=strict_versions, trust=trust)
    if path.suffix.lower() in (".pt2", ".pt", ".pth"):  # PyTorch files (issue 24)
        from winserve.host import torch_model

        network = torch_model.load(
            path, inputs or {}, mmap=mmap, replicas=replicas, placement=placement
        )
        return Loaded(
            network,
            path.stem,
            str(path),
            digest,
            path.stat().st_size,
            mmap=mmap,
            warnings=network.notes,
        )
    if path.suffix.lower() == ".keras":  # Keras 3, on its torch backend (issue 24)
        from winserve.host import keras_model

        network = keras_model.load(path, inputs or {}, replicas=replicas)
        return Loaded(
            network, path.stem, str(path), digest, path.stat().st_size, warnings=network.notes
        )
    if path.suffix.lower() == ".onnx":  # a graph, not code: onnxruntime runs it (issue 16)
        from winserve.host import onnx_model

        graph = onnx_model.load(path, inputs or {}, placement)
        return Loaded(graph, path.stem, str(path), digest, path.stat().st_size)
    use_mmap = mmap and _is_uncompressed(path)
    code = model_code.prepare(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if path.suffix.lower() == ".skops":  # refuses types it does not trust, unloaded
                model = skops_loader.load(path, trust)
            else:
                model = joblib.load(path, mmap_mode="r" if use_mmap else None)
        except ModelLoadError:
            raise
        except (ModuleNotFoundError, AttributeError) as exc:
            explained = model_code.explain(exc, path)
            if explained is None:
                raise ModelLoadError(
                    f"cannot load {path.name}: {type(exc).__name__}: {exc}"
                ) from None
            raise ModelLoadError(explained) from None
        except (KeyError, EOFError, pickle.UnpicklingError, IndexError):
            raise ModelLoadError(
                f"cannot load {path.name}: it is not a joblib or pickle file, "
                "or it is damaged or incomplete"
            ) from None
        except Exception as exc:  # an incompatible library, a broken __setstate__, ...
            reason = str(exc).splitlines()[0] if str(exc) else ""
            raise ModelLoadError(
                f"cannot load {path.name}: {type(exc).__name__}: {reason}"
            ) from None
    saved, notes = _version_notes(caught, strict_versions)
    if not hasattr(model, "predict"):
        raise ModelLoadError(
            f"{path.name} holds a {type(model).__name__}, which has no predict() method"
        )
    return Loaded(
        model=model,
        name=path.stem,
        source=str(path),
        sha256=digest,
        file_size=path.stat().st_size,
        mmap=use_mmap,
        saved_with_sklearn=saved or _own_version(model),
        warnings=notes,
        code_file=code,
    )


def _own_version(model: Any) -> str:
    return sklearn_version() if type(model).__module__.startswith("sklearn") else ""


def load_factory(reference: str) -> Loaded:
    module_name, _, attr = reference.partition(":")
    # `--factory mymodule:build` finds mymodule.py in the current folder (the host's is the
    # server's), as `python -m winserve` would: added here, at the end, and not by the command
    # line for the whole server, where a folder named `winserve` in it shadowed the installed
    # package in every spawned host (issue 24)
    here = os.getcwd()
    if here not in sys.path:
        sys.path.append(here)
    try:
        module = importlib.import_module(module_name)
        factory = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise ModelLoadError(f"cannot import factory {reference}: {exc}") from None
    try:
        model = factory()
    except Exception as exc:
        raise ModelLoadError(f"factory {reference} failed: {type(exc).__name__}: {exc}") from None
    if not hasattr(model, "predict"):
        raise ModelLoadError(
            f"factory {reference} returned a {type(model).__name__}, which has no predict() method"
        )
    return Loaded(
        model=model,
        name=getattr(model, "name", None) or attr,
        source=reference,
        saved_with_sklearn=_own_version(model),
    )


def load(spec: ModelSpec) -> Loaded:
    if spec.compile == "onnx":  # loads as below, then converts and verifies (issue 16)
        from winserve.host import compiled

        return compiled.load(spec)
    if spec.factory:
        return load_factory(spec.factory)
    if spec.path:
        return load_file(
            Path(spec.path),
            strict_versions=spec.strict_versions,
            mmap=spec.mmap,
            sha256=spec.sha256,
            same_as=spec.same_as,
            trust=spec.trust,
            inputs=spec.inputs,
            replicas=spec.replicas,
            placement=_placement(spec),
        )
    from winserve.host import demo

    loaded = load_file(demo.ensure_demo_model(), strict_versions=False, mmap=spec.mmap)
    loaded.name, loaded.demo = demo.DEMO_NAME, True
    return loaded


def own_threads(spec: ModelSpec) -> bool:
    """Whether the model's file sets its threads itself (PyTorch and ONNX: ``_placement``)."""
    return bool(spec.path) and Path(spec.path).suffix.lower() in (".pt2", ".pt", ".pth", ".onnx")


def _placement(spec: ModelSpec) -> Placement | None:
    """Where a PyTorch or ONNX file runs (the settings device and intra_op_threads, issue 24);
    None for other files, which run on the CPU whatever the setting."""
    suffix = Path(spec.path).suffix.lower()
    if suffix in (".pt2", ".pt", ".pth"):
        return torch_device.for_torch(
            spec.device, spec.replica, spec.intra_op_threads, spec.replicas
        )
    if suffix == ".onnx":
        return torch_device.for_onnx(
            spec.device, spec.replica, spec.intra_op_threads, spec.replicas
        )
    return None


def single_threaded(model: Any) -> None:
    """Use one thread per predict call: for single rows, n_jobs>1 costs more than it saves
    (measured 37.6 ms vs 17.7 ms for a 100-tree forest); replicas give the parallelism."""
    stack = [model]
    while stack:
        current = stack.pop()
        if getattr(current, "n_jobs", None) not in (None, 1):
            with contextlib.suppress(AttributeError, TypeError):
                current.n_jobs = 1
        stack.extend(step for _, step in getattr(current, "steps", None) or [])
