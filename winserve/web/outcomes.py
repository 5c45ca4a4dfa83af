"""Outcomes uploaded by the model's owner, and the accuracy they give (issue 26).

::

    POST /outcomes, /models/<name>/outcomes   (the owner's, as /log.csv; a form or a program)
        multipart/form-data: file (a CSV or an .xlsx), key, outcome, sheet ─┐
        text/csv body: ?key=…&outcome=…                   within max_body_mb (gate.py)
                                                                             ▼
        read_outcomes: a CSV in its dialect (spreadsheet.sniff), or a workbook's sheet as
        the scoring reads it (scoring/workbook.py); its columns, each row checked (a key, an
        outcome; a number for a regressor): 400 naming the line or row
                                                            ▼
        predlog.outcomes.save ─► the log's SQLite file (outcomes, outcome_matches)
        answer: JSON (stored, matched, unmatched, examples) to a program; 303 to the monitor
        page's accuracy section to a form

    monitor page / monitor.json ─► accuracy(): predlog.outcomes.joined ─► accuracy.scores

The key is the request id (a ``request id`` or ``request_id`` column, as scored files and
``X-Request-Id`` have it) unless the upload names an input column (``key=customer_id``); the
outcome is the ``outcome`` column unless named (``outcome=churned``).
"""

from __future__ import annotations

import itertools
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
)
from flask.typing import ResponseReturnValue
from markupsafe import Markup
from werkzeug.exceptions import RequestEntityTooLarge

from winserve.errors import BadRequest, WinserveError, shown
from winserve.model_info import ModelInfo
from winserve.predlog import accuracy as metrics
from winserve.predlog import outcomes as store
from winserve.predlog.writer import PredictionLog
from winserve.scoring import workbook
from winserve.spreadsheet import NA_VALUES, sniff
from winserve.web import accuracy_chart, auth, csrf, held, paths
from winserve.web.page import for_program
from winserve.web.prediction_log import KEY, _moment

bp = Blueprint("outcomes", __name__)
REQUEST_ID_NAMES = frozenset({"request id", "x request id"})  # as _header() spells them
OUTCOME = "outcome"
CSV_TYPES = frozenset({"text/csv", "application/csv", "text/plain"})
HOW = (
    "Upload a CSV file or a workbook of outcomes: a 'request id' column (as in scored "
    "files and the X-Request-Id header) or a key column that is one of the model's inputs, "
    "and an 'outcome' column."
)


def _header(name: str) -> str:
    """A column's name as matched: ``Request_ID``, ``request-id`` and ``request id`` alike."""
    return re.sub(r"[\s_-]+", " ", name.strip().lower())


def _plog() -> PredictionLog:
    plog: PredictionLog | None = current_app.extensions.get(KEY)
    if plog is None:
        raise BadRequest(
            "the prediction log is off (setting: log): outcomes have no predictions to join"
        )
    return plog


def regressor(info: ModelInfo, joined: tuple[metrics.Joined, ...] = ()) -> bool:
    """MAE and RMSE rather than accuracy: a regressor, or a model that does not say, whose
    outcomes are all numbers and some prediction is not a whole number."""
    if info.task in ("regression", "classification"):
        return info.task == "regression"
    return (
        bool(joined)
        and all(
            metrics.number(j.outcome) is not None
            and isinstance(j.prediction, int | float)
            and not isinstance(j.prediction, bool)
            for j in joined
        )
        and any(isinstance(j.prediction, float) and not j.prediction.is_integer() for j in joined)
    )


def _column(header: list[str], asked: str, default: str, what: str) -> int:
    """The position of the column ``asked`` (else ``default``) in ``header``: by its exact
    name, else as ``_header`` spells it; 400 naming the columns there are."""
    wanted = asked or default
    if wanted in header:
        return header.index(wanted)
    spelled = [_header(h) for h in header]
    if _header(wanted) in spelled:
        return spelled.index(_header(wanted))
    listed = ", ".join(shown(h) for h in header[:20])
    hint = f"; name the {what} column with {what}=…" if not asked else ""
    raise BadRequest(f"the file has no column {shown(wanted)} (its columns: {listed}){hint}")


def _key_position(header: list[str], key: str) -> int:
    if key:
        return _column(header, key, "", "key")
    spelled = [_header(h) for h in header]
    for position, name in enumerate(spelled):
        if name in REQUEST_ID_NAMES:
            return position
    listed = ", ".join(shown(h) for h in header[:20])
    raise BadRequest(
        f"the file has no 'request id' column (its columns: {listed}); add the request ids "
        "winserve answered with (X-Request-Id, or a scored file's 'request id' column), or "
        "name a key column that is one of the model's inputs with key=…"
    )


# one row of an outcomes file: (its line, or row in a sheet; its cells as text)
Numbered = tuple[int, list[str]]


@contextmanager
def _csv_rows(
    path: Path, candidates: list[str], numbers: list[str]
) -> Iterator[tuple[Iterator[Numbered], Callable[[str], str]]]:
    """A CSV's rows (header first) by line, in its dialect (spreadsheet.sniff), and how its
    numbers are read (a decimal comma)."""
    dialect = sniff(path, candidates, numbers)
    with dialect.open(path) as file:
        rows = dialect.reader(file)
        yield ((rows.line_num, row) for row in rows), dialect.read_number


def _cell(value: Any) -> str:
    """A workbook cell as the text a CSV would hold: ``1`` for the number 1.0."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


@contextmanager
def _sheet_rows(
    path: Path, candidates: list[str], sheet: str
) -> Iterator[tuple[Iterator[Numbered], Callable[[str], str]]]:
    """An .xlsx's rows (header first) by row number, as the scoring of a workbook reads it
    (scoring/workbook.py: its bounds, the sheet naming the columns); numbers are numbers."""
    workbook.check(path)
    try:
        found = workbook.table(path, candidates, sheet)
    except workbook.SheetChoice as exc:
        offered = ", ".join(shown(n) for n in exc.sheets[:20])
        raise BadRequest(
            f"the workbook has several sheets ({offered}): name the one with the outcomes "
            "(the form's sheet, or sheet=…)"
        ) from None
    rows = workbook.rows(path, found)
    try:
        header = (found.header_row, list(found.header))
        body = ((number, [_cell(v) for v in cells]) for number, cells in rows)
        yield itertools.chain([header], body), str
    finally:
        rows.close()


def read_outcomes(
    path: Path, key: str, outcome: str, numbers: bool, max_rows: int, sheet: str = ""
) -> tuple[dict[str, str], int]:
    """The outcomes of a CSV file or an Excel workbook by key (a later row wins), and the
    rows skipped for an empty outcome. ``numbers``: each outcome must be a number (a
    regressor's)."""
    candidates = [key or "request id", "request_id", outcome or OUTCOME]
    book = workbook.is_workbook(path)
    where = "row" if book else "line"
    opened = (
        _sheet_rows(path, [key or "request id", outcome or OUTCOME], sheet)
        if book
        else _csv_rows(path, candidates, [outcome or OUTCOME] if numbers else [])
    )
    found: dict[str, str] = {}
    skipped = 0
    with opened as (rows, read_number):
        header = [h.strip() for h in next(rows, (0, []))[1]]
        if not any(header):
            raise BadRequest("the file is empty; its first line must name the columns")
        at_key = _key_position(header, key)
        at_outcome = _column(header, outcome, OUTCOME, "outcome")
        for line, row in rows:
            if not any(cell.strip() for cell in row):
                continue  # a blank line
            cell = row[at_key].strip() if at_key < len(row) else ""
            if not cell:
                raise BadRequest(f"{where} {line} has no {shown(header[at_key])}")
            value = row[at_outcome].strip() if at_outcome < len(row) else ""
            if value in NA_VALUES:
                skipped += 1  # an outcome not known yet
                continue
            if numbers:
                written = read_number(value)
                if metrics.number(written) is None:
                    raise BadRequest(
                        f"{where} {line}: the outcome {shown(value)} is not a number; this "
                        "model is a regressor, its outcomes are numbers"
                    )
                value = written
            # a request id as written (ids are case- and zero-sensitive); an input's value
            # as the log's are compared (1001 and 1001.0 are one customer)
            found[metrics.label_text(cell) if key else cell] = value
            if len(found) > max_rows:
                raise BadRequest(
                    f"the file has more than {max_rows} outcomes (setting: max_csv_rows)"
                )
    if not found:
        raise BadRequest("the file has no outcomes under its first line")
    return found, skipped


def _upload() -> tuple[bytes, str, str, str]:
    """(the file's bytes, the key column, the outcome column and the sheet asked for)."""
    key = request.args.get("key", "")
    outcome = request.args.get("outcome", "")
    sheet = request.args.get("sheet", "")
    if request.mimetype == "multipart/form-data":
        key = request.form.get("key", "").strip() or key
        outcome = request.form.get("outcome", "").strip() or outcome
        sheet = request.form.get("sheet", "").strip() or sheet
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            raise BadRequest("choose a CSV file or a workbook of outcomes (the field 'file')")
        data = upload.read()
    elif request.mimetype in CSV_TYPES:
        data = request.get_data()
    else:
        raise BadRequest(
            "send the outcomes as a CSV file or an Excel workbook: multipart/form-data with "
            "the file in the field 'file', or a text/csv body"
        )
    return data, key.strip(), outcome.strip(), sheet.strip()


@bp.post("/outcomes")
@auth.owner_only  # a user token predicts and scores; the truth about them is the owner's
def upload() -> ResponseReturnValue:
    """Outcomes of this model's predictions, joined with the log (the owner's)."""
    csrf.check_form_or_program()
    plog = _plog()
    model = held.held()
    info = model.info()
    if info.n_outputs > 1:
        raise BadRequest(
            "this model answers several outputs per row; accuracy compares one prediction "
            "with one outcome"
        )
    data, key, outcome, sheet = _upload()
    if key:
        known = store.logged_columns(plog.path, model.name) or set()
        if key not in known:
            why = (
                "the log keeps no inputs (setting: log_inputs)"
                if not plog.keep_inputs
                else f"its logged inputs: {', '.join(shown(n) for n in sorted(known)[:20])}"
                if known
                else "no prediction with inputs is logged yet"
            )
            raise BadRequest(
                f"{shown(key)} is not an input the log kept for {shown(model.name)} ({why}); "
                "name one of the model's inputs, or join on the request id"
            )
    settings = current_app.config["WINSERVE_SETTINGS"]
    with tempfile.TemporaryDirectory(prefix="winserve-outcomes-") as folder:
        path = Path(folder) / "outcomes.csv"
        path.write_bytes(data)
        del data
        found, skipped = read_outcomes(
            path, key, outcome, info.task == "regression", settings.max_csv_rows, sheet
        )
    saved = store.save(plog.path, model.name, key or store.REQUEST_ID, found, days=float(plog.days))
    if not for_program():
        return redirect(f"{held.base()}/monitor#accuracy", code=303)
    return jsonify(
        {"model": model.name, "key": key or "request id", "skipped": skipped, **saved.as_dict()}
    )


@dataclass(frozen=True)
class Accuracy:
    """The monitor page's accuracy section: one model, one period."""

    model: str
    kind: str  # "classifier" or "regressor"
    since: datetime
    until: datetime
    stored: int
    joined: int
    unmatched: int
    examples: tuple[str, ...]
    scores: tuple[metrics.Score, ...]
    hint: str
    serving: str  # the label of the version serving now

    def chart(self) -> Markup:
        """The weeks' accuracy (or MAE) per version as a picture (web/accuracy_chart.py);
        empty without a weekly score. The table beside it has every figure."""
        regressor = self.kind == "regressor"
        what = "Mean absolute error (lower is better)" if regressor else "Accuracy"
        title = f"{what} per week of the predictions with a known outcome, one line per version"
        return Markup(accuracy_chart.chart(self.scores, regressor, title))

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "outcomes": self.stored,
            "joined_rows": self.joined,
            "unmatched": self.unmatched,
            "unmatched_examples": list(self.examples),
            "serving": self.serving,
            "hint": self.hint,
            "scores": [s.as_dict() for s in self.scores],
        }


def accuracy() -> Accuracy:
    """The accuracy of the model this request names, over ``since``…``until`` (default:
    the days the log keeps), from the outcomes uploaded."""
    model = held.held()
    info = model.info()
    plog: PredictionLog | None = current_app.extensions.get(KEY)
    now = datetime.now(UTC)
    days = plog.days if plog is not None else 30
    until = _moment("until", now)
    since = _moment("since", datetime.fromtimestamp(now.timestamp() - days * 86_400, UTC))
    serving = store.version_label(model.version, model.sha256 or None)
    if plog is None:
        hint = "The prediction log is off (setting: log): outcomes have no predictions to join."
        return Accuracy(model.name, "", since, until, 0, 0, 0, (), (), hint, serving)
    found = store.joined(plog.path, model.name, since.timestamp(), until.timestamp())
    is_regressor = regressor(info, found.joined)
    hint = "" if found.stored else HOW
    if found.stored and not found.joined:
        hint = "No outcome uploaded matches a prediction logged in this period."
    return Accuracy(
        model.name,
        "regressor" if is_regressor else "classifier",
        since,
        until,
        found.stored,
        len(found.joined),
        found.unmatched,
        found.examples,
        tuple(metrics.scores(found.joined, is_regressor)),
        hint,
        serving,
    )


@bp.errorhandler(WinserveError)
def refused(error: WinserveError) -> ResponseReturnValue:
    """A program gets the native error shape; a person who sent the monitor page's form a
    page saying what was wrong."""
    if for_program():
        from winserve.protocols import native

        response = jsonify(native.error_body(error))
        response.status_code = error.status
        response.headers.update(error.headers)
        return response
    page = render_template(
        "message.html",
        title="The outcomes were not stored",
        message=paths.public(error.message),
        # the form was the monitor's: back to it, not to the model page (issue 26)
        back=f"{held.base()}/monitor#accuracy",
        back_text="Back to the monitor",
    )
    answer = Response(page, status=error.status, mimetype="text/html")
    answer.headers.update(error.headers)
    return answer


@bp.errorhandler(RequestEntityTooLarge)
def too_large(_: RequestEntityTooLarge) -> ResponseReturnValue:
    from winserve.web import gate

    settings = current_app.config["WINSERVE_SETTINGS"]
    limit = gate.route_limit(request.endpoint, settings)
    return refused(gate.too_large(limit, request.content_length))


def install(app: Flask) -> None:
    """``/outcomes`` for the default model and ``/models/<name>/outcomes`` for each."""
    app.register_blueprint(bp)
    app.register_blueprint(bp, url_prefix="/models/<model>", name="outcomes_model")
