"""Outcomes uploaded by the model's owner (issue 26): the view of ``POST /outcomes``.

::

    POST /outcomes, /models/<name>/outcomes   (the owner's, as /log.csv; a form or a program)
        multipart/form-data: file (a CSV or an .xlsx), key, outcome, sheet ─┐
        text/csv body: ?key=…&outcome=…                   within max_body_mb (gate.py)
        key=<input>: one the log kept, else 400 naming those it did          ▼
        predlog.outcomes_file.read_outcomes: the file's outcomes by key, each row checked
                                                            ▼
        predlog.outcomes.save ─► the log's SQLite file (outcomes, outcome_matches)
        answer: JSON (stored, matched, unmatched, examples) to a program; 303 to the monitor
        page's accuracy section to a form; an error in the native shape, or a page

    monitor page / monitor.json ─► web/accuracy_section.py (the accuracy they give)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

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
from werkzeug.exceptions import RequestEntityTooLarge

from winserve.errors import BadRequest, WinserveError, shown
from winserve.predlog import outcomes as store
from winserve.predlog.outcomes_file import read_outcomes
from winserve.predlog.writer import PredictionLog
from winserve.web import auth, csrf, held, paths
from winserve.web.page import for_program
from winserve.web.prediction_log import KEY

bp = Blueprint("outcomes", __name__)
CSV_TYPES = frozenset({"text/csv", "application/csv", "text/plain"})


def _plog() -> PredictionLog:
    plog: PredictionLog | None = current_app.extensions.get(KEY)
    if plog is None:
        raise BadRequest(
            "the prediction log is off (setting: log): outcomes have no predictions to join"
        )
    return plog


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
