"""``/openapi.json`` is a valid OpenAPI document naming the live model's columns, and a
schemathesis fuzz built from it finds no server error on a real server."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from tests.conftest import diabetes_with_text
from tests.helpers import local_client, running_server
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
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
        health = server.url
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "16 operations" not in result.stdout, health
