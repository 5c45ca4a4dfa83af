"""The backend interface every protocol and page goes through:
describe / predict / health / close."""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from winserve.errors import ModelError, ModelInputError, WinserveError
from winserve.host.answers import AskAnswer, ErrorRecord, PredictAnswer, Predicted
from winserve.load_progress import LoadProgress
from winserve.metrics import Histogram
from winserve.model_info import ModelInfo
from winserve.rows import Payload

Status = Literal["loading", "ready", "degraded", "failed", "stopped"]
ReplicaState = Literal["starting", "loading", "ready", "restarting", "failed", "stopped"]


@dataclass(frozen=True)
class Prediction:
    predictions: list[Any]
    probabilities: list[list[float]] | None = None
    scores: list[Any] | None = None  # the model's decision_function or score_samples
    # a CSV job's chunk: each row's prediction and probabilities as the file's cells, rows
    # joined by "\n", written by the model host (host.answer_text; probabilities then None)
    texts: str | None = None
    seconds: float | None = None  # the model host's own time for the call, when it said


@dataclass(frozen=True)
class ReplicaHealth:
    replica: int
    state: ReplicaState
    restarts: int = 0
    pid: int | None = None
    last_error: str = ""
    load_seconds: float = 0.0
    last_error_at: str = ""  # when last_error happened, ISO 8601 UTC; "" when none did


@dataclass(frozen=True)
class Health:
    status: Status
    replicas: tuple[ReplicaHealth, ...] = ()
    reason: str = ""
    queue_depth: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    # how far the model's load has gone while it loads (issue 24); set by the data plane, which
    # knows the load (a backend knows its replicas only)
    loading: LoadProgress | None = None

    @property
    def serving(self) -> bool:
        return self.status in ("ready", "degraded")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["replicas"] = [asdict(r) for r in self.replicas]
        if not self.reason:
            del data["reason"]
        if not self.extra:
            del data["extra"]
        if self.loading is None:
            del data["loading"]
        else:
            data["loading"] = self.loading.to_dict()
        return data


class NotAvailableHere(WinserveError):
    """A model-host call this backend does not make (issue 25: explain, whatif on Ray)."""

    status = 501
    code = "not_implemented"


class Backend(abc.ABC):
    """Where the model runs. Thread-safe: waitress threads call ``predict`` concurrently."""

    batch_rows: Histogram  # rows per model call, for /metrics

    @abc.abstractmethod
    def start(self) -> None:
        """Begin loading the model; returns at once."""

    @abc.abstractmethod
    def wait_ready(self, timeout: float) -> ModelInfo:
        """Block until the model is loaded; ``ModelLoadError`` if it cannot be, or in time."""

    @abc.abstractmethod
    def describe(self) -> ModelInfo:
        """The loaded model's description; ``ModelUnavailable`` before the first load."""

    @abc.abstractmethod
    def predict(self, payload: Payload, proba: bool = False, scores: bool = False) -> Prediction:
        """Predict for validated rows (``proba``: with class probabilities; ``scores``: with
        the model's scores); raises a ``WinserveError`` with its status."""

    def predict_background(
        self, payload: Payload, proba: bool = False, scores: bool = False
    ) -> Prediction:
        """``predict`` for a scoring job's chunk of rows: a backend with a queue lets every
        interactive call waiting go first (issue 29: the pool); the others predict as usual."""
        return self.predict(payload, proba, scores)

    @abc.abstractmethod
    def health(self) -> Health: ...

    def ask(self, method: str, payload: Payload, options: dict[str, Any]) -> AskAnswer:
        """A model-host call beside predict, by name (``explain``, ``whatif``: issue 25), with
        predict's deadlines: the host's answer record, as plain data. A backend that cannot
        make such a call says so."""
        raise NotAvailableHere(
            f"{method} is not available where this model runs (the Ray backend): serve it with "
            "local workers for explanations and what-if curves"
        )

    @abc.abstractmethod
    def close(self) -> None:
        """Stop every process this backend started; idempotent."""


def answered(record: Predicted, proba: bool = True, scores: bool = True) -> Prediction:
    """A model host's answer as a ``Prediction``: its probabilities and scores only where the
    call asked for them."""
    return Prediction(
        record["predictions"],
        record.get("probabilities") if proba else None,
        record.get("scores") if scores else None,
        record.get("texts"),
        record.get("seconds"),
    )


def prediction_from(record: PredictAnswer, log: Any = None) -> Prediction:
    """Turn a model-host answer record into a ``Prediction`` or the error it stands for. A
    call that failed on some rows only (the host isolated them, ``ModelHost.predict``) raises
    the call's error with every row's answer attached: ``row_errors`` reads it."""
    if record["ok"]:
        return answered(record)
    error = error_from(record["error"], log)
    isolated = record.get("isolated")
    if isolated is not None:
        answers = RowErrors(
            Prediction(
                isolated["predictions"], isolated.get("probabilities"), isolated.get("scores")
            ),
            {row: error_from(failed) for row, failed in isolated["errors"]},
        )
        setattr(error, ROW_ERRORS, answers)  # WinserveError (errors.py) declares no such field
    raise error


def error_from(error: ErrorRecord, log: Any = None) -> WinserveError:
    """The error a model-host error record stands for (400 for the input, else 500)."""
    lines = str(error["message"]).strip().splitlines()
    summary = f"{error['type']}: {lines[0] if lines else ''}"
    if error.get("input_error"):
        return ModelInputError(f"the model rejected the input: {summary}")
    if log is not None and error.get("traceback"):
        log.error("model raised %s\n%s", error["type"], error["traceback"])
    return ModelError(f"the model failed: {summary}")


ROW_ERRORS = "row_errors"


@dataclass(frozen=True)
class RowErrors:
    """What a model call that failed on some rows answered for each of them: the prediction
    of every row (``None`` where it failed) and each failed row's own error, by row, as that
    row alone gets it. CSV scoring writes both; the pool answers each request from its rows."""

    prediction: Prediction
    errors: dict[int, WinserveError]


def row_errors(error: BaseException) -> RowErrors | None:
    """The rows' answers attached to ``error`` by ``prediction_from``, if the host isolated
    the failing rows (a one-row call has none: its error is its row's)."""
    found = getattr(error, ROW_ERRORS, None)
    return found if isinstance(found, RowErrors) else None
