"""A Keras 3 ``.keras`` file served on Keras's torch backend (issue 24), in the model host.

TensorFlow users save ``.keras`` files; Keras 3 runs them on PyTorch too, so winserve serves
them through the same wrapper as a PyTorch file (``winserve.host.torch_model``)::

    model.keras ─ <name>_code.py run first (custom layers registered there) ─
      keras.saving.load_model(compile=False, safe_mode=True: no lambda layer's code) ─
      inputs from model.inputs (names, dtypes, [None, …] shapes: channels last for images) ─
      called as model(x, training=False) on torch tensors ─ TorchModel / TorchClassifier

``KERAS_BACKEND`` is set to ``torch`` in the model host unless the operator set it: Keras reads
it once, at its first import. A classifier ending in a softmax keeps its probabilities (read
from the probe batch, as for a PyTorch network).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from winserve.errors import ModelLoadError
from winserve.host.torch_files import Declared, TorchFile

NEEDS = (
    "serving a .keras file needs keras 3 and torch (Keras's torch backend): pip install keras torch"
)


def load(path: Path, card: dict[str, dict[str, Any]], *, replicas: int = 1) -> Any:  # a TorchModel
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
        import torch  # noqa: F401  (the wrapper's runtime: fail here, with the reason)
    except ImportError:
        raise ModelLoadError(NEEDS) from None
    from winserve.host import model_code, torch_model

    model_code.prepare(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = keras.saving.load_model(str(path), compile=False, safe_mode=True)
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ModelLoadError(
                f"cannot load {path.name} with keras {keras.__version__}: "
                f"{type(exc).__name__}: {reason}"
            ) from None
    inputs = [_declared(tensor) for tensor in model.inputs]
    several = len(inputs) > 1

    def call(*tensors: Any) -> Any:
        return model(list(tensors) if several else tensors[0], training=False)

    kind = f"Keras {keras.__version__} model on the {keras.backend.backend()} backend"
    found = TorchFile(call, inputs, kind, model)
    found.notes = list(dict.fromkeys(str(w.message).splitlines()[0] for w in caught))
    return torch_model.wrap(found, card, path, replicas=replicas)


def _declared(tensor: Any) -> Declared:
    shape = list(tensor.shape)
    dims: list[int | None] = [d if isinstance(d, int) else None for d in shape[1:]]
    return Declared(str(tensor.name), dims, str(tensor.dtype))
