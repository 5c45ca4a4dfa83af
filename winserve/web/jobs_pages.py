"""CSV scoring pages (issue 23: split from ui.py): an upload (a file, pasted rows, a
workbook, or for a model of images a ZIP of images: ``image_page.new_job``, issue 24) becomes
a job of the version serving now, and that version keeps it to the end.

::

    POST /jobs ─► the held version's JobManager: new, save, start ─► 303 to the job's page,
                  or 202 + links (status, result, page) for a program (page.for_program)
    GET  /jobs/<id>, /status, /result.csv|.xlsx, POST /sheet ─► the version that holds the
                  job (it may have drained since): jobs_of(name, id)

The routes are on the pages' blueprint (``page.bp``), under /models/<name> too.
"""

from __future__ import annotations

from flask import current_app, jsonify, redirect, render_template, request, send_file
from flask.typing import ResponseReturnValue

from winserve.dataplane import JobsOf
from winserve.errors import BadRequest, ModelUnavailable, PayloadTooLarge, WinserveError
from winserve.scoring import reasons
from winserve.scoring.job import ScoringJob
from winserve.scoring.jobs import JobManager
from winserve.web import csrf, held, image_page, job_log, observe
from winserve.web.page import bp, for_program, model_state

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class JobFailed(WinserveError):
    """A failed job's result asked for: it will never have one (a new user's trial: it read
    "has not finished", 400, and the client polled on). 409: the request is sound, the job's
    state refuses it; the message carries the status's reason."""

    status = 409
    code = "job_failed"


def _jobs() -> JobManager:
    return held.held().jobs


def _job_owner(job_id: str) -> JobsOf:
    """The version that holds this job: it finishes there, even after a newer one serves."""
    return held.plane().jobs_of(held.held().name, job_id)


def _job_links(job: ScoringJob) -> dict[str, str]:
    where = request.host_url.rstrip("/") + f"{held.base()}/jobs/{job.id}"
    return {
        "id": job.id,
        "status_url": f"{where}/status",
        "result_url": f"{where}/result.{job.kind}",
        "page_url": where,
    }


@bp.post("/jobs")
def create_job() -> ResponseReturnValue:
    # a program's upload needs no form value: it carries a header no form can send (#27)
    csrf.check_form_or_program()
    info, _ = model_state()
    if info is None:
        raise ModelUnavailable("the model is not loaded yet; try again in a few seconds")
    limit = current_app.config["WINSERVE_SETTINGS"].max_csv_bytes
    upload = request.files.get("file")
    pasted = request.form.get("rows", "")
    jobs = _jobs()
    explain = reasons.asked(request.form.get("explain", ""))  # top 3 reasons a row (#25)
    size = request.content_length or 0  # the free-space check's estimate (issue 28)
    if image_page.takes_images(info):  # a ZIP of images, or image files (issue 24)
        job = image_page.new_job(jobs, size)
    elif upload is not None and upload.filename:
        job = jobs.new(upload.filename, size)
        job.sheet = request.form.get("sheet", "").strip()  # a workbook's, by name (issue 27)
        jobs.save(job, upload.save)  # a failed write frees the job's place (issue 28)
    elif pasted.strip():
        job = jobs.new("pasted rows.csv", size)
        jobs.save(job, lambda path: path.write_text(pasted, encoding="utf-8", newline=""))
    else:
        raise BadRequest("choose a CSV file, or paste rows with a header line")
    if job.source.stat().st_size > limit:
        jobs.discard(job)
        raise PayloadTooLarge(
            f"the file is larger than the {limit // (1024 * 1024)} MB allowed (setting: max_csv_mb)"
        )
    job.request_id = observe.request_id()  # each scored row's id starts with it (issue 27)
    job_log.follow(job, info)  # its summary and a sample of its rows, to the log (issue 26)
    jobs.start(job, explain=explain)
    return _accepted(job)


def _accepted(job: ScoringJob) -> ResponseReturnValue:
    """A job begun: 202 with its links for a program, else the job's page (303)."""
    if for_program():
        links = _job_links(job)
        response = jsonify(links)
        response.status_code = 202
        response.headers["Location"] = links["status_url"]
        return response
    return redirect(f"{held.base()}/jobs/{job.id}", code=303)


@bp.get("/jobs/<job_id>")
def job_page(job_id: str) -> ResponseReturnValue:
    owner = _job_owner(job_id)
    job = owner.jobs.get(job_id)
    info, health = model_state()
    return render_template(
        "job.html", job=job, info=info, health=health, card=owner.card, job_version=owner.version
    )


@bp.post("/jobs/<job_id>/sheet")
def choose_sheet(job_id: str) -> ResponseReturnValue:
    """A workbook's sheet, picked from the job page's list (issue 27): the job scores it."""
    csrf.check_form_or_program()
    owner = _job_owner(job_id)
    job = owner.jobs.get(job_id)
    owner.jobs.choose(job, request.form.get("sheet", ""))
    return _accepted(job)


@bp.get("/jobs/<job_id>/status")
def job_status(job_id: str) -> ResponseReturnValue:
    owner = _job_owner(job_id)
    return jsonify({**owner.jobs.get(job_id).status(), "model_version": owner.version})


@bp.get("/jobs/<job_id>/result.csv")
@bp.get("/jobs/<job_id>/result.xlsx")  # a workbook's (issue 27)
def job_result(job_id: str) -> ResponseReturnValue:
    job = _job_owner(job_id).jobs.get(job_id)
    if job.state == "failed":
        raise JobFailed(f"this job failed, so it has no result: {job.error}")
    if job.state != "done":
        raise BadRequest("this job has not finished; its result is not ready")
    mimetype = XLSX_TYPE if job.kind == "xlsx" else "text/csv"
    return send_file(
        job.result, mimetype=mimetype, as_attachment=True, download_name=job.result_name
    )
