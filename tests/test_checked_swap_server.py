"""The checked swap (issue 26) on a real server over a folder of models, with real model
processes: ``swap_when = "agree>=0.95"``; a retrain on the same data with another seed is
accepted, a model trained on shuffled labels dropped in is refused (the old version's
answers continue, the console, /health and the page say so with the figures, the
disagreeing rows download as CSV), the page's button swaps it in, and so does a load through
the repository API. A forest regressor (the new user's case): retrained with a new seed it
swaps in, on shuffled targets it is refused, and the monitor's timeline says how each version
came to serve."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import joblib
import pytest
import requests

from tests.conftest import iris_frame
from tests.helpers import csrf_token, running_server, wait_until

pytestmark = [pytest.mark.server, pytest.mark.spawn, pytest.mark.timeout(300)]

NAME = "iris"
WATCH = 0.5


def forest(path: Path, *, seed: int, shuffled: bool = False) -> Any:
    """A forest on iris (its labels shuffled with ``seed``, if asked), written to ``path``
    through a temporary file and a rename, as a retrain script would."""
    from sklearn.ensemble import RandomForestClassifier

    x, y = iris_frame()
    if shuffled:
        y = y.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    model = RandomForestClassifier(n_estimators=20, random_state=seed).fit(x, y)
    part = path.with_name(path.name + ".part")
    joblib.dump(model, part)
    os.replace(part, path)
    return model


def health_of(url: str, name: str = NAME) -> dict[str, Any]:
    found: dict[str, Any] = requests.get(f"{url}/health", timeout=10).json()["models"][name]
    return found


def answers(url: str, rows: list[dict[str, float]]) -> tuple[list[Any], str]:
    response = requests.post(f"{url}/models/{NAME}/predict", json=rows, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["predictions"], response.headers["X-Model-Version"]


def logged(url: str) -> int:
    """The requests of the model in its prediction log so far."""
    got = requests.get(f"{url}/models/{NAME}/log.csv", timeout=30)
    assert got.status_code == 200, got.text
    return len(list(csv.DictReader(io.StringIO(got.text))))


def checked_version(url: str, version: int, name: str = NAME) -> dict[str, Any]:
    """/health's swap check of the new file ``version``, once it ended."""

    def ended() -> dict[str, Any] | None:
        check: dict[str, Any] | None = health_of(url, name).get("swap_check")
        return check if check is not None and check["version"] == version else None

    found: dict[str, Any] = wait_until(ended, 120, 0.2)
    return found


def test_a_bad_retrain_is_refused_and_the_owner_may_swap_it_in(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    x, _ = iris_frame()
    first = forest(folder / f"{NAME}.joblib", seed=0)
    x.to_csv(folder / f"{NAME}.reference.csv", index=False)
    rows = x.iloc[::10].to_dict(orient="records")
    args = [str(folder), "--swap-when", "agree>=0.95", "--watch-seconds", str(WATCH)]
    with running_server(args, cwd=tmp_path) as server:
        url = server.url
        assert answers(url, rows)[0] == list(first.predict(x.iloc[::10]))
        assert "swap_check" not in health_of(url)  # a first version is never checked
        wait_until(lambda: logged(url) >= 1, 30)

        # a retrain on the same data with another seed: accepted
        retrained = forest(folder / f"{NAME}.joblib", seed=1)
        check = checked_version(url, 2)
        assert check["swapped"] and check["checked"] and not check["forced"]
        assert check["agreement"] >= 0.95 and check["reference_rows"] == len(x)
        assert check["logged_rows"] == len(rows)  # the request above, from the log
        assert check["rows"] == len(x) + len(rows) and check["measure"] == "probabilities"
        assert check["message"].startswith("version 2 agreed with version 1 on ")
        wait_until(lambda: answers(url, rows)[1] == "2", 30)
        server.wait_for_line(lambda s: "version 2 agreed with version 1 on" in s, 10)

        # a model trained on shuffled labels: refused, version 2 keeps answering
        shuffled = forest(folder / f"{NAME}.joblib", seed=2, shuffled=True)
        check = checked_version(url, 3)
        assert not check["swapped"] and check["waiting"] and check["checked"]
        assert check["agreement"] < 0.7 and check["disagreeing"] > 0
        assert "below swap_when = agree>=0.95" in check["message"]
        entry = health_of(url)
        assert entry["version"] == 2 and "below swap_when" in entry["reason"]
        assert answers(url, rows) == (list(retrained.predict(x.iloc[::10])), "2")
        server.wait_for_line(lambda s: "not swapped: version 3 agreed" in s, 10)

        # the disagreeing rows, for the owner (this computer)
        got = requests.get(f"{url}/models/{NAME}/swap/disagreements.csv", timeout=30)
        assert got.status_code == 200 and got.headers["Content-Type"].startswith("text/csv")
        table = list(csv.DictReader(io.StringIO(got.text)))
        assert len(table) == check["disagreeing"]
        assert set(table[0]) == {"origin", *x.columns, "version_2", "version_3", "difference"}
        assert all(r["version_2"] != r["version_3"] for r in table)
        assert {r["origin"] for r in table} <= {"reference", "log"}

        # the page says so and offers the button; the button swaps it in
        session = requests.Session()
        page = session.get(f"{url}/models/{NAME}/", timeout=30).text
        assert "agreed with version 2 on only" in page and "Serve version 3 anyway" in page
        assert f"/models/{NAME}/swap/disagreements.csv" in page
        pressed = session.post(
            f"{url}/models/{NAME}/swap/force",
            data={"csrf_token": csrf_token(page)},
            allow_redirects=False,
            timeout=60,
        )
        assert pressed.status_code == 303, pressed.text
        assert answers(url, rows) == (list(shuffled.predict(x.iloc[::10])), "3")
        check = health_of(url)["swap_check"]
        assert check["forced"] and check["swapped"] and not check["waiting"]
        again = session.post(
            f"{url}/models/{NAME}/swap/force",
            data={"csrf_token": csrf_token(page)},
            allow_redirects=False,
            timeout=30,
        )
        assert again.status_code == 409 and "no refused version is waiting" in again.text

        # refused again (sane labels, far from version 3's); the repository load forces it
        forest(folder / f"{NAME}.joblib", seed=3)
        check = checked_version(url, 4)
        assert not check["swapped"] and answers(url, rows)[1] == "3"
        loaded = requests.post(f"{url}/v2/repository/models/{NAME}/load", timeout=60)
        assert loaded.status_code == 200, loaded.text
        assert answers(url, rows)[1] == "4"
        assert health_of(url)["swap_check"]["forced"]


def test_always_swaps_and_reports(tmp_path: Path) -> None:
    """The default, "always": today's behaviour, with the agreement reported; a model with no
    reference sample and nothing logged yet says it was not checked."""
    folder = tmp_path / "models"
    folder.mkdir()
    forest(folder / f"{NAME}.joblib", seed=0)
    with running_server([str(folder), "--watch-seconds", str(WATCH)], cwd=tmp_path) as server:
        url = server.url
        forest(folder / f"{NAME}.joblib", seed=2, shuffled=True)
        check = checked_version(url, 2)
        assert check["swapped"] and not check["checked"]
        assert check["message"] == (
            "version 2 was not checked against version 1: no reference sample or logged inputs"
        )
        x, _ = iris_frame()
        rows = x.iloc[::5].to_dict(orient="records")
        wait_until(lambda: answers(url, rows)[1] == "2", 30)
        # logged inputs (the log's process writes them about every half second) are compared
        wait_until(lambda: logged(url) >= 1, 30)
        forest(folder / f"{NAME}.joblib", seed=0)
        check = checked_version(url, 3)
        assert check["swapped"] and check["checked"] and check["logged_rows"] >= len(rows)
        assert check["agreement"] < 0.95  # reported, not enforced
        wait_until(lambda: answers(url, rows)[1] == "3", 30)


def regressor(path: Path, *, seed: int, shuffled: bool = False) -> Any:
    """A 30-tree forest on y = f(x) + noise (tests/model_files.py's friedman data,
    its targets shuffled if asked), fitted with ``seed`` and written as a retrain script
    would."""
    import numpy as np
    import pandas as pd

    from tests.model_files import TRAIN, forest, friedman

    x, y = friedman(TRAIN, 1)
    if shuffled:
        y = np.random.default_rng(seed).permutation(y)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])])
    model = forest(seed).fit(frame, y)
    part = path.with_name(path.name + ".part")
    joblib.dump(model, part)
    os.replace(part, path)
    return model


def test_a_regressors_retrain_is_accepted_and_the_timeline_says_how_each_version_came(
    tmp_path: Path,
) -> None:
    """The new user's case (issue 26): a forest regressor retrained with a new seed swaps in
    under agree>=0.95, one trained on shuffled targets is refused; the sentence says the
    rule; the monitor's timeline says which version was checked and which was forced."""
    import pandas as pd

    from tests.model_files import REFERENCE, friedman

    name = "price"
    folder = tmp_path / "models"
    folder.mkdir()
    regressor(folder / f"{name}.joblib", seed=1)
    x, _ = friedman(REFERENCE, 99)
    reference = pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])])
    reference.to_csv(folder / f"{name}.reference.csv", index=False)
    rule = "half the standard deviation of version 1's values on these rows"
    args = [str(folder), "--swap-when", "agree>=0.95", "--watch-seconds", str(WATCH)]
    with running_server(args, cwd=tmp_path) as server:
        url = server.url
        regressor(folder / f"{name}.joblib", seed=2)
        check = checked_version(url, 2, name)
        assert check["swapped"] and check["measure"] == "values", check["message"]
        assert check["agreement"] >= 0.95 and check["rows"] == REFERENCE
        assert rule in check["message"] and check["tolerance"] > 0
        server.wait_for_line(lambda s: "version 2 agreed with version 1" in s and rule in s, 10)

        regressor(folder / f"{name}.joblib", seed=3, shuffled=True)
        check = checked_version(url, 3, name)
        assert not check["swapped"] and check["waiting"] and check["agreement"] < 0.6
        page = requests.get(f"{url}/models/{name}/", timeout=30).text
        assert "half the standard deviation of version 2&#39;s values on these rows" in page
        loaded = requests.post(f"{url}/v2/repository/models/{name}/load", timeout=60)
        assert loaded.status_code == 200, loaded.text
        assert health_of(url, name)["version"] == 3

        def timeline() -> list[str] | None:
            got = requests.get(f"{url}/models/{name}/monitor.json", timeout=30)
            assert got.status_code == 200, got.text
            words = [e["words"] for e in got.json()["events"] if e["kind"] == "loaded"]
            return words if len(words) == 3 else None  # the log writes every half second

        words = wait_until(timeline, 30, 0.3)
        assert words[0] == "version 1 loaded"
        assert words[1].startswith("version 2 loaded: checked, agreed ")
        assert words[1].endswith(" % with version 1")
        assert words[2].startswith(
            "version 3 loaded: forced by the owner after the check refused it (agreed "
        )
