"""A PyTorch file served like an ONNX graph in tensor mode (issue 24), in the model host.

``winserve.host.torch_files`` loads the file; this wraps what it gives so that the rest of
winserve (describe, the sample prediction, batching, every protocol and the page) sees what an
``OnnxModel`` in tensor mode shows: ``winserve_features`` (each input a ``tensor`` or, where
the model card says ``kind = "image"``, an ``image`` feature), ``predict({name: array})``,
and for a classifier ``classes_`` and ``predict_proba``::

    {name: array [N, ...]} ─ torch.from_numpy (no copy) ─ the model's dtype ─ under
      torch.inference_mode, in chunks of a fixed batch size if the program has one ─
      the first output ─ [N, K] floats: a classifier (classes 0 … K-1, named by the card's
      [classes] on the page), probabilities = softmax(logits); anything else: the prediction

What each input is comes from the file (a ``torch.export`` program declares names, dtypes and
shapes with their symbolic batch dimension) and from the model card's ``[inputs.<name>]``
(``shape`` and ``dtype`` for a TorchScript file or a whole module, which declare only names;
``kind = "image"`` and its preprocessing for any of them).

Whether a classifier's output is logits, probabilities (the network ends in a softmax) or
log-probabilities (``log_softmax``) is read once at load from a probe batch: probabilities
are served as they are, log-probabilities exponentiated, logits turned into probabilities
with a softmax, as a data scientist would do in a notebook.

Threads: ``torch.set_num_threads`` gets the setting ``intra_op_threads``, else the cores
divided by the replicas of the model (each replica is a process of its own: more threads than
that oversubscribe the CPU). Device: the setting ``device`` (``winserve.host.torch_device``):
the module is moved there once, each call's tensors go there and the output comes back to the
CPU (a no-op on the CPU).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from winserve.errors import ModelLoadError
from winserve.host.torch_device import CPU, Placement, give_back_freed_memory, threads_for
from winserve.host.torch_files import DTYPES, Declared, TorchFile

__all__ = ["load", "threads_for", "wrap"]
PROBE_TOLERANCE = 1e-4  # rows summing to 1 within this are probabilities already


def load(
    path: Path,
    card: dict[str, dict[str, Any]],
    *,
    mmap: bool,
    replicas: int = 1,
    placement: Placement | None = None,
) -> TorchModel:
    from winserve.host import torch_files

    loaded = torch_files.load(path, mmap=mmap)
    wrapped = wrap(loaded, card, path, replicas=replicas, placement=placement)
    give_back_freed_memory()  # what unpickling and the probe freed (issue 24)
    return wrapped


def wrap(
    loaded: TorchFile,
    card: dict[str, dict[str, Any]],
    path: Path,
    *,
    replicas: int = 1,
    placement: Placement | None = None,
) -> TorchModel:
    """The estimator-like wrapper of a loaded file (a PyTorch file, a Keras model), on
    ``placement`` (None: the CPU, the cores divided by ``replicas``)."""
    import torch

    placement = placement or Placement(CPU, threads_for(replicas))
    torch.set_num_threads(placement.threads)
    if placement.device != CPU:  # pragma: no cover (no GPU in CI)
        loaded.module.to(placement.device)
    loaded.device = placement.device
    stray = sorted(set(card) - {i.name for i in loaded.inputs})
    if stray:
        raise ModelLoadError(
            f"the model card has [inputs.{stray[0]}], which is not an input of {path.name} "
            "(its inputs: " + ", ".join(repr(i.name) for i in loaded.inputs) + ")"
        )
    features = [_feature(i, card.get(i.name, {}), path) for i in loaded.inputs]
    model = TorchModel(loaded, features)
    output = model.probe()
    if output.ndim == 2 and output.shape[1] >= 2 and output.dtype.kind == "f":
        return TorchClassifier(loaded, features, output)
    if output.dtype.kind == "f" and (output.ndim == 1 or output.shape[1:] == (1,)):
        return TorchRegressor(loaded, features)
    return model


class TorchModel:
    """A network whose first output is its prediction, as it is (integers, any shape)."""

    description = ""

    def __init__(self, loaded: TorchFile, features: list[dict[str, Any]]) -> None:
        import torch

        self._call = loaded.call
        self._inputs = loaded.inputs
        self._torch_dtypes = [getattr(torch, i.dtype or "float32") for i in loaded.inputs]
        self.winserve_features = features
        self.feature_names_in_ = [f["name"] for f in features]
        self.n_features_in_ = len(features)
        self._batch = next((i.batch for i in loaded.inputs if i.batch), None)
        self._device = loaded.device  # "cpu", or the GPU the module was moved to (issue 24)
        # where it runs, on /model and the page: the settings device and intra_op_threads
        # as this host applied them (issue 24)
        threads = torch.get_num_threads()
        self.winserve_runtime = (
            f"torch {torch.__version__} (a {loaded.kind}; {self._device}, "
            f"{threads} thread{'' if threads == 1 else 's'})"
        )
        self.notes = loaded.notes  # what torch warned about while loading the file

    # -- running the network ----------------------------------------------------------------
    def _forward(self, rows: dict[str, Any]) -> Any:
        """The first output for all the rows, as a NumPy array."""
        import numpy as np
        import torch

        arrays = [_writable(rows[i.name]) for i in self._inputs]
        count = len(arrays[0]) if arrays else 0
        step = self._batch or max(count, 1)
        parts = []
        with torch.inference_mode():
            for lo in range(0, count, step):
                chunk = [a[lo : lo + step] for a in arrays]
                given = len(chunk[0])
                if given < step:  # a fixed batch size: the last chunk padded with its last row
                    chunk = [np.concatenate([c, np.repeat(c[-1:], step - given, 0)]) for c in chunk]
                tensors = [
                    torch.from_numpy(c).to(device=self._device, dtype=dtype)
                    for c, dtype in zip(chunk, self._torch_dtypes, strict=True)
                ]
                try:
                    out = self._call(*tensors)
                except (RuntimeError, ValueError, TypeError, IndexError) as exc:
                    # the rows did not fit the network (a shape, a dtype, an index)
                    raise ValueError(_first_line(exc)) from None
                parts.append(_first_output(out)[:given])
        return np.concatenate(parts) if parts else np.zeros((0,))

    def probe(self) -> Any:
        """The output for two made-up rows: zeros, and (for float inputs) random numbers."""
        import numpy as np

        from winserve.host import images

        generator = np.random.default_rng(24)
        rows: dict[str, Any] = {}
        for feature in self.winserve_features:
            shape = [d if isinstance(d, int) else 1 for d in feature["shape"]]
            dtype = np.dtype(feature["dtype"])
            if feature["kind"] == "image":
                grey = images.prepare(images.blank(feature["image"]), feature["image"])
                rows[feature["name"]] = np.stack([grey, grey])
            elif dtype.kind == "f":
                noise = generator.standard_normal(shape).astype(dtype)
                rows[feature["name"]] = np.stack([np.zeros(shape, dtype), noise])
            else:
                rows[feature["name"]] = np.zeros([2, *shape], dtype)
        try:
            return self._forward(rows)
        except ValueError as exc:
            raise ModelLoadError(
                f"the network did not answer made-up rows of its inputs' shapes ({exc}): check "
                "the model card's [inputs.<name>] shape and dtype"
            ) from None

    # -- the estimator's interface ------------------------------------------------------------
    def predict(self, rows: dict[str, Any]) -> Any:
        return self._forward(rows)


class TorchRegressor(TorchModel):
    _estimator_type = "regressor"

    def predict(self, rows: dict[str, Any]) -> Any:
        return self._forward(rows).reshape(-1)  # [N, 1] is N predictions, as scikit-learn's


class TorchClassifier(TorchModel):
    _estimator_type = "classifier"

    def __init__(self, loaded: TorchFile, features: list[dict[str, Any]], probe: Any) -> None:
        import numpy as np

        super().__init__(loaded, features)
        self.classes_ = np.arange(probe.shape[1])
        self._output = _output_kind(probe)

    def predict_proba(self, rows: dict[str, Any]) -> Any:
        import numpy as np
        import torch

        out = self._forward(rows)
        if self._output == "probabilities":
            return out
        tensor = torch.from_numpy(np.ascontiguousarray(out))
        if self._output == "log_probabilities":
            return tensor.exp().numpy()
        return torch.softmax(tensor, dim=1).numpy()

    def predict(self, rows: dict[str, Any]) -> Any:
        return self.classes_[self._forward(rows).argmax(axis=1)]


def _output_kind(probe: Any) -> str:
    import numpy as np

    sums = probe.sum(axis=1)
    if (probe >= -PROBE_TOLERANCE).all() and np.allclose(sums, 1, atol=PROBE_TOLERANCE):
        return "probabilities"
    exps = np.exp(probe.astype(np.float64)).sum(axis=1)
    if (probe <= PROBE_TOLERANCE).all() and np.allclose(exps, 1, atol=PROBE_TOLERANCE):
        return "log_probabilities"
    return "logits"


def _first_output(out: Any) -> Any:
    """A tensor, or the first of a tuple, list or dict of them, as a NumPy array."""
    if isinstance(out, dict):
        out = next(iter(out.values()))
    while isinstance(out, (tuple, list)):
        out = out[0]
    out = out.detach().cpu()  # from the GPU (issue 24); the same tensor on the CPU
    return out.float().numpy() if out.is_floating_point() else out.numpy()


def _writable(array: Any) -> Any:
    """``array`` as torch.from_numpy takes it without a warning: contiguous and writable (an
    array over a request's bytes is read-only; the network never writes to it, but torch
    warns that it could)."""
    import numpy as np

    array = np.ascontiguousarray(array)
    return array if array.flags.writeable else array.copy()


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


# -- what each input is ---------------------------------------------------------------------


def _feature(declared: Declared, card: dict[str, Any], path: Path) -> dict[str, Any]:
    """One input as a feature, from the file where it says and the card where it does not."""
    name = declared.name
    where = f"[inputs.{name}] in the model card"
    dtype = str(card.get("dtype") or declared.dtype or "float32")
    if dtype not in DTYPES:
        raise ModelLoadError(
            f"input {name!r} is a {dtype} tensor; winserve feeds " + ", ".join(DTYPES)
        )
    if declared.dtype and card.get("dtype") and card["dtype"] != declared.dtype:
        raise ModelLoadError(f"{where}: dtype = {card['dtype']!r}, the file says {declared.dtype}")
    sent = DTYPES[dtype]
    kind = card.get("kind", "tensor")
    if kind == "image":
        from winserve.host import images

        dims = declared.shape if declared.shape is not None else [None, None, None]
        try:
            image = images.prepare_spec(card, [None, *dims], sent)
        except ValueError as exc:
            raise ModelLoadError(f"{where}: {exc}") from None
        return {
            "name": name,
            "kind": "image",
            "shape": images.shape_of(image),
            "dtype": sent,
            "image": image,
        }
    shape = _tensor_shape(declared, card.get("shape"), where)
    if shape is None:
        raise ModelLoadError(
            f"{path.name} does not say what its input {name!r} is (a TorchScript file or a saved "
            f"module names its inputs only): describe it in the model card "
            f'{path.with_suffix(".toml").name}, e.g. [inputs.{name}] kind = "tensor", '
            'shape = [3, 32, 32] (one row, without the batch), dtype = "float32"; or '
            'kind = "image" with size and channels'
        )
    return {"name": name, "kind": "tensor", "shape": shape, "dtype": sent}


def _tensor_shape(declared: Declared, given: Any, where: str) -> list[int | None] | None:
    if given is None:
        return declared.shape
    if not (isinstance(given, list) and all(type(d) is int and (d > 0 or d == -1) for d in given)):
        raise ModelLoadError(
            f"{where}: shape is a list of sizes of one row (without the batch), -1 for any "
            f"length, not {given!r}"
        )
    shape: list[int | None] = [None if d == -1 else d for d in given]
    if declared.shape is not None:
        fits = len(shape) == len(declared.shape) and all(
            d is None or s is None or d == s for d, s in zip(declared.shape, shape, strict=True)
        )
        if not fits:
            raise ModelLoadError(f"{where}: shape = {given}, the file says {declared.shape}")
    return shape
