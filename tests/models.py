"""Importable test models (spawned model hosts import them by name: no lambdas, no closures).

``ChaosModel`` adds its two columns, and misbehaves on chosen values of column ``a``:
999 hangs, 666 exits its process, 11 segfaults, -1 raises ValueError (bad input), 13 raises
RuntimeError.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

HANG, CRASH, BAD_INPUT, BUG, SEGFAULT = 999.0, 666.0, -1.0, 13.0, 11.0


class ChaosModel:
    feature_names_in_ = np.array(["a", "b"], dtype=object)
    n_features_in_ = 2
    # the columns' kinds, declared as a model object may (issue 22: a column no step of the
    # model declares is passed as sent, and a form's "1,5" would reach predict() as text)
    winserve_features = ({"name": "a", "kind": "number"}, {"name": "b", "kind": "number"})

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    def predict(self, frame: Any) -> np.ndarray:
        a = np.asarray(frame["a"], dtype=float)
        if HANG in a:
            time.sleep(3600)
        if CRASH in a:
            os._exit(7)
        if SEGFAULT in a:
            import ctypes

            ctypes.string_at(0)  # reads address 0: the process dies of SIGSEGV
        if BAD_INPUT in a:
            raise ValueError("a must not be -1")
        if BUG in a:
            raise RuntimeError("unlucky number")
        if self.delay:
            time.sleep(self.delay)
        return a + np.asarray(frame["b"], dtype=float)


class BatchSizeModel(ChaosModel):
    """Answers, for every row, how many rows the call carried (shows batching); slow on purpose."""

    def predict(self, frame: Any) -> np.ndarray:
        super().predict(frame)
        time.sleep(0.05)
        return np.full(len(frame), float(len(frame)))


class PlainModel:
    """Declares no columns at all: rows pass through as an array."""

    def predict(self, rows: Any) -> list[float]:
        return [float(sum(row)) for row in np.asarray(rows, dtype=float)]


def chaos() -> ChaosModel:
    return ChaosModel()


def batch_size() -> BatchSizeModel:
    return BatchSizeModel()


def plain() -> PlainModel:
    return PlainModel()


def broken() -> ChaosModel:
    raise RuntimeError("this factory always fails")


def slow_chaos() -> ChaosModel:
    """10 ms per call: under load, some request is always in flight."""
    return ChaosModel(delay=0.01)


def slow_loading_chaos() -> ChaosModel:
    """Takes 2 s to load: a restart is long enough to be seen on the page."""
    time.sleep(2.0)
    return ChaosModel()


def slow_reloading_chaos() -> ChaosModel:
    """10 ms per call, 8 s to load: a request that waited for a reload would be seen."""
    time.sleep(8.0)
    return ChaosModel(delay=0.01)


# -- issue 13: a model that holds the GIL, and one that is merely slow -------------------------

GIL_HOG = 777.0


class GilHogModel(ChaosModel):
    """On ``a == 777`` backtracks a regular expression for hours without releasing the GIL: no
    Python thread (a watchdog) and no signal handler of its process can run meanwhile."""

    def predict(self, frame: Any) -> np.ndarray:
        import re

        if GIL_HOG in np.asarray(frame["a"], dtype=float):
            re.match(r"(a+)+$", "a" * 40 + "b")
        return super().predict(frame)


def gil_hog() -> GilHogModel:
    return GilHogModel()


def steady() -> ChaosModel:
    """0.3 s a call, every call: under load, calls queue up behind each other."""
    return ChaosModel(delay=0.3)


class RowCostModel(ChaosModel):
    """Each call costs 2 ms and 20 us a row (sleeping, as a model's compiled code would not
    hold the GIL), and answers, for every row, how many rows the call carried: a CSV job's
    result shows its chunk sizes (issue 29)."""

    def predict(self, frame: Any) -> np.ndarray:
        super().predict(frame)
        time.sleep(0.002 + 20e-6 * len(frame))
        return np.full(len(frame), float(len(frame)))


def row_cost() -> RowCostModel:
    return RowCostModel()


# -- issue 12: a model that answers only realistic rows ------------------------------------------


class PositiveOnlyModel(ChaosModel):
    """Takes the logarithm of its inputs, so a row of zeros (winserve's made-up sample) fails;
    a real row (the model card's example) works."""

    def predict(self, frame: Any) -> np.ndarray:
        a = np.asarray(frame["a"], dtype=float)
        b = np.asarray(frame["b"], dtype=float)
        if (a <= 0).any() or (b <= 0).any():
            raise ValueError("a and b must be positive (the model takes their logarithm)")
        return np.log(a) + np.log(b)


# -- issue 17: a model whose cost is latency, not CPU ---------------------------------------------


class Wait20msModel(ChaosModel):
    """Each call waits 20 ms without holding the GIL (a remote lookup, a GPU): replicas scale
    its throughput even on a 2-core machine."""

    def predict(self, frame: Any) -> np.ndarray:
        time.sleep(0.02)
        return super().predict(frame)


def wait_20ms() -> Wait20msModel:
    return Wait20msModel()


# -- issue 22: a model that fails as a compiled library does, with its internals in the message --


class CompiledErrorModel(ChaosModel):
    """Fails every row the way XGBoost does: a timestamp, a C++ source path, then the reason,
    then a native stack (the page shows the reason only; the console keeps it all)."""

    def predict(self, frame: Any) -> np.ndarray:
        raise ValueError(
            "[14:02:11] /workspace/src/data/data.cc:1104: Check failed: valid: "
            "Input data contains `inf` or a value too large\n"
            "Stack trace:\n  [bt] (0) /opt/lib/libxgboost.so(+0x2a3f1) [0x7f00]"
        )


def compiled_error() -> CompiledErrorModel:
    return CompiledErrorModel()


# -- issue 23: a model that refuses a batch whose rows each pass alone ----------------------------


class OneDateFormatModel(ChaosModel):
    """Reads column ``signup`` as pandas' ``to_datetime`` does, in the format of the batch's
    first date: a batch whose dates are written two ways ("09.03.2023", "2021-05-03") is
    refused, though each row alone passes. Answers ``a + b`` (ChaosModel: -1 in ``a`` is a
    truly bad row)."""

    feature_names_in_ = np.array(["a", "b", "signup"], dtype=object)
    n_features_in_ = 3
    winserve_features = (
        *ChaosModel.winserve_features,
        {"name": "signup", "kind": "string"},
    )

    def predict(self, frame: Any) -> np.ndarray:
        import re

        dates = [str(v) for v in frame["signup"]]
        first = re.sub(r"\d+", "9", dates[0])
        for row, date in enumerate(dates):
            if re.sub(r"\d+", "9", date) != first:
                raise ValueError(
                    f"time data {date!r} doesn't match the format of {dates[0]!r}, "
                    f"at position {row}"
                )
        return super().predict(frame)


def one_date_format() -> OneDateFormatModel:
    return OneDateFormatModel()
