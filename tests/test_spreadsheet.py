"""How a spreadsheet's CSV is recognised: separator, decimal mark and encoding, from real files."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import pytest

from winserve.errors import BadRequest
from winserve.spreadsheet import Dialect, safe_text, sniff


def _file(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "sheet.csv"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("first_line", "columns", "delimiter"),
    [
        ("a,b", ["a", "b"], ","),
        ("a;b", ["a", "b"], ";"),
        ("a\tb", ["a", "b"], "\t"),
        ("Kunde, Name;a;b", ["a", "b"], ";"),  # a comma in a name does not make it comma-separated
        ('"x;y",a,b', ["a", "b"], ","),  # nor a quoted semicolon semicolon-separated
        ("a", ["a"], ","),  # one column: nothing to tell, a comma
        ("p;q;r", [], ";"),  # no column names known: the separator that splits the line
    ],
)
def test_the_separator(tmp_path: Path, first_line: str, columns: list[str], delimiter: str) -> None:
    path = _file(tmp_path, f"{first_line}\r\n".encode())
    assert sniff(path, columns, []).delimiter == delimiter


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (b"a,b\n1,2\n", "utf-8-sig"),
        ("\ufeffa,b\nä,2\n".encode(), "utf-8-sig"),
        ("a,b\nä,2\n".encode("cp1252"), "cp1252"),
        ("a\tb\n1\t2\n".encode("utf-16"), "utf-16"),
    ],
)
def test_the_encoding(tmp_path: Path, data: bytes, encoding: str) -> None:
    assert sniff(_file(tmp_path, data), ["a", "b"], []).encoding == encoding


@pytest.mark.parametrize("suffix", [".xlsx", ".xls"])
def test_an_excel_workbook_is_named_as_such(tmp_path: Path, suffix: str) -> None:
    """The upload is a workbook (written here as Excel writes them: a zip, or OLE2 for .xls)."""
    path = tmp_path / f"sheet{suffix}"
    if suffix == ".xlsx":
        with zipfile.ZipFile(path, "w") as workbook:
            workbook.writestr("xl/workbook.xml", "<workbook/>")
    else:
        path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504))
    with pytest.raises(BadRequest, match=r"Excel workbook, not a CSV file.*CSV UTF-8"):
        sniff(path, ["a"], [])


def test_bytes_that_are_no_text_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BadRequest, match="save it as 'CSV UTF-8'"):
        sniff(_file(tmp_path, b"a,b\n\x81\x8d\x8f\x90\x9d\xff,1\n"), ["a", "b"], ["a"])


@pytest.mark.parametrize(
    ("rows", "decimal_comma"),
    [
        ("a;b\n1,5;2\n", True),
        ("a;b\n-,5;2\n", True),
        ("a;b\n1;2\n", False),  # no comma in any number
        ("a;b\n1,234;2\n", False),  # only thousands-like groups: not a guess to make
        ("a;b\n1,234;2\n1,5;3\n", True),  # a plain decimal comma elsewhere settles it
        ("a;b\n1,5;2\n2.5;3\n", False),  # a decimal point elsewhere: no decimal commas
        ('a,b\n"1,5",2\n', False),  # comma-separated files use decimal points
    ],
)
def test_the_decimal_mark(tmp_path: Path, rows: str, decimal_comma: bool) -> None:
    dialect = sniff(_file(tmp_path, rows.encode()), ["a", "b"], ["a", "b"])
    assert dialect.decimal_comma is decimal_comma


def test_numbers_written_back_with_the_same_mark() -> None:
    german = Dialect(delimiter=";", decimal_comma=True)
    assert german.read_number("1,5") == "1.5" and german.read_number("abc,d") == "abc,d"
    assert german.write_value(0.25) == "0,25" and german.write_value("setosa") == "setosa"
    assert german.write_value(3) == "3"
    assert Dialect().write_value(0.25) == "0.25" and Dialect().read_number("1,5") == "1,5"
    assert german.read_as() == "semicolon-separated, decimal comma, UTF-8"


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ('=HYPERLINK("http://evil.example")', '\'=HYPERLINK("http://evil.example")'),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-", "'-"),
        ("+49 30 1234", "'+49 30 1234"),
        (float("-inf"), "'-inf"),  # not a number a spreadsheet knows: text, not a formula
        ("setosa", "setosa"),
        ("a=b", "a=b"),  # only the first character starts a formula
        # numbers stay numbers, whether the model returned them as numbers or as labels
        (-1.5, "-1.5"),
        (-3, "-3"),
        ("-3", "-3"),
        ("+1", "+1"),
        ("-1e-05", "-1e-05"),
        (-0.000012, "-1.2e-05"),
    ],
)
def test_what_winserve_writes_is_never_a_formula(value: object, written: str) -> None:
    """Issue 13 item 8 (OWASP CSV injection): a leading ' makes a spreadsheet show the text."""
    assert Dialect().write_value(value) == written
    assert safe_text(str(value)) == written


def test_negative_numbers_with_a_decimal_comma_stay_numbers() -> None:
    german = Dialect(delimiter=";", decimal_comma=True)
    assert german.write_value(-1.5) == "-1,5" and german.write_value(-3) == "-3"
    assert german.write_value("-1,5") == "-1,5" and german.write_value("-1,5+1") == "'-1,5+1"


def test_cells_are_missing_as_read_csv_reads_them() -> None:
    """Empty cells and pandas' NA strings, exactly as written, are NaN in every column kind;
    read_csv does not strip cells, so " NA" stays text."""
    german = Dialect(delimiter=";", decimal_comma=True)
    rows = [["id", "1,5", "NA", "x"], ["id", "", " NA", "#N/A"], ["id", "nan", "", "NULL"]]
    got = german.read_inputs(rows, [1, 2, 3], [True, False, False])
    assert got[0][0] == "1.5" and math.isnan(got[0][1]) and got[0][2] == "x"
    assert math.isnan(got[1][0]) and got[1][1] == " NA" and math.isnan(got[1][2])
    assert all(math.isnan(v) for v in got[2])
    assert Dialect().read_inputs([["1,5"]], [0], [True]) == [["1,5"]]  # no decimal comma here
