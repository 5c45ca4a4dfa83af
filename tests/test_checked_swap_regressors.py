"""The checked swap's rule for regressors (issue 26, a new user's finding): a 30-tree forest
retrained with a new seed was refused under ``swap_when = "agree>=0.95"`` (70.5 % of its
rows within a tenth of the serving version's standard deviation). Real scikit-learn models,
fitted here on y = f(x) + noise (noise 8 % of y's spread, as the user's data), answer 560
reference rows; ``checked_swap.compare`` and ``decide`` judge them as the registry does:
an honest retrain (a forest with a new seed; a linear model refitted on a fresh sample) is
accepted, a model trained on shuffled targets is refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from winserve.models.checked_swap import Answers, compare, decide
from winserve.models.status import SwapCheck

pytestmark = pytest.mark.timeout(60)

TRAIN = 1000
REFERENCE = 560  # the user's reference rows
NOISE = 0.08  # of y's standard deviation


def friedman(rows: int, seed: int) -> tuple[Any, Any]:
    """Friedman's first function of 10 inputs (5 unused), its noise NOISE of y's spread."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(rows, 10))
    f = (
        10 * np.sin(np.pi * x[:, 0] * x[:, 1])
        + 20 * (x[:, 2] - 0.5) ** 2
        + 10 * x[:, 3]
        + 5 * x[:, 4]
    )
    return x, f + rng.normal(scale=NOISE * f.std(), size=rows)


def forest(seed: int) -> Any:
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(n_estimators=30, random_state=seed)


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
