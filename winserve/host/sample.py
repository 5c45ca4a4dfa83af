"""What a model host learns from the model at load, after the sample prediction, and how a
failed sample prediction is told to the operator (issue 22).

::

    ModelHost.load ─► sample prediction (one row: the card's example or made-up values)
      answered ─► probe_missing(features, row, predict): NaN in every input at once, then (if
                  refused) in each input alone ─► feature["missing"] = accepted | refused
                  (+ the model's reason), which the page and the web process's checks use
      failed   ─► sample_failure(info, spec): "<SAMPLE_FAILED>: <error>. It was asked for one
                  row (…); the model takes …. To fix it, …" (a load failure, told apart by
                  its first words: model_info.SAMPLE_FAILED)
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from winserve.host.answers import PredictAnswer
from winserve.model_info import SAMPLE_FAILED, ModelSpec

MAX_PROBED_COLUMNS = 64  # columns asked one by one about missing values; the rest "unknown"
PROBE_SECONDS = 3.0  # and no more time than this on it
DT_ACCESSOR = ".dt accessor"  # pandas: "Can only use .dt accessor with datetimelike values"

Predict = Callable[[dict[str, Any], bool], PredictAnswer]


def probe_missing(features: list[dict[str, Any]], row: dict[str, Any], predict: Predict) -> None:
    """Mark each input of ``features`` as taking a missing value or not, asking the model
    itself (``predict``) with ``row``, the row its sample prediction answered."""
    nan = float("nan")
    accepted, reason = _answers({name: nan for name in row}, predict)
    if accepted:
        for feature in features:
            feature["missing"] = "accepted"
        return
    if len(features) == 1:
        features[0].update(missing="refused", missing_reason=reason)
        return
    end = time.perf_counter() + PROBE_SECONDS
    for feature in features[:MAX_PROBED_COLUMNS]:
        if time.perf_counter() > end:
            break
        accepted, reason = _answers({**row, feature["name"]: nan}, predict)
        feature["missing"] = "accepted" if accepted else "refused"
        if not accepted:
            feature["missing_reason"] = reason


def _answers(row: dict[str, Any], predict: Predict) -> tuple[bool, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = predict({"columns": {k: [v] for k, v in row.items()}}, False)
    if result["ok"]:
        return True, ""
    error = result["error"]
    return False, f"{error['type']}: {error['message'].splitlines()[0]}"


def sample_failure(info: dict[str, Any], spec: ModelSpec) -> str:
    """Why the model is not served: the sample prediction failed, on which row, what the model
    expects, and where a working example row goes."""
    row = info.get("sample_row") or {}
    card = Path(spec.path).with_suffix(".toml").name if spec.path else ""
    shown = ", ".join(f"{k}={v!r}" for k, v in list(row.items())[:12])
    shown += " …" if len(row) > 12 else ""
    source = "the model card's example" if spec.example else "values made up by winserve"
    inputs = ", ".join(f"{f['name']} ({f['kind']})" for f in info.get("features", [])[:20]) + (
        " …" if len(info.get("features", [])) > 20 else ""
    )
    dates = _date_columns(info)
    if dates:
        # the model reads a date (df["when"].dt…) where winserve passes text: no example
        # row can fix that, the card's kind can (issue 22)
        where = card or "the model card"
        pins = ", ".join(f'[features.{name}] kind = "datetime"' for name in dates)
        fix = f"if {_names(dates)} holds dates, say so in {where}: {pins}"
    elif card and spec.example:
        fix = f"correct the [example] row in {card} next to the model"
    elif card:
        fix = (
            f"put one row the model can answer in {card} next to the model, under [example] "
            "(one line per input: name = value); winserve checks the model with it"
        )
    else:
        fix = "make sure the model answers a row of these inputs"
    return (
        f"{SAMPLE_FAILED}: {info['sample_error']}. "
        f"It was asked for one row ({source}: {shown}); the model takes {inputs}. To fix it, "
        f"{fix}."
    )


def _date_columns(info: dict[str, Any]) -> list[str]:
    """The columns of unknown kind asked as text that may be dates, when the sample failed on
    pandas' ``.dt`` accessor (the error does not name the column)."""
    if DT_ACCESSOR not in str(info.get("sample_error", "")):
        return []
    row = info.get("sample_row") or {}
    return [
        f["name"]
        for f in info.get("features", [])
        if f.get("kind") == "any" and isinstance(row.get(f["name"]), str)
    ][:5]


def _names(names: list[str]) -> str:
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
