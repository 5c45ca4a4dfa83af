"""``/openapi.json`` describes ``POST /jobs`` as the served model takes it (issue 24): a CSV file
or an Excel workbook for a model of columns, a ZIP of images or several image files for a
model of one image input; and the upload the document describes is the one the server takes
(each is sent as described and answered 202, scored as the page's would be)."""

from __future__ import annotations

import io
import tomllib
import zipfile
from typing import Any

import pytest
from openapi_spec_validator import validate

from tests import tensor_graphs as tg
from tests.helpers import job_ended, jobs_client
from winserve.model_info import ModelSpec

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("PIL")

PROGRAM = {"X-Winserve-Client": "tests"}  # a program's upload: no form value (issue 27)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _jobs_post(document: dict[str, Any], path: str = "/jobs") -> dict[str, Any]:
    post: dict[str, Any] = document["paths"][path]["post"]
    return post


def _form(post: dict[str, Any]) -> tuple[dict[str, Any], str]:
    form = post["requestBody"]["content"]["multipart/form-data"]
    return form["schema"]["properties"], form["encoding"]["file"]["contentType"]


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = tg.write(tmp_path_factory.mktemp("openapi-jobs"), "digits", tg.digits_graph(), "")
    path.with_suffix(".toml").write_text(tg.DIGITS_CARD, encoding="utf-8")
    inputs = tomllib.loads(tg.DIGITS_CARD)["inputs"]
    return jobs_client(ModelSpec(path=str(path), inputs=inputs))


def test_a_model_of_images_takes_a_zip_or_image_files(images: Any) -> None:
    document = images.get("/openapi.json").json
    validate(document)
    post = _jobs_post(document)
    properties, media = _form(post)
    assert "ZIP of images" in post["summary"]
    assert list(properties) == ["file"]  # no rows, sheet or explain: not a table
    assert properties["file"]["oneOf"][1]["type"] == "array"  # the field repeated
    assert media.startswith("application/zip") and "image/png" in media
    assert _form(_jobs_post(document, "/models/digits/jobs"))[1] == media
    result = document["paths"]["/jobs/{job_id}/result.csv"]["get"]["summary"]
    assert "images" in result

    pngs = [tg.digit_png(i) for i in (1, 2, 3)]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as packed:
        for i, png in enumerate(pngs):
            packed.writestr(f"{i}.png", png)
    sent = [
        {"file": (io.BytesIO(archive.getvalue()), "digits.zip")},  # one ZIP
        {"file": [(io.BytesIO(png), f"{i}.png") for i, png in enumerate(pngs)]},  # files
    ]
    for data in sent:
        answer = images.post("/jobs", data=data, headers=PROGRAM)
        assert answer.status_code == 202, answer.text
        status = job_ended(images, answer.json["status_url"], headers=PROGRAM)
        assert (status["state"], status["scored_rows"]) == ("done", 3), status


def test_a_model_of_columns_takes_a_csv_file_or_a_workbook() -> None:
    client = jobs_client()  # tests.models:chaos, columns a and b
    document = client.get("/openapi.json").json
    validate(document)
    post = _jobs_post(document)
    properties, media = _form(post)
    assert post["summary"] == "Score a CSV file or an Excel workbook in the background"
    assert list(properties) == ["file", "rows", "sheet", "explain"]
    assert "ZIP" not in str(properties) and media == f"text/csv, {XLSX}"


def test_while_the_model_loads_either_upload_is_described() -> None:
    from winserve.web.openapi import jobs

    post = jobs.paths(None)["/jobs"]["post"]
    properties, media = _form(post)
    assert "a ZIP of images" in post["summary"] and "Excel workbook" in post["summary"]
    assert "text/csv" in media and "application/zip" in media and "sheet" in properties
