"""Which column a row is refused for, when the model's own error does not say (issue 22).

A model's error often names no column ("could not convert string to float: 'abc'", "Input
contains NaN", a library's "Check failed"). For CSV scoring, where a colleague must find the
cell to fix among thousands, each refused row whose error names no column is asked again with
one of its values at a time taken from a row the model answered::

    refused row  ──►  [good value in column 1] ──► answered? ──► "column 'city'"
                      [good value in column 2] ──► ...

A column whose change alone makes the row answered is the one named. Bounded: the first
``MAX_ROWS`` such rows of a call, and no more than ``SECONDS`` of asking.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from winserve.errors import ModelInputError, WinserveError

MAX_ROWS = 20
SECONDS = 2.0


def names_a_column(message: str, names: Sequence[str]) -> bool:
    return any(f"'{n}'" in message or f'"{n}"' in message for n in names)


def name_columns(
    rows: list[list[Any]],
    failed: dict[int, WinserveError],
    names: Sequence[str],
    answers: Callable[[list[Any]], bool],
    *,
    seconds: float = SECONDS,
) -> dict[int, WinserveError]:
    """``failed`` with each refused row's error naming the column(s) to fix, where a row the
    model answered (one of ``rows`` not in ``failed``) shows it; ``answers(row)`` asks the
    model about one row of cells."""
    good = next((rows[i] for i in range(len(rows)) if i not in failed), None)
    if good is None or len(names) < 2:
        return failed
    end = time.monotonic() + seconds
    named = dict(failed)
    asked = 0
    for index, error in sorted(failed.items()):
        if asked >= MAX_ROWS or time.monotonic() > end:
            break
        if not isinstance(error, ModelInputError) or names_a_column(error.message, names):
            continue
        asked += 1
        row = rows[index]
        found = []
        for position, name in enumerate(names):
            if time.monotonic() > end:
                break
            if row[position] == good[position]:
                continue
            if answers([*row[:position], good[position], *row[position + 1 :]]):
                found.append(name)
        if found:
            columns = ", ".join(repr(n) for n in found)
            named[index] = ModelInputError(
                f"{error.message} (column {columns}: the model answers this row with another "
                "value there)"
            )
    return named
