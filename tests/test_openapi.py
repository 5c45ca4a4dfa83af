"""``/openapi.json`` is a valid OpenAPI document naming the live model's columns, and a
schemathesis fuzz built from it finds no server error on a real server."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import joblib
import pandas as pd
import pytest
import requests
from openapi_spec_validator import validate

from tests.conftest import diabetes_with_text, iris_frame
from tests.helpers import jobs_client, local_client, running_server
from winserve.model_info import ModelSpec


def test_document_is_valid_and_names_the_columns(text_pipeline: Path) -> None:
    client = local_client(ModelSpec(str(text_pipeline)))
    document = client.get("/openapi.json").json
    validate(document)
    x, _ = diabetes_with_text()
    body = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    record = body["schema"]["oneOf"][1]
    assert list(record["properties"]) == list(x.columns)
    assert record["properties"]["sex"] == {
        "type": "string",
        "enum": ["female", "male"],
        "description": "sex (required: the model takes no missing value)",
    }  # its OneHotEncoder refuses unknown values, NaN among them
    assert record["properties"]["age"]["type"] == "number"  # the scaler refuses NaN too
    infer = document["paths"]["/v2/models/{model_name}/infer"]["post"]
    assert infer["parameters"][0]["schema"] == {"enum": [text_pipeline.stem]}
    assert "security" not in document


def test_document_declares_the_token_when_one_is_set() -> None:
    client = local_client(ModelSpec(factory="tests.models:chaos"), token="a-long-enough-token")
    document = client.get(
        "/openapi.json", headers={"Authorization": "Bearer a-long-enough-token"}
    ).json
    validate(document)
    assert document["security"] == [{"token": []}]


@pytest.mark.server
@pytest.mark.slow
def test_schemathesis_finds_no_server_error(text_pipeline: Path, tmp_path: Path) -> None:
    st = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert st, "schemathesis is part of the test extra"
    with running_server([str(text_pipeline)], cwd=tmp_path) as server:
        result = subprocess.run(
            [
                st,
                "run",
                f"{server.url}/openapi.json",
                "--checks",
                "not_a_server_error",
                "--max-examples",
                "25",
                "--request-timeout",
                "20",
                "--generation-deterministic",
                "--no-color",
                # not load/unload: an unload of the one model leaves a server that serves
                # nothing (/health 503, issue 23), and every later operation fuzzes that
                "--exclude-path-regex",
                "^/v2/repository/models/",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
        health = server.url
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "16 operations" not in result.stdout, health


# pages for people (HTML forms, CSRF), not the API; the monitor page's data is /monitor.json
PAGES = ("ui", "ui_model", "auth", "monitor_page", "monitor_page_model")
# the page's scoring of files, also for programs (issue 27)
JOBS_API = ("create_job", "choose_sheet", "job_status", "job_result")


def _template(path: str) -> str:
    """A route with its parameters' names left out: ``/v2/models/{}/infer``."""
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path)


def test_every_api_route_the_server_answers_is_described() -> None:
    """Walks the app's own routes: each one for programs is in the document (those under
    ``/models/<name>`` once per model served, with its name in the path), and the document
    describes no route the server does not have."""
    client = jobs_client()
    document = client.get("/openapi.json").json
    validate(document)
    names = client.application.extensions["winserve.models.registry"].names()
    assert names == ["chaos"]
    routes: set[tuple[str, str]] = set()
    for rule in client.application.url_map.iter_rules():
        blueprint, _, view = rule.endpoint.partition(".")
        if blueprint in PAGES and view not in JOBS_API:
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if rule.rule.startswith("/models/<"):
                routes |= {
                    (
                        method.lower(),
                        _template(rule.rule.replace(rule.rule.split("/")[2], n, 1)),
                    )
                    for n in names
                }
            else:
                routes.add((method.lower(), _template(rule.rule)))
    described = {
        (method, _template(path))
        for path, operations in document["paths"].items()
        for method in operations
    }
    assert routes - described == set(), "routes the document does not describe"
    assert described - routes == set(), "described routes the server does not have"
    body = document["paths"]["/models/chaos/predict"]["post"]["requestBody"]
    record = body["content"]["application/json"]["schema"]["oneOf"][1]
    assert list(record["properties"]) == ["a", "b"]


@pytest.mark.server
@pytest.mark.spawn
def test_a_folder_of_models_describes_each_models_routes(iris_forest: Path, tmp_path: Path) -> None:
    from sklearn.dummy import DummyRegressor

    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copyfile(iris_forest, folder / iris_forest.name)  # "iris forest": a space in the name
    frame = pd.DataFrame({"a": [0.0, 1.0], "b": [1.0, 0.0]})
    joblib.dump(
        DummyRegressor(strategy="constant", constant=7.0).fit(frame, [0, 0]),
        folder / "const.joblib",
    )
    with running_server([str(folder)], cwd=tmp_path) as server:
        document = requests.get(f"{server.url}/openapi.json", timeout=10).json()
        validate(document)
        paths = document["paths"]
        columns = {}
        for name in ("iris%20forest", "const"):
            body = paths[f"/models/{name}/predict"]["post"]["requestBody"]["content"]
            columns[name] = list(body["application/json"]["schema"]["oneOf"][1]["properties"])
            assert f"/models/{name}/invocations" in paths and f"/models/{name}" in paths
        assert columns == {"iris%20forest": list(iris_frame()[0].columns), "const": ["a", "b"]}
        infer = paths["/v2/models/{model_name}/infer"]["post"]["parameters"][0]
        assert infer["schema"] == {"enum": ["const", "iris forest"]}
        for path, operations in paths.items():
            if "get" in operations and "{" not in path:  # each one answers
                answer = requests.get(server.url + path, timeout=10)
                if answer.status_code == 404:  # a bare route: several models and no default
                    assert "setting: default_model" in answer.text, path
                    assert not path.startswith(("/models/", "/v2/")), path
                assert answer.status_code != 405, path
        answer = requests.post(
            f"{server.url}/models/const/predict", json=[{"a": 1, "b": 2}], timeout=10
        )
        assert answer.json() == {"predictions": [7.0]}
