"""Scoring a whole file in the background (issue 27) in ``/openapi.json``: ``POST /jobs`` (a CSV
file or an .xlsx workbook), the sheet choice, a job's status and its scored file. No model
input: the path items are the same for every model."""

from __future__ import annotations

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
        "total_rows": {"type": "integer"},
        "done_rows": {"type": "integer"},
        "scored_rows": {"type": "integer"},
        "percent": {"type": "integer"},
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


def paths() -> Schema:
    """The page's form, also for programs, which carry ``Authorization: Bearer`` or
    ``X-Winserve-Client`` instead of the form's value (web/csrf.py ``program``)."""
    upload = {
        "type": "object",
        "properties": {
            "file": {"type": "string", "format": "binary", "description": "a CSV file or .xlsx"},
            "rows": {"type": "string", "description": "CSV text with a header line (or file)"},
            "sheet": {"type": "string", "description": "a workbook's sheet to score, by name"},
            "explain": {
                "type": "string",
                "enum": ["true", "false"],
                "description": "true: each row's 3 main reasons as columns 'reason 1'..'reason 3' "
                "(a model with a reference sample; 409 without one; files of at most 1,000 rows)",
            },
        },
    }
    results = [("csv", "text/csv"), ("xlsx", XLSX)]
    return {
        "/jobs": {
            "post": {
                "summary": "Score a CSV file or an Excel workbook in the background",
                "description": "For programs: send 'Authorization: Bearer <token>' when a token "
                "is set, else the header 'X-Winserve-Client: 1' (an HTML form cannot send "
                "either, so the page's CSRF value is not needed). Answers 202 with the job's "
                "URLs and a Location header (its status). Each scored row gets a 'request id' "
                "column: this request's X-Request-Id and the row's number.",
                "tags": ["jobs"],
                "requestBody": {
                    "required": True,
                    "content": {"multipart/form-data": {"schema": upload}},
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
                f"A finished job's scored file (.{kind} for a {kind} upload)",
                ok({"type": "string", "format": "binary"}, media=media),
                NATIVE_ERROR,
                "jobs",
                parameters=[JOB_ID],
            )
            for kind, media in results
        },
    }
