"""The contract every served model is held to, as base classes of tests subclassed per format
(the pattern of pandas' ``tests/extension/base``; issue 23).

A module that serves models some way (joblib files of the zoo, ONNX graphs, skops files, MLflow
folders, compiled models, Ray) provides a ``served`` fixture that yields one ``Served`` per
case (a real server, the case, and the model's own in-process answers on the case's rows), and
subclasses a contract class; pytest runs the class's tests there, once per case of that fixture:

    tests/test_onnx.py                    tests/contracts.py
    served  ──Served(case, url, want)──►  class TestContract(FormatContract)
                                              ├─ ProtocolContract: /predict, /invocations,
                                              │  /v2 …/infer, the page's CSV scoring
                                              └─ + the page's form, GET /model

Each answer is compared with the model's own (labels exactly, with their JSON type;
probabilities and scores to 1e-9). Missing values travel as JSON ``null``, empty CSV cells
and empty form fields. The base classes' names do not start with ``Test``: pytest collects
only the subclasses.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests import zoo
from tests.helpers import csrf_token, job_ended

TOLERANCE = 1e-9


@dataclass
class Served:
    """One case served by a real server: what the contract's tests are given."""

    case: zoo.Case
    url: str
    want: dict[str, Any]  # the model's own in-process answers on the case's rows
    args: list[str] = field(default_factory=list)  # what serves it: the file, or --factory …
    folder: Path | None = None


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


def _page_token(session: requests.Session, url: str) -> str:
    return csrf_token(session.get(f"{url}/", timeout=10).text)


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


def _cell(text: str, like: Any) -> Any:
    """A scored CSV cell as the type of the model's answer."""
    if isinstance(like, bool):
        return {"True": True, "False": False}.get(text, text)
    if isinstance(like, int):
        return int(text)
    if isinstance(like, float):
        return float(text)
    return text


class ProtocolContract:
    """Every protocol and the page's CSV scoring answer as the model does: the tests a
    subclass runs on its module's ``served`` fixture (one ``Served`` per case)."""

    def test_predict_in_every_native_shape(self, served: Served) -> None:
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
            shapes = [
                [{"text": t} for t in rows],
                {"columns": ["text"], "data": [[t] for t in rows]},
            ]
        else:
            columns = _columns(case)
            data = [[row[c] for c in columns] for row in rows]
            shapes = [{"columns": columns, "data": data}, data]
        for shape in shapes:
            other = requests.post(f"{served.url}/predict", json=shape, timeout=30)
            assert other.status_code == 200, other.text
            same(other.json()["predictions"], want["predictions"], "predictions")

    def test_mlflow_invocations_json_and_csv(self, served: Served) -> None:
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

    def test_open_inference_protocol(self, served: Served) -> None:
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
        answer = requests.post(
            f"{served.url}/v2/models/{model['name']}/infer", json=body, timeout=30
        )
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

    def test_the_pages_csv_scoring(self, served: Served) -> None:
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
        status = job_ended(session, f"{served.url}{job}/status")
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


class FormatContract(ProtocolContract):
    """What a model file format is held to: the protocols (``ProtocolContract``), the page's
    form with missing fields left empty, and ``GET /model`` describing what the model takes."""

    def test_the_form_with_missing_fields_left_empty(self, served: Served) -> None:
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

    def test_model_describes_what_it_takes(self, served: Served) -> None:
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
