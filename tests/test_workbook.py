"""Excel workbooks in and out of the page's scoring (issue 27): workbooks written here by
openpyxl (several sheets, formatting, dates, empty cells, formulas), scored by a real server
through the page's upload and compared cell by cell with the model's own answers; hostile
workbooks (a zip bomb, a shared-strings bomb, an encrypted file, an .xls, a zip that is no
workbook) refused with a sentence; a 100,000-row sheet reports its progress."""

from __future__ import annotations

import datetime as dt
import io
import math
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import openpyxl
import pandas as pd
import pytest
import requests
from openpyxl.styles import Font, PatternFill

from tests.conftest import iris_frame
from tests.csv_server import finished, page_token, status
from tests.helpers import running_server, wait_until
from winserve.errors import BadRequest
from winserve.scoring import workbook
from winserve.spreadsheet import MISSING

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
INPUTS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


def submit(session: requests.Session, page: str, data: bytes, sheet: str = "") -> str:
    """Upload ``data`` as flowers.xlsx on the page, naming ``sheet``; the job's address."""
    answer = session.post(
        f"{page}jobs",
        data={"csrf_token": page_token(session, page), "sheet": sheet},
        files={"file": ("flowers.xlsx", data, XLSX)},
        allow_redirects=False,
        timeout=60,
    )
    assert answer.status_code == 303, answer.text
    location: str = answer.headers["Location"]
    return location


def saved(book: Any) -> bytes:
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def with_cached_values(data: bytes, values: dict[str, str]) -> bytes:
    """The workbook with the formulas of cells ``values`` names given the value Excel would
    have computed and stored (openpyxl writes formulas without one)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            content = source.read(item)
            if item.filename.startswith("xl/worksheets/"):
                text = content.decode()
                for ref, value in values.items():
                    text = re.sub(
                        rf'(<c r="{ref}"[^>]*>)<f>([^<]*)</f><v\s*/?>(</v>)?',
                        rf"\1<f>\2</f><v>{value}</v>",
                        text,
                    )
                content = text.encode()
            target.writestr(item, content)
    return out.getvalue()


# -- reading cells, refusing what is not a workbook (no server) ----------------------------


def test_cells_reach_the_model_as_read_excel_hands_them_over() -> None:
    assert workbook.cell_input(None) is MISSING and workbook.cell_input("NA") is MISSING
    assert workbook.cell_input(" NA") == " NA"  # not one of pandas' NA strings, as for CSV
    assert workbook.cell_input(5) == 5 and workbook.cell_input(True) is True
    assert workbook.cell_input(dt.datetime(2024, 1, 31)) == "2024-01-31"
    assert workbook.cell_input(dt.datetime(2024, 1, 31, 13, 45)) == "2024-01-31 13:45:00"
    assert workbook.cell_input(dt.date(2024, 1, 31)) == "2024-01-31"


def bomb(tmp_path: Path, part: str, size: int) -> Path:
    """A valid small workbook with ``part`` replaced by ``size`` bytes that compress to
    almost nothing."""
    book = openpyxl.Workbook()
    book.active.append(["a"])
    source = zipfile.ZipFile(io.BytesIO(saved(book)))
    path = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            if item.filename != part:
                target.writestr(item, source.read(item))
        target.writestr(part, b"<x>" + b" " * size + b"</x>")
    return path


@pytest.mark.parametrize("part", ["xl/worksheets/sheet1.xml", "xl/sharedStrings.xml"])
def test_a_workbook_that_unpacks_too_large_is_refused(tmp_path: Path, part: str) -> None:
    path = bomb(tmp_path, part, workbook.EXPANDED_LIMIT + 1)
    assert path.stat().st_size < 200_000  # a few hundred KB that unpack to 50 MB
    with pytest.raises(BadRequest, match=r"unpacks to 50 MB, more than the 50 MB"):
        workbook.check(path)


def test_encrypted_xls_and_other_files_are_refused_with_a_sentence(tmp_path: Path) -> None:
    ole = workbook.OLE_START + b"\0" * 504
    encrypted = tmp_path / "secret.xlsx"
    encrypted.write_bytes(ole + "EncryptionInfo".encode("utf-16-le") + workbook.ENCRYPTED_MARK)
    with pytest.raises(BadRequest, match="protected with a password"):
        workbook.check(encrypted)
    old = tmp_path / "old.xls"
    old.write_bytes(ole + "Workbook".encode("utf-16-le"))
    with pytest.raises(BadRequest, match=r"Excel 97-2003 workbook \(.xls\)"):
        workbook.check(old)
    other = tmp_path / "photos.zip"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("photo.jpg", b"\xff\xd8")
    with pytest.raises(BadRequest, match="a zip file, not an Excel workbook"):
        workbook.check(other)
    damaged = tmp_path / "damaged.xlsx"
    damaged.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(BadRequest, match="damaged"):
        workbook.check(damaged)


def test_the_sheet_naming_the_inputs_is_scored(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    book.active.title = "Read me"
    book.active.append(["This workbook holds flowers to score"])
    data = book.create_sheet("Flowers")
    data.append([])  # the table starts below a blank row, as tables often do
    data.append(["flower id", *INPUTS])
    data.append(["F1", 5.1, 3.5, 1.4, 0.2])
    path = tmp_path / "book.xlsx"
    book.save(path)
    found = workbook.table(path, INPUTS)
    assert found.cells.sheet == "Flowers" and found.header_row == 2
    assert found.header == ["flower id", *INPUTS]
    assert list(workbook.rows(path, found)) == [(3, ["F1", 5.1, 3.5, 1.4, 0.2])]
    # no sheet names the inputs, and two have rows: the user chooses (issue 27; it was the
    # first sheet, silently)
    with pytest.raises(workbook.SheetChoice, match="no sheet's first row names") as asked:
        workbook.table(path, ["nowhere"])
    assert asked.value.sheets == ("Read me", "Flowers") and asked.value.status == 400
    book.copy_worksheet(data).title = "Flowers 2"  # two sheets name them: the user chooses
    twice = tmp_path / "twice.xlsx"
    book.save(twice)
    with pytest.raises(workbook.SheetChoice, match="2 sheets name the model's inputs") as asked:
        workbook.table(twice, INPUTS)
    assert asked.value.sheets == ("Flowers", "Flowers 2")  # the sheets that name them
    assert workbook.table(twice, INPUTS, "Flowers 2").header == ["flower id", *INPUTS]
    alone = openpyxl.Workbook()  # one sheet with rows: it, whatever it names
    alone.active.append(["x", "y"])
    alone.create_sheet("Empty")
    alone.save(tmp_path / "alone.xlsx")
    assert workbook.table(tmp_path / "alone.xlsx", INPUTS).cells.sheet == "Sheet"
    assert workbook.table(path, INPUTS, "Read me").header == [
        "This workbook holds flowers to score"
    ]  # the one the user named
    with pytest.raises(BadRequest, match="no sheet 'Data'; its sheets: 'Read me', 'Flowers'"):
        workbook.table(path, INPUTS, "Data")


# -- a real server, through the page -------------------------------------------------------


def flowers_workbook() -> tuple[bytes, pd.DataFrame]:
    """Two sheets, formatting, dates, an empty cell, a formula input with its cached value,
    a formula column, a refused cell and a blank row; and the rows the model gets."""
    x, _ = iris_frame()
    rows = x.iloc[[0, 50, 100, 25, 75]].reset_index(drop=True)
    book = openpyxl.Workbook()
    notes = book.active
    notes.title = "Notes"
    notes["A1"] = "Sent by the lab"
    notes["A1"].font = Font(italic=True, size=14)
    sheet = book.create_sheet("Flowers")
    header = ["flower id", "measured on", *INPUTS[::-1], "sepal area"]
    sheet.append(header)
    for cell in sheet[1]:
        cell.font = Font(bold=True, color="FFFFFF")
        cell.fill = PatternFill("solid", fgColor="1F4E78")
    for index, row in rows.iterrows():
        number = sheet.max_row + 1
        values = [row[c] for c in INPUTS[::-1]]
        sheet.append([f"F{index}", dt.date(2024, 3, 1 + index), *values, f"=E{number}*F{number}"])
    sheet["C3"] = None  # petal width left empty: a missing value
    sheet["D4"] = "=1+3.9"  # petal length by a formula; Excel stored 4.9
    sheet.append([])  # a blank row
    sheet.append(["F9", dt.date(2024, 3, 9), 0.2, 1.4, "wide", 5.1, "=E8*F8"])
    sheet.column_dimensions["A"].width = 30
    for cell in sheet["F"][1:]:
        cell.number_format = "0.00"
    data = with_cached_values(saved(book), {"D4": "4.9"})
    inputs = rows.copy()
    inputs.loc[1, "petal width (cm)"] = np.nan
    inputs.loc[2, "petal length (cm)"] = 4.9
    return data, inputs


@pytest.mark.server
@pytest.mark.spawn
@pytest.mark.timeout(180)
def test_a_workbook_comes_back_scored_with_its_formatting(
    iris_forest: Path, tmp_path: Path
) -> None:
    model = joblib.load(iris_forest)
    data, inputs = flowers_workbook()
    session = requests.Session()
    with running_server([str(iris_forest)], cwd=tmp_path) as server:
        page = f"{server.url}/"
        job = submit(session, page, data)
        done = finished(session, server.url, job)
        assert done["state"] == "done", done
        assert done["read_as"] == "Excel workbook, sheet 'Flowers' (others kept: 'Notes')"
        # the blank row is neither scored nor a problem, as a CSV's blank line
        assert (done["done_rows"], done["scored_rows"], done["problem_count"]) == (6, 5, 1)
        answer = session.get(f"{server.url}{job}/result.xlsx", timeout=30)
        assert answer.status_code == 200 and answer.headers["Content-Type"] == XLSX
        assert "flowers-scored.xlsx" in answer.headers["Content-Disposition"]
        job_page = session.get(f"{server.url}{job}", timeout=10).text
        assert f"{job}/result.xlsx" in job_page
        assert "Read from the Excel workbook, sheet &#39;Flowers&#39;" in job_page
        assert "<td>8</td>" in job_page  # the refused row, by its row number in the sheet

    book = openpyxl.load_workbook(io.BytesIO(answer.content))
    assert book.sheetnames == ["Notes", "Flowers", "About"]
    assert book["Notes"]["A1"].value == "Sent by the lab" and book["Notes"]["A1"].font.italic
    sheet = book["Flowers"]
    classes = [str(c) for c in model.classes_]
    # the request id last (issue 27): the upload's id and the row, to join outcomes on later
    added = ["prediction", *(f"probability {c}" for c in classes), "error", "request id"]
    header = [c.value for c in sheet[1]]
    assert header[7:] == added
    for cell in sheet[1][7:]:
        assert cell.font.bold and cell.fill.fgColor.rgb == sheet["A1"].fill.fgColor.rgb
    assert sheet.column_dimensions["A"].width == 30 and sheet["F2"].number_format == "0.00"
    assert sheet["G2"].value == "=E2*F2"  # the user's formulas stay formulas
    assert sheet["B2"].value == dt.datetime(2024, 3, 1)

    # fidelity: each scored row answered as the model answers the same values in-process
    expected = model.predict(inputs[list(model.feature_names_in_)])
    chances = model.predict_proba(inputs[list(model.feature_names_in_)])
    for index, number in enumerate(range(2, 7)):
        cells = [c.value for c in sheet[number][7:]]
        assert cells[0] == expected[index], number
        for got, want in zip(cells[1:-2], chances[index], strict=True):
            # a number cell (Excel stores 1.0 as 1, read back as an int)
            assert type(got) in (int, float) and math.isclose(got, want, abs_tol=1e-12)
        assert cells[-2] is None and cells[-1] == f"{done['request_id']}-{number}"
    assert all(c.value is None for c in sheet[7][7:])  # the blank row stays blank
    refused = [c.value for c in sheet[8][7:]]
    assert refused[:-2] == [None] * (len(added) - 2)
    assert "sepal width (cm)" in refused[-2] and sheet[8][-2].data_type == "s"
    assert refused[-1] == f"{done['request_id']}-8" and sheet[8][-1].data_type == "s"

    about = {row[0].value: row[1].value for row in book["About"].iter_rows()}
    assert about["Model"] == "iris forest" and about["Sheet scored"] == "Flowers"
    assert (about["Rows"], about["Rows scored"], about["Rows with an error"]) == (6, 5, 1)
    assert len(about["Model file SHA-256"]) == 64


@pytest.mark.server
@pytest.mark.spawn
@pytest.mark.timeout(120)
def test_hostile_workbooks_fail_their_job_with_a_sentence(
    iris_forest: Path, tmp_path: Path
) -> None:
    session = requests.Session()
    with running_server([str(iris_forest)], cwd=tmp_path) as server:
        page = f"{server.url}/"
        for part in ("xl/worksheets/sheet1.xml", "xl/sharedStrings.xml"):
            path = bomb(tmp_path, part, workbook.EXPANDED_LIMIT * 4)
            job = submit(session, page, path.read_bytes())
            done = finished(session, server.url, job)
            assert done["state"] == "failed" and "unpacks to 200 MB" in done["error"], done
        secret = workbook.OLE_START + b"\0" * 504 + workbook.ENCRYPTED_MARK
        done = finished(session, server.url, submit(session, page, secret))
        assert done["state"] == "failed" and "password" in done["error"]
        wrong = openpyxl.Workbook()
        wrong.active.append(["length", "width"])
        wrong.active.append([1, 2])
        done = finished(session, server.url, submit(session, page, saved(wrong)))
        assert done["state"] == "failed"
        assert "the sheet 'Sheet' has no columns 'sepal length (cm)'" in done["error"]
        assert "its first row must name the model's inputs" in done["error"]
        data, _ = flowers_workbook()
        named = finished(session, server.url, submit(session, page, data, sheet="Notes"))
        assert "the sheet 'Notes' has no columns 'sepal length (cm)'" in named["error"]
        named = finished(session, server.url, submit(session, page, data, sheet="Flower"))
        assert "no sheet 'Flower'; its sheets: 'Notes', 'Flowers'" in named["error"]
        # the server still scores afterwards
        book = openpyxl.Workbook()
        book.active.append(INPUTS)
        book.active.append([5.1, 3.5, 1.4, 0.2])
        done = finished(session, server.url, submit(session, page, saved(book)))
        assert done["state"] == "done" and done["scored_rows"] == 1


@pytest.mark.server
@pytest.mark.spawn
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_100000_row_sheet_shows_its_progress(iris_forest: Path, tmp_path: Path) -> None:
    x, _ = iris_frame()
    # written whole, as Excel writes a workbook: with its size (<dimension>), which a
    # streaming writer leaves out (such a sheet shows rows done, not a percentage)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Flowers"
    sheet.append(INPUTS)
    values = x[INPUTS].to_numpy().tolist()
    for index in range(100_000):
        sheet.append(values[index % len(values)])
    path = tmp_path / "many.xlsx"
    book.save(path)
    session = requests.Session()
    with running_server([str(iris_forest)], cwd=tmp_path) as server:
        job = submit(session, f"{server.url}/", path.read_bytes())
        seen: set[int] = set()

        def ended() -> bool:
            found = status(session, server.url, job)
            seen.add(found["percent"])
            return found["state"] in ("done", "failed")

        wait_until(ended, 500, 0.2)
        done = status(session, server.url, job)
        assert done["state"] == "done" and done["scored_rows"] == 100_000, done["error"]
        assert any(0 < p < 100 for p in seen), seen  # progress between start and end
        answer = session.get(f"{server.url}{job}/result.xlsx", timeout=120)
    scored = openpyxl.load_workbook(io.BytesIO(answer.content), read_only=True)
    last = list(scored["Flowers"].iter_rows(min_row=100_001, values_only=True))
    assert len(last) == 1 and last[0][4] in ("setosa", "versicolor", "virginica")
    shutil.rmtree(tmp_path, ignore_errors=True)
