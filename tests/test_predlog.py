"""The prediction log (issue 26): its SQLite file, its writer thread, and what the web layer
hands it from every prediction route; real files, real threads, the app on Flask's test client
(``tests/test_predlog_server.py`` runs it under a real server with spawned models)."""

from __future__ import annotations

import csv
import io
import json
import os
import pickle
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from tests.conftest import iris_frame
from tests.helpers import csrf_token, jobs_client, wait_until
from tests.log_entries import entry, unwritable
from winserve.backends.base import Prediction
from winserve.model_info import ModelSpec
from winserve.predlog import record, store
from winserve.predlog.location import default_path
from winserve.predlog.record import record_of
from winserve.predlog.writer import PredictionLog
from winserve.service import PredictRequest

pytestmark = pytest.mark.timeout(60)
NAME = "iris forest"


def stored(path: Path, sql: str, *args: Any) -> list[Any]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


# -- the file ---------------------------------------------------------------------------------


def rows_stored(path: Path) -> list[tuple[str, list[dict[str, Any]], list[Any], Any, Any]]:
    """Each request's (request id, input rows as objects, predictions, probabilities, sample)."""
    found = []
    for request_id, columns, inputs, predictions, probabilities, sample in stored(
        path,
        "SELECT request_id, c.names, inputs, predictions, probabilities, sample FROM requests "
        "LEFT JOIN column_sets c ON c.id = requests.columns ORDER BY requests.id",
    ):
        rows = [
            dict(zip(json.loads(columns), row, strict=True))
            for row in store.decode_inputs(columns, inputs) or []
        ]
        found.append(
            (
                request_id,
                rows,
                json.loads(predictions) if predictions else [],
                json.loads(probabilities) if probabilities else None,
                json.loads(sample) if sample else None,
            )
        )
    return found


def test_every_shape_of_request_is_stored_as_named_rows(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    conn = store.connect(path)
    two = Prediction(["x", "y"], [[0.25, 0.75], [1.0, 0.0]])
    requests = [
        PredictRequest.from_columns({"a": [1, 2], "b": ["u", None]}),
        PredictRequest.from_rows([[1, float("nan")], [3, 4]]),  # by position: the model's names
        PredictRequest.from_rows([[5, 6], [7, 8]], names=["b", "a"]),  # named by sender
        PredictRequest.from_matrix(np.array([[1.5, 2.5], [3.5, 4.5]])),
    ]
    store.write(conn, [entry(i, r, two) for i, r in enumerate(requests)], keep_inputs=True)
    store.write(
        conn,
        [entry(9, PredictRequest.from_values([7.0]), Prediction([float("nan")]))],
        keep_inputs=True,
    )
    conn.close()
    got = rows_stored(path)
    assert [g[0] for g in got] == ["r0", "r1", "r2", "r3", "r9"]
    assert [g[1] for g in got] == [
        [{"a": 1, "b": "u"}, {"a": 2, "b": None}],
        [{"a": 1, "b": None}, {"a": 3, "b": 4}],  # NaN is stored as JSON's missing value
        [{"b": 5, "a": 6}, {"b": 7, "a": 8}],
        [{"a": 1.5, "b": 2.5}, {"a": 3.5, "b": 4.5}],
        [{"a": 7.0}],
    ]
    assert got[0][2] == ["x", "y"] and got[0][3] == [[0.25, 0.75], [1.0, 0.0]]
    assert got[4][2] == [None] and got[4][3] is None and got[0][4] is None


def test_rows_of_numbers_are_stored_as_float64_and_read_back_with_missing_values(
    tmp_path: Path,
) -> None:
    path = tmp_path / "log.sqlite"
    conn = store.connect(path)
    numbers = PredictRequest.from_rows([[1.5, float("nan")], [-0.0, 1e300]])
    store.write(conn, [entry(1, numbers, Prediction([0.5, float("nan")]))], keep_inputs=True)
    conn.close()
    assert stored(path, "SELECT typeof(inputs), length(inputs) FROM requests") == [("blob", 32)]
    [(_, rows, predictions, _, _)] = rows_stored(path)
    assert rows == [{"a": 1.5, "b": None}, {"a": -0.0, "b": 1e300}]
    assert predictions == [0.5, None]


def test_log_inputs_false_keeps_outputs_and_counts_only(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    conn = store.connect(path)
    request = PredictRequest.from_columns({"secret_a": [1, 2], "secret_b": [3, 4]})
    store.write(conn, [entry(1, request, Prediction([0, 1]))], keep_inputs=False)
    conn.close()
    assert stored(path, "SELECT n_rows, columns, inputs, predictions FROM requests") == [
        (2, None, None, "[0,1]")
    ]
    assert stored(path, "SELECT count(*) FROM column_sets") == [(0,)]
    raw = path.read_bytes()  # closed: the write-ahead log is checked into the file
    assert b"secret_" not in raw  # not in the file at all, not only not selectable


def test_a_large_request_keeps_a_bounded_sample_of_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    conn = store.connect(path)
    n = 5000
    request = PredictRequest.from_columns({"a": list(range(n)), "b": list(range(n))})
    store.write(conn, [entry(1, request, Prediction(list(range(n))))], keep_inputs=True)
    conn.close()
    [(_, rows, predictions, _, sample)] = rows_stored(path)
    assert len(rows) == len(predictions) == len(sample) == store.MAX_ROWS_STORED
    assert stored(path, "SELECT n_rows FROM requests") == [(n,)]
    assert sample == sorted(set(sample))
    for row, inputs, prediction in zip(sample, rows, predictions, strict=True):
        assert inputs == {"a": row, "b": row} and prediction == row  # each row its own answer
    assert sample[-1] > n // 2  # from the whole request, not its head


def test_pruning_by_days_then_by_size(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    conn = store.connect(path)
    now = time.time()
    wide = PredictRequest.from_columns({"a": ["x" * 2000] * 10, "b": [1] * 10})
    old = [entry(i, wide, Prediction([0] * 10), time=now - 40 * store.DAY) for i in range(50)]
    new = [entry(100 + i, wide, Prediction([0] * 10), time=now - i) for i in range(300)]
    store.write(conn, old + new[::-1], keep_inputs=True)
    assert store.prune(conn, now=now, days=30, max_bytes=10**9) == 50
    assert stored(path, "SELECT min(time) > ? FROM requests", now - 30 * store.DAY) == [(1,)]
    before = path.stat().st_size
    budget = 1024 * 1024
    assert store.used_bytes(conn) > 4 * budget
    deleted = store.prune(conn, now=now, days=30, max_bytes=budget)
    assert 0 < deleted < 300
    assert store.used_bytes(conn) <= budget
    conn.close()
    assert path.stat().st_size < before / 2  # the space went back to the disk
    kept = stored(path, "SELECT request_id FROM requests ORDER BY id")
    assert kept == [(f"r{100 + i}",) for i in reversed(range(300 - deleted))]  # oldest went
    assert stored(path, "PRAGMA integrity_check") == [("ok",)]


def test_default_path_is_one_file_per_model_under_the_data_folder(tmp_path: Path) -> None:
    one, two = tmp_path / "a" / "model.joblib", tmp_path / "b" / "model.joblib"
    first, second = default_path(one, "model"), default_path(two, "model")
    assert first != second and first.name.startswith("model.joblib-")
    assert first.parent == second.parent and first.parent.name == "predictions"
    assert str(first).startswith(os.environ["XDG_DATA_HOME"])  # the run's own (conftest)
    assert default_path(None, "demo").name.startswith("demo-")


# -- the writer -------------------------------------------------------------------------------


def test_the_writer_batches_and_flushes_everything_on_close(tmp_path: Path) -> None:
    plog = PredictionLog(tmp_path / "log.sqlite", interval=0.2)
    plog.start()
    request = PredictRequest.from_columns({"a": [1], "b": [2]})

    def client(k: int) -> None:
        for i in range(500):
            plog.put(entry(k * 1000 + i, request, Prediction([i])))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    plog.close()
    assert plog.status().written == 4000 and plog.dropped == 0 and plog.lost == 0
    ids = {r[0] for r in stored(plog.path, "SELECT request_id FROM requests")}
    assert ids == {f"r{k * 1000 + i}" for k in range(8) for i in range(500)}
    assert stored(plog.path, "SELECT count(*) FROM requests WHERE inputs = '[[1,2]]'") == [(4000,)]


def test_a_full_queue_drops_and_counts_without_waiting(tmp_path: Path) -> None:
    plog = PredictionLog(tmp_path / "log.sqlite", capacity=100)  # not started: nothing drains
    started = time.perf_counter()
    for i in range(10_000):
        plog.put(entry(i))
    assert time.perf_counter() - started < 1.0  # ~1 µs each, never a wait
    assert plog.dropped == 9_900
    plog.close()


def test_the_writer_is_a_process_of_its_own_ended_by_close(tmp_path: Path) -> None:
    plog = PredictionLog(tmp_path / "log.sqlite", interval=0.05)
    plog.start()
    pid = plog.pid
    assert pid is not None and pid != os.getpid()
    writer = psutil.Process(pid)
    assert writer.ppid() == os.getpid()
    plog.put(entry(1, PredictRequest.from_columns({"a": [1], "b": [2]}), Prediction([0])))
    wait_until(lambda: plog.written == 1, 10)
    plog.close()
    assert plog.pid is None
    assert not writer.is_running() or writer.status() == psutil.STATUS_ZOMBIE
    assert stored(plog.path, "SELECT request_id FROM requests") == [("r1",)]


def test_a_writer_process_that_dies_is_counted_and_started_again(tmp_path: Path) -> None:
    plog = PredictionLog(tmp_path / "log.sqlite", interval=0.05, retry_first=0.05)
    plog.start()
    request = PredictRequest.from_columns({"a": [1], "b": [2]})
    try:
        for i in range(5):
            plog.put(entry(i, request, Prediction([0])))
        wait_until(lambda: plog.written == 5, 10)
        first = plog.pid
        assert first is not None
        psutil.Process(first).kill()  # what a crash or Task Manager does to it
        wait_until(lambda: plog.put(entry(99)) or plog.error, 10)
        assert "writer process ended" in plog.error
        wait_until(
            lambda: plog.put(entry(100, request, Prediction([1]))) or plog.written > 5,
            20,
            interval=0.1,
        )
        assert plog.pid not in (None, first) and plog.error == ""
    finally:
        plog.close()
    ids = [r[0] for r in stored(plog.path, "SELECT request_id FROM requests")]
    assert {f"r{i}" for i in range(5)} <= set(ids) and "r100" in ids
    assert plog.written == len(ids)  # the counts of both processes, each entry once
    # the new process was told the column names again: the rows it wrote are named
    assert next(r[1] for r in rows_stored(plog.path) if r[0] == "r100") == [{"a": 1, "b": 2}]


def test_a_log_never_closed_does_not_hold_up_the_interpreters_exit(tmp_path: Path) -> None:
    # multiprocessing joins its children at exit and the writer ignores SIGTERM: our end of
    # the pipe is closed first, so the writer writes what it has and ends
    script = (
        "import time\n"
        "from pathlib import Path\n"
        "from winserve.predlog.store import Entry\n"
        "from winserve.predlog.writer import PredictionLog\n"
        f"plog = PredictionLog(Path({str(tmp_path / 'log.sqlite')!r}), interval=10)\n"
        "plog.start()\n"
        "time.sleep(0.5)\n"
        "plog.put(Entry(time.time(), 'r1', 'm', 1, None, '/p', 'POST', None, 1.0, 200, None))\n"
        "plog._wake.set()\n"
        "time.sleep(0.5)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert "writer process ended" not in done.stderr
    assert stored(tmp_path / "log.sqlite", "SELECT request_id FROM requests") == [("r1",)]


def test_a_record_keeps_plain_values_and_no_more_rows_than_it_stores() -> None:
    n = 5000
    columns = {"a": list(range(n)), "b": [float(i) for i in range(n)]}
    numbers: dict[tuple[str, ...], int] = {}

    def label_set(names: tuple[str, ...]) -> int:
        return numbers.setdefault(names, len(numbers))

    one = record_of(
        entry(1, PredictRequest.from_columns(columns), Prediction(list(range(n)))), True, label_set
    )
    two = record_of(
        entry(2, PredictRequest.from_rows([[1, 2]], names=["x", "y"]), Prediction([0])),
        True,
        label_set,
    )
    again = record_of(
        entry(3, PredictRequest.from_columns(columns), Prediction([0])), True, label_set
    )
    assert [r[record.LABELS] for r in (one, two, again)] == [0, 1, 0]  # each set of names once
    assert numbers == {("a", "b"): 0, ("x", "y"): 1}
    rows, picks = one[record.ROWS], one[record.PICKS]
    assert len(rows) == len(picks) == store.MAX_ROWS_STORED
    assert rows == [[i, float(i)] for i in picks] and one[record.ANSWERS] == picks
    assert pickle.loads(pickle.dumps(one)) == one  # what the sender hands the writer process
    quiet = record_of(
        entry(3, PredictRequest.from_columns(columns), Prediction([0] * n)), False, label_set
    )
    assert quiet[record.LABELS] is None and quiet[record.ROWS] is None


def test_an_unwritable_folder_is_reported_and_retried_and_never_raises(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    writable = unwritable(folder)
    # retries after 0.05 s, 0.1, 0.2 …: not the 5 s, doubling, of a server
    plog = PredictionLog(folder / "log.sqlite", interval=0.05, retry_first=0.05)
    plog.start()
    try:
        for i in range(10):
            plog.put(entry(i))
        wait_until(lambda: plog.lost == 10, 5)
        status = plog.status().to_dict()
        assert "error" in status and status["lost"] == 10 and status["written"] == 0
        writable()  # the disk is writable again: after the back-off, it writes
        wait_until(lambda: plog.put(entry(11)) or plog.written >= 1, 10, interval=0.1)
        assert plog.error == ""
    finally:
        plog.close()


# -- the web layer ----------------------------------------------------------------------------


def test_every_prediction_route_is_logged_with_its_request_id(
    logged_forest: tuple[Any, PredictionLog],
) -> None:
    client, plog = logged_forest
    x, _ = iris_frame()
    records = x.iloc[:2].to_dict(orient="records")
    form = {f"f{i}": str(v) for i, v in enumerate(x.iloc[0])}
    answers = [
        client.post("/predict", json=records),
        client.post("/invocations", json={"dataframe_records": records}),
        client.post(
            f"/v2/models/{NAME}/infer",
            json={
                "inputs": [
                    {
                        "name": "input-0",
                        "shape": [2, 4],
                        "datatype": "FP64",
                        "data": x.iloc[:2].to_numpy().tolist(),
                    }
                ]
            },
        ),
        client.post("/", data={**form, "csrf_token": csrf_token(client.get("/").text)}),
        client.post("/predict", json=[{"nonsense": 1}]),  # refused: logged, no rows
    ]
    tools = client.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    tool = tools.json["result"]["tools"][0]["name"]
    answers.append(
        client.post(
            "/mcp",
            json={
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": tool, "arguments": records[0]},
            },
        )
    )
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 400, 200]
    ids = [a.headers["X-Request-Id"] for a in answers]
    wait_until(lambda: plog.written == 6, 5)
    got = stored(
        plog.path,
        "SELECT request_id, route, status, model, version, n_rows, caller FROM requests "
        "ORDER BY id",
    )
    assert [r[0] for r in got] == ids
    assert [r[1] for r in got] == [
        "/predict",
        "/invocations",
        "/v2/models/<name>/infer",
        "/",
        "/predict",
        "/mcp",
    ]
    assert [r[2] for r in got] == [200, 200, 200, 200, 400, 200]
    assert {r[3] for r in got} == {NAME} and {r[4] for r in got} == {1}
    assert [r[5] for r in got] == [2, 2, 2, None, None, 1]
    assert {r[6] for r in got} == {"127.0.0.1"}
    logged_rows = rows_stored(plog.path)
    assert [len(r[1]) for r in logged_rows] == [2, 2, 2, 1, 0, 1]
    for _, rows, *_ in logged_rows:  # native, MLflow, OIP's matrix, the form, MCP: all named
        assert rows == [pytest.approx(r) for r in records[: len(rows)]]
    expected = client.post("/predict", json=records).json["predictions"]
    assert [r[2] for r in logged_rows[:3]] == [expected] * 3


def test_other_routes_are_not_logged(logged_forest: tuple[Any, PredictionLog]) -> None:
    client, plog = logged_forest
    for path in ("/health", "/model", "/", "/metrics", "/openapi.json"):
        assert client.get(path).status_code == 200
    time.sleep(0.3)
    assert plog.written == 0


def test_metrics_and_health_show_the_log(logged_forest: tuple[Any, PredictionLog]) -> None:
    client, plog = logged_forest
    x, _ = iris_frame()
    client.post("/predict", json=x.iloc[:1].to_dict(orient="records"))
    wait_until(lambda: plog.written == 1, 5)
    text = client.get("/metrics").text
    assert "winserve_prediction_log_written_total 1.0" in text
    assert 'winserve_prediction_log_dropped_total{reason="queue_full"} 0.0' in text
    assert client.get("/health").json["prediction_log"] == {"written": 1, "dropped": 0, "lost": 0}


def test_log_csv_for_a_date_range_is_the_owners(logged_forest: tuple[Any, PredictionLog]) -> None:
    client, plog = logged_forest
    x, _ = iris_frame()
    sent = client.post("/predict", json=x.iloc[:3].to_dict(orient="records"))
    wait_until(lambda: plog.written == 1, 5)
    answer = client.get("/log.csv")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    lines = list(csv.DictReader(io.StringIO(answer.text)))
    assert [line["row"] for line in lines] == ["0", "1", "2"]
    assert {line["request_id"] for line in lines} == {sent.headers["X-Request-Id"]}
    assert json.loads(lines[2]["inputs"]) == pytest.approx(x.iloc[2].to_dict())
    by_name = client.get(f"/models/{NAME}/log.csv?since=2000-01-01&until=2999-01-01")
    assert by_name.text == answer.text
    past = client.get("/log.csv?until=2001-01-01T00:00")
    assert past.text.strip() == ",".join(next(csv.reader(io.StringIO(answer.text))))
    bad = client.get("/log.csv?since=yesterday")
    assert bad.status_code == 400 and "since" in bad.json["error"]["message"]
    stranger = client.get("/log.csv", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert stranger.status_code == 403 and "owner" in stranger.json["error"]["message"]
    assert client.get("/models/nobody/log.csv").status_code == 404


def test_without_a_log_nothing_is_kept_and_the_export_says_so(iris_forest: Path) -> None:
    client = jobs_client(ModelSpec(str(iris_forest)))
    x, _ = iris_frame()
    assert client.post("/predict", json=x.iloc[:1].to_dict(orient="records")).status_code == 200
    assert "prediction_log" not in client.get("/health").json
    answer = client.get("/log.csv")
    assert answer.status_code == 400 and "setting: log" in answer.json["error"]["message"]
