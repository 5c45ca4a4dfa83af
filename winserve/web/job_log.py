"""A CSV job in the prediction log (issue 26): when a job is started from the web, the log (if
on) follows it; when it ends, its summary and a sample of its rows go to the log.

::

    POST /jobs (jobs_pages.create_job) ─► follow(job, info): who asked, which version, and a
        predlog.jobs.Reservoir on the job (the job thread's RowScorer feeds it)
    the job's end (scoring/jobs.py, the job's thread) ─► the callback made here:
        the job's entry (summary + sample: a row of the requests table, kind 'job')
        and its summary as an event (the monitor page's timeline), through the log's queue

Images and tensors are not sampled (the log does not store them for requests either); the
summary is logged for every job.
"""

from __future__ import annotations

import time

from flask import current_app, request

from winserve.load_progress import duration_text
from winserve.model_info import ModelInfo
from winserve.predlog import events
from winserve.predlog.jobs import Reservoir
from winserve.predlog.writer import PredictionLog
from winserve.scoring.job import ScoringJob
from winserve.web import auth, held
from winserve.web.prediction_log import KEY

NOT_SAMPLED = ("image", "tensor")


def follow(job: ScoringJob, info: ModelInfo) -> None:
    """Log ``job`` when it ends (nothing with the log off)."""
    plog: PredictionLog | None = current_app.extensions.get(KEY)
    if plog is None:
        return
    model = held.held()
    name, version, sha256 = model.name, model.version, model.sha256 or None
    environ = request.environ
    rule = request.url_rule
    route = rule.rule if rule is not None else "/jobs"
    caller = environ.get("REMOTE_ADDR")
    token_name = auth.caller_of(environ, auth.TOKENS in current_app.extensions).name
    features = info.features
    if features and not any(f.kind in NOT_SAMPLED for f in features):
        job.log_sample = Reservoir(
            [f.name for f in features], [f.kind == "number" for f in features]
        )

    def ended(job: ScoringJob) -> None:
        now = time.time()
        sample = job.log_sample if job.log_sample is not None else Reservoir([], [])
        plog.event(
            sample.record(
                time=now,
                request_id=job.request_id or "-",
                model=name,
                version=version,
                sha256=sha256,
                route=route,
                caller=caller,
                token_name=token_name,
                seconds=job.seconds,
                status=200 if job.state == "done" else 500,
                n_rows=job.done_rows,
                keep_inputs=plog.keep_inputs,
            )
        )
        said = (
            f"{job.filename}: {job.done_rows:,} rows, {job.problem_count:,} not scored, "
            f"{duration_text(job.seconds)}"
        )
        if job.state != "done":
            said += f"; failed: {job.error}"
        plog.event((events.MARK, now, name, version, sha256, "job", said))

    job.on_end = ended
