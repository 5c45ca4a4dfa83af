"""Batch scoring of images (issue 24): a ZIP of PNGs of digits, or several PNG files, sent to a
real server's ``/jobs`` and scored into a CSV through the jobs machinery, with its progress;
the CSV's predictions and probabilities compared with the digits graph of
``tests/tensor_graphs.py`` run in this process on the card's preprocessing done by hand. Bad
entries (not an image, too large, a path with ``..``) get a row with their reason; a ZIP past
its bounds fails the job before any model call. A model of two images has no batch panel
(and its page takes both files)."""

from __future__ import annotations

import csv
import io
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from tests import tensor_graphs as tg
from tests.helpers import csrf_token, local_client, running_server, wait_until
from winserve.scoring import images as image_jobs

pytestmark = [pytest.mark.timeout(180)]


PROGRAM = {"X-Winserve-Client": "tests"}  # a program's upload: no form value (issue 27)
TOLERANCE = 1e-5  # float32 graph, the same arrays on both sides


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("image-jobs")
    path = tg.write(folder, "digits", tg.digits_graph(), tg.DIGITS_CARD)
    with running_server([str(path), "--workers", "1"], cwd=folder) as served:
        yield served.url


def expected(pngs: list[bytes]) -> tuple[list[int], np.ndarray]:
    batch = np.stack([tg.by_hand(png) for png in pngs])
    (probabilities,) = tg.run(tg.digits_graph(), {"image": batch})
    return probabilities.argmax(axis=1).tolist(), probabilities


def scored(server: str, files: list[tuple[str, bytes, str]]) -> tuple[dict[str, Any], list[Any]]:
    """Upload ``files`` (name, bytes, type) as a job, wait for its end; its status and CSV."""
    sent = requests.post(
        f"{server}/jobs",
        files=[("file", file) for file in files],
        headers=PROGRAM,
        timeout=60,
    )
    assert sent.status_code == 202, sent.text[:500]
    links = sent.json()

    def ended() -> dict[str, Any] | None:
        status = requests.get(links["status_url"], headers=PROGRAM, timeout=30).json()
        return status if status["state"] in ("done", "failed") else None

    status = wait_until(ended, timeout=120, interval=0.2)
    if status["state"] != "done":
        return status, []
    result = requests.get(links["result_url"], headers=PROGRAM, timeout=30)
    assert result.status_code == 200
    assert result.headers["Content-Type"].startswith("text/csv")
    return status, list(csv.DictReader(io.StringIO(result.content.decode("utf-8-sig"))))


def zipped(entries: list[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return out.getvalue()


def _assert_rows(rows: list[dict[str, str]], pngs: list[bytes]) -> None:
    labels, probabilities = expected(pngs)
    assert [int(r["prediction"]) for r in rows] == labels
    got = np.array([[float(r[f"probability {c}"]) for c in range(10)] for r in rows])
    np.testing.assert_allclose(got, probabilities, atol=TOLERANCE, rtol=0)
    assert all(r["error"] == "" for r in rows)


@pytest.mark.server
@pytest.mark.spawn
def test_a_zip_of_50_pngs_is_scored_as_the_model_answers_in_process(server: str) -> None:
    pngs = [tg.digit_png(i) for i in range(50)]
    names = [f"digits/{i:02d}.png" for i in range(50)]
    status, rows = scored(
        server, [("digits.zip", zipped(list(zip(names, pngs, strict=True))), "application/zip")]
    )
    assert status["state"] == "done", status["error"]
    assert (status["total_rows"], status["done_rows"], status["scored_rows"]) == (50, 50, 50)
    assert status["percent"] == 100 and status["problem_count"] == 0
    assert [r["file"] for r in rows] == names  # in the ZIP's order
    _assert_rows(rows, pngs)
    assert len({r["request id"] for r in rows}) == 50


@pytest.mark.server
@pytest.mark.spawn
def test_bad_entries_get_their_reason_and_never_stop_the_job(server: str) -> None:
    good = [tg.digit_png(i) for i in (5, 6, 7)]
    entries = [
        ("a.png", good[0]),
        ("notes.png", b"these are notes, not a picture"),
        ("../escape.png", good[1]),
        ("big.png", bytes(image_jobs.MAX_IMAGE_BYTES + 1)),  # zeros: a small deflated entry
        ("empty.png", b""),
        ("folder/", b""),  # a folder: not a row
        ("__MACOSX/._a.png", b"\x00\x05\x16\x07"),  # macOS's metadata: not a row
        ("b.png", good[2]),
        ("=cmd.png", good[0]),  # a name a spreadsheet would run as a formula
    ]
    status, rows = scored(server, [("mixed.zip", zipped(entries), "application/zip")])
    assert status["state"] == "done", status["error"]
    by_name = {r["file"]: r for r in rows}
    assert list(by_name) == [
        "a.png", "notes.png", "../escape.png", "big.png", "empty.png", "b.png", "'=cmd.png"
    ]  # fmt: skip
    _assert_rows([by_name["a.png"], by_name["b.png"], by_name["'=cmd.png"]], [*good[::2], good[0]])
    assert "not an image file" in by_name["notes.png"]["error"]
    assert "a path with '..'" in by_name["../escape.png"]["error"]
    assert (
        "33,554,433 bytes once decompressed, more than the 33,554,432 (32 MB)"
        in (by_name["big.png"]["error"])
    )
    assert by_name["empty.png"]["error"] == "an empty file"
    for name in ("notes.png", "../escape.png", "big.png", "empty.png"):
        assert by_name[name]["prediction"] == "" and by_name[name]["probability 0"] == ""
    assert (status["scored_rows"], status["problem_count"], status["total_rows"]) == (3, 4, 7)
    page = requests.get(status_page(server, status), timeout=30).text
    assert "<td>2</td><td>notes.png: " in page and "not an image file" in page  # by file


def status_page(server: str, status: dict[str, Any]) -> str:
    return f"{server}/jobs/{status['id']}"


@pytest.mark.server
@pytest.mark.spawn
def test_several_image_files_are_scored_under_their_names(server: str) -> None:
    pngs = [tg.digit_png(i) for i in (10, 11, 12)]
    files = [(f"digit {i}.png", png, "image/png") for i, png in enumerate(pngs)]
    files.append(("digit 0.png", pngs[0], "image/png"))  # the same name twice
    status, rows = scored(server, files)
    assert status["state"] == "done", status["error"]
    assert status["file"] == "digit 0.png and 3 more"
    assert [r["file"] for r in rows] == [
        "digit 0.png",
        "digit 1.png",
        "digit 2.png",
        "4 digit 0.png",
    ]
    _assert_rows(rows, [*pngs, pngs[0]])


def _declaring(data: bytes, size: int) -> bytes:
    """``data`` (a ZIP of one stored entry) with its central directory declaring ``size``
    bytes uncompressed: what a zip bomb's directory says, without the bytes behind it."""
    at = data.rindex(b"PK\x01\x02")
    return data[: at + 24] + size.to_bytes(4, "little") + data[at + 28 :]


@pytest.mark.server
@pytest.mark.spawn
def test_a_zip_past_its_bounds_fails_before_any_model_call(server: str) -> None:
    one = zipped([(f"{i}.png", tg.digit_png(i)) for i in range(1)], zipfile.ZIP_STORED)
    huge = _declaring(one, 0xFFFF_FFF0)
    status, _ = scored(server, [("bomb.zip", huge, "application/zip")])
    assert status["state"] == "failed"
    assert "once decompressed, more than the 2 GB allowed" in status["error"]
    many = zipped(
        [(f"{i}.png", b"x") for i in range(image_jobs.MAX_ENTRIES + 1)], zipfile.ZIP_STORED
    )
    status, _ = scored(server, [("many.zip", many, "application/zip")])
    assert status["state"] == "failed"
    assert "files, more than the 100,000 allowed" in status["error"]
    status, _ = scored(server, [("not.zip", b"PK\x03\x04 but no zip after all", "application/zip")])
    assert status["state"] == "failed" and "not a ZIP of images" in status["error"]


@pytest.mark.server
@pytest.mark.spawn
def test_one_image_uploaded_alone_is_a_zip_of_one(server: str) -> None:
    png = tg.digit_png(42)
    status, rows = scored(server, [("forty-two.png", png, "image/png")])
    assert status["state"] == "done", status["error"]
    assert [r["file"] for r in rows] == ["forty-two.png"]
    _assert_rows(rows, [png])


def test_an_entry_larger_than_its_header_says_is_not_read_past_the_bound() -> None:
    """A ZIP whose headers declare 100 bytes for an entry of 40 MB of zeros: reading stops
    at the declared size and the entry fails its CRC, a reason for its row (no server:
    the reading alone)."""
    data = zipped([("liar.png", bytes(40 << 20))])
    for header in (b"PK\x03\x04", b"PK\x01\x02"):  # the local header, the central directory
        at = data.index(header)
        field = at + (22 if header == b"PK\x03\x04" else 24)
        data = data[:field] + (100).to_bytes(4, "little") + data[field + 4 :]
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        (entry,) = archive.infolist()
        assert image_jobs._refused(entry) == ""  # its header says 100 bytes
        read, reason = image_jobs._read(archive, entry)
    assert read == b""
    assert "could not be read from the ZIP" in reason and "CRC" in reason


@pytest.mark.parametrize(
    ("name", "flags", "words"),
    [
        ("a/../../b.png", 0, "a path with '..'"),
        ("..\\b.png", 0, "a path with '..'"),
        ("/etc/b.png", 0, "an absolute path"),
        ("C:/b.png", 0, "an absolute path"),
        ("b.png", 0x1, "encrypted"),
        ("ok/b..png", 0, ""),  # two dots in a name are no path
    ],
)
def test_entries_refused_by_their_header(name: str, flags: int, words: str) -> None:
    entry = zipfile.ZipInfo(name)
    entry.flag_bits, entry.file_size = flags, 10
    reason = image_jobs._refused(entry)
    assert (words in reason and reason != "") if words else reason == ""


def test_a_model_of_two_images_has_two_pickers_and_no_batch_panel(tmp_path: Path) -> None:
    """The digits regression over the sum of two images (an ONNX graph built here): the
    page has a picker per input, says why it has no batch scoring, and its form answers as
    the graph does in this process."""
    from onnx import TensorProto, helper, numpy_helper

    from winserve.model_info import ModelSpec

    weights, bias = tg._digits_regression()
    nodes = [
        helper.make_node("Add", ["left", "right"], ["both"]),
        helper.make_node("Flatten", ["both"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["logits0"]),
        helper.make_node("Add", ["logits0", "B"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    image = ["N", 1, 8, 8]
    graph = tg._model(
        nodes,
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, image) for n in ("left", "right")],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])],
        [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "B")],
    )
    card = "".join(tg.DIGITS_CARD.replace("inputs.image", f"inputs.{n}") for n in ("left", "right"))
    path = tg.write(tmp_path, "pair", graph, card)
    client = local_client(ModelSpec(path=str(path), inputs=tomllib.loads(card)["inputs"]))
    front = client.get("/")
    page = front.get_data(as_text=True)
    assert 'id="image0"' in page and 'id="image1"' in page
    assert 'id="no-batch"' in page and 'id="csv-form"' not in page
    left, right = tg.digit_png(1), tg.digit_png(2)
    answered = client.post(
        "/image",
        data={
            "csrf_token": csrf_token(page),
            "image0": (io.BytesIO(left), "left.png"),
            "image1": (io.BytesIO(right), "right.png"),
        },
        content_type="multipart/form-data",
    )
    assert answered.status_code == 200, answered.get_data(as_text=True)[-800:]
    (probabilities,) = tg.run(
        graph, {"left": tg.by_hand(left)[None], "right": tg.by_hand(right)[None]}
    )
    shown = answered.get_data(as_text=True)
    assert f'id="prediction">{int(probabilities[0].argmax())}<' in shown
    one = client.post(
        "/image",
        data={"csrf_token": csrf_token(page), "image0": (io.BytesIO(left), "left.png")},
        content_type="multipart/form-data",
    )
    assert one.status_code == 400
    assert "choose an image file for &#39;right&#39;" in one.get_data(as_text=True)
