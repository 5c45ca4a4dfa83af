"""A model card's ``allowed`` values that the model was not fitted on are warned about when the
model loads: on the console and on the model's page, as the card's other warnings (real servers
on model files written here; a single file and a folder of models)."""

from __future__ import annotations

import html
from pathlib import Path

import joblib
import pandas as pd
import pytest
import requests

from tests.helpers import ServerProcess, running_server

pytestmark = [pytest.mark.spawn, pytest.mark.server]

CARD = """
[example]
plan = "basic"
months = 3

[features.plan]
allowed = ["basic", "plus", "pro"]   # "pro" came later: the model never saw it
"""


def plan_model(path: Path, handle_unknown: str) -> Path:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = pd.DataFrame({"plan": ["basic", "plus"] * 10, "months": list(range(20))})
    encoder = OneHotEncoder(handle_unknown=handle_unknown)
    model = make_pipeline(
        ColumnTransformer([("plan", encoder, ["plan"])], remainder="passthrough"),
        LogisticRegression(),
    )
    joblib.dump(model.fit(frame, [0, 1] * 10), path)
    path.with_suffix(".toml").write_text(CARD, encoding="utf-8")
    return path


def _warning(server: ServerProcess) -> str:
    """The console's warning (logged once the model has loaded: after the banner, at times)."""
    return server.wait_for_line(lambda line: "'pro'" in line, 30)


def test_a_strict_encoders_unknown_allowed_value_is_warned_at_load(tmp_path: Path) -> None:
    path = plan_model(tmp_path / "churn.joblib", "error")
    with running_server([str(path)], cwd=tmp_path) as server:
        line = _warning(server)
        assert "WARNING" in line and "'plan'" in line and "it refuses them" in line
        assert "fitted on 'basic', 'plus'" in line
        page = html.unescape(requests.get(f"{server.url}/", timeout=10).text)
        assert "the model card allows 'pro' for 'plan', which the model does not know" in page


def test_each_model_of_a_folder_is_checked_when_it_loads(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    plan_model(folder / "lenient.joblib", "ignore")
    with running_server([str(folder)], cwd=tmp_path) as server:
        line = _warning(server)
        assert "lenient:" in line and "a category it never saw" in line
        page = html.unescape(requests.get(f"{server.url}/models/lenient/", timeout=10).text)
        assert "the model card allows 'pro' for 'plan'" in page
