"""The page's image field (issue 24): a model whose inputs are images gets a file picker (drag
and drop and paste by ``static/images.js``) in place of the form's columns, and its answer as
the top classes with bars, rendered by the server::

    browser ─ multipart POST {model}/image (a file per image input, the CSRF field)
       ─► ui.predict_image ─► files_of(info): each input's file, its bytes untouched
       ─► Held.check / predict_prepared (decoded and prepared in the model host, as /predict's
          uploads are: winserve.host.images) ─► answer(): top classes, the image shown back

The web process never decodes an image: the preview shown with the answer is the uploaded
file itself as a ``data:`` URL (the page's CSP allows ``img-src data:``), and only for the
formats every browser shows, recognised by their first bytes.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from flask import request

from winserve import card as cards
from winserve.errors import BadRequest
from winserve.model_info import Feature, ModelInfo
from winserve.scoring import images as image_jobs
from winserve.scoring.job import ScoringJob
from winserve.scoring.jobs import JobManager

takes_images = image_jobs.takes_images

TOP = 5  # classes shown with bars: an ImageNet model has 1,000 (issue 24: top-k on the page)
PREVIEW_BYTES = 4 * 1024 * 1024  # a larger file is scored but not shown back in the page
# the first bytes of the formats a browser shows in <img>, as the page's preview's type
SHOWN = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)


@dataclass(frozen=True)
class ImageField:
    """One image input's file picker (``image0``, ``image1``, … in the form)."""

    name: str
    label: str
    help: str
    field: str


@dataclass(frozen=True)
class TopClass:
    label: str
    probability: float
    top: bool


@dataclass(frozen=True)
class ImageAnswer:
    prediction: str
    bars: list[TopClass]
    of_classes: int  # how many classes the model has (the bars show the TOP of them)
    previews: list[tuple[str, str]]  # (label, data: URL) of each input's file shown back
    milliseconds: float


def fields(card: cards.ModelCard, info: ModelInfo | None) -> list[ImageField]:
    """The file pickers of a model whose every input is an image; none otherwise."""
    if info is None or not info.features or any(f.kind != "image" for f in info.features):
        return []
    shown = []
    for index, feature in enumerate(info.features):
        doc = card.features.get(feature.name, cards.FeatureDoc())
        shown.append(
            ImageField(feature.name, doc.label or _label(info, feature), doc.help, f"image{index}")
        )
    return shown


def _label(info: ModelInfo, feature: Feature) -> str:
    return "Image" if len(info.features) == 1 else f"Image ({feature.name})"


def files_of(info: ModelInfo) -> dict[str, list[bytes]]:
    """Each image input's uploaded file, by input name; a 400 naming the input left empty."""
    found: dict[str, list[bytes]] = {}
    for index, feature in enumerate(info.features):
        upload = request.files.get(f"image{index}")
        data = upload.read() if upload is not None else b""
        if upload is not None:
            upload.close()
        if not data:
            which = "" if len(info.features) == 1 else f" for {feature.name!r}"
            raise BadRequest(f"choose an image file{which} (PNG, JPEG, …), then Predict")
        found[feature.name] = [data]
    return found


def preview(data: bytes) -> str:
    """The file as a ``data:`` URL for the page, or "" (a format browsers may not show)."""
    if len(data) > PREVIEW_BYTES:
        return ""
    for magic, mimetype in SHOWN:
        if data.startswith(magic):
            return f"data:{mimetype};base64,{base64.b64encode(data).decode('ascii')}"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "data:image/webp;base64," + base64.b64encode(data).decode("ascii")
    return ""


def answer(
    card: cards.ModelCard,
    info: ModelInfo,
    files: dict[str, list[bytes]],
    prediction: Any,
    probabilities: list[float] | None,
    milliseconds: float,
) -> ImageAnswer:
    """The answer as the page shows it: the class, the TOP classes by probability (a
    tensor model's too, with no files: ``web.tensor_page``)."""
    bars: list[TopClass] = []
    if probabilities:
        ranked = sorted(zip(info.classes, probabilities, strict=False), key=lambda cp: -cp[1])
        best = ranked[0][1] if ranked else 0.0
        bars = [TopClass(card.class_name(c), float(p), p == best) for c, p in ranked[:TOP]]
    if isinstance(prediction, list):  # several outputs: one value each
        shown = ", ".join(str(p) for p in prediction)
    else:
        shown = card.class_name(prediction) if info.classes else str(prediction)
    by_name = {f.name: f for f in fields(card, info)}
    previews = [
        (by_name[name].label if name in by_name else name, preview(data[0]))
        for name, data in files.items()
    ]
    return ImageAnswer(shown, bars, len(info.classes), previews, milliseconds)


def new_job(jobs: JobManager, size: int) -> ScoringJob:
    """The batch form's (or a program's) upload for a model that takes an image: a ZIP of
    images, or image files, packed into one ZIP (``scoring.images``); ``start`` it."""
    uploads = [f for f in request.files.getlist("file") if f.filename]
    if not uploads:
        raise BadRequest("choose a ZIP of images, or image files")
    files = [(f.filename or "", f.stream) for f in uploads]
    job = jobs.new(image_jobs.upload_names(files), size)
    job.images = True
    jobs.save(job, lambda path: image_jobs.pack(files, path))  # a failed write frees it
    return job
