"""A new user's findings on the monitor (issue 26): a folder's ``/monitor``, ``/monitor.json``
and ``/log.csv`` (an index of its models and every model's log, where they answered 404 "use
/models/<name>/…"); the "Monitor" link on the pages, for owners only; a user token's refusal
as a page in a browser (it was raw JSON); counts that agree with their nouns; a one-value
prediction as itself in ``/log.csv`` (it was JSON-quoted); the outcomes form's error page
going back to the monitor.

The in-process tests use Flask's test client on the model in this process, with a real
prediction log; the folder's is a real server (waitress, spawned model hosts)."""

from __future__ import annotations

import csv
import html
import io
import shutil
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import iris_frame
from tests.helpers import csrf_token, jobs_client, running_server, wait_until
from tests.log_entries import MONDAY, fill
from tests.model_files import IRIS_ROW, ROW, constant_model
from winserve import tokens
from winserve.model_info import ModelSpec
from winserve.predlog import events, export
from winserve.predlog.writer import PredictionLog
from winserve.web.monitor_view import Monitor

pytestmark = pytest.mark.timeout(120)

TIMEOUT = 30
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def _lines(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_a_one_value_prediction_is_itself_in_the_csv_and_several_are_json(
    tmp_path: Path,
) -> None:
    """The export of a log filled as the writer fills it: a label, a number, a formula-like
    label (made safe), a multi-output row (a JSON list), a dict; one model's or all."""
    path = tmp_path / "log.sqlite"
    fill(
        path,
        [
            (MONDAY + 1, "m", 1.0, 200, ["leaves", "stays"]),
            (MONDAY + 2, "m", 1.0, 200, [0.25]),
            (MONDAY + 3, "m", 1.0, 200, [[1.5, 2.0]]),
            (MONDAY + 4, "m", 1.0, 200, [{"a": 1}]),
            (MONDAY + 5, "other", 1.0, 200, ["=1+1"]),
            (MONDAY + 6, "m", 1.0, 400, None),
        ],
    )
    one = _lines("".join(export.csv_lines(path, "m", MONDAY, MONDAY + 60)))
    assert [line["prediction"] for line in one] == [
        "leaves",
        "stays",
        "0.25",
        "[1.5,2.0]",
        '{"a":1}',
        "",
    ]
    every = _lines("".join(export.csv_lines(path, None, MONDAY, MONDAY + 60)))
    assert [line["model"] for line in every] == ["m"] * 5 + ["other", "m"]
    assert every[5]["prediction"] == "'=1+1"  # never a live formula in Excel


def test_the_log_csv_of_a_served_model_has_its_label_unquoted(
    logged_forest: tuple[Any, PredictionLog],
) -> None:
    client, plog = logged_forest
    x, species = iris_frame()
    sent = client.post("/predict", json=x.iloc[[0, 60]].to_dict(orient="records"))
    assert sent.json["predictions"] == species.iloc[[0, 60]].tolist()
    wait_until(lambda: plog.written == 1, 5)
    lines = _lines(client.get("/log.csv").text)
    assert [line["prediction"] for line in lines] == ["setosa", "versicolor"]


def test_one_event_is_one_load_restart_or_failure() -> None:
    """The page's counts agree with their nouns: it said "1 loads, restarts and failures"."""
    from datetime import UTC, datetime

    since = datetime.fromtimestamp(MONDAY, UTC)
    until = datetime.fromtimestamp(MONDAY + 3600, UTC)
    one = events.ModelEvent(MONDAY + 60, "restarted", 1, "")
    found = Monitor("m", since, until, 0, None, "", False, (), events=(one,), ongoing=False)
    timeline = str(found.charts()["timeline"])
    assert "1 load, restart or failure from " in timeline and "1 loads" not in timeline
    two = Monitor("m", since, until, 0, None, "", False, (), events=(one, one), ongoing=False)
    assert "2 loads, restarts and failures from " in str(two.charts()["timeline"])


def test_the_outcomes_forms_error_page_goes_back_to_the_monitor(iris_forest: Path) -> None:
    client = jobs_client(ModelSpec(str(iris_forest)))
    token = csrf_token(client.get("/").text)  # the page's form value (the monitor's is the same)
    posted = client.post(
        "/outcomes",
        data={"csrf_token": token, "file": (io.BytesIO(b"request id,outcome\n1,a\n"), "o.csv")},
        content_type="multipart/form-data",
    )
    assert posted.status_code == 400 and posted.mimetype == "text/html"
    assert "The outcomes were not stored" in posted.text and "log is off" in posted.text
    assert '<a href="/monitor#accuracy">Back to the monitor</a>' in posted.text
    assert "Back to the model page" not in posted.text


def test_a_user_token_in_a_browser_is_refused_with_a_page_and_sees_no_monitor_link(
    tmp_path: Path,
) -> None:
    """A colleague logged in on the page (a user token) who opens the monitor gets the page
    of errors with the owner check's message; a program keeps the native JSON; only an
    owner's pages link the monitor."""
    book = tmp_path / "tokens.toml"
    alice = tokens.add(book, "alice")
    boss = tokens.add(book, "boss", tokens.OWNER)
    client = jobs_client("tests.models:chaos", tokens_file=book)
    login = client.post("/login", data={"token": alice, "next": "/"})
    assert login.status_code == 303
    model_page = client.get("/", headers=BROWSER)
    assert model_page.status_code == 200 and "/monitor" not in model_page.text
    for path in ("/monitor", "/models/chaos/monitor", "/monitor.json", "/log.csv"):
        refused = client.get(path, headers=BROWSER)
        assert refused.status_code == 403 and refused.mimetype == "text/html", path
        assert "&#39;alice&#39; is a user token" in refused.text, path
    # the page's own route is a page whatever the caller asks for
    assert client.get("/monitor").mimetype == "text/html"
    program = client.get("/monitor.json", headers={"Authorization": f"Bearer {alice}"})
    assert (
        program.status_code == 403 and "'alice' is a user token" in program.json["error"]["message"]
    )
    assert client.get("/log.csv", headers={"Accept": "*/*"}).json["error"]["code"] == "forbidden"

    owner = jobs_client("tests.models:chaos", tokens_file=book)
    assert owner.post("/login", data={"token": boss, "next": "/"}).status_code == 303
    mine = owner.get("/", headers=BROWSER).text
    assert 'href="/monitor"' in mine
    shown = owner.get("/monitor", headers=BROWSER)
    assert shown.status_code == 200 and 'aria-current="page">Monitor</a>' in shown.text


@pytest.mark.server
@pytest.mark.spawn
@pytest.mark.timeout(240)
def test_a_folders_monitor_lists_its_models_and_its_log_has_them_all(
    tmp_path: Path, iris_forest: Path
) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copyfile(iris_forest, folder / "iris.joblib")
    x, _ = iris_frame()
    x.iloc[::3].to_csv(folder / "iris.reference.csv", index=False)
    constant_model(folder / "const.joblib", 7.0)
    (folder / "const.toml").write_text('title = "Always seven"\n', encoding="utf-8")
    args = [str(folder), "--log-path", str(tmp_path / "log.sqlite"), "--watch-seconds", "0.5"]
    with running_server(args, cwd=tmp_path) as server:
        url = server.url
        for _ in range(3):
            answer = requests.post(f"{url}/models/iris/predict", json=[IRIS_ROW], timeout=TIMEOUT)
            assert answer.status_code == 200, answer.text
        assert requests.post(f"{url}/models/const/predict", json=[ROW], timeout=TIMEOUT).ok
        refused = requests.post(f"{url}/models/const/predict", json=[{"a": "x"}], timeout=TIMEOUT)
        assert refused.status_code == 400

        def counted() -> dict[str, Any]:
            found = requests.get(f"{url}/monitor.json", timeout=TIMEOUT)
            assert found.status_code == 200, found.text
            models: dict[str, Any] = {m["model"]: m for m in found.json()["models"]}
            return models

        wait_until(lambda: sum(m["requests"] for m in counted().values()) == 5, 30)
        models = counted()
        assert (models["iris"]["requests"], models["iris"]["errors"]) == (3, 0)
        assert (models["const"]["requests"], models["const"]["errors"]) == (2, 1)
        assert models["const"]["title"] == "Always seven" and models["iris"]["version"] == 1
        assert models["iris"]["monitor"] == "/models/iris/monitor"
        assert models["const"]["log_csv"] == "/models/const/log.csv"
        assert "drifted" in models["iris"]["drift"]  # its reference sample compared
        assert models["const"]["drift"].startswith("No reference sample to compare with")

        page = requests.get(f"{url}/monitor", headers=BROWSER, timeout=TIMEOUT)
        assert page.status_code == 200, page.text
        text = html.unescape(page.text)
        assert 'href="/models/iris/monitor"' in text and 'href="/models/const/monitor"' in text
        assert "Always seven" in text and 'href="/log.csv"' in text
        assert 'href="/api"' not in text  # the navigation of the list: no one model's API
        row = text.split('data-model="const"', 1)[1].split("</tr>", 1)[0]
        assert "<td>2</td><td>1</td>" in row

        exported = requests.get(f"{url}/log.csv", timeout=TIMEOUT)
        assert exported.status_code == 200, exported.text
        assert "models-log-" in exported.headers["Content-Disposition"]
        lines = _lines(exported.text)
        assert sorted(line["model"] for line in lines) == ["const"] * 2 + ["iris"] * 3
        assert {line["prediction"] for line in lines} == {"setosa", "7.0", ""}
        one = _lines(requests.get(f"{url}/models/const/log.csv", timeout=TIMEOUT).text)
        assert {line["model"] for line in one} == {"const"} and len(one) == 2

        # the owner (this computer, no token set) finds the monitor from the list and a page
        listing = requests.get(f"{url}/", timeout=TIMEOUT).text
        assert 'href="/monitor"' in listing
        model_page = requests.get(f"{url}/models/iris/", timeout=TIMEOUT).text
        assert 'href="/models/iris/monitor"' in model_page
        # and from a model's monitor back to the index
        own = requests.get(f"{url}/models/iris/monitor", timeout=TIMEOUT).text
        assert '<a href="/monitor">Every model\'s monitor</a>' in own
