"""Drift's arithmetic (issue 26; winserve/predlog/drift.py): the PSI against answers computed
by hand, the bins of numbers, categories and missing values, the words. Fast layer: no server."""

from __future__ import annotations

import math
from pathlib import Path
from statistics import NormalDist

import pytest

from tests.helpers import jobs_client
from tests.log_entries import entry
from winserve.backends.base import Prediction
from winserve.model_info import ModelSpec
from winserve.predlog import drift, store
from winserve.service import PredictRequest

pytestmark = pytest.mark.timeout(30)


def normal_sample(mu: float, n: int) -> list[float]:
    """``n`` evenly spaced quantiles of N(mu, 1): a sample whose shares are the curve's."""
    dist = NormalDist(mu, 1.0)
    return [dist.inv_cdf((i + 0.5) / n) for i in range(n)]


def test_a_normal_shifted_by_half_a_deviation_has_the_psi_computed_by_hand() -> None:
    # reference N(0, 1): its deciles are z_k = Φ⁻¹(k/10); logged N(0.5, 1) puts
    # Φ(z_{k+1} − 0.5) − Φ(z_k − 0.5) of its rows in bin k, where the reference has 0.1
    z = [-math.inf, *(NormalDist().inv_cdf(k / 10) for k in range(1, 10)), math.inf]
    shares = [NormalDist().cdf(z[k + 1] - 0.5) - NormalDist().cdf(z[k] - 0.5) for k in range(10)]
    by_hand = sum((a - 0.1) * math.log(a / 0.1) for a in shares)
    assert 0.2 < by_hand < 0.3  # ~0.245: moderate, near the "shifted" line
    found = drift.column_drift("x", True, normal_sample(0.0, 20_000), normal_sample(0.5, 20_000))
    assert found.psi == pytest.approx(by_hand, abs=2e-3)
    assert found.expected[:10] == pytest.approx([0.1] * 10, abs=1e-3)
    assert found.expected[10] == 0.0 and found.actual[10] == 0.0  # nothing missing
    assert found.words == "moderate"


def test_the_same_distribution_is_stable_and_a_full_deviation_is_shifted() -> None:
    ref = normal_sample(0.0, 10_000)
    same = drift.column_drift("x", True, ref, normal_sample(0.0, 3_000))
    assert same.psi is not None and same.psi < 0.01 and same.words == "stable"
    moved = drift.column_drift("x", True, ref, normal_sample(1.0, 3_000))
    assert moved.psi is not None and moved.psi > 0.25 and moved.words == "shifted"
    assert moved.direction == "up" and same.direction in ("up", "down", "")
    lower = drift.column_drift("x", True, ref, normal_sample(-1.0, 3_000))
    assert lower.direction == "down" and lower.as_dict()["direction"] == "down"
    assert drift.column_drift("plan", False, ["a"], ["b"]).direction == ""  # numbers only


def test_categories_each_value_a_bin_the_rest_other_missing_its_own() -> None:
    ref = ["a"] * 50 + ["b"] * 50
    logged = ["a"] * 80 + ["b"] * 20
    found = drift.column_drift("plan", False, ref, logged)
    by_hand = 0.3 * math.log(0.8 / 0.5) + (-0.3) * math.log(0.2 / 0.5)  # 0.4159
    assert found.psi == pytest.approx(by_hand, rel=1e-9)
    assert found.bins == ("a", "b", "other", "missing")
    # a value never seen and a missing one: "other" and "missing", each with a floored
    # reference share of 1e-4
    found = drift.column_drift("plan", False, ref, ["a", "b", "c", None])
    assert found.actual == (0.25, 0.25, 0.25, 0.25)
    e, a = drift.FLOOR, 0.25
    by_hand = 2 * (a - 0.5) * math.log(a / 0.5) + 2 * (a - e) * math.log(a / e)
    assert found.psi == pytest.approx(by_hand, rel=1e-9)


def test_number_bins_edges_missing_and_text() -> None:
    ref = [float(i) for i in range(1, 101)]  # deciles 10, 20, …, 90
    edges = drift.decile_edges(ref)
    # values of the reference, one per decile (within one of k·10: 0.3 · 100 is 30.000…04
    # in floating point, so numpy may take the next value)
    assert len(edges) == 9 and set(edges) <= set(ref) and edges[0] == 10.0
    assert edges == pytest.approx([10.0 * k for k in range(1, 10)], abs=1.0)
    shares = drift.number_shares([1.0, 10.0, 11.0, math.nan, None, "x"], edges)
    # 1.0 and the edge itself in the first bin, 11.0 in the second; NaN, None and a text
    # where a number was expected in "missing"
    assert shares[0] == pytest.approx(2 / 6) and shares[1] == pytest.approx(1 / 6)
    assert shares[-1] == pytest.approx(3 / 6)
    # a column of few values: repeated deciles give fewer bins, never an empty edge list
    assert drift.decile_edges([0.0] * 50 + [1.0] * 50) == [0.0, 1.0]


def test_no_logged_rows_no_psi_and_words_at_the_lines() -> None:
    found = drift.column_drift("x", True, [1.0, 2.0, 3.0], [])
    assert found.psi is None and found.words == "no rows" and found.logged_rows == 0
    assert [drift.words(v) for v in (0.0, 0.099, 0.1, 0.25, 0.2501)] == [
        "stable",
        "stable",
        "moderate",
        "moderate",
        "shifted",
    ]


def test_drift_types_columns_from_the_reference() -> None:
    found = drift.drift(
        {"age": [30.0, 40.0, None], "plan": ["x", "y", None], "ok": [True, False, True]},
        {"age": [35.0], "plan": ["x"]},
    )
    assert [(c.name, c.kind) for c in found] == [
        ("age", "number"),
        ("plan", "category"),
        ("ok", "category"),
    ]
    assert found[2].psi is None  # not logged at all
    # a category coded as numbers, said so by the model: a bin per value, not deciles
    coded = drift.drift({"grade": [1, 2, 3, 1]}, {"grade": [1, 1]}, {"grade": "category"})
    assert coded[0].kind == "category" and coded[0].bins == ("1", "2", "3", "other", "missing")
    assert coded[0].actual == (1.0, 0.0, 0.0, 0.0, 0.0)
    assert found[0].as_dict()["bins"][-1]["bin"] == "missing"


def test_the_monitor_is_the_owners_and_says_how_to_add_a_reference(iris_forest: Path) -> None:
    """In-process (Flask's test client, the model in this process): a stranger's address gets
    403 in the native error shape from monitor.json, and as a page from the page (issue 26:
    it was JSON), the owner the page; a model without a reference sample names the file to
    add, without a log the page says the log is off."""
    client = jobs_client(ModelSpec(str(iris_forest)))
    for path in ("/monitor.json", "/models/iris forest/monitor.json"):
        stranger = client.get(path, environ_base={"REMOTE_ADDR": "10.1.2.3"})
        assert stranger.status_code == 403 and "owner" in stranger.json["error"]["message"]
    stranger = client.get("/monitor", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert stranger.status_code == 403 and stranger.mimetype == "text/html"
    assert "for the model&#39;s owner" in stranger.text
    found = client.get("/monitor.json").json
    assert found["columns"] == [] and found["log"] is False
    assert "iris forest.reference.csv" in found["hint"]
    page = client.get("/models/iris forest/monitor")
    assert page.status_code == 200 and "iris forest.reference.csv" in page.text
    assert "The prediction log is off" in page.text
    assert client.get("/models/nobody/monitor.json").status_code == 404


def test_logged_columns_reads_each_column_by_name_for_the_model_and_the_period(
    tmp_path: Path,
) -> None:
    """A real log file written by the store: columns found by name whatever order a request
    sent them in, other models and other times left out, numbers and texts as sent."""
    path = tmp_path / "log.sqlite"
    assert drift.logged_columns(path, "m", 0, 2e9, ["a"]) == ({"a": []}, 0)  # no file yet
    two = Prediction(["x", "y"], [[0.25, 0.75], [1.0, 0.0]])
    conn = store.connect(path)
    store.write(
        conn,
        [
            entry(0, PredictRequest.from_columns({"a": [1, 2], "b": ["u", None]}), two, time=100.0),
            entry(
                1,
                PredictRequest.from_rows([[5.0, 6.0], [7.0, 8.0]], names=["b", "a"]),
                two,
                time=200.0,
            ),
            entry(
                2,
                PredictRequest.from_columns({"a": [9, 9], "b": ["z", "z"]}),
                two,
                time=200.0,
                model="other",
            ),
            entry(3, PredictRequest.from_columns({"a": [3, 3], "b": ["w", "w"]}), two, time=900.0),
        ],
        keep_inputs=True,
    )
    conn.close()
    found, rows = drift.logged_columns(path, "m", 50.0, 500.0, ["a", "b", "c"])
    assert rows == 4
    # the most recent request first
    assert found == {"a": [6.0, 8.0, 1, 2], "b": [5.0, 7.0, "u", None], "c": []}


def test_with_a_token_the_monitor_is_its_holders_from_anywhere() -> None:
    token = "correct horse battery"
    client = jobs_client("tests.models:chaos", token=token)
    stranger = {"REMOTE_ADDR": "10.1.2.3"}
    for path in ("/monitor", "/monitor.json"):
        refused = client.get(path, environ_base=stranger)
        if path == "/monitor":  # a page: it asks for the token, as the model's page does
            assert refused.status_code == 303
            assert refused.headers["Location"] == "/login?next=/monitor"
        else:
            assert refused.status_code == 401 and refused.json["error"]["code"] == "unauthorized"
        let_in = client.get(
            path, environ_base=stranger, headers={"Authorization": f"Bearer {token}"}
        )
        assert let_in.status_code == 200
    # a model from a factory has no file: the hint names the file to add generically
    found = client.get("/monitor.json", headers={"Authorization": f"Bearer {token}"}).json
    assert found["columns"] == [] and "<model>.reference.csv" in found["hint"]
