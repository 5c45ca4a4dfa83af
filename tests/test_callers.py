"""Who used a model (issue 26): the monitor's table of callers, from the prediction log's
token_name column, on a log file filled by hand (no server: test_roles_server.py has one)."""

from __future__ import annotations

from pathlib import Path

from winserve.predlog import callers, store
from winserve.predlog.store import Entry

T0 = 1_800_000_000.0


def _entry(at: float, model: str, status: int, name: str | None) -> Entry:
    return Entry(
        at,
        "r",
        model,
        1,
        None,
        "/predict",
        "POST",
        "10.0.0.9",
        1.0,
        status,
        1,
        None,
        None,
        None,
        name,
    )


def test_each_caller_with_requests_errors_and_last_seen_busiest_first(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    conn = store.connect(path)
    try:
        store.write(
            conn,
            [
                _entry(T0 + 1, "m", 200, "alice"),
                _entry(T0 + 2, "m", 400, "alice"),
                _entry(T0 + 3, "m", 200, "bob"),
                _entry(T0 + 4, "m", 200, "alice"),
                _entry(T0 + 5, "m", 200, None),  # before callers were named: "-"
                _entry(T0 + 6, "other", 200, "carol"),  # another model
                _entry(T0 + 100, "m", 200, "bob"),  # after the period
            ],
            keep_inputs=False,
        )
    finally:
        conn.close()
    found = callers.used_file(path, "m", T0, T0 + 50)
    assert [(c.name, c.requests, c.errors, c.last_seen) for c in found] == [
        ("alice", 3, 1, T0 + 4),
        ("-", 1, 0, T0 + 5),
        ("bob", 1, 0, T0 + 3),
    ]
    assert found[0].as_dict() == {
        "caller": "alice",
        "requests": 3,
        "errors": 1,
        "last_seen": "2027-01-15T08:00:04+00:00",
    }
    assert [c.name for c in callers.used_file(path, "m", T0, T0 + 200, limit=1)] == ["alice"]
    assert callers.used_file(path, "m", T0 + 200, T0 + 300) == []
    assert callers.used_file(tmp_path / "none.sqlite", "m", T0, T0 + 50) == []
