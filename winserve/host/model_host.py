"""``ModelHost``: holds one loaded model and answers with plain data.

Every answer is a record (typed in ``winserve.host.answers``), never a raised exception, so
nothing from the model's libraries has to be unpickled (or even importable) in the web
process::

    load(spec)              -> {"ok": True, "info": {...}} | {"ok": False, "error": {...}}
    predict(payload, proba, scores)
                            -> {"ok": True, "predictions": [...], "probabilities": [...]|None,
                                "scores": [...]|None}
                             | {"ok": False, "error": {"type", "message", "input_error", ...},
                                "isolated": {"predictions", "probabilities", "scores",
                                             "errors": [(row, error), ...]}}

    explain(payload, options) -> {"ok": True, "explanations": [...]} | failure   (issue 25,
    whatif(payload, options)  -> {"ok": True, "curves": [...]} | failure       winserve.host.why)

A call that fails on several rows says which rows failed, each with its own error, and answers
the others (``isolated``; absent when one row, or nothing but the call as a whole, failed).

At load, after the sample prediction, the host asks the model once per input column whether
it takes a missing value there (a NaN in the sample row): the page marks the columns that
do not as required, and the web process refuses a missing value in them with the model's
own reason, instead of sending it to a model that would fail.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from winserve.errors import ModelLoadError
from winserve.host import describe, loading
from winserve.host import reference as reference_sample
from winserve.host.answers import (
    INPUT_ERRORS,
    ErrorRecord,
    HostInfo,
    Isolated,
    LoadAnswer,
    PredictAnswer,
    Predicted,
    error_record,
    failure,
    row_error,
)
from winserve.host.inputs import MATRIX_BYTES, MATRIX_SHAPE, WITHIN_FLOAT32, build_input
from winserve.host.tensors import parts as tensor_parts
from winserve.model_info import SAMPLE_FAILED, ModelSpec

# The largest float32: a forest (or anything else casting to float32) turns a larger number
# into an infinity, which scikit-learn's own check refuses (issue 22); one constant with the
# web process's check of the same (winserve.validate, issue 23)
from winserve.payload import FLOAT32_MAX

FEATURE_NAMES_WARNING = "X does not have valid feature names"
MAX_PROBED_COLUMNS = 64  # columns asked one by one about missing values; the rest "unknown"
PROBE_SECONDS = 3.0  # and no more time than this on it
ISOLATE_SECONDS = 2.0  # finding the failing rows of a batch takes no longer (see _isolate)


class ModelHost:
    """One model, loaded once. Not thread-safe by contract: one caller at a time."""

    def __init__(self) -> None:
        self._model: Any = None
        self._features: list[dict[str, Any]] = []
        self._names_known = False
        self._arrays_ok = False
        self._text_input = False
        self._records_input = False  # a DictVectorizer first: rows as dicts (issue 22)
        self._pins: dict[str, str] = {}  # column kinds pinned by the model card (issue 22)
        self._sample_row: dict[str, Any] = {}  # the row the sample prediction answered
        self._score_method = ""
        self._per_output = False  # predict_proba answers one array per output (issue 22)
        self._description: dict[str, Any] = {}
        self._info: dict[str, Any] = {}
        self._quiet_in: object = None  # the filter list quiet_feature_names() went into
        self._finite_context: Callable[[], contextlib.AbstractContextManager[Any]] | None = None
        self._reference: reference_sample.Reference | None = None  # issue 25
        self._model_path = ""

    def pid(self) -> int:
        return os.getpid()

    def info(self) -> HostInfo:
        return self._info

    def load(self, spec: ModelSpec) -> LoadAnswer:
        started = time.perf_counter()
        try:
            info = self._load(spec)
        except ModelLoadError as exc:
            return failure("ModelLoadError", str(exc))
        except Exception as exc:
            return error_record(exc)
        if info["sample_error"]:
            # serving a model that cannot answer one row would only fail every request later;
            # a load failure like any other, told apart by its message's first words
            # (model_info.SAMPLE_FAILED, the one name for it: issue 23)
            return failure("ModelLoadError", sample_failure(info, spec))
        info["load_seconds"] = round(time.perf_counter() - started, 3)
        self._info = info
        return {"ok": True, "info": info}

    def _load(self, spec: ModelSpec) -> dict[str, Any]:
        self._pins = dict(spec.kinds)
        loaded = loading.load(spec)
        loading.single_threaded(loaded.model)
        self._use(loaded)
        info = self._describe(loaded)
        self._sample(info, spec.example)
        if info["sample_error"] and loaded.mmap:
            # A memory-mapped array is read-only; a model that writes to its own arrays in
            # predict() fails only that way. Load it again into private memory.
            loaded = loading.load(dataclasses.replace(spec, mmap=False))
            loading.single_threaded(loaded.model)
            self._use(loaded)
            info = self._describe(loaded)
            self._sample(info, spec.example)
        if not info["sample_error"]:
            self._probe_missing(self._sample_row)
            info["features"] = self._features
            self._load_reference(spec, info)
        return info

    def _load_reference(self, spec: ModelSpec, info: dict[str, Any]) -> None:
        """The reference sample beside the model file, for explanations (issue 25); what it
        is goes in ``info["extra"]["reference"]`` (None: there is none)."""
        self._model_path = spec.path
        if not self._features or any(f.get("shape") for f in self._features):  # not columns
            self._reference = None
        else:
            self._reference = reference_sample.load(spec.path, self._features, spec.reference)
        found = self._reference
        info["extra"]["reference"] = found.describe() if found is not None else None

    def explain(self, payload: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        """Each row's Shapley values against the reference sample (``winserve.host.why``)."""
        from winserve.host import explain as engine
        from winserve.host import why

        max_rows = int(options.get("max_rows") or engine.MAX_ROWS)
        seconds = options.get("seconds")
        return why.explain(self._why_target(), payload, max_rows, seconds)

    def whatif(self, payload: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        """One row's prediction as each input sweeps its reference range (``host.why``)."""
        from winserve.host import why

        return why.whatif(self._why_target(), payload, list(options.get("columns") or []))

    def _why_target(self) -> Any:
        from winserve.host import why

        return why.Target(
            # host.why reads the answer's fields as a plain dict, which at run time it is
            answer=cast(why.Answer, self._answer),
            features=self._features,
            classes=list(self._info.get("classes") or []),
            has_proba=bool(self._info.get("has_proba")),
            reference=self._reference,
            model_path=self._model_path,
            task=str(self._info.get("task", "")),
        )

    def _use(self, loaded: loading.Loaded) -> None:
        self._model = loaded.model
        self._description = description = describe.describe(loaded.model, self._pins)
        self._records_input = description["records_input"]
        self._features = description["features"]
        self._names_known = description["feature_names_known"]
        self._text_input = description["text_input"]
        self._score_method = description["score_method"]
        self._arrays_ok = False
        if self._names_known and all(f["kind"] == "number" for f in self._features):
            self._arrays_ok = self._same_on_arrays()
        if self._arrays_ok:  # checked equivalent: the warning is moot, for every call
            self._quiet_in = quiet_feature_names()
        self._finite_context = _finite_context()

    def _same_on_arrays(self) -> bool:
        """Whether the model answers a plain array exactly as it answers a DataFrame."""
        import numpy as np

        matrix = np.array([[0.0] * len(self._features), [1.0] * len(self._features)])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                framed = self._model.predict(
                    build_input({"matrix": matrix}, self._features, True, False)
                )
                plain = self._model.predict(matrix)
            return bool(np.array_equal(np.asarray(framed), np.asarray(plain)))
        except Exception:
            return False

    def _describe(self, loaded: loading.Loaded) -> dict[str, Any]:
        return {
            **self._description,
            "name": loaded.name,
            "source": loaded.source,
            "sha256": loaded.sha256,
            "file_size": loaded.file_size,
            "demo": loaded.demo,
            "mmap": loaded.mmap,
            "saved_with_sklearn": loaded.saved_with_sklearn,
            "sklearn_version": loading.sklearn_version(),
            "warnings": loaded.warnings,
            "loaded_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "sample_prediction": None,
            "sample_error": "",
            "extra": {
                "description": describe_text(loaded),
                "numeric_rows_as": "array" if self._arrays_ok else "dataframe",
                "code_file": loaded.code_file,
                "mlflow": loaded.mlflow,
            },
        }

    def _sample(self, info: dict[str, Any], example: dict[str, Any]) -> None:
        """One prediction on one row; what it shows of the model's outputs goes in ``info``."""
        if not self._features:
            info["warnings"] = [
                *info["warnings"],
                "the model declares no input columns: rows are passed to it as they are sent, "
                "and no sample prediction was run",
            ]
            return
        # a column of unknown kind is asked as text, then as a number (issue 22)
        tried = []
        for candidate in describe.sample_rows(self._features, example):
            answer = self.predict({"columns": {k: [v] for k, v in candidate.items()}}, False)
            tried.append((candidate, answer))
            if answer["ok"]:
                break
        row, result = tried[-1] if tried[-1][1]["ok"] else tried[0]
        self._sample_row = row
        if not result["ok"]:
            error = result["error"]
            info["sample_row"] = row
            info["sample_error"] = f"{error['type']}: {error['message'].splitlines()[0]}"
            return
        first = result["predictions"][0]
        info["sample_prediction"] = first
        if isinstance(first, list):  # one prediction per output, per row
            info["n_outputs"] = len(first)
            # predict_proba of a multi-output classifier is one array per output, not a row
            # of probabilities: the native API offers it per output (issue 22), ``has_proba``
            # and ``classes`` (one output's, for the page, CSV, OIP and MLflow) stay empty
            info["has_proba"] = False
            info["classes"] = []
            info["extra"]["output_classes"] = self._output_classes(row, len(first))

    def _output_classes(self, row: dict[str, Any], n_outputs: int) -> list[Any]:
        """Each output's classes when the model's predict_proba answers the sample row with
        one array per output (a multi-output classifier); [] when it does not."""
        classes = getattr(self._model, "classes_", None)
        if (
            not callable(getattr(self._model, "predict_proba", None))
            or not isinstance(classes, list)
            or len(classes) != n_outputs
        ):
            return []
        self._per_output = True
        answer = self.predict({"columns": {k: [v] for k, v in row.items()}}, True)
        shape_ok = answer["ok"] and all(
            isinstance(p, list) and len(p) == len(c)
            for p, c in zip((answer.get("probabilities") or [[]])[0], classes, strict=False)
        )
        if not shape_ok:
            self._per_output = False
            return []
        return [describe.plain(c) for c in classes]

    def _probe_missing(self, row: dict[str, Any]) -> None:
        """Mark each input as taking a missing value or not, asking the model itself."""
        nan = float("nan")
        accepted, reason = self._answers({name: nan for name in row})
        if accepted:
            for feature in self._features:
                feature["missing"] = "accepted"
            return
        if len(self._features) == 1:
            self._features[0].update(missing="refused", missing_reason=reason)
            return
        end = time.perf_counter() + PROBE_SECONDS
        for feature in self._features[:MAX_PROBED_COLUMNS]:
            if time.perf_counter() > end:
                break
            accepted, reason = self._answers({**row, feature["name"]: nan})
            feature["missing"] = "accepted" if accepted else "refused"
            if not accepted:
                feature["missing_reason"] = reason

    def _answers(self, row: dict[str, Any]) -> tuple[bool, str]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = self.predict({"columns": {k: [v] for k, v in row.items()}}, False)
        if result["ok"]:
            return True, ""
        error = result["error"]
        return False, f"{error['type']}: {error['message'].splitlines()[0]}"

    def predict(self, payload: dict[str, Any], proba: bool, scores: bool = False) -> PredictAnswer:
        """The model's answer for the rows; when it raises on several rows, the rows that fail
        are found in this same call (``_isolate``) and the others answered."""
        if self._model is None:
            return failure("NotLoaded", "no model loaded")
        try:
            return self._answer(payload, proba, scores)
        except Exception as exc:
            failed = error_record(exc)
        count, part = _parts(payload)
        if count < 2:
            return failed
        isolated = self._isolate(count, part, proba, scores, failed["error"])
        if not isolated["errors"]:  # every part answered: no row is the problem
            return {
                "ok": True,
                "predictions": isolated["predictions"],
                "probabilities": isolated.get("probabilities"),
                "scores": isolated.get("scores"),
            }
        failed["isolated"] = isolated
        return failed

    def _answer(self, payload: dict[str, Any], proba: bool, scores: bool) -> Predicted:
        frame = build_input(
            payload,
            self._features,
            self._names_known,
            self._arrays_ok,
            self._text_input,
            self._records_input,
        )
        if self._arrays_ok and warnings.filters is not self._quiet_in:
            self._quiet_in = quiet_feature_names()  # someone's catch_warnings() ended
        try:
            if self._finite_context is not None and _within_float32(payload):
                with self._finite_context():
                    return self._outputs(frame, proba, scores)
            return self._outputs(frame, proba, scores)
        except INPUT_ERRORS as exc:
            beyond = self._beyond_float32(payload)
            if not beyond:
                raise
            # scikit-learn names neither the row nor the column of a number too large for
            # float32 ("Input X contains infinity or a value too large …"): name the column,
            # the row is named by whoever isolates it (issue 22)
            raise ValueError(f"{str(exc).strip()} ({beyond})") from exc

    def _beyond_float32(self, payload: dict[str, Any]) -> str:
        """The columns of ``payload`` holding a number beyond float32's range, in words; ""
        when there is none (or the payload has no named columns)."""
        import numpy as np

        names = [str(f["name"]) for f in self._features]
        found: list[str] = []
        if MATRIX_BYTES in payload or "matrix" in payload:
            matrix = _matrix(payload)
            if matrix.ndim != 2 or matrix.shape[1] != len(names):
                return ""
            with np.errstate(invalid="ignore"):
                big = np.abs(matrix) > FLOAT32_MAX
            for column in np.flatnonzero(big.any(axis=0)):
                value = matrix[np.flatnonzero(big[:, column])[0], column]
                found.append(f"column {names[column]!r}: {value:g}")
        elif "columns" in payload:
            for name, values in payload["columns"].items():
                value = next((v for v in values if _too_large(v)), None)
                if value is not None:
                    found.append(f"column {name!r}: {value:g}")
        if not found:
            return ""
        return "; ".join(found) + f" is beyond the model's range of ±{FLOAT32_MAX:.7g} (float32)"

    def _outputs(self, frame: Any, proba: bool, scores: bool) -> Predicted:
        predictions = describe.plain(self._model.predict(frame))
        probabilities = None
        if proba:
            raw = self._model.predict_proba(frame)
            probabilities = _per_row(raw) if self._per_output else describe.plain(raw)
        scored = None
        if scores and self._score_method:
            scored = describe.plain(getattr(self._model, self._score_method)(frame))
        return {
            "ok": True,
            "predictions": predictions,
            "probabilities": probabilities,
            "scores": scored,
        }

    def _isolate(
        self,
        count: int,
        part: Callable[[int, int], dict[str, Any]],
        proba: bool,
        scores: bool,
        error: ErrorRecord,
    ) -> Isolated:
        """Which of ``count`` rows the model fails on, by halving the parts that fail, and
        the answers of all the others: every row's prediction (``None`` where it failed) and
        ``errors``, (row, error) for each failed row, as that row alone gets it.

        The one way winserve isolates bad rows (issue 14): the pool answers each request of
        a batch from it, CSV scoring each line. k bad rows among n cost about 2k·log2(n/k)
        calls; once ``ISOLATE_SECONDS`` are spent, the rows of a part still failing get that
        part's error, so a batch of many bad rows cannot keep the host past its deadline."""
        predictions: list[Any] = [None] * count
        probabilities: list[Any] | None = [None] * count if proba else None
        scored: list[Any] | None = [None] * count if scores and self._score_method else None
        errors: list[tuple[int, ErrorRecord]] = []
        end = time.perf_counter() + ISOLATE_SECONDS
        failing = [(0, count, error)]  # parts known to fail, with the error they raised
        while failing:
            lo, hi, error = failing.pop()
            if hi - lo == 1 or time.perf_counter() > end:
                errors.extend((row, row_error(error)) for row in range(lo, hi))
                continue
            middle = (lo + hi) // 2
            for start, stop in ((middle, hi), (lo, middle)):  # the first half is halved first
                try:
                    answer = self._answer(part(start, stop), proba, scores)
                except Exception as exc:
                    failing.append((start, stop, error_record(exc)["error"]))
                    continue
                predictions[start:stop] = answer["predictions"]
                if probabilities is not None:
                    probabilities[start:stop] = answer.get("probabilities") or []
                if scored is not None:
                    scored[start:stop] = answer.get("scores") or []
        return {
            "predictions": predictions,
            "probabilities": probabilities,
            "scores": scored,
            "errors": sorted(errors, key=lambda item: item[0]),
        }


def _per_row(outputs: Any) -> list[Any]:
    """A multi-output classifier's predict_proba (one array per output, rows × classes) as
    one entry per row: that row's probabilities for each output."""
    per_output = [describe.plain(each) for each in outputs]
    rows = len(per_output[0]) if per_output else 0
    return [[output[row] for output in per_output] for row in range(rows)]


def _parts(payload: dict[str, Any]) -> tuple[int, Callable[[int, int], dict[str, Any]]]:
    """How many rows ``payload`` holds, and a payload of rows ``lo:hi`` of it, as the web
    process would have sent those rows alone (``build_input`` makes each part's frame, so a
    part's column types are those of its own rows)."""
    if MATRIX_BYTES in payload:
        import numpy as np

        flat = np.frombuffer(payload[MATRIX_BYTES], dtype=np.float64)
        payload = {"matrix": flat.reshape(payload[MATRIX_SHAPE])}
    if "tensors" in payload:  # tensors and images (issue 24)
        return tensor_parts(payload)
    if "matrix" in payload:
        matrix = payload["matrix"]
        # a copy: the model may write into its input, and another part shares these rows
        return len(matrix), lambda lo, hi: {"matrix": matrix[lo:hi].copy()}
    if "columns" in payload:
        columns = payload["columns"]
        count = len(next(iter(columns.values()), []))
        return count, lambda lo, hi: {"columns": {k: v[lo:hi] for k, v in columns.items()}}
    rows = payload.get("rows", [])
    return len(rows), lambda lo, hi: {"rows": rows[lo:hi]}


def _matrix(payload: dict[str, Any]) -> Any:
    import numpy as np

    if MATRIX_BYTES in payload:
        flat = np.frombuffer(payload[MATRIX_BYTES], dtype=np.float64)
        return flat.reshape(payload[MATRIX_SHAPE])
    return np.asarray(payload["matrix"])


def _within_float32(payload: dict[str, Any]) -> bool:
    """Whether ``payload`` is a number matrix without NaN, infinities or numbers beyond
    float32's range: the only input predicted with scikit-learn's finiteness check off. A
    number beyond float32 (1e300) is finite in float64, but a forest casts it to float32,
    where it becomes an infinity its own check refuses and ``assume_finite`` would let
    through (issue 22). One pass over the matrix, as the finiteness check alone was."""
    if payload.get(WITHIN_FLOAT32):  # checked as the web process built it (issue 23)
        return True
    import numpy as np

    if MATRIX_BYTES not in payload:
        matrix = payload.get("matrix")
        if matrix is None or getattr(matrix, "dtype", None) != np.float64:
            return False
    values = _matrix(payload)
    if values.size == 0:
        return True
    # NaN compares False, an infinity is beyond the range: both keep the check
    return bool(np.abs(values).max() <= FLOAT32_MAX)


def _too_large(value: Any) -> bool:
    # NaN compares False; an int too large for a float compares exactly
    return (
        isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) > FLOAT32_MAX
    )


def _finite_context() -> Callable[[], contextlib.AbstractContextManager[Any]] | None:
    """scikit-learn's own switch for skipping its NaN/infinity check of each input, for a
    number matrix already known to hold neither (checked in the host, ~4 us): the check is
    ~0.2 ms of the 0.7 ms a one-row predict of a scaler + logistic regression pipeline costs
    (scikit-learn 1.9, measured; issue 14). Any other input keeps the check, and so the
    model's own error for a NaN it refuses. None when scikit-learn is not loaded (a model
    without it, e.g. ONNX), which the switch would not concern."""
    sklearn = sys.modules.get("sklearn")
    config_context = getattr(sklearn, "config_context", None)
    if config_context is None:
        return None

    def assume_finite() -> contextlib.AbstractContextManager[Any]:
        context: contextlib.AbstractContextManager[Any] = config_context(assume_finite=True)
        return context

    return assume_finite


def quiet_feature_names() -> object:
    """Ignore scikit-learn's "X does not have valid feature names" warning in this process,
    and return the filter list it went into.

    A model answering a plain array exactly as a DataFrame (checked at load) gets arrays, and
    scikit-learn warns on every call that they have no column names. The filter goes in once,
    at load, not per call: ``warnings.catch_warnings()`` around each predict copied the filter
    list, added the filter and put the list back, ~3.5 µs a call (issue 14). The caller keeps
    the list returned and installs again when ``warnings.filters`` is another list: a
    ``catch_warnings()`` that ends (pytest's around each test, when the host runs in the web
    process; the load's own probes) puts back the list it had copied.
    """
    warnings.filterwarnings("ignore", message=FEATURE_NAMES_WARNING)
    return warnings.filters


def sample_failure(info: dict[str, Any], spec: ModelSpec) -> str:
    """Why the model is not served: the sample prediction failed, on which row, what the model
    expects, and where a working example row goes."""
    row = info.get("sample_row") or {}
    card = Path(spec.path).with_suffix(".toml").name if spec.path else ""
    shown = ", ".join(f"{k}={v!r}" for k, v in list(row.items())[:12])
    shown += " …" if len(row) > 12 else ""
    source = "the model card's example" if spec.example else "values made up by winserve"
    inputs = ", ".join(f"{f['name']} ({f['kind']})" for f in info.get("features", [])[:20]) + (
        " …" if len(info.get("features", [])) > 20 else ""
    )
    dates = _date_columns(info)
    if dates:
        # the model reads a date (df["when"].dt…) where winserve passes text: no example
        # row can fix that, the card's kind can (issue 22)
        where = card or "the model card"
        pins = ", ".join(f'[features.{name}] kind = "datetime"' for name in dates)
        fix = f"if {_names(dates)} holds dates, say so in {where}: {pins}"
    elif card and spec.example:
        fix = f"correct the [example] row in {card} next to the model"
    elif card:
        fix = (
            f"put one row the model can answer in {card} next to the model, under [example] "
            "(one line per input: name = value); winserve checks the model with it"
        )
    else:
        fix = "make sure the model answers a row of these inputs"
    return (
        f"{SAMPLE_FAILED}: {info['sample_error']}. "
        f"It was asked for one row ({source}: {shown}); the model takes {inputs}. To fix it, "
        f"{fix}."
    )


DT_ACCESSOR = ".dt accessor"  # pandas: "Can only use .dt accessor with datetimelike values"


def _date_columns(info: dict[str, Any]) -> list[str]:
    """The columns of unknown kind asked as text that may be dates, when the sample failed on
    pandas' ``.dt`` accessor (the error does not name the column)."""
    if DT_ACCESSOR not in str(info.get("sample_error", "")):
        return []
    row = info.get("sample_row") or {}
    return [
        f["name"]
        for f in info.get("features", [])
        if f.get("kind") == "any" and isinstance(row.get(f["name"]), str)
    ][:5]


def _names(names: list[str]) -> str:
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def describe_text(loaded: loading.Loaded) -> str:
    if loaded.demo:
        from winserve.host.demo import DEMO_DESCRIPTION

        return DEMO_DESCRIPTION
    return str(getattr(loaded.model, "description", "") or "")
