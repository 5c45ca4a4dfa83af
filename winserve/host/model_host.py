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
When the pool merged several requests into the call (``call_starts``), each request's rows go
to the model together, as if it had come alone: a request whose rows fail only together gets
the model's own error for all of them, never answers its rows got one by one
(``isolate.refused``).

At load, after the sample prediction, the host asks the model once per input column whether
it takes a missing value there (a NaN in the sample row): the page marks the columns that
do not as required, and the web process refuses a missing value in them with the model's
own reason, instead of sending it to a model that would fail.

The parts of this, one concept each (issue 23): this module loads and describes the model;
``inputs`` predicts with it (``Predictor``: the payload made the model's input, the model
called, its output made plain data: the whole of a prediction's path in the host); ``sample``
(the missing-value probe and the words of a failed sample prediction), ``isolate`` (the rows
of a failed batch), ``float32`` (a matrix against float32's range), ``answers`` (the records),
``why`` (explain, what-if), ``shortcuts`` (winserve's own ways of computing a model's
answers, each switched on at load only where they answer as the model does, to the byte:
``labels`` from one predict_proba call, ``forest_proba``'s sums, ``linear`` arithmetic;
issue 29).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

from winserve.errors import ModelLoadError
from winserve.host import describe, linear, loading, openmp, sample
from winserve.host import reference as reference_sample
from winserve.host.answers import (
    HostInfo,
    LoadAnswer,
    error_record,
    failure,
)
from winserve.host.inputs import (
    build_input,
    finite_switch,
    plain,
    quiet_feature_names,
)
from winserve.host.shortcuts import Shortcuts
from winserve.host.tensors import takes_tensors
from winserve.host.typical import typical_row, usual_ranges
from winserve.model_info import ModelSpec

LOG = logging.getLogger(__name__)


class ModelHost(Shortcuts):
    """One model, loaded once and described; its predictions are ``Predictor``'s
    (``inputs.py``). Not thread-safe by contract: one caller at a time."""

    def __init__(self) -> None:
        self._model: Any = None
        self._features: list[dict[str, Any]] = []
        self._names_known = False
        self._arrays_ok = False
        self._text_input = False
        self._records_input = False  # a DictVectorizer first: rows as dicts (issue 22)
        self._tensors = False  # the model takes tensors or images (issue 24)
        self._pins: dict[str, str] = {}  # column kinds pinned by the model card (issue 22)
        self._sample_row: dict[str, Any] = {}  # the row the sample prediction answered
        self._score_method = ""
        self._per_output = False  # predict_proba answers one array per output (issue 22)
        self._description: dict[str, Any] = {}
        self._info: dict[str, Any] = {}
        self._quiet_in: object = None  # the filter list quiet_feature_names() went into
        self._finite_context: Callable[[], contextlib.AbstractContextManager[Any]] | None = None
        self._derive: Callable[[Any], Any] | None = None  # labels from probabilities (#29)
        self._summed: Callable[[Any], Any] | None = None  # a forest's, without joblib (#29)
        self._summed_predict: Callable[[Any], Any] | None = None  # a regression forest's
        self._direct: linear.Direct | None = None  # a linear model's arithmetic (#29)
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
            return failure("ModelLoadError", sample.sample_failure(info, spec))
        info["load_seconds"] = round(time.perf_counter() - started, 3)
        self._info = info
        return {"ok": True, "info": info}

    def _load(self, spec: ModelSpec) -> dict[str, Any]:
        self._pins = dict(spec.kinds)
        loaded = loading.load(spec)
        loading.single_threaded(loaded.model)
        if not loading.own_threads(spec):  # torch and ONNX files have their own
            openmp.limit(spec.intra_op_threads or 1)
        self._use(loaded)
        info = self._describe(loaded)
        self._sample(info, spec.example)
        if loaded.mmap and (info["sample_error"] or self._proba_fails(info)):
            # A memory-mapped array is read-only; a model that writes to its own arrays in
            # predict() or predict_proba() fails only that way (SVC(probability=True): "buffer
            # source array is read-only", every row). Load it again into private memory.
            loaded = loading.load(dataclasses.replace(spec, mmap=False))
            loading.single_threaded(loaded.model)
            self._use(loaded)
            info = self._describe(loaded)
            self._sample(info, spec.example)
        if not info["sample_error"]:
            sample.probe_missing(self._features, self._sample_row, self.predict)
            info["features"] = self._features
            self._load_reference(spec, info)
            self.check_labels(info)
            self.check_direct(info)
        return info

    def _proba_fails(self, info: dict[str, Any]) -> bool:
        """Whether the model's probabilities fail for the sample row its labels answered."""
        if not info.get("has_proba") or not self._features:
            return False
        row = {k: [v] for k, v in self._sample_row.items()}
        return not self.predict({"columns": row}, True)["ok"]

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
        # where the page's form starts: the sample's typical row (issue 25, host/typical.py)
        frame = found.frame if found is not None else None
        info["extra"]["typical"] = typical_row(frame, self._features) if frame is not None else {}
        info["extra"]["ranges"] = usual_ranges(frame, self._features) if frame is not None else {}

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
        # until check_labels finds them safe for this model (issue 29)
        self._derive = self._summed = self._summed_predict = None
        self._description = description = describe.describe(loaded.model, self._pins)
        self._records_input = description["records_input"]
        self._features = description["features"]
        self._names_known = description["feature_names_known"]
        self._text_input = description["text_input"]
        self._tensors = takes_tensors(self._features)  # once, not per call (issue 29)
        self._score_method = description["score_method"]
        self._arrays_ok = False
        if self._names_known and all(f["kind"] == "number" for f in self._features):
            self._arrays_ok = self._same_on_arrays()
        if self._arrays_ok:  # checked equivalent: the warning is moot, for every call
            self._quiet_in = quiet_feature_names()
        self._finite_context = finite_switch()

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
                on_array = self._model.predict(matrix)
            return bool(np.array_equal(np.asarray(framed), np.asarray(on_array)))
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
        return [plain(c) for c in classes]


def describe_text(loaded: loading.Loaded) -> str:
    if loaded.demo:
        from winserve.host.demo import DEMO_DESCRIPTION

        return DEMO_DESCRIPTION
    return str(getattr(loaded.model, "description", "") or "")
