"""A CSV job's chunk answered as the text the scored file adds to each line (issue 29).

::

    RowScorer (web) ── payload[TEXTS] = {"separator": ",", "decimal_comma": False} ──►
    ModelHost.predict ──► the answer as usual ──► as_text: each row's prediction and class
        probabilities written as ``Dialect.write_value`` writes them (``scoring.bulk.written``),
        joined by the separator, the rows by "\n": ONE string, ``texts``; the probabilities
        themselves left out (the web process reads back the few its log sample keeps)
    web ──► each line of the file, its row's text, the error cell and the request id after it

Why here: writing a float as text (``repr``) is a third of a 100,000-row job's CPU in the web
process, whose GIL the other users' requests need, while the model host waits for the next
chunk (the job's calls run ahead of its writing: ``scoring.ahead``). One string per chunk also
crosses the process boundary cheaper than its rows' lists of floats.

Only a plain answer: one prediction per row, the answer whole (a call the host isolated rows
of, a multi-output model, a text that would need quotes in the file) keeps its values, and the
web process writes them as before.
"""

from __future__ import annotations

from typing import Any

from winserve.host.answers import Predicted


def as_text(answer: Predicted, asked: dict[str, Any]) -> Predicted:
    """``answer`` with ``texts`` (and no ``probabilities``), or as it is when its rows cannot be
    written as plain separated cells."""
    from winserve.scoring.bulk import written
    from winserve.spreadsheet import Dialect, plain_cells

    predictions = answer["predictions"]
    probabilities = answer.get("probabilities")
    if not predictions or list in set(map(type, predictions)):  # (map: the loop runs in C)
        return answer
    separator = str(asked["separator"])
    dialect = Dialect(delimiter=separator, decimal_comma=bool(asked["decimal_comma"]))
    columns = [written(predictions, dialect)]
    if probabilities:
        columns.extend(
            written([shares[k] for shares in probabilities], dialect)
            for k in range(len(probabilities[0]))
        )
    text = "\n".join(map(separator.join, zip(*columns, strict=True)))
    # a cell that would need quotes (a separator, a quote or a line break in a label)
    if not plain_cells(text, separator, len(predictions), len(columns) - 1):
        return answer
    plain: Predicted = {"ok": True, "predictions": predictions, "texts": text}
    if "scores" in answer:
        plain["scores"] = answer["scores"]
    return plain
