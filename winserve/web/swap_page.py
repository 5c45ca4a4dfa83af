"""The checked swap on the model's page (issue 26): the disagreeing rows as CSV, and the owner's
button that swaps in a new version the check refused.

::

    GET  /swap/disagreements.csv (and /models/<name>/…) ─► DataPlane.disagreements(name)
         ─► origin, the inputs, each version's answer, their difference (the owner's,
            ``auth.owner_only``, as /log.csv: the rows are colleagues' inputs)
    POST /swap/force (the owner's; the page's form, CSRF, or a program) ─► DataPlane.force_swap
         ─► 303 back to the page (a program: {"version": N}); 409 when no refused version waits

Both are on the page's blueprint (``page.bp``): their errors are pages, as the form's are.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime

from flask import Response, jsonify, redirect, stream_with_context
from flask.typing import ResponseReturnValue

from winserve.dataplane import DisagreeingRows
from winserve.errors import NotFound, WinserveError
from winserve.spreadsheet import safe_text
from winserve.web import auth, csrf, held
from winserve.web.page import bp, for_program


class Conflict(WinserveError):
    status = 409
    code = "conflict"


def _cell(value: object) -> object:
    """What a colleague sent (a text) never opens as a live formula, as in /log.csv."""
    if value is None:
        return ""
    return safe_text(value) if isinstance(value, str) else value


def _lines(rows: DisagreeingRows) -> Iterator[str]:
    """The CSV, a line at a time (at most a few thousand rows)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")  # Excel's line end (as scored CSVs)
    for line in (rows.header, *rows.rows):
        writer.writerow([_cell(v) for v in line])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


@bp.get("/swap/disagreements.csv")
@auth.owner_only
def disagreements_csv() -> ResponseReturnValue:
    """The rows the last checked swap of this model answered differently."""
    name = held.held().name  # 404 for a model not served
    rows = held.plane().disagreements(name)
    if rows is None:
        raise NotFound(f"no checked swap of {name} has disagreeing rows to show")
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    filename = f"{name}-v{rows.new_version}-vs-v{rows.old_version}-disagreements-{stamp}.csv"
    return Response(
        stream_with_context(_lines(rows)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.post("/swap/force")
@auth.owner_only
def force_swap() -> ResponseReturnValue:
    """The owner's word: the new version the check refused serves now."""
    csrf.check_form_or_program()
    name = held.held().name  # 404 for a model not served
    plane = held.plane()
    reason = plane.force_swap(name)
    if reason:
        raise Conflict(f"{name} was not swapped: {reason}")
    if for_program():
        return jsonify({"model": name, "version": plane.describe(name).version})
    return redirect(f"{held.base()}/", code=303)
