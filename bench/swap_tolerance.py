"""How far a regressor's retrain moves, against the checked swap's rule (issue 26):
``python bench/swap_tolerance.py [--sizes 300 1000 3000]``.

The rule: a regressor's value agrees when it is within ``TOLERANCE`` × the serving version's
standard deviation on the rows compared (winserve/models/checked_swap.py). A new user's
30-tree forest, retrained with a new seed, agreed on 70.5 % of 560 rows at a tenth and was
refused under ``swap_when = "agree>=0.95"``. This prints, for a few tolerances, the share of
560 reference rows on which a new version agrees with the serving one (both fitted here on
y = f(x) + noise, the noise 8 % of y's standard deviation, ``--sizes`` training rows):

- honest retrains: the same recipe with a new seed on the same rows ("new seed"), and on a
  fresh sample of the same process ("fresh sample");
- broken ones: trained on shuffled targets, without the input most correlated with y, and a
  model answering the training mean everywhere.

Three functions (Friedman's first; a linear one; a sine and a square) and three recipes (a
30-tree random forest, gradient boosting with subsampling, ordinary least squares). The
agreement is computed by ``checked_swap.compare`` itself, with its TOLERANCE set per column.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from winserve.models import checked_swap
from winserve.models.checked_swap import Answers, compare

REFERENCE = 560  # the user's reference rows
NOISE = 0.08  # of y's standard deviation
TOLERANCES = (0.1, 0.25, 0.5)


def data(kind: str, rows: int, seed: int) -> tuple[Any, Any]:
    rng = np.random.default_rng(seed)
    if kind == "friedman":
        x = rng.uniform(size=(rows, 10))
        f = (
            10 * np.sin(np.pi * x[:, 0] * x[:, 1])
            + 20 * (x[:, 2] - 0.5) ** 2
            + 10 * x[:, 3]
            + 5 * x[:, 4]
        )
    elif kind == "linear":
        x = rng.normal(size=(rows, 5))
        f = x @ np.array([30.0, -20.0, 10.0, 5.0, 40.0]) + 100
    else:  # "sine"
        x = rng.uniform(-3, 3, size=(rows, 3))
        f = 100 * np.sin(x[:, 0]) + 30 * x[:, 1] ** 2 + 20 * x[:, 2]
    return x, f + rng.normal(scale=NOISE * f.std(), size=rows)


def recipes() -> dict[str, Callable[[int], Any]]:
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
    from sklearn.linear_model import LinearRegression

    return {
        "forest (30 trees)": lambda seed: RandomForestRegressor(30, random_state=seed),
        "gradient boosting": lambda seed: GradientBoostingRegressor(
            subsample=0.8, random_state=seed
        ),
        "least squares": lambda seed: LinearRegression(),
    }


def agreement(old: Any, new: Any) -> list[float]:
    """The share of rows agreeing at each of TOLERANCES."""
    found = []
    for k in TOLERANCES:
        checked_swap.TOLERANCE = k
        got = compare(Answers(list(old)), Answers(list(new)), regression=True).agreement
        assert got is not None
        found.append(got)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[300, 1000, 3000])
    args = parser.parse_args(argv)
    kept = checked_swap.TOLERANCE
    said = " / ".join(f"{k:g}" for k in TOLERANCES)
    print(f"agreement at a tolerance of {said} × the serving version's standard deviation")
    print("| f | rows | recipe | new seed | fresh sample | shuffled | without x* | the mean |")
    print("|---|---|---|---|---|---|---|---|")
    try:
        for kind in ("friedman", "linear", "sine"):
            for rows in args.sizes:
                x, y = data(kind, rows, 1)
                fresh_x, fresh_y = data(kind, rows, 2)
                reference, _ = data(kind, REFERENCE, 99)
                top = int(np.argmax(np.abs([np.corrcoef(c, y)[0, 1] for c in x.T])))
                for name, make in recipes().items():
                    old = make(1).fit(x, y).predict(reference)
                    cases = [
                        make(2).fit(x, y).predict(reference),
                        make(2).fit(fresh_x, fresh_y).predict(reference),
                        make(3).fit(x, np.random.default_rng(3).permutation(y)).predict(reference),
                        make(2)
                        .fit(np.delete(x, top, axis=1), y)
                        .predict(np.delete(reference, top, axis=1)),
                        np.full(REFERENCE, y.mean()),
                    ]
                    cells = [
                        " / ".join(f"{a * 100:.0f}" for a in agreement(old, new)) for new in cases
                    ]
                    print(f"| {kind} | {rows} | {name} | " + " | ".join(cells) + " |")
    finally:
        checked_swap.TOLERANCE = kept
    load = " / ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else ""
    print(f"\n(percent of {REFERENCE} rows; load average {load})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
