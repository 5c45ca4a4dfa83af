"""A ZIP of images (or several image files) scored into a CSV (issue 24), as a CSV job is.

::

    upload (web/jobs_pages.py): a .zip as it is, or the image files packed into one
        (``pack``) ──► input.csv (the job's upload, whatever its kind; JobManager.start marks
        the job ``images`` when the model takes an image) ──► score_images, a job thread:
    the ZIP's central directory ──► bounded before anything is decompressed: MAX_ENTRIES
        files (and max_csv_rows), MAX_TOTAL_BYTES declared uncompressed (zip bombs)
    each entry, in the ZIP's order ──► refused here with its reason (a folder's path with
        "..", an absolute path, encrypted, empty, over MAX_IMAGE_BYTES) or read, at most
        MAX_IMAGE_BYTES + 1 bytes whatever its header says ──► chunks of CHUNK_IMAGES files,
        or fewer once they hold CHUNK_FILE_BYTES ──► RowScorer.score, the same calls as a
        CSV's rows: the model host decodes each file (winserve.host.images) and isolates
        the ones that are not images, so each gets its own reason
    scored.csv: file, prediction, probability <class>…, error, request id; one row per file

Nothing is extracted to disk: each entry is read into memory, so a name with ``..`` could do
no harm here; it is still refused, with its reason, as a sign of a ZIP made to attack
extractors. A bad entry never stops the job; a ZIP past its bounds, or not a ZIP, fails it
with the reason before any model call. Progress is the share of entries read.
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO

from winserve.errors import BadRequest
from winserve.model_info import ModelInfo
from winserve.scoring import columns
from winserve.scoring.job import ScoringJob
from winserve.scoring.rows import Bounds, RowScorer
from winserve.spreadsheet import safe_text

MAX_ENTRIES = 100_000  # files in one ZIP (and never more than max_csv_rows)
MAX_TOTAL_BYTES = 2 << 30  # their declared uncompressed size: a zip bomb is refused unread
MAX_IMAGE_BYTES = 32 << 20  # one file: larger than any photo the model host would decode
CHUNK_IMAGES = 64  # files per model call: 64 images of 224 × 224 × 3 float32 are 38 MB
CHUNK_FILE_BYTES = 16 << 20  # or fewer once their files hold this much
ZIP_START = (b"PK\x03\x04", b"PK\x05\x06")  # a ZIP with entries, an empty one
SKIPPED = ("__MACOSX/",)  # macOS's resource forks: metadata of the files, not files

Entry = tuple[int, str, bytes]  # the file's number in the ZIP (from 1), its name, its bytes


def takes_images(info: ModelInfo) -> bool:
    """A model whose one input is an image: its batch scoring takes image files."""
    return len(info.features) == 1 and info.features[0].kind == "image"


def is_zip(head: bytes) -> bool:
    return head.startswith(ZIP_START)


def pack(files: list[tuple[str, IO[bytes]]], path: Path) -> None:
    """The upload at ``path``: one ZIP as it is; image files (one or several) stored, not
    compressed, in a ZIP under their names (a name given twice gets its number)."""
    if len(files) == 1:
        stream = files[0][1]
        if is_zip(stream.read(4)):
            stream.seek(0)
            with path.open("wb") as out:
                while block := stream.read(1 << 20):
                    out.write(block)
            return
        stream.seek(0)
    seen: set[str] = set()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as packed:
        for number, (name, stream) in enumerate(files, 1):
            shown = PurePosixPath(name.replace("\\", "/")).name or f"image {number}"
            if shown in seen:
                shown = f"{number} {shown}"
            seen.add(shown)
            with packed.open(shown, "w") as out:
                while block := stream.read(1 << 20):
                    out.write(block)


def _refused(info: zipfile.ZipInfo) -> str:
    """Why this entry is not read, or ""."""
    name = info.filename
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if ".." in parts:
        return "a path with '..' (outside the ZIP's folder): not read"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "an absolute path: not read"
    if info.flag_bits & 0x1:
        return "encrypted (the ZIP has a password): not read"
    if info.file_size == 0:
        return "an empty file"
    if info.file_size > MAX_IMAGE_BYTES:
        return (
            f"{info.file_size:,} bytes once decompressed, more than the {MAX_IMAGE_BYTES:,} "
            f"({MAX_IMAGE_BYTES >> 20} MB) one image may be: not read"
        )
    return ""


def _entries(archive: zipfile.ZipFile, bounds: Bounds) -> list[zipfile.ZipInfo]:
    """The files to score, in the ZIP's order, after the ZIP's bounds are checked."""
    files = [i for i in archive.infolist() if not i.is_dir() and not i.filename.startswith(SKIPPED)]
    most = min(MAX_ENTRIES, bounds.max_rows)
    if len(files) > most:
        raise BadRequest(
            f"the ZIP has {len(files):,} files, more than the {most:,} allowed "
            "(setting: max_csv_rows); split it"
        )
    total = sum(i.file_size for i in files)
    if total > MAX_TOTAL_BYTES:
        raise BadRequest(
            f"the ZIP's files are {total / 2**30:,.1f} GB once decompressed, more than the "
            f"{MAX_TOTAL_BYTES >> 30} GB allowed: split it (a ZIP this much smaller than its "
            "contents may be made to exhaust the server)"
        )
    if not files:
        raise BadRequest("the ZIP has no files: put the images to score in it")
    return files


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[bytes, str]:
    """The entry's bytes, or why it could not be read; never more than MAX_IMAGE_BYTES + 1,
    whatever size its header declares."""
    try:
        with archive.open(info) as entry:
            data = entry.read(MAX_IMAGE_BYTES + 1)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
        return b"", f"could not be read from the ZIP ({exc})"
    except Exception as exc:  # zlib.error and the like, from a damaged entry
        return b"", f"could not be read from the ZIP ({type(exc).__name__}: {exc})"
    if len(data) > MAX_IMAGE_BYTES:
        return b"", (
            f"more than the {MAX_IMAGE_BYTES:,} bytes ({MAX_IMAGE_BYTES >> 20} MB) one image may "
            "be, though its header says less: not read"
        )
    return data, ""


def _chunks(
    archive: zipfile.ZipFile, files: list[zipfile.ZipInfo], bad: Callable[[Entry, str], None]
) -> Iterator[list[Entry]]:
    """Readable entries, CHUNK_IMAGES at a time or fewer once they hold CHUNK_FILE_BYTES;
    each refused one goes to ``bad`` with its reason, in its place."""
    chunk: list[Entry] = []
    size = 0
    for number, info in enumerate(files, 1):
        reason = _refused(info)
        data = b""
        if not reason:
            data, reason = _read(archive, info)
        if reason:
            if chunk:  # the rows stay in the ZIP's order
                yield chunk
                chunk, size = [], 0
            bad((number, info.filename, b""), reason)
            continue
        chunk.append((number, info.filename, data))
        size += len(data)
        if len(chunk) >= CHUNK_IMAGES or size >= CHUNK_FILE_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def score_images(
    job: ScoringJob, scorer: RowScorer, bounds: Bounds, room: Callable[[], None]
) -> None:
    """Score the images of the ZIP at ``job.source`` into ``job.result``, counting progress
    (entries read) and problems (each with the file's number in the ZIP) on ``job``."""
    with job.source.open("rb") as upload:
        alone = not is_zip(upload.read(4))
    if alone:  # one image file uploaded alone: packed in its place as a ZIP of one
        original = job.source.replace(job.directory / "upload")
        try:
            with original.open("rb") as image:
                pack([(job.filename, image)], job.source)
        finally:
            original.unlink(missing_ok=True)
    try:
        archive = zipfile.ZipFile(job.source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BadRequest(
            f"the file is not a ZIP of images ({exc}); upload a .zip, or image files"
        ) from None
    with archive, job.result.open("w", newline="", encoding="utf-8-sig") as target:
        files = _entries(archive, bounds)
        job.size = job.total_rows = len(files)  # known from the central directory
        writer = csv.writer(target)
        added = columns.added_columns(scorer.info, scorer.reason_columns)
        writer.writerow(["file", *map(safe_text, added)])

        def write(number: int, name: str, cells: list[str]) -> None:
            writer.writerow([safe_text(name), *cells, safe_text(job.row_id(number))])

        def bad(entry: Entry, reason: str) -> None:
            number, name, _ = entry
            job.problem(number, f"{name}: {reason}")
            write(number, name, scorer.error_cells(reason))
            job.done_rows += 1
            job.read_bytes = number

        for chunk in _chunks(archive, files, bad):
            if scorer.closing.is_set():
                break
            target.flush()
            room()
            kept = len(job.problems)
            scored = dict(scorer.score([[data] for _, _, data in chunk], [n for n, _, _ in chunk]))
            names = {number: name for number, name, _ in chunk}
            # the problems the scorer counted name the file, as the bad entries' do
            job.problems[kept:] = [(n, f"{names[n]}: {why}") for n, why in job.problems[kept:]]
            for position, (number, name, _) in enumerate(chunk):
                cells = scored[position]
                write(number, name, cells)
                job.scored_rows += not cells[-1]
            job.done_rows += len(chunk)
            job.read_bytes = chunk[-1][0]


def upload_names(files: list[tuple[str, IO[bytes]]]) -> str:
    """The job's file name: the ZIP's, or the first image's and how many there are."""
    if len(files) == 1:
        return files[0][0] or "images.zip"
    return f"{files[0][0] or 'images'} and {len(files) - 1} more"
