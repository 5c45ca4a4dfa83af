"""A ``kind = "datetime"`` column is read with ONE format for the whole column (winserve/dates.py,
a new user's trial): "09.03.2023" beside "29.09.2022" is 9 March, not 3 September; a column
that never shows which comes first is read month first throughout; a cell the column's format
does not read is refused naming its row, the column and that format. Unit tests of the column,
then a real model behind the app (JSON rows and a CSV body)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests import zoo
from tests.helpers import local_client
from tests.model_files import month_model
from winserve.cells import RowProblem
from winserve.dates import datetime_column, said
from winserve.model_info import Feature, ModelSpec

pytestmark = pytest.mark.timeout(60)

WHEN = Feature(name="when", kind="datetime")


def read(values: list[Any], feature: Feature = WHEN) -> tuple[list[Any], list[str]]:
    problems: list[RowProblem] = []
    return datetime_column(feature, values, problems), [str(p) for p in problems]


def test_a_day_first_cell_makes_the_whole_column_day_first() -> None:
    out, problems = read(["09.03.2023", "29.09.2022"])
    assert out == ["2023-03-09T00:00:00", "2022-09-29T00:00:00"] and problems == []
    # the order does not matter: the column's format reads every cell
    out, _ = read(["29.09.2022", "09.03.2023", "01.02.2024"])
    assert out == ["2022-09-29T00:00:00", "2023-03-09T00:00:00", "2024-02-01T00:00:00"]


def test_an_ambiguous_column_gets_one_reading_month_first() -> None:
    out, problems = read(["09.03.2023", "10.04.2023", "03/11/2023"])
    assert out[:2] == ["2023-09-03T00:00:00", "2023-10-04T00:00:00"]
    # a cell in another format is refused, not read its own way
    assert out[2] is None
    assert problems == [
        "row 3, column 'when': expected a date and time written as the column's other dates "
        "are (MM.DD.YYYY, e.g. '09.03.2023'), got '03/11/2023'"
    ]


def test_a_cell_not_in_the_columns_format_is_refused_naming_it() -> None:
    out, problems = read(["09.03.2023", "29.09.2022", "2023/13/45", None, ""])
    assert out[:2] == ["2023-03-09T00:00:00", "2022-09-29T00:00:00"] and out[2] is None
    assert out[3] != out[3] and out[4] != out[4]  # missing: NaN, as before
    assert problems == [
        "row 3, column 'when': expected a date and time written as the column's other dates "
        "are (DD.MM.YYYY, e.g. '09.03.2023'), got '2023/13/45'"
    ]
    required = Feature(name="when", kind="datetime", missing="refused", missing_reason="NaN")
    _, problems = read(["2024-01-01", None], required)
    assert problems == [
        "row 2, column 'when': missing value, which the model does not accept in this column "
        "(it said: NaN)"
    ]


def test_iso_dates_times_and_zones_read_as_before() -> None:
    out, problems = read(["2024-03-01", "2024-11-30 23:59", "2024-03-01T12:30+01:00", 5])
    assert out[:3] == ["2024-03-01T00:00:00", "2024-11-30T23:59:00", "2024-03-01T11:30:00"]
    assert problems == [
        "row 4, column 'when': expected a date and time as text, e.g. '2024-03-01T12:30', got int 5"
    ]
    _, nothing = read(["31 Febtember", "yesterday-ish"])
    assert nothing[0] == "row 1, column 'when': expected a date and time, e.g. "\
        "'2024-03-01T12:30', got '31 Febtember'"  # fmt: skip
    assert said("%d.%m.%Y %H:%M") == "DD.MM.YYYY hh:mm" and said("ISO8601").startswith("ISO")


def test_the_app_reads_a_requests_dates_with_one_format(tmp_path: Path) -> None:
    """The model says "late" for a month after June: 09.03.2023 read alone as 3 September
    was "late"; beside 29.09.2022 it is 9 March, "early"."""
    case = month_model()
    (path,) = zoo.save(case, tmp_path)
    client = local_client(ModelSpec(path, kinds={"when": "datetime"}))
    rows = [{"when": "09.03.2023", "spend": 40.0}, {"when": "29.09.2022", "spend": 40.0}]
    answer = client.post("/predict", json=rows)
    assert answer.status_code == 200, answer.json
    assert answer.json["predictions"] == ["early", "late"]
    text = "when,spend\n09.03.2023,40\n29.09.2022,40\n"
    answer = client.post("/invocations", data=text, content_type="text/csv")
    assert answer.status_code == 200, answer.json
    assert answer.json["predictions"] == ["early", "late"]
    bad = client.post("/predict", json=[*rows, {"when": "2023-03-09", "spend": 1.0}])
    assert bad.status_code == 400
    assert (
        "row 3, column 'when': expected a date and time written as the column's other dates "
        "are (DD.MM.YYYY, e.g. '09.03.2023'), got '2023-03-09'"
    ) in bad.json["error"]["message"]


def test_a_reference_samples_dates_are_read_with_one_format(tmp_path: Path) -> None:
    """The reference sample (explanations, drift) reads its date column as a request does."""
    from winserve.host import reference

    path = tmp_path / "months.reference.csv"
    path.write_text("when,spend\n09.03.2023,40\n29.09.2022,50\n", encoding="utf-8")
    features = [{"name": "when", "kind": "datetime"}, {"name": "spend", "kind": "number"}]
    frame = reference.read(path, features)
    assert frame["when"].tolist() == ["2023-03-09T00:00:00", "2022-09-29T00:00:00"]
    path.write_text("when,spend\n09.03.2023,40\n29.09.2022,50\n2022-09-30,1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"row 3, column 'when': .*\(DD\.MM\.YYYY"):
        reference.read(path, features)


def test_a_csv_job_reads_its_dates_with_its_first_chunks_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file is checked chunk by chunk: a second chunk showing day first ("29.09.2022") would
    read its "09.03.2023" as 9 March while the first chunk's was 3 September. The first
    chunk's format holds for the file: the same text is the same date on every line, and a
    cell in another format is refused naming the column's format."""
    import io

    from tests.helpers import csrf_token, job_ended, jobs_client

    case = month_model()
    (path,) = zoo.save(case, tmp_path)
    client = jobs_client(ModelSpec(path, kinds={"when": "datetime"}))
    manager = client.application.extensions["winserve.scoring.jobs"]
    monkeypatch.setattr(manager, "bounds", replace(manager.bounds, chunk_rows=2))
    text = "when,spend\n09.03.2023,40\n10.04.2023,40\n29.09.2022,40\n09.03.2023,40\n"
    token = csrf_token(client.get("/").get_data(as_text=True))
    data = {"csrf_token": token, "file": (io.BytesIO(text.encode()), "rows.csv")}
    sent = client.post("/jobs", data=data, content_type="multipart/form-data")
    job = sent.headers["Location"].rsplit("/", 1)[-1]
    status = job_ended(client, f"/jobs/{job}/status", 30)
    assert status["state"] == "done", status
    with client.get(f"/jobs/{job}/result.csv") as result:
        lines = result.get_data().decode("utf-8-sig").splitlines()
    scored = {i: line.split(",") for i, line in enumerate(lines)}
    assert scored[1][2] == scored[4][2] == "late"  # 3 September on both lines, never 9 March
    assert scored[2][2] == "late"  # 4 October
    assert scored[3][2] == ""
    assert "(MM.DD.YYYY, e.g. '29.09.2022')" not in lines[3]
    assert "written as the column's other dates are (MM.DD.YYYY" in lines[3]
