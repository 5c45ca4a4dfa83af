"""An ``.onnx`` file served through onnxruntime, wrapped to look like a scikit-learn estimator.

The rest of winserve (describe, the missing-value probe, batching, every protocol and the page)
talks to ``predict`` / ``predict_proba`` / ``classes_`` / ``feature_names_in_``, so the wrapper
reads from the graph itself what those are:

- inputs: one 2-D numeric tensor ``[N, k]`` → ``k`` number columns, named from the model's
  metadata (``feature_names``: a JSON list or comma-separated names) or ``x0 … x{k-1}``; or one
  input per column, as skl2onnx writes for DataFrame pipelines (``[N, 1]`` each: string tensors
  are text columns, or category columns when they feed a OneHotEncoder; numeric ones numbers);
- outputs: skl2onnx classifiers give a label and probabilities (a ZipMap sequence of maps, or a
  tensor with ``zipmap=False``), regressors ``variable``; any other graph's first output is its
  prediction. An output is probabilities only when the graph says so (a ZipMap, skl2onnx's
  probability output, or a Softmax node): raw logits are served as they are, never turned into
  probabilities by winserve.

Missing values: NaN in a float input goes to the graph, which decides; a string or integer
tensor cannot hold one, so a missing value there is refused with the input's name.

Tensors (issue 24): a graph with an input of rank 3 or more (an image ``[N, 3, H, W]`` or
``[N, H, W, C]``, a sequence of vectors ``[N, T, F]``), one input ``[N, T]`` of any length (token
ids), several inputs not all ``[N, 1]``, or an input the model card's ``[inputs.<name>]`` names,
is served in tensor mode: each input is a ``tensor`` feature (its per-row shape, ``None`` where
the graph's dimension is symbolic, and its dtype) or, where the card says ``kind = "image"``, an
``image`` feature with its preprocessing (``winserve.host.images``); ``predict`` takes
``{name: array}``. Class names come from the graph (a classifier's labels), else a ``classes``
metadata entry (a JSON list or comma-separated names), else 0 … k-1; the card's ``[classes]``
names them on the page.

This module makes the session and answers as an estimator; what the graph says of itself (its
inputs as features, which output holds probabilities, its class labels) is read by
``onnx_graph``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from winserve.errors import ModelLoadError
from winserve.host import onnx_graph
from winserve.host.torch_device import CPU, Placement, give_back_freed_memory, onnx_providers

NEEDS = "serving an .onnx file needs onnxruntime and onnx: pip install onnxruntime onnx"


def session_options(ort: Any, threads: int = 1) -> Any:
    """One thread per call for a table graph: replicas give the parallelism, and more
    intra-op threads only slow a call down (measured, 200-tree forest, 2 cores: one row 13 µs
    with one thread, 15 µs with two or the default; 64 rows 347 µs, 404 µs and 452 µs).
    A tensor graph (an image network: milliseconds of convolutions a call) gets ``threads``
    (issue 24: the setting intra_op_threads, else the cores divided by the replicas), its
    idle threads sleeping instead of spinning: on a shared machine a spinning thread waits
    for a busy core (measured, ResNet-18 on 2 cores at load 5: 2 spinning threads 84 ms a
    call, 31 ms CPU; not spinning 37 ms, 17 ms CPU, as one thread)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if threads > 1:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class OnnxModel:
    """A graph with one prediction output (a regressor, raw logits, any other graph)."""

    description = ""

    def __init__(self, proto: Any, session: Any, card: dict[str, dict[str, Any]]) -> None:
        self._session = session
        self._inputs = list(session.get_inputs())
        self._outputs = [o.name for o in session.get_outputs()]
        producers = onnx_graph.producers_of(proto.graph)
        self._tensors = onnx_graph.tensor_mode(self._inputs, card)
        self._per_column = not self._tensors and (
            len(self._inputs) > 1 or onnx_graph.width(self._inputs[0]) == 1
        )
        self._predict_output = self._outputs[0]
        self._proba_output = ""
        for output in session.get_outputs():
            if output.type.startswith("seq(map(") or onnx_graph.is_probability(
                output.name, proto, producers
            ):
                self._proba_output = output.name
        for name in self._outputs:
            if name in onnx_graph.LABEL_NAMES:
                self._predict_output = name
        meta = {p.key: p.value for p in proto.metadata_props}
        self.description = str(proto.doc_string or meta.get("description", ""))
        self._meta = meta
        if self._tensors:
            self.feature_names_in_ = [i.name for i in self._inputs]
            self.n_features_in_ = len(self._inputs)
            self.winserve_features = [
                onnx_graph.tensor_feature(i, card.get(i.name, {})) for i in self._inputs
            ]
        elif self._per_column:
            self.feature_names_in_ = [i.name for i in self._inputs]
            self.n_features_in_ = len(self._inputs)
            self.winserve_features = [onnx_graph.column(i, proto.graph) for i in self._inputs]
        else:
            width = onnx_graph.width(self._inputs[0])
            names = onnx_graph.metadata_names(meta.get("feature_names", ""), width)
            if width is not None:
                self.n_features_in_ = width
            if names:
                self.feature_names_in_ = names
        producer = f"{proto.producer_name} {proto.producer_version}".strip()
        details = [f"a graph from {producer}"] if producer else []
        if self._tensors:  # where a tensor graph runs (issue 24: device, intra_op_threads)
            threads = session.get_session_options().intra_op_num_threads
            device = "cuda" if session.get_providers()[0] != "CPUExecutionProvider" else "cpu"
            details.append(f"{device}, {threads} thread{'' if threads == 1 else 's'}")
        self.winserve_runtime = f"onnxruntime {runtime_version()}" + (
            f" ({'; '.join(details)})" if details else ""
        )

    # -- input ----------------------------------------------------------------------------
    def _feed(self, rows: Any) -> dict[str, Any]:
        import numpy as np

        if self._tensors:  # {name: array}, checked in the web process (issue 24)
            dtypes = {**onnx_graph.FLOAT_TYPES, **onnx_graph.INT_TYPES}
            return {i.name: np.asarray(rows[i.name], dtype=dtypes[i.type]) for i in self._inputs}
        columns = getattr(rows, "columns", None)
        if self._per_column:
            feed = {}
            for position, spec in enumerate(self._inputs):
                if columns is not None:
                    values = rows[spec.name].to_numpy()
                else:
                    values = np.asarray(rows, dtype=object)[:, position]
                feed[spec.name] = _tensor(values, spec, spec.name).reshape(
                    _shape(spec, len(values))
                )
            return feed
        spec = self._inputs[0]
        if columns is not None:
            names = list(getattr(self, "feature_names_in_", columns))
            matrix = rows[names].to_numpy()
        else:
            matrix = np.asarray(rows)
        if matrix.ndim == 1:
            matrix = matrix.reshape(-1, 1)
        return {spec.name: _tensor(matrix, spec, "the input")}

    def _run(self, rows: Any, names: Sequence[str]) -> list[Any]:
        feed = self._feed(rows)
        try:
            return list(self._session.run(list(names), feed))
        except Exception as exc:  # onnxruntime's own errors: the rows did not fit the graph
            if type(exc).__name__ in {"InvalidArgument", "Fail", "RuntimeException"}:
                raise ValueError(str(exc).splitlines()[0]) from None
            raise

    # -- the estimator's interface ---------------------------------------------------------
    def predict(self, rows: Any) -> Any:
        import numpy as np

        (out,) = self._run(rows, [self._predict_output])
        out = np.asarray(out)
        if out.ndim == 2 and out.shape[1] == 1:
            out = out.ravel()  # a regressor's [N, 1] is N predictions, as scikit-learn gives
        return out


class OnnxClassifier(OnnxModel):
    """A graph that gives probabilities: a label output, or the most probable class."""

    _estimator_type = "classifier"

    def __init__(self, proto: Any, session: Any, card: dict[str, dict[str, Any]]) -> None:
        import numpy as np

        super().__init__(proto, session, card)
        self._has_label = self._predict_output in onnx_graph.LABEL_NAMES
        classes = onnx_graph.class_labels(proto.graph, [self._proba_output, self._predict_output])
        if classes is None:
            width = onnx_graph.proba_width(session, self._proba_output)
            # the graph's own names for its classes (issue 22), else their indices
            named = onnx_graph.metadata_names(self._meta.get("classes", ""), width)
            classes = named or (list(range(width)) if width else [])
        self.classes_ = np.asarray(classes)

    def predict_proba(self, rows: Any) -> Any:
        import numpy as np

        (out,) = self._run(rows, [self._proba_output])
        if isinstance(out, list):  # ZipMap: one {class: probability} per row
            classes = self.classes_.tolist()
            return np.array([[row[c] for c in classes] for row in out], dtype=np.float64)
        return np.asarray(out)

    def predict(self, rows: Any) -> Any:
        import numpy as np

        if self._has_label:
            return super().predict(rows)
        probabilities = np.asarray(self.predict_proba(rows))
        return self.classes_[probabilities.argmax(axis=1)]


class OnnxRegressor(OnnxModel):
    _estimator_type = "regressor"


def _shape(spec: Any, rows: int) -> tuple[int, ...]:
    return (rows,) if len(spec.shape) == 1 else (rows, 1)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _tensor(values: Any, spec: Any, where: str) -> Any:
    """``values`` as the dtype the graph's input takes, refusing what that dtype cannot hold."""
    import numpy as np

    if spec.type == onnx_graph.STRING_TYPE:
        flat = np.asarray(values, dtype=object).ravel()
        if any(_missing(v) for v in flat):
            raise ValueError(
                f"{where} is a string tensor in the ONNX graph, which cannot hold a missing value"
            )
        return np.array([str(v) for v in flat], dtype=object).reshape(np.shape(values))
    if spec.type in onnx_graph.FLOAT_TYPES:
        try:
            return np.asarray(values, dtype=np.float64).astype(onnx_graph.FLOAT_TYPES[spec.type])
        except (TypeError, ValueError):
            raise ValueError(f"{where} takes numbers (ONNX {spec.type})") from None
    if spec.type in onnx_graph.INT_TYPES:
        try:
            numbers = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{where} takes whole numbers (ONNX {spec.type})") from None
        if np.isnan(numbers).any():
            raise ValueError(
                f"{where} is an integer tensor in the ONNX graph, which cannot hold a missing value"
            )
        if (numbers != np.round(numbers)).any():
            raise ValueError(f"{where} takes whole numbers (ONNX {spec.type})")
        return numbers.astype(onnx_graph.INT_TYPES[spec.type])
    raise TypeError(f"{where} has ONNX type {spec.type}, which winserve does not feed")


def from_bytes(
    data: bytes,
    where: str,
    card_inputs: dict[str, dict[str, Any]] | None = None,
    placement: Placement | None = None,
) -> OnnxModel:
    """The wrapper for a serialized graph (what skl2onnx just built); ``card_inputs``: the
    model card's [inputs.<name>] tables (issue 24); ``placement``: its device and a tensor
    graph's threads (issue 24; None: the CPU, one thread)."""
    onnx, _ = _libraries()
    return _wrapped(lambda: onnx.load_from_string(data), data, where, card_inputs, placement)


def load(
    path: Path,
    card_inputs: dict[str, dict[str, Any]] | None = None,
    placement: Placement | None = None,
) -> OnnxModel:
    """A graph file, read by onnxruntime from its path (issue 24): not from a copy of its
    bytes in this process, which onnxruntime's Python session keeps for as long as it lives
    (measured, a 336 MB graph: 771 MB PSS a replica from its bytes, 452 MB from its path).
    Weights in an external data file beside it (``onnx.save_model(...,
    save_as_external_data=True)``) are memory-mapped by onnxruntime, so replicas share them
    through the page cache, once they are not repacked per process (see ``_sharing``)."""
    onnx, _ = _libraries()
    # the graph without its external weights: what the wrapper reads is the graph's structure
    wrapped = _wrapped(
        lambda: onnx.load(str(path), load_external_data=False),
        str(path),
        path.name,
        card_inputs,
        placement,
    )
    give_back_freed_memory()  # the parsed graph's weights, if they were in it
    return wrapped


def _libraries() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime as ort
    except ImportError:
        raise ModelLoadError(NEEDS) from None
    return onnx, ort


def _wrapped(
    read: Any,
    source: bytes | str,
    where: str,
    card_inputs: dict[str, dict[str, Any]] | None,
    placement: Placement | None,
) -> OnnxModel:
    """The wrapper of the graph ``read()`` gives, its session made from ``source`` (the
    graph's bytes, or its file's path)."""
    _, ort = _libraries()
    placement = placement or Placement(CPU, 1)
    try:
        proto = read()
        threads = placement.threads if onnx_graph.takes_tensors(proto, card_inputs or {}) else 1
        options = session_options(ort, threads)
        if _sharing(proto, placement):
            options.add_session_config_entry("session.disable_prepacking", "1")
        session = ort.InferenceSession(source, options, providers=onnx_providers(placement))
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"cannot load {where} as an ONNX graph: {reason}") from None
    inputs = session.get_inputs()
    unknown = [
        i
        for i in inputs
        if i.type not in (*onnx_graph.FLOAT_TYPES, *onnx_graph.INT_TYPES, onnx_graph.STRING_TYPE)
    ]
    if not inputs or unknown:
        types = ", ".join(f"{i.name}: {i.type}" for i in unknown) or "none"
        raise ModelLoadError(
            f"{where}: winserve feeds ONNX graphs float, double, integer or string tensors; "
            f"this one takes {types}"
        )
    names = [o.name for o in session.get_outputs()]
    producers = onnx_graph.producers_of(proto.graph)
    probability = any(
        o.type.startswith("seq(map(") or onnx_graph.is_probability(o.name, proto, producers)
        for o in session.get_outputs()
    )
    card = card_inputs or {}
    stray = sorted(set(card) - {i.name for i in inputs})
    if stray:
        raise ModelLoadError(
            f"the model card has [inputs.{stray[0]}], which is not an input of {where} (its "
            "inputs: " + ", ".join(repr(i.name) for i in inputs) + ")"
        )
    if probability:
        return OnnxClassifier(proto, session, card)
    if proto.producer_name == "skl2onnx" and "variable" in names:
        return OnnxRegressor(proto, session, card)
    return OnnxModel(proto, session, card)


def _sharing(proto: Any, placement: Placement) -> bool:
    """Whether this replica keeps the graph's weights as onnxruntime mapped them from their
    external file, shared with the other replicas: with several replicas of a graph whose
    weights are external, on the CPU. onnxruntime otherwise repacks each matrix multiplied
    into memory of its own (measured, 336 MB of MatMul weights, two replicas: 1.94 x the PSS
    of one repacked, 1.07 x not). The cost is in batched matrix products (the same graph, 8
    rows a call: 20 ms CPU repacked, 38 ms not; one row 11 ms and 12 ms; a ResNet-18's
    convolutions are not repacked: 16 ms either way), so one replica keeps repacking."""
    from onnx import TensorProto

    external = any(t.data_location == TensorProto.EXTERNAL for t in proto.graph.initializer)
    return external and placement.replicas > 1 and placement.gpu is None


def runtime_version() -> str:
    try:
        import onnxruntime as ort
    except ImportError:
        return ""
    return str(ort.__version__)


EXTERNAL_LOOKUP_BYTES = 64 * 1024 * 1024  # a graph file whose weights are external is small


def external_files(path: Path) -> list[Path]:
    """The files an ``.onnx`` graph keeps its weights in (external data, by its ``location``
    entries, relative to the graph's folder and inside it), for the loader's private copy
    (issue 24); none for other files, a graph file of 64 MB or more (its weights are in it:
    not parsed here) or without onnx installed (the load then says what is missing)."""
    if path.suffix.lower() != ".onnx" or not path.is_file():
        return []
    if path.stat().st_size >= EXTERNAL_LOOKUP_BYTES:
        return []
    try:
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # not onnx, or not a graph: its own load says why
        return []
    folder = path.parent.resolve()
    found: dict[str, Path] = {}
    for tensor in proto.graph.initializer:
        for entry in tensor.external_data:
            if entry.key != "location":
                continue
            target = (folder / entry.value).resolve()
            if target.is_relative_to(folder) and target.is_file():  # never a path outside
                found[entry.value] = target
    return list(found.values())
