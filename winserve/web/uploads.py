"""Image files uploaded to ``POST /predict`` as ``multipart/form-data`` (issue 24).

A view asks ``bodies.is_upload`` first. Each file field is named after the model's image
input; several files under one name are several rows. The body is read within ``max_body_mb``
first (``bodies.raw_bytes``), then parsed by werkzeug's own multipart parser from memory with
the same limits, so an upload costs no more than a JSON body of its size. The files' bytes go
to the model host untouched: images are decoded there (``winserve.host.images``), never in the
web process.
"""

from __future__ import annotations

import io

from flask import Request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser

from winserve.errors import BadRequest, PayloadTooLarge
from winserve.web.bodies import raw_bytes

MAX_PARTS = 1000  # fields and files in one upload


def files(request: Request, max_bytes: int) -> dict[str, list[bytes]]:
    """The uploaded files' bytes, by field name; text fields are refused (say what to send)."""
    raw = raw_bytes(request, max_bytes)
    parser = FormDataParser(
        max_form_memory_size=max_bytes, max_content_length=max_bytes, max_form_parts=MAX_PARTS
    )
    try:
        _, form, uploaded = parser.parse(
            io.BytesIO(raw), "multipart/form-data", len(raw), dict(request.mimetype_params)
        )
    except RequestEntityTooLarge:
        raise PayloadTooLarge(
            f"the upload is larger than the {max_bytes} bytes allowed (setting: max_body_mb)"
        ) from None
    except ValueError as exc:
        raise BadRequest(f"the multipart body could not be read: {exc}") from None
    if form:
        name = next(iter(form))
        raise BadRequest(
            f"the upload has a text field {name[:60]!r}: upload image files, each in a field "
            'named after the model\'s input, or send tensors as JSON ({"inputs": {...}})'
        )
    found: dict[str, list[bytes]] = {}
    try:
        for name in uploaded:
            found[name] = [storage.read() for storage in uploaded.getlist(name)]
    finally:
        for _, storage in uploaded.items(multi=True):  # large parts are spooled to files
            storage.close()
    if not found:
        raise BadRequest("the upload has no file: send an image in a field named after the input")
    return found
