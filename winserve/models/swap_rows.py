"""What a new version is checked on before it serves (issue 26), and each version's answers.

::

    the new version's reference sample (the card's ``reference``, else the
      <name>.reference.csv/.parquet copied beside its private copy; else the serving one's)
        ─► host.reference.read (the model's input columns, at most 2,000 rows) ──┐
    the prediction log (SQLite, a query-only connection; none when the log is off)  ├─► Rows
        ─► the model's most recent answered inputs, up to MAX_LOGGED rows ──────────┘
    Rows ─► ask(service, info, rows): checked as a request is (bad rows refused one by one),
            CHUNK rows per model call, probabilities asked of a classifier ─► Answers

Runs in the web process, on the loading thread (swap.py), beside the serving version's own
traffic: reading the reference file here rather than in the model host keeps every backend's
interface as it is (the monitor page reads it so too, web/monitor.py).
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from winserve import card as cards
from winserve.backends.base import row_errors
from winserve.errors import WinserveError
from winserve.host import reference as reference_sample
from winserve.model_info import ModelInfo
from winserve.models.checked_swap import Answers
from winserve.predlog.store import decode_inputs
from winserve.rows import Columns
from winserve.service import PredictRequest, Service

log = logging.getLogger("winserve")

MAX_LOGGED = 2000  # the most recent logged input rows a new version answers
CHUNK = 500  # rows per model call: each call stays well within the timeout

# No index on the model (each index costs every insert, predlog/store.py): a model asked
# rarely beside a busy one is looked for through the whole log, newest first. Measured on a
# log of 1,000,000 one-row requests (20 columns, 242 MB) holding 101 rows of the rare model:
# 0.09 s of CPU (0.35 s wall at load 8), once per swap; the busy model's 2,000 rows: 0.02 s.
LOGGED = """
SELECT c.names, r.inputs FROM requests AS r JOIN column_sets AS c ON c.id = r.columns
WHERE r.model = ? AND r.status = 200 AND r.inputs IS NOT NULL
ORDER BY r.id DESC
"""


@dataclass(frozen=True)
class Rows:
    """The rows to ask both versions: one list per input column, each row's origin."""

    columns: dict[str, list[Any]]
    origins: list[str]  # "reference" or "log", per row

    @property
    def count(self) -> int:
        return len(self.origins)

    def counted(self, origin: str) -> int:
        return sum(1 for o in self.origins if o == origin)


def _plain(value: Any) -> Any:
    """A value as a request carries it: NaN is missing (None), NumPy scalars plain."""
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def reference_path(info: ModelInfo, card: cards.ModelCard) -> Path | None:
    """The reference sample a version loaded with: its card's, else the one beside the file
    it loaded (its private copy's, made at load)."""
    if card.reference:
        return Path(card.reference)
    if not info.source or not info.sha256:  # the demo, a factory: no file
        return None
    found = reference_sample.beside(Path(info.source))
    return found[0] if found else None


def reference_rows(paths: list[Path | None], info: ModelInfo) -> dict[str, list[Any]]:
    """The first usable reference sample of ``paths`` as columns ({} when none is)."""
    features = [{"name": f.name, "kind": f.kind} for f in info.features]
    for path in paths:
        if path is None or not path.is_file():
            continue
        try:
            frame = reference_sample.read(path, features)
        except (ValueError, OSError) as exc:
            log.warning("%s: the reference sample %s is not used: %s", info.name, path.name, exc)
            continue
        return {str(c): [_plain(v) for v in frame[c].tolist()] for c in frame.columns}
    return {}


def logged_rows(path: Path | None, model: str, names: list[str]) -> dict[str, list[Any]]:
    """The most recent inputs of ``model`` the log kept of answered requests (200), up to
    MAX_LOGGED rows, newest first, as columns for ``names`` ({} without any). A query-only
    connection of its own, as the monitor's (WAL: the writer is not blocked)."""
    if path is None or not path.is_file():
        return {}
    found: dict[str, list[Any]] = {n: [] for n in names}
    count = 0
    try:
        conn = sqlite3.connect(path, timeout=1.0)
    except sqlite3.Error as exc:
        log.warning("%s: the prediction log cannot be read for the swap check: %s", model, exc)
        return {}
    try:
        conn.execute("PRAGMA query_only = ON")
        for names_text, inputs in conn.execute(LOGGED, (model,)):
            logged = json.loads(names_text)
            where = {n: logged.index(n) for n in names if n in logged}
            if len(where) < len(names):  # logged under other columns (an older version's)
                continue
            for row in decode_inputs(names_text, inputs) or []:
                for n, i in where.items():
                    found[n].append(row[i] if i < len(row) else None)
                count += 1
                if count >= MAX_LOGGED:
                    return found
    except (sqlite3.Error, ValueError) as exc:  # a file being created, another program's
        log.warning("%s: the prediction log cannot be read for the swap check: %s", model, exc)
        return {}
    finally:
        conn.close()
    return found if count else {}


def rows_to_check(
    name: str, info: ModelInfo, references: list[Path | None], plog: Path | None
) -> Rows:
    """The reference sample's rows, then the log's of model ``name``, for the serving
    version's inputs (``info``'s columns: both versions are asked what the serving one
    takes)."""
    names = info.feature_names
    if info.tensor_inputs or not names:  # tensors and images: not kept as rows
        return Rows({}, [])
    reference = reference_rows(references, info)
    logged = logged_rows(plog, name, names)
    columns: dict[str, list[Any]] = {n: [] for n in names}
    origins: list[str] = []
    for origin, part in (("reference", reference), ("log", logged)):
        if not part:
            continue
        size = len(next(iter(part.values())))
        for n in names:
            columns[n].extend(part.get(n, [None] * size))
        origins.extend([origin] * size)
    return Rows(columns, origins)


def ask(service: Service, info: ModelInfo, rows: Rows) -> tuple[Answers, str]:
    """``service``'s answers to ``rows`` (probabilities too when it has them), and why it
    refused the first row it refused ("" when it refused none). A row the checks or the model
    refuse is refused alone; a call that fails as a whole (a crash, a timeout, columns it
    does not take) refuses its rows."""
    labels: list[Any] = [None] * rows.count
    probabilities: list[list[float] | None] | None = [None] * rows.count if info.has_proba else None
    refused: set[int] = set()
    first_error = ""
    size = max(1, min(CHUNK, service.max_rows))
    for start in range(0, rows.count, size):
        stop = min(start + size, rows.count)
        part = {n: v[start:stop] for n, v in rows.columns.items()}
        request = PredictRequest(Columns(part), proba=info.has_proba, n_rows=stop - start)
        try:
            prepared = service.check(request, max_rows=stop - start)
            good = prepared.good_rows
            if prepared.problems and not first_error:
                first_error = str(prepared.problems[0])
            refused.update(start + i for i in range(stop - start) if i not in set(good))
            if not good:
                continue
            try:
                prediction = service.predict_prepared(prepared, info.has_proba)
                failed: set[int] = set()
            except WinserveError as exc:
                isolated = row_errors(exc)
                if isolated is None:
                    raise
                prediction, failed = isolated.prediction, set(isolated.errors)
                first_error = first_error or str(exc)
        except WinserveError as exc:
            first_error = first_error or str(exc)
            refused.update(range(start, stop))
            continue
        for k, i in enumerate(good):
            if k in failed:
                refused.add(start + i)
                continue
            labels[start + i] = prediction.predictions[k]
            if probabilities is not None and prediction.probabilities is not None:
                probabilities[start + i] = prediction.probabilities[k]
    answers = Answers(labels, probabilities, tuple(info.classes), frozenset(refused))
    return answers, first_error
