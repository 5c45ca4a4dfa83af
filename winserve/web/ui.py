"""The pages colleagues open: the model card with its form (``/``), CSV scoring (``/jobs``) and
the API page (``/api``). Server-rendered; the small script only refreshes progress and status."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
)
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import RequestEntityTooLarge

from winserve import card as cards
from winserve.dataplane import Health, Held, JobsOf
from winserve.errors import BadRequest, ModelUnavailable, PayloadTooLarge, WinserveError
from winserve.failures import public_reason
from winserve.model_info import ModelInfo, sample_failed
from winserve.request import Columns, Matrix
from winserve.scoring import reasons
from winserve.scoring.job import ScoringJob
from winserve.scoring.jobs import JobManager
from winserve.service import PredictRequest
from winserve.spreadsheet import typed_number
from winserve.web import csrf, held, image_page, observe, paths, why_page
from winserve.web.examples import Example, api_examples, openapi_outline
from winserve.web.prediction_log import PREDICTED

bp = Blueprint(
    "ui", __name__, template_folder="templates", static_folder="static", static_url_path="/static"
)
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True)
class Bar:
    label: str
    probability: float
    top: bool


@dataclass(frozen=True)
class Result:
    prediction: str
    bars: list[Bar]
    milliseconds: float


@dataclass(frozen=True)
class PageState:
    key: str  # ready | degraded | restarting | loading | failed | stopped
    text: str


def page_state(health: Health) -> PageState:
    """What the status line says, in words for people (the script says the same)."""
    shown = paths.public(health.reason)  # file names only, never a server path
    reason = f" ({shown})" if shown else ""
    if health.status == "ready":
        return PageState("ready", "Ready.")
    if health.status == "degraded":
        down = sum(r.state != "ready" for r in health.replicas)
        if not down and shown:  # the replicas answer, the cluster under them has a problem
            return PageState("degraded", f"Ready, with a problem: {shown}.")
        return PageState(
            "degraded", f"Ready. {down} of {len(health.replicas)} model copies are restarting."
        )
    if health.status == "failed":
        if sample_failed(health.reason):
            # one line, no library internals; the console has the full text (issue 22)
            why = paths.public(public_reason(health.reason)).rstrip(".")
            return PageState(
                "failed",
                f"The model failed and is not served: {why}. The person who runs winserve "
                "sees the details in its window; this page does not change until they fix it.",
            )
        why = paths.public(public_reason(health.reason))
        retrying = any(r.restarts for r in health.replicas)  # it served, then failed
        return PageState(
            "failed",
            f"The model could not be loaded{f' ({why})' if why else ''}. "
            + ("winserve keeps trying; the" if retrying else "The")
            + " person who runs winserve sees the details in its window.",
        )
    if health.status == "stopped":
        return PageState("stopped", "winserve is stopping.")
    if any(r.restarts or r.state == "restarting" for r in health.replicas):
        return PageState(
            "restarting",
            f"The model is restarting after a problem{reason}. Predictions resume in a few "
            "seconds; this page updates by itself.",
        )
    return PageState("loading", "The model is loading. This page updates by itself.")


@bp.app_context_processor
def page_helpers() -> dict[str, Any]:
    # "/" lists the models: a folder of several, none the default
    listed = held.plane().lists_models()
    return {"page_state": page_state, "model_base": held.base(), "models_listed": listed}


def _served() -> Held:
    return held.held()


def _card() -> cards.ModelCard:
    return held.held().card


def _jobs() -> JobManager:
    return held.held().jobs


def _job_owner(job_id: str) -> JobsOf:
    """The version that holds this job: it finishes there, even after a newer one serves."""
    return held.plane().jobs_of(held.held().name, job_id)


def _model() -> tuple[ModelInfo | None, Health]:
    model = held.held()
    health = model.health()
    try:
        return model.info(), health
    except ModelUnavailable:
        return None, health


def _page(
    info: ModelInfo | None,
    health: Health,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    form_error: str = "",
    result: Result | None = None,
    why: Any = None,
    image: image_page.ImageAnswer | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    model = held.held()
    card = model.card
    fields = cards.form_fields(card, info, values) if info is not None else []
    image_fields = image_page.fields(card, info)  # a model of images: file pickers (#24)
    notes = cards.check_against(card, info) if info is not None else []
    page = render_template(
        "index.html",
        info=info,
        health=health,
        card=card,
        card_notes=notes,
        fields=fields,
        errors=errors or {},
        form_error=form_error,
        result=result,
        limits=current_app.config["WINSERVE_SETTINGS"],
        served=model,
        file_problem=paths.public(held.plane().reason(model.name)),
        # issue 25: under the answer, the explanation and what-if charts, "later" when the
        # page's script fetches them after the answer, or the line saying how to get them
        why=why,
        why_hint=why_page.hint(info) if info is not None and not why_page.available(info) else "",
        image_fields=image_fields,
        image=image,
    )
    return page, status


@bp.get("/page-status")
def status() -> ResponseReturnValue:
    """The status line for the page's script: the same words as the server renders."""
    model = held.held()
    health = model.health()
    state = page_state(health)
    return jsonify(
        {
            "status": health.status,
            "key": state.key,
            "text": state.text,
            "serving": health.serving,
            "version": model.version,
        }
    )


@bp.get("/")
def index() -> ResponseReturnValue:
    if held.model_name() is None and not held.plane().names_a_model():
        return _list_page()
    info, health = _model()
    return _page(info, health)


def _list_page() -> ResponseReturnValue:
    """A folder of several models: each with its state and version, and the files that could
    not be served, with why (file names only), from the data plane's one summary."""
    summary = held.plane().health()
    rows = []
    for model in summary.models:
        health = model.health
        rows.append(
            {
                "name": model.name,
                "title": model.title,
                "version": model.version,
                "state": page_state(health).text if health is not None else "",
                "key": page_state(health).key if health is not None else "failed",
                "loading": model.loading and model.version is None,
                "reason": paths.public(public_reason(model.reason)),  # one line (issue 22)
            }
        )
    refused = {name: paths.public(reason) for name, reason in summary.not_served}
    return render_template("models.html", models=rows, refused=refused)


def _form_value(text: str, kind: str) -> Any:
    """A field as the service takes it: an empty field is a missing value (as an empty cell
    is in a CSV file), a number may have a decimal comma."""
    if not text or (kind != "string" and not text.strip()):
        return None
    return typed_number(text) if kind == "number" else text


def _result(
    info: ModelInfo, prediction: Any, probabilities: list[float] | None, ms: float
) -> Result:
    card = _card()
    bars = []
    if probabilities:
        best = max(probabilities)
        bars = [
            Bar(card.class_name(c), float(p), float(p) == best)
            for c, p in zip(info.classes, probabilities, strict=False)
        ]
    if isinstance(prediction, list):  # a multi-output model: one value per output
        shown = ", ".join(str(p) for p in prediction)
    else:
        shown = card.class_name(prediction) if info.classes else str(prediction)
    return Result(shown, bars, ms)


@bp.post("/")
def predict_form() -> ResponseReturnValue:
    csrf.check()
    info, health = _model()
    if info is None or not health.serving:
        return _page(info, health, status=503)
    values = {f.name: request.form.get(f"f{i}", "") for i, f in enumerate(info.features)}
    if not info.features:
        raise BadRequest("this model declares no input columns; use the API")
    model = _served()
    typed = {f.name: [_form_value(values[f.name], f.kind)] for f in info.features}
    prepared = model.check(PredictRequest.from_columns(typed))
    errors = {p.column: p.message for p in prepared.problems}
    if errors:
        return _page(info, health, values=values, errors=errors, status=400)
    started = time.perf_counter()
    try:
        prediction = model.predict_prepared(prepared, info.has_proba)
    except WinserveError as exc:  # the status line must show what this failure did
        health = model.health()
        return _page(
            info, health, values=values, form_error=paths.public(exc.message), status=exc.status
        )
    ms = (time.perf_counter() - started) * 1000
    # the log (issue 26) keeps the values as the model got them (the form sends text)
    payload = prepared.payload
    rows = Matrix(payload["matrix"]) if "matrix" in payload else Columns(payload.get("columns", {}))
    asked = PredictRequest(rows, n_rows=1)
    request.environ[PREDICTED] = (asked, info, prediction)
    probabilities = prediction.probabilities[0] if prediction.probabilities else None
    result = _result(info, prediction.predictions[0], probabilities, ms)
    why: Any = None
    if why_page.available(info):
        # the page's script sets "later": the answer shows first, the explanation when it
        # arrives (POST why-panel); without the script it comes with the answer (issue 25)
        if request.form.get("later") == "1":
            why = "later"
        else:
            why = _why(info, typed, prediction.predictions[0])
    return _page(info, health, values=values, result=result, why=why)


@bp.post("/image")
def predict_image() -> ResponseReturnValue:
    """The page's image form (issue 24, winserve.web.image_page): its files go to the model
    as /predict's uploads do; the page shows the top classes and the image."""
    csrf.check()
    info, health = _model()
    if info is None or not health.serving:
        return _page(info, health, status=503)
    if not image_page.fields(_card(), info):
        raise BadRequest("this model takes no images; use the form or the API")
    try:
        files = image_page.files_of(info)
    except BadRequest as exc:
        return _page(info, health, form_error=exc.message, status=exc.status)
    model = _served()
    asked = PredictRequest.from_inputs(dict(files), proba=info.has_proba)
    started = time.perf_counter()
    try:
        prediction = model.predict_prepared(model.check(asked), info.has_proba)
    except WinserveError as exc:  # not an image, too large: said on the page, as a 4xx
        health = model.health()
        return _page(info, health, form_error=paths.public(exc.message), status=exc.status)
    ms = (time.perf_counter() - started) * 1000
    request.environ[PREDICTED] = (asked, info, prediction)  # the prediction log (issue 26)
    probabilities = prediction.probabilities[0] if prediction.probabilities else None
    shown = image_page.answer(_card(), info, files, prediction.predictions[0], probabilities, ms)
    return _page(info, health, image=shown)


def _form_row(info: ModelInfo) -> tuple[dict[str, list[Any]], Any]:
    """The form's row, typed as the service takes it; a 400 naming the first bad value."""
    values = {f.name: request.form.get(f"f{i}", "") for i, f in enumerate(info.features)}
    typed = {f.name: [_form_value(values[f.name], f.kind)] for f in info.features}
    prepared = _served().check(PredictRequest.from_columns(typed))
    if prepared.problems:
        problem = prepared.problems[0]
        raise BadRequest(f"{problem.column}: {problem.message}")
    return typed, prepared


def _why(
    info: ModelInfo, typed: dict[str, list[Any]], predicted: Any, *, explain: bool = True
) -> dict[str, Any]:
    """The explanation and what-if curves of the form's row (issue 25, winserve.web.why_page)."""
    row = {name: column[0] for name, column in typed.items()}
    asked = PredictRequest.from_columns(typed)
    model, card = _served(), _card()
    return {
        "explained": why_page.explain(model, info, card, asked, row) if explain else None,
        "whatifs": why_page.whatif(model, info, card, asked, row, predicted),
    }


@bp.post("/why-panel")
@bp.post("/whatif-panel")
def why_panel() -> ResponseReturnValue:
    """The page script's fetches (issue 25): the explanation and what-if charts of the form's
    row after the answer (``why-panel``), or the what-if charts again as the form is edited
    (``whatif-panel``); HTML fragments drawn by the same templates as the page."""
    csrf.check()
    info, health = _model()
    if info is None or not health.serving or not why_page.available(info):
        raise ModelUnavailable("the model cannot be explained now; try again in a few seconds")
    only_whatif = request.path.endswith("whatif-panel")
    try:
        typed, prepared = _form_row(info)
        predicted = _served().predict_prepared(prepared, False).predictions[0]
    except BadRequest as exc:  # a value being typed: a line in place of the charts
        note = "What if: " + paths.public(exc.message)
        return render_template("_whatif.html", whatifs=note), 400
    found = _why(info, typed, predicted, explain=not only_whatif)
    if only_whatif:
        return render_template("_whatif.html", whatifs=found["whatifs"])
    return render_template("_why.html", why=found)


# -- CSV scoring ------------------------------------------------------------------------------


def _for_program() -> bool:
    """Whether the jobs routes answer in JSON: a program (a Bearer or X-Winserve-Client
    header), or a caller that asks for JSON first (issue 27)."""
    if csrf.program():
        return True
    accept = request.accept_mimetypes
    return accept.best_match(["text/html", "application/json"]) == "application/json"


def _job_links(job: ScoringJob) -> dict[str, str]:
    where = request.host_url.rstrip("/") + f"{held.base()}/jobs/{job.id}"
    return {
        "id": job.id,
        "status_url": f"{where}/status",
        "result_url": f"{where}/result.{job.kind}",
        "page_url": where,
    }


@bp.post("/jobs")
def create_job() -> ResponseReturnValue:
    # a program's upload needs no form value: it carries a header no form can send (#27)
    csrf.check_form_or_program()
    info, _ = _model()
    if info is None:
        raise ModelUnavailable("the model is not loaded yet; try again in a few seconds")
    limit = current_app.config["WINSERVE_SETTINGS"].max_csv_bytes
    upload = request.files.get("file")
    pasted = request.form.get("rows", "")
    jobs = _jobs()
    explain = reasons.asked(request.form.get("explain", ""))  # top 3 reasons a row (#25)
    size = request.content_length or 0  # the free-space check's estimate (issue 28)
    if upload is not None and upload.filename:
        job = jobs.new(upload.filename, size)
        job.sheet = request.form.get("sheet", "").strip()  # a workbook's, by name (issue 27)
        jobs.save(job, upload.save)  # a failed write frees the job's place (issue 28)
    elif pasted.strip():
        job = jobs.new("pasted rows.csv", size)
        jobs.save(job, lambda path: path.write_text(pasted, encoding="utf-8", newline=""))
    else:
        raise BadRequest("choose a CSV file, or paste rows with a header line")
    if job.source.stat().st_size > limit:
        jobs.discard(job)
        raise PayloadTooLarge(
            f"the file is larger than the {limit // (1024 * 1024)} MB allowed (setting: max_csv_mb)"
        )
    job.request_id = observe.request_id()  # each scored row's id starts with it (issue 27)
    jobs.start(job, explain=explain)
    if _for_program():
        links = _job_links(job)
        response = jsonify(links)
        response.status_code = 202
        response.headers["Location"] = links["status_url"]
        return response
    return redirect(f"{held.base()}/jobs/{job.id}", code=303)


@bp.get("/jobs/<job_id>")
def job_page(job_id: str) -> ResponseReturnValue:
    owner = _job_owner(job_id)
    job = owner.jobs.get(job_id)
    info, health = _model()
    return render_template(
        "job.html", job=job, info=info, health=health, card=owner.card, job_version=owner.version
    )


@bp.post("/jobs/<job_id>/sheet")
def choose_sheet(job_id: str) -> ResponseReturnValue:
    """A workbook's sheet, picked from the job page's list (issue 27): the job scores it."""
    csrf.check_form_or_program()
    owner = _job_owner(job_id)
    job = owner.jobs.get(job_id)
    owner.jobs.choose(job, request.form.get("sheet", ""))
    if _for_program():
        links = _job_links(job)
        response = jsonify(links)
        response.status_code = 202
        response.headers["Location"] = links["status_url"]
        return response
    return redirect(f"{held.base()}/jobs/{job.id}", code=303)


@bp.get("/jobs/<job_id>/status")
def job_status(job_id: str) -> ResponseReturnValue:
    owner = _job_owner(job_id)
    return jsonify({**owner.jobs.get(job_id).status(), "model_version": owner.version})


@bp.get("/jobs/<job_id>/result.csv")
@bp.get("/jobs/<job_id>/result.xlsx")  # a workbook's (issue 27)
def job_result(job_id: str) -> ResponseReturnValue:
    job = _job_owner(job_id).jobs.get(job_id)
    if job.state != "done":
        raise BadRequest("this job has not finished; its result is not ready")
    mimetype = XLSX_TYPE if job.kind == "xlsx" else "text/csv"
    return send_file(
        job.result, mimetype=mimetype, as_attachment=True, download_name=job.result_name
    )


# -- API page ---------------------------------------------------------------------------------


def _grouped(examples: list[Example]) -> list[tuple[str, list[Example]]]:
    groups: dict[str, list[Example]] = {}
    for example in examples:
        groups.setdefault(example.protocol, []).append(example)
    return list(groups.items())


@bp.get("/api")
def api_page() -> ResponseReturnValue:
    info, health = _model()
    base = request.host_url.rstrip("/")
    token = bool(current_app.config.get("WINSERVE_TOKEN"))
    return render_template(
        "api.html",
        info=info,
        health=health,
        card=_card(),
        groups=_grouped(
            api_examples(info, _card(), base, token, held.base()) if info is not None else []
        ),
        outline=openapi_outline(info, base, token),
        base=base,
        token=token,
    )


# -- errors on pages are pages ----------------------------------------------------------------


@bp.errorhandler(WinserveError)
def page_error(error: WinserveError) -> ResponseReturnValue:
    if request.path.endswith("status") or (
        request.blueprint in ("ui", "ui_model") and "/jobs" in request.path and _for_program()
    ):
        from winserve.protocols import native

        response = jsonify(native.error_body(error))
        response.status_code = error.status
        return response
    message = paths.public(error.message)
    page = render_template("message.html", title="That did not work", message=message)
    response = Response(page, status=error.status, mimetype="text/html")
    response.headers.update(error.headers)
    return response


@bp.errorhandler(RequestEntityTooLarge)
def too_large(_: RequestEntityTooLarge) -> ResponseReturnValue:
    limit = current_app.config["WINSERVE_SETTINGS"].max_csv_mb
    return page_error(
        PayloadTooLarge(f"the file is larger than the {limit:g} MB allowed (setting: max_csv_mb)")
    )
