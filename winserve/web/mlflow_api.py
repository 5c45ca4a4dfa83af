"""MLflow-compatible endpoints: ``POST /invocations``, ``GET /ping``, ``GET /version``.

(``GET /health`` is winserve's own and answers 200 once the model is serving, as MLflow's does.)
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request
from flask.typing import ResponseReturnValue

from winserve import __version__, explaining
from winserve.protocols import mlflow
from winserve.web import held
from winserve.web.bodies import flag, json_body, json_response, raw_text
from winserve.web.prediction_log import PREDICTED

bp = Blueprint("mlflow", __name__)


@bp.post("/invocations")
def invocations() -> ResponseReturnValue:
    req = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup
    model = held.held()
    max_body = current_app.config["WINSERVE_MAX_BODY"]
    if req.environ.get("CONTENT_TYPE") == "application/json":  # the usual: nothing to parse
        kind = "json"
    else:
        kind = mlflow.content_kind(req.mimetype, dict(req.mimetype_params))
    if kind == "json":
        invocation = mlflow.decode_json(json_body(req, max_body))
    else:
        invocation = mlflow.decode_csv(raw_text(req, max_body))
    req.environ["winserve.rows"] = invocation.request.n_rows
    # params.explain or ?explain=true (a CSV body has no params): winserve's own (issue 25)
    explain = invocation.explain
    if req.environ.get("QUERY_STRING") and "explain" in req.args:
        explain = flag(req.args, "explain")
    info = model.info()  # one snapshot of the model's description for this request
    method = mlflow.predict_method(invocation.params, info)
    if method == "predict_proba" and not info.has_proba:
        raise mlflow.InvalidParameter("this model has no predict_proba")
    if explain:  # 409 saying what file to add, before any model call, as /predict (issue 25)
        explaining.require_reference(info)
        explaining.check_rows(invocation.request.n_rows)
    invocation.request.proba = method == "predict_proba"
    answer = model.infer(invocation.request, info)
    prediction = answer.prediction
    req.environ[PREDICTED] = (invocation.request, info, prediction)  # the log (issue 26)
    explanations = model.explain(invocation.request, info) if explain else None
    if method == "predict_proba":
        predictions = prediction.probabilities or []
    else:
        predictions = prediction.predictions
    response = json_response(mlflow.encode(predictions, explanations))
    response.headers["X-Model-Version"] = str(answer.version)
    return response


@bp.get("/ping")
def ping() -> ResponseReturnValue:
    serving = held.held().health().serving
    return Response("\n", status=200 if serving else 503, mimetype="application/json")


@bp.get("/version")
def version() -> ResponseReturnValue:
    return Response(f"winserve {__version__}", mimetype="text/plain")
