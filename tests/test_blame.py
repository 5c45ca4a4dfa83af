"""Naming the column of a refused CSV row when the model's error does not (issue 22): each
value is swapped, one at a time, for a value of a row the model answered; the column whose
swap alone makes the row answered is named. No processes: the model is a function here."""

from __future__ import annotations

from typing import Any

from winserve.blame import name_columns
from winserve.errors import ModelError, ModelInputError, WinserveError

NAMES = ["city", "age", "income"]


def _answers(row: list[Any]) -> bool:
    """A model that refuses a negative age or an income above a million, saying neither."""
    return row[1] >= 0 and row[2] <= 1_000_000


def test_the_column_whose_value_alone_is_refused_is_named() -> None:
    rows = [["Lille", 30, 10.0], ["Lyon", -4, 20.0], ["Nantes", 50, 5e6], ["Lyon", -1, 5e6]]
    failed: dict[int, WinserveError] = {
        i: ModelInputError("the model rejected the input: ValueError: bad input") for i in (1, 2, 3)
    }
    named = name_columns(rows, failed, NAMES, _answers)
    assert named[1].message.endswith(
        "(column 'age': the model answers this row with another value there)"
    )
    assert "(column 'income'" in named[2].message
    # two values to fix: neither alone makes the row answered, so none is named
    assert named[3].message == failed[3].message
    assert isinstance(named[1], ModelInputError) and named[1].status == 400


def test_an_error_that_names_its_column_or_is_not_about_the_input_is_kept() -> None:
    rows = [["Lille", 30, 10.0], ["Lyon", -4, 20.0], ["Lyon", -4, 20.0]]
    failed: dict[int, WinserveError] = {
        1: ModelInputError("column 'age' must be positive"),
        2: ModelError("the model failed: RuntimeError: unlucky"),
    }
    assert name_columns(rows, failed, NAMES, _answers) == failed


def test_without_a_row_the_model_answered_nothing_is_guessed() -> None:
    rows = [["Lyon", -4, 20.0]]
    failed: dict[int, WinserveError] = {0: ModelInputError("bad input")}
    assert name_columns(rows, failed, NAMES, _answers) == failed
