"""The monitor page in a real browser (issue 26): ``python -m winserve`` serving a folder with
its prediction log, requests sent (one input shifted, a few refused), the model's process
killed (its replica restarts), the model file replaced (version 2 loads beside version 1),
then ``/models/churn/monitor`` opened in Debian's Chromium through Playwright and checked by
axe (tests/chromium.py's fixtures): the sentence on top, each chart's text alternative
(its title and the table beside it), the restart and the reload on the timeline; and
``monitor.json`` with the same figures."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import joblib
import numpy as np
import pytest
import requests

from tests import chromium, zoo
from tests.helpers import model_hosts, records, running_server, wait_until
from tests.model_files import churn_files

browser = chromium.browser  # the fixtures: one Chromium per module, a page per test
page = chromium.page
shot = chromium.shot

pytestmark = [pytest.mark.server, pytest.mark.browser, pytest.mark.spawn, pytest.mark.timeout(240)]

TIMEOUT = 30
ROWS = 600
BATCH = 100
BAD = 3  # requests refused (a text for a number column)


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The churn model's monitor URL, once its log holds the requests and version 2's load."""
    root = tmp_path_factory.mktemp("monitor-browser")
    folder = root / "models"
    folder.mkdir()
    churn_files(folder)
    sent = zoo._mixed_frame(ROWS, np.random.default_rng(12))
    sent["spend"] = sent["spend"] + 30.0  # 1.5 standard deviations: shifted
    with running_server(
        [str(folder), "--log-path", str(root / "log.sqlite"), "--watch-seconds", "0.5"],
        cwd=root,
    ) as server:
        url = f"{server.url}/models/churn"
        for start in range(0, ROWS, BATCH):
            answer = requests.post(
                f"{url}/predict", json=records(sent.iloc[start : start + BATCH]), timeout=TIMEOUT
            )
            assert answer.status_code == 200, answer.text
        for _ in range(BAD):
            refused = requests.post(
                f"{url}/predict", json=[{"tenure": "many", "spend": 1.0}], timeout=TIMEOUT
            )
            assert refused.status_code == 400, refused.text
        # the model's process killed: its replica restarts (the timeline's restart, found by
        # the file's sha256: a backend does not know the name it serves under)
        (host,) = model_hosts(server.proc.pid)
        host.kill()
        wait_until(lambda: _events(url).count("restarted") == 1, 60)
        # a retrained file dropped in place: version 2 loads and serves (the timeline's reload)
        rng = np.random.default_rng(21)
        frame = zoo._mixed_frame(300, rng)
        retrained = zoo.imputer_pipeline().model.set_params(logisticregression__C=0.5)
        retrained.fit(frame, zoo._churn(frame, rng))
        staged = root / "churn.joblib"
        joblib.dump(retrained, staged)
        shutil.move(staged, folder / "churn.joblib")

        def ready() -> bool:
            found = requests.get(f"{url}/monitor.json", timeout=TIMEOUT).json()
            kinds = [(e["kind"], e["version"]) for e in found["events"]]
            return (
                found["activity"]["requests"] == ROWS // BATCH + BAD
                and ("loaded", 2) in kinds
                and found["logged_rows"] == ROWS
            )

        wait_until(ready, 60)
        yield url


def _events(url: str) -> list[str]:
    found = requests.get(f"{url}/monitor.json", timeout=TIMEOUT).json()
    return [e["kind"] for e in found["events"]]


def test_the_page_says_it_in_one_sentence_draws_it_and_passes_axe(
    page: Any, monitored: str
) -> None:
    data = requests.get(f"{monitored}/monitor.json", timeout=TIMEOUT).json()
    activity = data["activity"]
    assert activity["bucket_seconds"] == 86_400  # the default week is shown per day
    page.goto(f"{monitored}/monitor")
    summary = page.inner_text("#summary")
    assert summary.startswith("1 of 4 inputs has drifted since "), summary
    assert summary.endswith(": spend ↑."), summary
    assert summary == data["summary"]

    # each chart is a picture with a title, and its numbers are in a table beside it
    labels = page.eval_on_selector_all("svg.chart", "s => s.map(e => e.getAttribute('aria-label'))")
    assert any(label.startswith("Requests per ") for label in labels), labels
    assert any(label.startswith("Latency per ") for label in labels), labels
    assert any(label.startswith("Share of each answer per ") for label in labels), labels
    assert any(label.startswith("spend: share of rows per bin") for label in labels), labels
    assert page.eval_on_selector_all("svg.chart", "s => s.every(e => e.role === 'img')")
    rows = page.eval_on_selector_all(
        "#requests-table tbody tr",
        "rows => rows.map(r => [...r.cells].slice(1, 3).map(c => Number(c.textContent)))",
    )
    assert sum(r[0] for r in rows) == ROWS // BATCH + BAD == activity["requests"]
    assert sum(r[1] for r in rows) == BAD == activity["errors"]
    errors = page.eval_on_selector_all(
        "#errors tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )
    assert errors == [["400", "/models/<model>/predict", str(BAD)]], errors

    # the reload on the timeline, in time order, with the list the marks are numbered by
    events = page.eval_on_selector_all(
        "#events li", "items => items.map(i => [i.dataset.kind, i.textContent])"
    )
    assert [kind for kind, _ in events] == ["loaded", "restarted", "loaded"], events
    assert "version 1 loaded" in events[0][1]
    assert "replica restarted (replica 0: " in events[1][1], events
    assert "version 2 loaded" in events[2][1] and "churn.joblib" in events[2][1], events
    assert page.eval_on_selector(
        "#timeline svg.chart", "s => s.querySelectorAll('circle').length"
    ) == len(events)

    shot(page, "monitor")  # styled, and axe finds nothing wrong


def test_monitor_json_has_the_figures_of_the_page(monitored: str) -> None:
    found = requests.get(f"{monitored}/monitor.json", timeout=TIMEOUT).json()
    activity = found["activity"]
    assert sum(b["requests"] for b in activity["buckets"]) == activity["requests"]
    assert activity["errors_by_kind"] == [
        {"status": 400, "route": "/models/<model>/predict", "count": BAD}
    ]
    shares = [p["shares"] for p in activity["predictions"] if p["rows"]]
    assert shares and all(abs(sum(s.values()) - 1) < 1e-6 for s in shares)
    assert set(activity["classes"]) <= {"leaves", "stays"}
    assert sum(p["rows"] for p in activity["predictions"]) == ROWS
    assert 0 < activity["p50_ms"] <= activity["p95_ms"]
    # a period in the past: nothing logged, said so
    early = requests.get(
        f"{monitored}/monitor.json",
        params={"since": "2020-01-01", "until": "2020-01-02"},
        timeout=TIMEOUT,
    ).json()
    assert early["summary"] == "No requests logged from Wed 1 Jan 00:00 to Thu 2 Jan 00:00 UTC."
    assert early["activity"]["requests"] == 0 and early["events"] == []
