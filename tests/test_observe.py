"""Request ids, the JSON-lines request log and ``/metrics`` (parsed by Prometheus's own parser)."""

from __future__ import annotations

import json
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import local_client
from winserve.model_info import ModelSpec
from winserve.web.observe import RequestLog

ROW = {"a": 1, "b": 2}


def _families(text: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    found: dict[str, list[tuple[str, dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        found[family.name] = [(s.name, s.labels, s.value) for s in family.samples]
    return found


def _bound(labels: dict[str, str]) -> float | None:
    return float(labels["le"]) if "le" in labels else None


def test_metrics_parse_and_count_what_happened() -> None:
    client = local_client(ModelSpec(factory="tests.models:chaos"))
    for _ in range(3):
        assert client.post("/predict", json=[ROW, ROW]).status_code == 200
    assert client.post("/predict", json={"a": "x", "b": 1}).status_code == 400
    assert client.post("/invocations", json={"instances": [[1, 2]]}).status_code == 200
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = _families(response.get_data(as_text=True))

    requests = families["winserve_requests"]
    ok = [
        v
        for n, lab, v in requests
        if lab == {"endpoint": "/predict", "method": "POST", "status": "200", "model": "chaos"}
    ]
    bad = [v for n, lab, v in requests if lab.get("status") == "400"]
    assert ok == [3.0] and bad == [1.0]
    assert any(lab.get("endpoint") == "/invocations" for _, lab, _ in requests)

    latency = {
        (n, lab.get("le")): v
        for n, lab, v in families["winserve_request_duration_seconds"]
        if lab.get("endpoint") == "/predict"
    }
    assert latency[("winserve_request_duration_seconds_count", None)] == 4
    assert latency[("winserve_request_duration_seconds_bucket", "+Inf")] == 4

    # a bound is a number: prometheus_client writes le="1.0" where the hand-written one wrote "1"
    batches = {(n, _bound(lab)): v for n, lab, v in families["winserve_batch_rows"]}
    assert batches[("winserve_batch_rows_count", None)] == 4  # 3 × 2 rows, 1 × 1 row
    assert batches[("winserve_batch_rows_sum", None)] == 7
    assert batches[("winserve_batch_rows_bucket", 1.0)] == 1
    assert batches[("winserve_batch_rows_bucket", 2.0)] == 4
    assert batches[("winserve_batch_rows_bucket", float("inf"))] == 4

    rows = {lab["endpoint"]: v for _, lab, v in families["winserve_rows"]}
    assert rows == {"/predict": 6.0, "/invocations": 1.0}  # the refused row is not counted
    assert families["winserve_queue_depth"][0][2] == 0
    assert families["winserve_ready"][0][2] == 1
    assert [v for _, _, v in families["winserve_replica_restarts"]] == [0]
    assert [lab for _, lab, _ in families["winserve_model_load_seconds"]] == [
        {"model": "chaos", "replica": "0"}
    ]
    assert families["winserve_model_version"] == [("winserve_model_version", {"model": "chaos"}, 1)]


# What dashboards rely on: each family's name, type and help text, as round 1 served them
FAMILIES = {
    "winserve_info": ("gauge", "winserve version."),
    "winserve_requests": ("counter", "HTTP requests by endpoint (route), method and status."),
    "winserve_request_duration_seconds": (
        "histogram",
        "Time from request to response, by endpoint (route).",
    ),
    "winserve_rows": ("counter", "Rows received for prediction, by endpoint."),
    "winserve_batch_rows": ("histogram", "Rows per model call (after batching)."),
    "winserve_queue_depth": ("gauge", "Requests waiting for a model replica."),
    "winserve_ready": ("gauge", "1 while the model is serving (ready or degraded)."),
    "winserve_model_version": (
        "gauge",
        "The version of the model serving now (1, 2, … as the file is reloaded).",
    ),
    "winserve_replica_ready": ("gauge", "1 while this model replica is ready."),
    "winserve_replica_restarts": ("counter", "Times this model replica was restarted."),
    "winserve_model_load_seconds": ("gauge", "Seconds the last model load took, per replica."),
}


def test_metrics_keep_their_names_types_and_help_and_each_app_counts_its_own() -> None:
    first = local_client(ModelSpec(factory="tests.models:chaos"))
    second = local_client(ModelSpec(factory="tests.models:chaos"))
    assert first.post("/predict", json=ROW).status_code == 200
    assert first.get("/nowhere").status_code == 404
    text = first.get("/metrics").get_data(as_text=True)
    found = {f.name: (f.type, f.documentation) for f in text_string_to_metric_families(text)}
    assert found == FAMILIES  # and nothing else: no _created series beside the counters
    assert "_created" not in text
    families = _families(text)
    latency = families["winserve_request_duration_seconds"]
    bounds = [lab["le"] for n, lab, _ in latency if n.endswith("_bucket")]
    assert bounds[:3] == ["0.001", "0.0025", "0.005"] and bounds[-1] == "+Inf"
    # the 404 counts as a request, but received no rows: no rows series for it
    assert [lab["endpoint"] for _, lab, _ in families["winserve_rows"]] == ["/predict"]

    # another app in the same process (tests, a restart in place) starts from zero
    second_families = _families(second.get("/metrics").get_data(as_text=True))
    assert second_families["winserve_requests"] == []
    assert [v for n, _, v in second_families["winserve_batch_rows"] if n.endswith("_count")] == [
        0.0
    ]


def test_request_log_lines_and_request_ids(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "requests.jsonl"
    client = local_client(ModelSpec(factory="tests.models:chaos"), request_log=log)
    first = client.post("/predict", json=[ROW, ROW, ROW])
    traced = client.post("/predict", json=ROW, headers={"X-Request-Id": "client-trace-42"})
    hostile = client.get("/model", headers={"X-Request-Id": "bad id <script>"})
    missing = client.get("/nowhere")
    assert traced.headers["X-Request-Id"] == "client-trace-42"
    assert "<" not in hostile.headers["X-Request-Id"]
    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert [r["request_id"] for r in lines] == [
        first.headers["X-Request-Id"],
        "client-trace-42",
        hostile.headers["X-Request-Id"],
        missing.headers["X-Request-Id"],
    ]
    assert lines[0]["endpoint"] == "/predict" and lines[0]["status"] == 200
    assert lines[0]["rows"] == 3 and lines[0]["latency_ms"] >= 0
    assert lines[0]["time"].endswith("+00:00")
    assert lines[3]["status"] == 404 and lines[3]["route"] == "unmatched"
    assert lines[3]["rows"] is None


def test_a_full_request_log_moves_aside_and_a_new_one_starts(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    log = RequestLog(path, max_bytes=1000)
    for index in range(50):  # about 50 bytes a line: the file fills twice, then some
        log.write({"n": index, "pad": "x" * 30})
    current = [json.loads(line)["n"] for line in path.read_text(encoding="utf-8").splitlines()]
    older = path.with_name("requests.jsonl.1")
    previous = [json.loads(line)["n"] for line in older.read_text(encoding="utf-8").splitlines()]
    assert path.stat().st_size < 1000 and older.stat().st_size >= 1000
    assert previous + current == list(range(previous[0], 50))  # nothing lost between the two
    assert sorted(p.name for p in tmp_path.iterdir()) == ["requests.jsonl", "requests.jsonl.1"]
