"""winserve answers as the model does in the notebook: every model kind of ``tests/zoo.py``,
served by a real server, is sent the same rows through every protocol and the page, and each
answer is compared with the model's own in-process answer on those rows (labels exactly, with
their JSON type; probabilities and scores to 1e-9). Missing values travel as JSON ``null``,
empty CSV cells and empty form fields."""

from __future__ import annotations

import csv
import io
import math
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests import zoo
from tests.helpers import running_server, server_env, wait_until

pytestmark = [pytest.mark.spawn, pytest.mark.server]
TOLERANCE = 1e-9


@dataclass
class Served:
    case: zoo.Case
    url: str
    want: dict[str, Any]
    args: list[str] = field(default_factory=list)  # what serves it: the file, or --factory …
    folder: Path | None = None


@pytest.fixture(scope="module", params=list(zoo.BUILDERS))
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    case = zoo.BUILDERS[request.param]()
    folder = tmp_path_factory.mktemp(case.name)
    args = zoo.save(case, folder)
    with running_server(args, cwd=folder) as server:
        yield Served(case, server.url, zoo.expected(case), args, folder)


def same(got: Any, want: Any, where: str = "") -> None:
    """Equal as the model answered: labels exactly and of the same type, numbers to 1e-9."""
    if isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: {got!r} != {want!r}"
        for index, (g, w) in enumerate(zip(got, want, strict=True)):
            same(g, w, f"{where}[{index}]")
    elif isinstance(want, float) and not isinstance(got, bool):
        assert isinstance(got, (int, float)), f"{where}: {got!r} is not a number"
        assert math.isclose(got, want, rel_tol=0, abs_tol=TOLERANCE), f"{where}: {got} != {want}"
    else:
        assert type(got) is type(want) and got == want, f"{where}: {got!r} != {want!r}"


def _columns(case: zoo.Case) -> list[str]:
    return ["text"] if case.text else list(case.rows.columns)


def _csv(case: zoo.Case) -> str:
    if not case.text:
        return str(case.rows.to_csv(index=False))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows([["text"], *([t] for t in case.rows)])
    return out.getvalue()


def test_predict_in_every_native_shape(served: Served) -> None:
    case, want = served.case, served.want
    rows = zoo.records(case)
    query = "?proba=true" + ("&scores=true" if case.scores else "")
    answer = requests.post(f"{served.url}/predict{query}", json=rows, timeout=30)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    same(body["predictions"], want["predictions"], "predictions")
    if case.proba:
        same(body["classes"], want["classes"], "classes")
        same(body["probabilities"], want["probabilities"], "probabilities")
    if case.scores:
        assert body["scores_from"] == case.scores
        same(body["scores"], want["scores"], "scores")
    if case.text:
        shapes = [[{"text": t} for t in rows], {"columns": ["text"], "data": [[t] for t in rows]}]
    else:
        columns = _columns(case)
        data = [[row[c] for c in columns] for row in rows]
        shapes = [{"columns": columns, "data": data}, data]
    for shape in shapes:
        other = requests.post(f"{served.url}/predict", json=shape, timeout=30)
        assert other.status_code == 200, other.text
        same(other.json()["predictions"], want["predictions"], "predictions")


def test_mlflow_invocations_json_and_csv(served: Served) -> None:
    case, want = served.case, served.want
    rows = zoo.records(case)
    columns = _columns(case)
    split = {
        "columns": columns,
        "data": [[r] if case.text else [r[c] for c in columns] for r in rows],
    }
    bodies: list[dict[str, Any]] = [
        {"dataframe_split": split},
        {"dataframe_records": [{"text": r} for r in rows] if case.text else rows},
    ]
    for body in bodies:
        answer = requests.post(f"{served.url}/invocations", json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        same(answer.json()["predictions"], want["predictions"], "predictions")
    if case.proba:  # params without a params schema are ignored, as by MLflow (issue 22)
        body = {"dataframe_split": split, "params": {"predict_method": "predict_proba"}}
        answer = requests.post(f"{served.url}/invocations", json=body, timeout=30)
        same(answer.json()["predictions"], want["predictions"], "predictions (params ignored)")
    answer = requests.post(
        f"{served.url}/invocations",
        data=_csv(case).encode(),
        headers={"Content-Type": "text/csv"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    same(answer.json()["predictions"], want["predictions"], "predictions (CSV)")


def _tensors(case: zoo.Case, model: dict[str, Any]) -> list[dict[str, Any]]:
    rows = zoo.records(case)
    if case.text:
        return [{"name": "text", "shape": [len(rows)], "datatype": "BYTES", "data": rows}]
    if not case.named:
        data = [list(r.values()) for r in rows]
        return [
            {
                "name": "input-0",
                "shape": [len(rows), len(data[0])],
                "datatype": "FP64",
                "data": data,
            }
        ]
    kinds = {f["name"]: f["kind"] for f in model["features"]}
    types = {"number": "FP64", "bool": "BOOL"}

    def value(v: Any, kind: str) -> Any:  # an FP64 tensor carries a bool column as 1.0/0.0
        return float(v) if kind == "number" and isinstance(v, bool) else v

    def datatype(name: str) -> str:
        if kinds[name] == "any":  # kind not declared by the model: the values' own type
            sent = {type(r[name]) for r in rows if r[name] is not None}
            return "FP64" if sent <= {float, int} else "BOOL" if sent == {bool} else "BYTES"
        return types.get(kinds[name], "BYTES")

    return [
        {
            "name": name,
            "shape": [len(rows)],
            "datatype": datatype(name),
            "data": [value(r[name], kinds[name]) for r in rows],
        }
        for name in _columns(case)
    ]


def test_open_inference_protocol(served: Served) -> None:
    case, want = served.case, served.want
    model = requests.get(f"{served.url}/model", timeout=10).json()
    outputs = (
        ["predict"]
        + (["predict_proba"] if case.proba else [])
        + ([case.scores] if case.scores else [])
    )
    metadata = requests.get(f"{served.url}/v2/models/{model['name']}", timeout=10).json()
    assert [o["name"] for o in metadata["outputs"]] == outputs
    body = {"inputs": _tensors(case, model), "outputs": [{"name": o} for o in outputs]}
    answer = requests.post(f"{served.url}/v2/models/{model['name']}/infer", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    got = {o["name"]: o for o in answer.json()["outputs"]}
    predictions = want["predictions"]
    width = len(predictions[0]) if isinstance(predictions[0], list) else 1
    assert got["predict"]["shape"] == [case.n_rows, width]
    flat = [v for p in predictions for v in p] if width > 1 else predictions
    same(got["predict"]["data"], flat, "predict")
    if case.proba:
        flat_proba = [v for p in want["probabilities"] for v in p]
        same(got["predict_proba"]["data"], flat_proba, "predict_proba")
    if case.scores:
        scores = want["scores"]
        flat_scores = [v for s in scores for v in s] if isinstance(scores[0], list) else scores
        same(got[case.scores]["data"], flat_scores, case.scores)


def _page_token(session: requests.Session, url: str) -> str:
    page = session.get(f"{url}/", timeout=10).text
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page)
    assert match, "the page has no CSRF field"
    return match.group(1)


def _from_read_csv(case: zoo.Case) -> list[Any] | None:
    """``model.predict(pd.read_csv(same bytes))``, where the model takes that frame (a model
    fitted on pandas category columns wants them back as such, which read_csv does not make;
    winserve does, from the model's own categories)."""
    import pandas as pd

    if case.text or not case.named or case.model is None:
        return None
    frame = pd.read_csv(io.StringIO(_csv(case)))
    rows = frame.to_dict(orient="records") if case.records_input else frame
    try:
        return list(zoo.np.asarray(case.model.predict(rows)).tolist())
    except (ValueError, TypeError):
        return None


def test_the_pages_csv_scoring(served: Served) -> None:
    case, want = served.case, served.want
    in_notebook = _from_read_csv(case)
    if in_notebook is not None:  # the same bytes, read by pandas in the notebook
        own = zoo.expected(case)["predictions"]
        same(in_notebook, own, "model.predict(pd.read_csv(...))")
    session = requests.Session()
    files = {"file": ("rows.csv", _csv(case).encode(), "text/csv")}
    answer = session.post(
        f"{served.url}/jobs",
        data={"csrf_token": _page_token(session, served.url)},
        files=files,
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 303, answer.text
    job = answer.headers["Location"]

    def finished() -> dict[str, Any] | None:
        status: dict[str, Any] = session.get(f"{served.url}{job}/status", timeout=10).json()
        return status if status["state"] in ("done", "failed") else None

    status = wait_until(finished, 60)
    assert status["state"] == "done" and status["problem_count"] == 0, status
    text = session.get(f"{served.url}{job}/result.csv", timeout=10).content.decode("utf-8-sig")
    scored = list(csv.DictReader(io.StringIO(text)))
    assert len(scored) == case.n_rows
    for index, (row, prediction) in enumerate(zip(scored, want["predictions"], strict=True)):
        assert row["error"] == "", row
        if isinstance(prediction, list):
            got = [float(row[f"prediction {k + 1}"]) for k in range(len(prediction))]
        else:
            got = _cell(row["prediction"], prediction)
        same(got, prediction, f"row {index + 1}")
        if case.proba:
            probabilities = [float(row[f"probability {c}"]) for c in want["classes"]]
            same(probabilities, want["probabilities"][index], f"row {index + 1} probabilities")


def _cell(text: str, like: Any) -> Any:
    """A scored CSV cell as the type of the model's answer."""
    if isinstance(like, bool):
        return {"True": True, "False": False}.get(text, text)
    if isinstance(like, int):
        return int(text)
    if isinstance(like, float):
        return float(text)
    return text


def test_the_form_with_missing_fields_left_empty(served: Served) -> None:
    case, want = served.case, served.want
    session = requests.Session()
    row = zoo.records(case)[0]
    values = {"text": row} if case.text else row
    model = requests.get(f"{served.url}/model", timeout=10).json()
    form = {"csrf_token": _page_token(session, served.url)}
    for index, feature in enumerate(model["features"]):
        value = values[feature["name"]]
        form[f"f{index}"] = "" if value is None else str(value)
    page = session.post(f"{served.url}/", data=form, timeout=30)
    assert page.status_code == 200, re.findall(r'class="field-error"[^>]*>([^<]+)<', page.text)
    shown = re.search(r'<strong id="prediction">([^<]*)</strong>', page.text)
    assert shown, page.text[:2000]
    first = want["predictions"][0]
    expected = ", ".join(str(v) for v in first) if isinstance(first, list) else str(first)
    assert shown.group(1) == expected


def test_model_describes_what_it_takes(served: Served) -> None:
    case = served.case
    model = requests.get(f"{served.url}/model", timeout=10).json()
    names = [f["name"] for f in model["features"]]
    assert names == _columns(case)
    assert model["text_input"] is case.text
    assert model["score_method"] == case.scores
    if isinstance(served.want["predictions"][0], list):
        assert model["n_outputs"] == len(served.want["predictions"][0])
    kinds = {f["name"]: f["kind"] for f in model["features"]}
    if case.kinds is not None:  # read through the model's wrappers (issue 22)
        assert kinds == case.kinds
    missing = {f["name"]: f["missing"] for f in model["features"]}
    if case.name == "text_pipeline":
        assert kinds == {"text": "string"} and missing == {"text": "refused"}
    if case.name in ("imputer_pipeline", "array_with_nan", "lightgbm_category"):
        assert set(missing.values()) == {"accepted"}, missing
    if case.name == "bool_pipeline":
        assert kinds["member"] == "bool"
    if case.name == "lightgbm_category":
        plan = next(f for f in model["features"] if f["name"] == "plan")
        assert plan["dtype"] == "category" and plan["categories"] == ["basic", "plus", "pro"]


def test_mcp_tool_calls(served: Served) -> None:
    """Each row as an assistant sends it to the model's tool (issue 27): the arguments valid
    against the tool's input schema, the answer against its output schema, and the same
    prediction and probabilities as the model's own."""
    from jsonschema import Draft202012Validator

    case, want = served.case, served.want
    listed = requests.post(
        f"{served.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=30
    ).json()["result"]["tools"]
    assert len(listed) == 1
    tool = listed[0]
    arguments = Draft202012Validator(tool["inputSchema"])
    answers = Draft202012Validator(tool["outputSchema"])
    rows = zoo.records(case)
    properties = tool["inputSchema"]["properties"].items()
    numbers = {n for n, p in properties if p.get("type") in ("number", ["number", "null"])}
    for index, row in enumerate(rows):
        given = {"text": row} if case.text else row
        # where the model takes a bool column as numbers (boosting), an assistant reading
        # the schema sends 1 or 0, not true or false (the service takes both)
        given = {k: int(v) if type(v) is bool and k in numbers else v for k, v in given.items()}
        arguments.validate(given)
        call = {"name": tool["name"], "arguments": given}
        body = {"jsonrpc": "2.0", "id": index, "method": "tools/call", "params": call}
        result = requests.post(f"{served.url}/mcp", json=body, timeout=30).json()["result"]
        assert not result.get("isError"), result
        answer = result["structuredContent"]
        answers.validate(answer)
        same(answer["prediction"], want["predictions"][index], f"row {index}")
        if case.proba:
            chances = [answer["probabilities"][str(c)] for c in want["classes"]]
            same(chances, want["probabilities"][index], f"row {index} probabilities")


def test_winserve_check_says_ok_for_what_it_serves(served: Served) -> None:
    """``winserve check`` runs the same load and sample prediction (issue 22: never OK for a
    model that refuses a real row, and no model here does)."""
    if not served.args:
        pytest.skip("served by a module that does not say how")
    done = subprocess.run(
        [sys.executable, "-m", "winserve", "check", *served.args],
        cwd=served.folder,
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.rstrip().splitlines()[-1].startswith("OK: the model loads and predicts")
