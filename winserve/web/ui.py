"""The model's page (``/``): its card with the form, the answer with its explanation and
what-if charts (issue 25), and the list of a folder's models. Server-rendered; the small
script only refreshes the status line. CSV scoring is ``jobs_pages``; the blueprint, the
status line's words and the error pages are ``page``.

::

    GET  /            ─► page.model_state() ─► index.html (models.html: a folder, no default)
    POST /            ─► the form's fields typed ─► Held.check ─► 400 naming each field, or
                         Held.predict_prepared ─► index.html with the answer (the prediction
                         log gets the request, issue 26)
    POST / (tensors)  ─► the text areas of a model of tensors read as one row each (issue 24,
                         winserve.web.tensor_page) ─► its value or top classes
    POST /image       ─► the image form's files (issue 24, winserve.web.image_page) ─► the top
                         classes and the image
    POST /why-panel, /whatif-panel ─► the charts of the form's row (winserve.web.why_page)

All of it is the one page of a model and the fragments its script fetches; the API page
(``/api``, for programs) is ``api_page``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from flask import current_app, jsonify, render_template, request
from flask.typing import ResponseReturnValue

from winserve import card as cards
from winserve.dataplane import Health, Held
from winserve.errors import BadRequest, ModelUnavailable, WinserveError
from winserve.failures import public_reason
from winserve.model_info import ModelInfo
from winserve.rows import Columns, Matrix
from winserve.service import PredictRequest
from winserve.spreadsheet import typed_number
from winserve.web import (
    api_page,
    auth,
    csrf,
    held,
    image_page,
    jobs_pages,
    paths,
    swap_page,
    tensor_page,
    why_page,
)
from winserve.web.page import bp, model_state, page_state, without_version
from winserve.web.prediction_log import PREDICTED

# CSV scoring, the checked swap's views and the API page are on the blueprint too
__all__ = ["api_page", "bp", "jobs_pages", "swap_page"]


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


def _served() -> Held:
    return held.held()


def _card() -> cards.ModelCard:
    return held.held().card


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
    tensor: image_page.ImageAnswer | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    model = held.held()
    card = model.card
    fields = cards.form_fields(card, info, values) if info is not None else []
    image_fields = image_page.fields(card, info)  # a model of images: file pickers (#24)
    notes = cards.check_against(card, info) if info is not None else []
    check = held.plane().swap_check(model.name)
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
        swap_check=check,  # the last checked swap of a new file (issue 26)
        swap_line=paths.public(check.sentence) if check is not None else "",
        swap_owner=check is not None and auth.caller().is_owner,  # its CSV and button
        # issue 25: under the answer, the explanation and what-if charts, "later" when the
        # page's script fetches them after the answer, or the line saying how to get them
        why=why,
        why_hint=why_page.hint(info) if info is not None and not why_page.available(info) else "",
        image_fields=image_fields,
        image=image,
        # a model of tensors: a text area of numbers per input (issue 24, web.tensor_page)
        tensor_fields=tensor_page.fields(card, info, values, errors),
        tensor=tensor,
    )
    return page, status


@bp.get("/page-status")
def status() -> ResponseReturnValue:
    """The status line for the page's script: the same words as the server renders."""
    try:
        model = held.held()
    except ModelUnavailable:
        # a folder's model loading its first version, or failed to (issue 24): the script of
        # its loading page shows that, and reloads the page once it serves
        versionless = without_version()
        if versionless is None:
            raise
        health, version = versionless, 0
    else:
        health, version = model.health(), model.version
    state = page_state(health)
    return jsonify(
        {
            "status": health.status,
            "key": state.key,
            "text": state.text,
            "serving": health.serving,
            "version": version,
        }
    )


@bp.get("/")
def index() -> ResponseReturnValue:
    if held.model_name() is None and not held.plane().names_a_model():
        return _list_page()
    try:
        info, health = model_state()
    except ModelUnavailable:
        loading = without_version()
        if loading is None or loading.status != "loading":
            raise  # failed: the error page says why, as before
        return _loading_page(loading)
    return _page(info, health)


def _loading_page(health: Health) -> ResponseReturnValue:
    """The page of a model whose first version loads (issue 24): the status line says how
    far, as one file's page does, and the page reloads itself once the model serves (its
    script polls /page-status; without the script the page refreshes itself)."""
    name = held.model_name() or held.plane().default_name() or "Model"
    return render_template(
        "index.html",
        info=None,
        health=health,
        card=cards.ModelCard(title=name),  # its card is read with the version being loaded
        card_notes=[],
        fields=[],
        errors={},
        file_problem="",
        swap_check=None,
        image_fields=[],
    )


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
                # how far its load has gone: "340 MB, 12 s" (issue 24)
                "progress": model.progress.text() if model.progress is not None else "",
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
    info, health = model_state()
    if info is None or not health.serving:
        return _page(info, health, status=503)
    if tensor_page.takes_tensors(info):  # its fields are text areas of numbers (issue 24)
        return _predict_tensors(info, health)
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


def _predict_tensors(info: ModelInfo, health: Health) -> ResponseReturnValue:
    """The form of a model of tensors (issue 24, winserve.web.tensor_page): each text area
    read as its input's one row, sent as /predict's {"inputs": {name: [row]}}; an error is
    shown under the field of the input it names."""
    values, inputs, errors = tensor_page.read_form(info)
    if errors:
        return _page(info, health, values=values, errors=errors, status=400)
    model = _served()
    asked = PredictRequest.from_inputs(inputs, proba=info.has_proba)
    started = time.perf_counter()
    try:
        prediction = model.predict_prepared(model.check(asked), info.has_proba)
    except WinserveError as exc:  # a value out of its dtype's range, a wrong shape: 4xx
        name, message = tensor_page.field_of(paths.public(exc.message), info)
        health = model.health()
        errors = {name: message} if name else {}
        return _page(
            info,
            health,
            values=values,
            errors=errors,
            form_error="" if name else message,
            status=exc.status,
        )
    ms = (time.perf_counter() - started) * 1000
    request.environ[PREDICTED] = (asked, info, prediction)  # the prediction log (issue 26)
    probabilities = prediction.probabilities[0] if prediction.probabilities else None
    shown = image_page.answer(_card(), info, {}, prediction.predictions[0], probabilities, ms)
    return _page(info, health, values=values, tensor=shown)


@bp.post("/image")
def predict_image() -> ResponseReturnValue:
    """The page's image form (issue 24, winserve.web.image_page): its files go to the model
    as /predict's uploads do; the page shows the top classes and the image."""
    csrf.check()
    info, health = model_state()
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
    info, health = model_state()
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
