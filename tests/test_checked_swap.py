"""The checked swap (issue 26), no process: the comparison of two versions' answers (pure
functions), the setting, the sentences, and the registry's decision with fake replicas: a
new version that answers like the serving one swaps in, one that does not is refused under
``swap_when = "agree>=0.95"`` and kept ready for the owner's force until a newer file, a
timeout or the stop (its replicas never leak), a first version is never checked, and a model
with no reference sample and no logged inputs swaps as before, saying it was not checked.

The fake replicas (tests/fakes.py, tests/swap_helpers.py) answer ``2 * x0 + x1``; a version
whose file starts with ``bad`` adds 100 (a model "trained on shuffled labels"), one starting
with ``close`` adds a little (a retrain with another seed). ``test_checked_swap_server.py``
runs the same with real models, processes and a server."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import swap_helpers
from tests.fakes import FakeModel, FakeReplica
from tests.helpers import wait_until
from tests.swap_helpers import NAME, ROWS, ShiftedModel, new_file, registry_of, with_reference
from winserve.host.answers import HostInfo
from winserve.model_info import ModelSpec
from winserve.models import checked_swap
from winserve.models import refused as kept_refused
from winserve.models.checked_swap import Answers, compare, decide, parse_when
from winserve.models.registry import Registry
from winserve.models.status import SwapCheck
from winserve.models.swap_rows import logged_rows
from winserve.predlog import store
from winserve.settings import Settings, to_swap_when

pytestmark = pytest.mark.timeout(30)


# -- the comparison: pure functions -----------------------------------------------------------


def test_a_classifier_agrees_on_labels_and_differs_by_its_probabilities() -> None:
    old = Answers(
        ["a", "b", "a", "b"], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]], ("a", "b")
    )
    # the new version lists its classes the other way round: matched by label, not position
    new = Answers(
        ["a", "b", "b", "b"], [[0.2, 0.8], [0.75, 0.25], [0.55, 0.45], [0.7, 0.3]], ("b", "a")
    )
    found = compare(old, new, regression=False)
    assert (found.rows, found.agreeing, found.disagreeing) == (4, 3, (2,))
    assert found.agreement == 0.75
    assert found.measure == "probabilities"
    gaps = [abs(0.9 - 0.8), abs(0.2 - 0.25), abs(0.6 - 0.45), abs(0.3 - 0.3)]
    assert found.differences == pytest.approx(gaps)
    assert found.mean_difference == pytest.approx(sum(gaps) / 4)
    assert found.max_difference == pytest.approx(0.15)


def test_classes_that_differ_leave_the_probabilities_out_and_say_so() -> None:
    old = Answers([0, 1], [[0.5, 0.5], [0.1, 0.9]], (0, 1))
    new = Answers([0, 2], [[0.5, 0.2, 0.3], [0.1, 0.1, 0.8]], (0, 1, 2))
    found = compare(old, new, regression=False)
    assert found.agreement == 0.5 and found.measure == ""
    assert found.mean_difference is None
    assert "the classes differ ([0, 1] against [0, 1, 2])" in found.note


def test_a_row_one_version_refuses_disagrees_and_one_both_refuse_is_left_out() -> None:
    old = Answers([1.0, 2.0, 3.0, 4.0], refused=frozenset({3}))
    new = Answers([1.0, 2.0, 3.0, 4.0], refused=frozenset({2, 3}))
    found = compare(old, new, regression=True)
    assert (found.rows, found.agreeing, found.disagreeing) == (3, 2, (2,))
    assert found.differences[2] is None and found.differences[3] is None


def test_multi_output_answers_compare_element_by_element() -> None:
    found = compare(Answers([[1, 0], [0, 1]]), Answers([[1, 0], [1, 1]]), regression=False)
    assert found.agreement == 0.5


def test_the_decision_and_the_setting() -> None:
    found = compare(Answers(["a"] * 19 + ["b"]), Answers(["a"] * 20), regression=False)
    assert found.agreement == 0.95
    assert decide(found, 0.95) and not decide(found, 0.96) and decide(found, None)
    empty = compare(Answers([]), Answers([]), regression=False)
    assert empty.agreement is None and decide(empty, 1.0)  # nothing says it is worse
    assert to_swap_when("always") == "always" and parse_when("always") is None
    assert to_swap_when(" Agree >= 0.950 ") == "agree>=0.95" and parse_when("agree>=0.95") == 0.95
    assert to_swap_when("agree>=95%") == "agree>=0.95" and to_swap_when("agree>=1") == "agree>=1"
    for bad in ("agree>=0", "agree>=1.5", "agree > 0.9", "sometimes", "agree>=", 0.9):
        with pytest.raises(ValueError, match=r"always|agree>="):
            to_swap_when(bad)


def test_the_sentences() -> None:
    check = SwapCheck(3, 2, 2000, 1000, 1000, 0.982, 0.012, 0.4, "probabilities", None, True)
    assert check.sentence == (
        "version 3 agreed with version 2 on 98.2 % of 2,000 rows (probabilities differ by "
        "0.012 on average, 0.4 at most)"
    )
    refused = SwapCheck(3, 2, 2000, 1000, 1000, 0.41, None, None, "", 0.95, False)
    assert refused.sentence == (
        "version 3 agreed with version 2 on only 41.0 % of 2,000 rows, below swap_when = "
        "agree>=0.95"
    )
    unchecked = SwapCheck(3, 2, 0, 0, 0, None, None, None, "", 0.95, True, note="no rows")
    assert unchecked.sentence == "version 3 was not checked against version 2: no rows"
    assert checked_swap.percent(0.9999) == "99.9 %" and checked_swap.percent(1.0) == "100.0 %"
    assert refused.as_dict()["agreement"] == 0.41 and refused.as_dict()["swapped"] is False


# -- the logged inputs: the prediction log's SQLite file, read-only -----------------------------


def _log_file(path: Path, entries: list[tuple[str, int, list[str], list[list[Any]]]]) -> Path:
    """A prediction log holding ``entries`` (model, status, column names, rows), in order."""
    conn = store.connect(path)
    try:
        for i, (model, status, names, rows) in enumerate(entries):
            conn.execute(
                "INSERT OR IGNORE INTO column_sets (names) VALUES (?)", (json.dumps(names),)
            )
            (cid,) = conn.execute(
                "SELECT id FROM column_sets WHERE names = ?", (json.dumps(names),)
            ).fetchone()
            conn.execute(
                "INSERT INTO requests (request_id, time, model, route, method, latency_ms, "
                "status, n_rows, columns, inputs) "
                "VALUES (?, ?, ?, '/predict', 'POST', 1, ?, ?, ?, ?)",
                (f"r{i}", 1000.0 + i, model, status, len(rows), cid, json.dumps(rows)),
            )
    finally:
        conn.close()
    return path


def test_the_logged_inputs_are_the_models_newest_answered_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _log_file(
        tmp_path / "log.sqlite",
        [
            (NAME, 200, ["x0", "x1"], [[1.0, 1.0], [2.0, 1.0]]),
            ("other", 200, ["x0", "x1"], [[99.0, 9.0]]),
            (NAME, 400, ["x0", "x1"], [["oops", 1.0]]),  # refused: not an input to compare on
            (NAME, 200, ["x1", "x0", "extra"], [[5.0, 3.0, "z"]]),  # other order, more columns
            (NAME, 200, ["x0"], [[7.0]]),  # an older version's columns: left out
        ],
    )
    assert logged_rows(path, NAME, ["x0", "x1"]) == {"x0": [3.0, 1.0, 2.0], "x1": [5.0, 1.0, 1.0]}
    monkeypatch.setattr("winserve.models.swap_rows.MAX_LOGGED", 2)
    assert logged_rows(path, NAME, ["x0", "x1"]) == {"x0": [3.0, 1.0], "x1": [5.0, 1.0]}
    assert logged_rows(tmp_path / "none.sqlite", NAME, ["x0"]) == {}
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 100)
    assert logged_rows(tmp_path / "junk.sqlite", NAME, ["x0"]) == {}  # said, never raised


def test_each_version_is_asked_as_a_request_and_refuses_rows_one_by_one() -> None:
    from winserve.models.swap_rows import Rows, ask
    from winserve.service import Service

    model = FakeModel(refuse=3.0)  # a row whose x0 is 3 is refused by the model
    pool = model.pool(timeout=5.0)
    try:
        info = pool.wait_ready(5)
        rows = Rows({"x0": [1.0, 3.0, 2.0, "four", 5.0], "x1": [1.0] * 5}, ["reference"] * 5)
        answers, why = ask(Service(pool, max_rows=2), info, rows)  # 2 rows a call
        assert answers.refused == {1, 3}  # the model's refusal, and the checks' ("four")
        assert [answers.labels[i] for i in (0, 2, 4)] == [3.0, 5.0, 11.0]
        assert model.calls == [2, 1, 1]  # "four" never reaches the model
        assert "refused by the fake model" in why
    finally:
        pool.close()


# -- the registry's decision, with fake replicas ------------------------------------------------


model = swap_helpers.model  # the fixtures: the fake replicas and a folder of one model
folder = swap_helpers.folder


@pytest.fixture
def checked(model: ShiftedModel, folder: Path) -> Iterator[Registry]:
    registry = registry_of(model, with_reference(folder))
    assert registry.load(NAME, folder / f"{NAME}.joblib")
    yield registry
    registry.close()


def serving(registry: Registry) -> int:
    slot = registry.acquire(NAME)
    registry.release(slot)
    return slot.version


def replicas_of(model: FakeModel, content: bytes) -> list[FakeReplica]:
    """The fake replicas that loaded a copy holding ``content``."""
    return [
        r
        for r in model.replicas
        if Path(r.spec.path).exists() and Path(r.spec.path).read_bytes() == content
    ]


def test_the_first_version_is_never_checked(checked: Registry) -> None:
    assert serving(checked) == 1
    assert checked.entry(NAME).check is None
    assert checked.status()[0].check is None


def test_a_retrain_that_agrees_swaps_in_and_says_so(
    checked: Registry, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "winserve")
    assert checked.load(NAME, new_file(folder, b"close retrain"))
    assert serving(checked) == 2
    check = checked.entry(NAME).check
    assert check is not None and check.swapped and not check.waiting
    assert (check.new_version, check.old_version, check.rows, check.reference_rows) == (
        2,
        1,
        ROWS,
        ROWS,
    )
    assert check.agreement == 1.0 and check.measure == "values"
    assert check.max_difference == pytest.approx(0.01)
    line = f"{NAME}: version 2 agreed with version 1 on 100.0 % of {ROWS} rows"
    assert any(r.getMessage().startswith(line) for r in caplog.records)
    assert checked.status()[0].check == check  # the snapshot the pages render


def test_a_model_that_disagrees_is_refused_and_kept_ready_for_the_owner(
    checked: Registry, model: ShiftedModel, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert not checked.load(NAME, new_file(folder, b"bad labels"))
    assert serving(checked) == 1  # the old version keeps serving
    entry = checked.entry(NAME)
    check = entry.check
    assert check is not None and not check.swapped and check.waiting
    assert check.agreement == 0.0 and check.disagreeing == ROWS
    assert entry.reason == check.sentence and "below swap_when = agree>=0.95" in entry.reason
    assert any(
        "not swapped" in r.getMessage() and "keeps serving" in r.getMessage()
        for r in caplog.records
    )
    # the console says a regressor's rule with its value (issue 26): 2 * x0 + x1 on the rows
    rule = f"(a value agrees within {check.tolerance:.3g}, half the standard deviation of "
    assert check.tolerance is not None and check.tolerance > 5
    assert any(
        rule in r.getMessage() and "version 1's values" in r.getMessage() for r in caplog.records
    )
    rows = entry.disagreements
    assert rows is not None and len(rows.rows) == ROWS
    assert rows.header == ("origin", "x0", "x1", "version_1", "version_2", "difference")
    first = rows.rows[0]
    assert first == ("reference", 0.0, 0.0, 0.0, 100.0, 100.0)  # 2 * x0 + x1, and + 100
    refused = replicas_of(model, b"bad labels")
    assert refused and not any(r.stopped for r in refused)  # ready for the force

    made = len(model.replicas)
    assert checked.force_swap(NAME) == ""
    assert serving(checked) == 2 and len(model.replicas) == made  # the same replicas, no reload
    check = checked.entry(NAME).check
    assert check is not None and check.swapped and check.forced and not check.waiting
    assert "swapped on the owner's request" in check.sentence
    assert checked.entry(NAME).reason == ""
    assert "no refused version is waiting" in checked.force_swap(NAME)


def test_a_load_the_owner_asks_for_swaps_the_refused_version_in(
    checked: Registry, model: ShiftedModel, folder: Path
) -> None:
    path = new_file(folder, b"bad labels")
    assert not checked.load(NAME, path)
    made = len(model.replicas)
    assert checked.load(NAME, path, force=True)  # POST /v2/repository/models/<name>/load
    assert serving(checked) == 2 and len(model.replicas) == made
    # a file that changed since, loaded by the owner: checked, reported, swapped in anyway
    assert checked.load(NAME, new_file(folder, b"version 1 again"), force=True)
    assert serving(checked) == 3
    check = checked.entry(NAME).check
    assert check is not None and check.swapped and check.forced and check.agreement is not None


def test_the_refused_version_stops_after_a_while(
    checked: Registry, model: ShiftedModel, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kept_refused, "KEEP_REFUSED_SECONDS", 0.3)
    assert not checked.load(NAME, new_file(folder, b"bad labels"))
    refused = replicas_of(model, b"bad labels")
    copies = {Path(r.spec.path).parent for r in refused}
    wait_until(lambda: all(r.stopped for r in refused), 5)
    wait_until(lambda: not any(c.exists() for c in copies), 5)  # its private copy goes too
    check = checked.entry(NAME).check
    assert check is not None and not check.waiting
    assert "no refused version is waiting" in checked.force_swap(NAME)
    assert serving(checked) == 1


def test_a_newer_file_or_the_old_one_back_replaces_the_refused_version(
    checked: Registry, model: ShiftedModel, folder: Path
) -> None:
    assert not checked.load(NAME, new_file(folder, b"bad labels"))
    first = replicas_of(model, b"bad labels")
    assert not checked.load(NAME, new_file(folder, b"bad twice"))  # refused too
    assert first and all(r.stopped for r in first)
    second = replicas_of(model, b"bad twice")
    assert second and not any(r.stopped for r in second)
    assert checked.load(NAME, new_file(folder, b"version 1"))  # the serving file is back
    assert all(r.stopped for r in second)
    assert serving(checked) == 1
    check = checked.entry(NAME).check
    assert check is not None and not check.waiting
    assert checked.entry(NAME).reason == ""


def test_an_unload_stops_the_refused_version(
    checked: Registry, model: ShiftedModel, folder: Path
) -> None:
    assert not checked.load(NAME, new_file(folder, b"bad labels"))
    refused = replicas_of(model, b"bad labels")
    checked.unload(NAME, gone=True)  # the file left the folder
    assert refused and all(r.stopped for r in refused)


def test_one_model_file_is_checked_too_and_its_deletion_stops_the_refused_version(
    model: ShiftedModel, folder: Path
) -> None:
    path = with_reference(folder) / f"{NAME}.joblib"
    registry = Registry(
        Settings(model=path, log=False, swap_when="agree>=0.95"), model.make_backend
    )
    try:
        assert registry.load(NAME, path)
        assert not registry.load(NAME, new_file(folder, b"bad labels"))
        assert serving(registry) == 1
        refused = replicas_of(model, b"bad labels")
        assert refused and not any(r.stopped for r in refused)
        registry.file_gone(NAME)  # the watcher: the one file left its folder
        assert all(r.stopped for r in refused)
    finally:
        registry.close()


def test_one_model_files_page_has_the_bare_routes(model: ShiftedModel, folder: Path) -> None:
    from tests.helpers import csrf_token
    from winserve.dataplane import DataPlane
    from winserve.web import create_app

    path = with_reference(folder) / f"{NAME}.joblib"
    settings = Settings(model=path, log=False, swap_when="agree>=0.95")
    registry = Registry(settings, model.make_backend)
    try:
        assert registry.load(NAME, path)
        assert not registry.load(NAME, new_file(folder, b"bad labels"))
        client = create_app(settings, plane=DataPlane(registry)).test_client()
        assert client.get("/health").get_json()["swap_check"]["waiting"]
        page = client.get("/").get_data(as_text=True)
        assert 'action="/swap/force"' in page and 'href="/swap/disagreements.csv"' in page
        assert client.get("/swap/disagreements.csv").status_code == 200
        pressed = client.post("/swap/force", data={"csrf_token": csrf_token(page)})
        assert pressed.status_code == 303 and serving(registry) == 2
    finally:
        registry.close()


def test_no_refused_version_outlives_the_registry(model: ShiftedModel, folder: Path) -> None:
    registry = registry_of(model, with_reference(folder))
    assert registry.load(NAME, folder / f"{NAME}.joblib")
    assert not registry.load(NAME, new_file(folder, b"bad labels"))
    refused = replicas_of(model, b"bad labels")
    registry.close()
    assert refused and all(r.stopped for r in refused)
    assert all(r.stopped for r in model.replicas)


def test_always_swaps_and_reports_the_disagreement(model: ShiftedModel, folder: Path) -> None:
    registry = registry_of(model, with_reference(folder), when="always")
    try:
        assert registry.load(NAME, folder / f"{NAME}.joblib")
        assert registry.load(NAME, new_file(folder, b"bad labels"))
        assert serving(registry) == 2
        check = registry.entry(NAME).check
        assert check is not None and check.swapped and not check.forced
        assert check.agreement == 0.0 and check.threshold is None
        assert registry.entry(NAME).disagreements is not None
    finally:
        registry.close()


def test_without_a_sample_or_logged_inputs_it_swaps_unchecked(
    model: ShiftedModel, folder: Path
) -> None:
    registry = registry_of(model, folder)  # no reference sample; the log is off
    try:
        assert registry.load(NAME, folder / f"{NAME}.joblib")
        assert registry.load(NAME, new_file(folder, b"bad labels"))
        assert serving(registry) == 2
        check = registry.entry(NAME).check
        assert check is not None and check.swapped and not check.checked
        assert check.sentence == (
            "version 2 was not checked against version 1: no reference sample or logged inputs"
        )
    finally:
        registry.close()


class ImageModel(ShiftedModel):
    def info(self, spec: ModelSpec) -> HostInfo:
        found = super().info(spec)
        return {**found, "features": [{"name": "image", "kind": "image"}]}


def test_a_model_of_images_swaps_unchecked_and_says_why(folder: Path) -> None:
    registry = registry_of(ImageModel(), with_reference(folder))
    try:
        assert registry.load(NAME, folder / f"{NAME}.joblib")
        assert registry.load(NAME, new_file(folder, b"bad labels"))
        check = registry.entry(NAME).check
        assert check is not None and check.swapped and not check.checked
        assert check.note == "its inputs are tensors or images, which the check does not compare"
    finally:
        registry.close()


def test_logged_inputs_are_compared_too(model: ShiftedModel, folder: Path, tmp_path: Path) -> None:
    log = _log_file(
        tmp_path / "log.sqlite",
        [(NAME, 200, ["x0", "x1"], [[float(i), 1.0] for i in range(5)])],
    )
    registry = registry_of(model, folder, log=True, log_path=log)  # no reference sample
    try:
        assert registry.load(NAME, folder / f"{NAME}.joblib")
        assert not registry.load(NAME, new_file(folder, b"bad labels"))
        check = registry.entry(NAME).check
        assert check is not None and (check.rows, check.logged_rows, check.reference_rows) == (
            5,
            5,
            0,
        )
        rows = registry.entry(NAME).disagreements
        assert rows is not None and {r[0] for r in rows.rows} == {"log"}
    finally:
        registry.close()


def test_one_logged_row_sent_five_times_gives_no_scale_and_does_not_refuse(
    model: ShiftedModel, folder: Path, tmp_path: Path
) -> None:
    """A new user's trial: the same row sent 5 times, no reference sample; the serving
    version's values had no spread, so a retrain read "agreed on 0.0 %" and agree>=0.95
    refused it. The check says it cannot judge so few distinct rows, and the swap goes on."""
    log = _log_file(tmp_path / "log.sqlite", [(NAME, 200, ["x0", "x1"], [[3.0, 1.0]] * 5)])
    registry = registry_of(model, folder, log=True, log_path=log)  # no reference sample
    try:
        assert registry.load(NAME, folder / f"{NAME}.joblib")
        assert registry.load(NAME, new_file(folder, b"close retrain"))
        assert serving(registry) == 2
        check = registry.entry(NAME).check
        assert check is not None and check.swapped and not check.checked and check.rows == 5
        assert check.sentence.startswith(
            "version 2 was not checked against version 1: a regressor's agreement cannot be "
            "judged on so few distinct rows: the serving version's answers to the 5 rows "
            "checked take 1 distinct value"
        )
        assert "0.0 %" not in check.sentence and "differ by 0.01 on average" in check.sentence
    finally:
        registry.close()


# -- the page's view of it: Flask's test client over the same fake registry ------------------


def test_the_page_the_csv_and_the_button(checked: Registry, folder: Path) -> None:
    from tests.helpers import csrf_token
    from winserve.dataplane import DataPlane
    from winserve.web import create_app

    assert not checked.load(NAME, new_file(folder, b"bad labels"))
    settings = Settings(model=folder, log=False, swap_when="agree>=0.95")
    client = create_app(settings, plane=DataPlane(checked)).test_client()
    base = f"/models/{NAME}"
    health = client.get("/health").get_json()["models"][NAME]
    assert health["swap_check"]["waiting"] and health["swap_check"]["disagreeing"] == ROWS
    assert "below swap_when = agree>=0.95" in health["swap_check"]["message"]

    stranger = {"REMOTE_ADDR": "10.1.2.3"}  # no token set: another computer is no owner
    page = client.get(f"{base}/", environ_base=stranger).get_data(as_text=True)
    assert "agreed with version 1 on only 0.0 %" in page and "anyway" not in page
    assert "half the standard deviation of version 1&#39;s values on these rows" in page
    assert "The new model file was not swapped in, so version 1 keeps serving" in page
    for method, path in (("GET", "/swap/disagreements.csv"), ("POST", "/swap/force")):
        refused = client.open(f"{base}{path}", method=method, environ_base=stranger)
        assert refused.status_code == 403, refused.get_data(as_text=True)

    page = client.get(f"{base}/").get_data(as_text=True)  # this computer: the owner
    assert "Serve version 2 anyway" in page and f"{base}/swap/disagreements.csv" in page
    got = client.get(f"{base}/swap/disagreements.csv")
    assert got.status_code == 200 and got.mimetype == "text/csv"
    lines = got.get_data(as_text=True).splitlines()
    assert lines[0] == "origin,x0,x1,version_1,version_2,difference" and len(lines) == ROWS + 1
    assert client.post(f"{base}/swap/force").status_code == 403  # no CSRF value: not the form
    pressed = client.post(f"{base}/swap/force", data={"csrf_token": csrf_token(page)})
    assert pressed.status_code == 303 and pressed.headers["Location"].endswith(f"{base}/")
    assert serving(checked) == 2
    again = client.post(f"{base}/swap/force", headers={"X-Winserve-Client": "1"})
    assert again.status_code == 409 and "no refused version is waiting" in again.get_data(
        as_text=True
    )
    page = client.get(f"{base}/").get_data(as_text=True)
    assert "swapped on the owner&#39;s request" in page and "anyway" not in page


def test_the_csv_never_opens_a_colleagues_text_as_a_formula() -> None:
    from winserve.models.checked_swap import DisagreeingRows
    from winserve.web.swap_page import _lines

    rows = DisagreeingRows(
        2,
        1,
        ("origin", "=name", "version_1", "version_2", "difference"),
        (("log", '=HYPERLINK("http://x")', "-1.5", None, -1.5),),
    )
    assert "".join(_lines(rows)).splitlines() == [
        "origin,'=name,version_1,version_2,difference",
        'log,"\'=HYPERLINK(""http://x"")",-1.5,,-1.5',
    ]
