"""Scoring a whole file in the background (issue 27) in ``/openapi.json``: ``POST /jobs`` (a CSV
file or an .xlsx workbook; for a model of one image input, a ZIP of images or several image
files: issue 24), the sheet choice, a job's status and its scored file. No model column: the
upload is described by what the model takes (a table, images, or either while it loads)."""

from __future__ import annotations

from winserve.model_info import ModelInfo
from winserve.scoring.images import takes_images
from winserve.web.openapi.common import NATIVE_ERROR, Schema, error, get, ok

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
JOB_LINKS: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "status_url": {"type": "string"},
        "result_url": {"type": "string"},
        "page_url": {"type": "string"},
    },
    "required": ["id", "status_url", "result_url"],
}
JOB_STATUS: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "state": {"enum": ["queued", "running", "done", "failed", "choose"]},
        "total_rows": {
            "type": "integer",
            "description": "the file's rows, known once it is read to its end (0 until then: "
            "the file is read once, as it is scored)",
        },
        "done_rows": {"type": "integer", "description": "rows written to the result so far"},
        "scored_rows": {"type": "integer", "description": "rows the model answered"},
        "percent": {"type": "integer", "description": "the share of the file's bytes read"},
        "seconds": {"type": "number", "description": "the job's time so far, or in all"},
        "file": {"type": "string", "description": "the uploaded file's name"},
        "read_as": {
            "type": "string",
            "description": "once done: how the file was read (separator, decimal mark, encoding)",
        },
        "problem_count": {"type": "integer"},
        "error": {"type": "string"},
        "request_id": {"type": "string"},
        "sheets": {
            "type": "array",
            "items": {"type": "string"},
            "description": "in state 'choose': the workbook's sheets, one to be named",
        },
        "model_version": {},
    },
}
JOB_ID: Schema = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
}


# the image files a ZIP may hold, or that may be sent instead of one (winserve.host.images)
IMAGES = "image/png, image/jpeg, image/gif, image/bmp, image/webp, image/tiff"
ONE_FILE: Schema = {"type": "string", "format": "binary"}
TABLE_FILE: Schema = {**ONE_FILE, "description": "a CSV file or an Excel workbook (.xlsx)"}
IMAGE_FILES: Schema = {
    "oneOf": [ONE_FILE, {"type": "array", "items": ONE_FILE}],
    "description": "a ZIP of images, or image files (the field repeated, one file each): "
    "scored into a CSV with a row per file (its name, the prediction, each class's "
    "probability, and why, for a file that is not an image)",
}
TABLE_PARTS: Schema = {
    "rows": {"type": "string", "description": "CSV text with a header line (or file)"},
    "sheet": {"type": "string", "description": "a workbook's sheet to score, by name"},
    "explain": {
        "type": "string",
        "enum": ["true", "false"],
        "description": "true: each row's 3 main reasons as columns 'reason 1'..'reason 3' "
        "(a model with a reference sample; 409 without one; files of at most 1,000 rows)",
    },
}


def _upload(info: ModelInfo | None) -> tuple[Schema, Schema, str]:
    """``POST /jobs``'s form for ``info``'s model: its schema, the file's media types, and the
    summary. A model of one image input takes images (issue 24); while the model loads,
    either is described."""
    if info is not None and takes_images(info):
        properties: Schema = {"file": IMAGE_FILES}
        media = f"application/zip, {IMAGES}"
        summary = "Score a ZIP of images (or image files) in the background, into a CSV"
    elif info is not None:
        properties = {"file": TABLE_FILE, **TABLE_PARTS}
        media = f"text/csv, {XLSX}"
        summary = "Score a CSV file or an Excel workbook in the background"
    else:  # loading: what the model takes is not known yet
        properties = {
            "file": {
                "oneOf": [ONE_FILE, {"type": "array", "items": ONE_FILE}],
                "description": "a CSV file or an Excel workbook (.xlsx); for a model that "
                "takes an image, a ZIP of images or image files (the field repeated)",
            },
            **TABLE_PARTS,
        }
        media = f"text/csv, {XLSX}, application/zip, {IMAGES}"
        summary = "Score a CSV file, an Excel workbook or a ZIP of images in the background"
    return {"type": "object", "properties": properties}, {"file": {"contentType": media}}, summary


def paths(info: ModelInfo | None = None) -> Schema:
    """The page's form, also for programs, which carry ``Authorization: Bearer`` or
    ``X-Winserve-Client`` instead of the form's value (web/csrf.py ``program``); the upload
    as ``info``'s model takes it (None: not known yet, while it loads)."""
    upload, encoding, summary = _upload(info)
    results = [
        ("csv", "text/csv", "a CSV upload, or images"),
        ("xlsx", XLSX, "a workbook"),
    ]
    return {
        "/jobs": {
            "post": {
                "summary": summary,
                "description": "For programs: send 'Authorization: Bearer <token>' when a token "
                "is set, else the header 'X-Winserve-Client: 1' (an HTML form cannot send "
                "either, so the page's CSRF value is not needed). Answers 202 with the job's "
                "URLs and a Location header (its status). Each scored row gets a 'request id' "
                "column: this request's X-Request-Id and the row's number.",
                "tags": ["jobs"],
                "requestBody": {
                    "required": True,
                    "content": {"multipart/form-data": {"schema": upload, "encoding": encoding}},
                },
                "responses": {
                    "202": ok(JOB_LINKS, "Accepted: the job is queued"),
                    "default": error(NATIVE_ERROR),
                },
            }
        },
        "/jobs/{job_id}/sheet": {
            "post": {
                "summary": "Score the sheet chosen for a workbook in state 'choose'",
                "tags": ["jobs"],
                "parameters": [JOB_ID],
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "properties": {"sheet": {"type": "string"}},
                                "required": ["sheet"],
                            }
                        }
                    },
                },
                "responses": {
                    "202": ok(JOB_LINKS, "Accepted: the job is queued"),
                    "default": error(NATIVE_ERROR),
                },
            }
        },
        "/jobs/{job_id}/status": get(
            "A scoring job's progress", ok(JOB_STATUS), NATIVE_ERROR, "jobs", parameters=[JOB_ID]
        ),
        **{
            f"/jobs/{{job_id}}/result.{kind}": get(
                f"A finished job's scored file (.{kind} for {upload})",
                ok({"type": "string", "format": "binary"}, media=media),
                NATIVE_ERROR,
                "jobs",
                parameters=[JOB_ID],
                description="400 while the job is queued or running; 409 'job_failed' when it "
                "failed, with the reason its status gives (it has no result).",
            )
            for kind, media, upload in results
        },
    }
