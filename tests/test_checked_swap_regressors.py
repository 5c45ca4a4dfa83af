"""The checked swap's rule for regressors (issue 26, a new user's finding): a 30-tree forest
retrained with a new seed was refused under ``swap_when = "agree>=0.95"`` (70.5 % of its
rows within a tenth of the serving version's standard deviation). Real scikit-learn models,
fitted here on y = f(x) + noise (noise 8 % of y's spread, as the user's data), answer 560
reference rows; ``checked_swap.compare`` and ``decide`` judge them as the registry does:
an honest retrain (a forest with a new seed; a linear model refitted on a fresh sample) is
accepted, a model trained on shuffled targets is refused. And the monitor's timeline says
how a version came to serve: checked and agreed, or forced after the check refused it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests import swap_helpers
from tests.model_files import REFERENCE, TRAIN, forest, friedman
from tests.swap_helpers import (
    NAME,
    ROWS,
    ShiftedModel,
    new_file,
    registry_of,
    with_reference,
)
from winserve.models import swap
from winserve.models.checked_swap import Answers, compare, decide
from winserve.models.status import SwapCheck
from winserve.predlog import events, store

pytestmark = pytest.mark.timeout(60)

model = swap_helpers.model  # the fixtures: the fake replicas and a folder of one model
folder = swap_helpers.folder


def linear(seed: int) -> Any:
    from sklearn.linear_model import LinearRegression

    return LinearRegression()


def checked(old: Any, new: Any, reference: Any) -> tuple[float, bool]:
    """The agreement of ``new`` with ``old`` on ``reference``, and whether it may serve."""
    found = compare(
        Answers(old.predict(reference).tolist()),
        Answers(new.predict(reference).tolist()),
        regression=True,
    )
    assert found.agreement is not None and found.rows == REFERENCE
    return found.agreement, decide(found, 0.95)


@pytest.mark.parametrize(
    ("make", "fresh"),
    [(forest, False), (linear, True)],
    ids=["forest with a new seed", "linear model on a fresh sample"],
)
def test_an_honest_retrain_is_accepted_and_shuffled_targets_are_refused(
    make: Callable[[int], Any], fresh: bool
) -> None:
    x, y = friedman(TRAIN, 1)
    reference, _ = friedman(REFERENCE, 99)
    old = make(1).fit(x, y)
    again_x, again_y = friedman(TRAIN, 2) if fresh else (x, y)
    retrained = make(2).fit(again_x, again_y)
    shuffled = make(3).fit(x, np.random.default_rng(3).permutation(y))
    # each is a model of y worth its name, or not: their error against the truth
    truth_x, truth_y = friedman(REFERENCE, 7)
    spread = float(truth_y.std())
    errors = [
        float(np.sqrt(np.mean((m.predict(truth_x) - truth_y) ** 2))) / spread
        for m in (old, retrained, shuffled)
    ]
    assert errors[0] < 0.6 and errors[1] < 0.6 and errors[2] > 0.95, errors

    agreement, passed = checked(old, retrained, reference)
    assert passed, f"an honest retrain agreed on {agreement:.3f} only"
    agreement, passed = checked(old, shuffled, reference)
    assert not passed and agreement < 0.6, agreement


def test_the_rule_is_half_the_serving_versions_standard_deviation() -> None:
    values = [float(v) for v in range(10)]  # standard deviation sqrt(8.25) = 2.87
    spread = float(np.std(values))
    inside = [v + 0.49 * spread for v in values]
    outside = [v + 0.51 * spread for v in values]
    found = compare(Answers(values), Answers(inside), regression=True)
    assert found.agreement == 1.0 and found.tolerance == pytest.approx(0.5 * spread)
    found = compare(Answers(values), Answers(outside), regression=True)
    assert found.agreement == 0.0 and found.measure == "values"
    assert found.max_difference == pytest.approx(0.51 * spread)
    # a row the serving version refused does not count in its spread
    refused = compare(
        Answers([*values, 1e9], refused=frozenset({10})), Answers([*values, 0.0]), regression=True
    )
    assert refused.tolerance == pytest.approx(0.5 * spread)
    # a classifier's numeric labels are labels: equal or not, no tolerance said
    labels = compare(Answers([1, 2]), Answers([1, 3]), regression=False)
    assert labels.agreement == 0.5 and labels.tolerance is None


def test_the_sentence_says_the_rule() -> None:
    check = SwapCheck(
        2, 1, 560, 560, 0, 0.705, 20.0, 117.0, "values", 0.95, False, tolerance=130.25
    )
    assert check.sentence == (
        "version 2 agreed with version 1 on only 70.5 % of 560 rows (a value agrees within "
        "130, half the standard deviation of version 1's values on these rows; values differ "
        "by 20 on average, 117 at most), below swap_when = agree>=0.95"
    )
    assert check.as_dict()["tolerance"] == 130.25
    classifier = SwapCheck(3, 2, 10, 10, 0, 0.9, 0.1, 0.3, "probabilities", 0.95, False)
    assert "agrees within" not in classifier.sentence
    assert classifier.as_dict()["tolerance"] is None


# -- the timeline: how a version came to serve ------------------------------------------------


@pytest.fixture
def noted() -> Iterator[list[events.Event]]:
    """The events noted meanwhile (as the prediction log would receive them)."""
    found: list[events.Event] = []
    stop = events.listen(found.append)
    yield found
    stop()


def loaded_events(found: list[events.Event], tmp_path: Path) -> list[events.ModelEvent]:
    """``found`` written to a log and read back as the monitor page reads them."""
    conn = store.connect(tmp_path / "events.sqlite")
    try:
        events.write(conn, found)
        return events.read(conn, NAME, 0, found[-1][1] + 1)
    finally:
        conn.close()


def test_the_timeline_says_a_version_was_checked_or_forced(
    model: ShiftedModel, folder: Path, tmp_path: Path, noted: list[events.Event]
) -> None:
    registry = registry_of(model, with_reference(folder))
    try:
        assert registry.load(NAME, folder / f"{NAME}.joblib")
        assert registry.load(NAME, new_file(folder, b"close retrain"))  # passes the check
        assert not registry.load(NAME, new_file(folder, b"bad labels"))  # refused
        assert registry.force_swap(NAME) == ""  # the owner's button
    finally:
        registry.close()
    said = [(e.kind, e.version, e.words, e.detail) for e in loaded_events(noted, tmp_path)]
    assert said == [
        ("loaded", 1, "version 1 loaded", said[0][3]),  # a first version is never checked
        ("loaded", 2, "version 2 loaded: checked, agreed 100.0 % with version 1", said[1][3]),
        ("swap_refused", 3, "swap refused", said[2][3]),
        (
            "loaded",
            3,
            "version 3 loaded: forced by the owner after the check refused it (agreed 0.0 %)",
            said[3][3],
        ),
    ]
    assert all(d.startswith(f"{NAME}.joblib, loaded in ") for d in (said[1][3], said[3][3]))
    assert said[2][3].startswith(f"version 3 agreed with version 2 on only 0.0 % of {ROWS} rows")


def test_the_timeline_says_a_version_was_not_checked_and_old_details_read_as_before(
    model: ShiftedModel, folder: Path, tmp_path: Path, noted: list[events.Event]
) -> None:
    registry = registry_of(model, folder, when="always")  # no reference sample, no log
    try:
        assert registry.load(NAME, folder / f"{NAME}.joblib")
        assert registry.load(NAME, new_file(folder, b"bad labels"))
    finally:
        registry.close()
    # a detail noted before this change (no "how"), and one holding the separator itself
    events.note("loaded", NAME, 7, detail="old.joblib, loaded in 1.0 s")
    events.note("load_failed", NAME, detail=f"odd{events.HOW_END}reason")
    found = loaded_events(noted, tmp_path)
    assert [e.words for e in found] == [
        "version 1 loaded",
        f"version 2 loaded: not checked against version 1: {swap.NOTHING_TO_COMPARE}",
        "version 7 loaded",
        "load failed",
    ]
    assert found[2].detail == "old.joblib, loaded in 1.0 s" and found[3].detail == "odd reason"
    assert found[1].as_dict()["words"] == found[1].words


def test_too_few_distinct_rows_are_not_judged_and_do_not_refuse() -> None:
    """The same row sent five times, no reference sample: the serving version's values have
    no spread, so "within half of it" would call an honest retrain 0 % alike and refuse it
    under agree>=0.95. The check says it cannot judge, and the swap goes on."""
    same = compare(Answers([212.5] * 5), Answers([213.1] * 5), regression=True)
    assert same.agreement is None and not same.judged and decide(same, 0.95)
    assert "cannot be judged on so few distinct rows" in same.note
    assert "take 1 distinct value " in same.note and "differ by 0.6 on average" in same.note
    check = SwapCheck(
        2, 1, same.rows, 0, 5, same.agreement, same.mean_difference, same.max_difference,
        same.measure, 0.95, decide(same, 0.95), note=same.note, tolerance=same.tolerance,
    )  # fmt: skip
    assert check.sentence.startswith("version 2 was not checked against version 1: a regressor")
    assert "0.0 %" not in check.sentence and check.as_dict()["checked"] is False
    # four distinct values: still too few for a scale; five are judged as before
    four = compare(Answers([1.0, 2.0, 3.0, 4.0]), Answers([1.0, 2.0, 3.0, 4.0]), regression=True)
    assert four.agreement is None and "take 4 distinct values" in four.note
    five = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert compare(Answers(five), Answers(five), regression=True).agreement == 1.0
    # a classifier's labels need no scale: one label sent five times is judged
    labels = compare(Answers(["a"] * 5), Answers(["b"] * 5), regression=False)
    assert labels.agreement == 0.0 and not decide(labels, 0.95)
