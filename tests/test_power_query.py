"""The API page's Power Query (M) recipe (issue 27): read from the page as a user copies it,
then the request it builds (its URL, headers and JSON body, as Power Query's
``Json.FromValue(Table.ToRecords(Table.SelectColumns(...)))`` writes it) is sent to a real
server, and the columns it adds are checked against the model's own answers."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
import pytest
import requests

from tests.conftest import iris_frame
from tests.helpers import jobs_client, running_server
from winserve.model_info import Feature, ModelInfo
from winserve.web import powerquery

M_TEXT = re.compile(r'"((?:[^"]|"")*)"')


def m_texts(source: str) -> list[str]:
    """The M text literals in ``source``, unquoted."""
    return [t.replace('""', '"') for t in M_TEXT.findall(source)]


def request_of(snippet: str, token: str = "") -> tuple[str, list[str], dict[str, str]]:
    """What the query sends: its URL, the columns it selects, its headers (the token pasted
    where the snippet says)."""
    url_line = re.search(r"^    Url = (.*),$", snippet, re.M)
    columns_line = re.search(r"^    Columns = \{(.*)\},$", snippet, re.M)
    assert url_line and columns_line, snippet
    headers = {"Content-Type": "application/json"}
    assert '[Headers = [#"Content-Type" = "application/json"' in snippet
    if "Token = " in snippet:
        assert f'Token = "{powerquery.TOKEN_PLACEHOLDER}"' in snippet
        assert 'Authorization = "Bearer " & Token' in snippet
        headers["Authorization"] = "Bearer " + token
    assert "Content = Body" in snippet  # Web.Contents with Content: a POST
    body_step = "Body = Json.FromValue(Table.ToRecords(Table.SelectColumns(Source, Columns)))"
    assert body_step in snippet
    return m_texts(url_line.group(1))[0], m_texts(columns_line.group(1)), headers


def json_from_value(table: pd.DataFrame, columns: list[str]) -> bytes:
    """``Json.FromValue(Table.ToRecords(Table.SelectColumns(table, columns)))``: a JSON array
    of one object per row, keys in the order selected, numbers as numbers, no spaces."""
    records = [dict(zip(columns, row, strict=True)) for row in table[columns].itertuples(False)]
    return json.dumps(records, separators=(",", ":")).encode()


def scored(table: pd.DataFrame, answer: dict[str, Any]) -> pd.DataFrame:
    """The query's ``Scored`` step: the table, then "prediction", then one column per class."""
    out = table.copy()
    out["prediction"] = answer["predictions"]
    for index, label in enumerate(answer.get("classes", [])):
        out[f"probability {label}"] = [row[index] for row in answer["probabilities"]]
    return out


def snippet_on_page(page: str) -> str:
    found = re.search(r"<h3>Power Query \(M\)</h3>\s*<pre><code>(.*?)</code></pre>", page, re.S)
    assert found, "the API page has no Power Query snippet"
    return html.unescape(found.group(1))


def test_column_names_survive_m_quoting() -> None:
    names = ('say "hi"', "tenure (months)", "naïve", "a,b")
    info = ModelInfo(
        name="m",
        model_type="X",
        task="regression",
        features=tuple(Feature(n) for n in names),
        feature_names_known=True,
    )
    snippet = powerquery.snippet(info, "http://127.0.0.1:8000/predict", token=False)
    url, columns, headers = request_of(snippet)
    assert columns == list(names) and url == "http://127.0.0.1:8000/predict"
    assert "Authorization" not in headers and "probabilities" not in snippet


def test_the_api_page_gives_the_snippet_for_this_model() -> None:
    client = jobs_client()
    page = client.get("/api").get_data(as_text=True)
    url, columns, _ = request_of(snippet_on_page(page))
    assert url == "http://localhost/predict" and columns == ["a", "b"]
    assert "Blank Query" in page and "Organizational" in page


@pytest.mark.server
@pytest.mark.spawn
@pytest.mark.timeout(180)
def test_the_request_the_snippet_builds_scores_the_table(iris_forest: Path, tmp_path: Path) -> None:
    token = "excel-token-1234"
    model = joblib.load(iris_forest)
    x, _ = iris_frame()
    # the user's table: an id column the model does not take, its inputs in another order
    table = x.iloc[::10, ::-1].reset_index(drop=True)
    table.insert(0, "flower id", [f"F{i}" for i in range(len(table))])
    with running_server([str(iris_forest), "--token", token], cwd=tmp_path) as server:
        page = requests.get(
            f"{server.url}/api", headers={"Authorization": f"Bearer {token}"}, timeout=10
        ).text
        url, columns, headers = request_of(snippet_on_page(page), token)
        assert url == f"{server.url}/predict?proba=true"
        body = json_from_value(table, columns)
        answer = requests.post(url, data=body, headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
        without = requests.post(url, data=body, timeout=30)
        assert without.status_code == 401  # the snippet's header is what lets it in

    out = scored(table, answer.json())
    inputs = table[list(model.feature_names_in_)]
    assert list(out.columns[: len(table.columns)]) == list(table.columns)
    assert list(out["prediction"]) == list(model.predict(inputs))
    for index, label in enumerate(model.classes_):
        expected = model.predict_proba(inputs)[:, index]
        assert out[f"probability {label}"].to_numpy() == pytest.approx(expected, abs=1e-12)
