"""A Power Query (M) recipe for the API page (issue 27): Excel scores a table of the open
workbook through ``POST /predict``, without a page and without code beyond this paste.

::

    Excel table "Table1" ──► Table.SelectColumns (the model's inputs, by name)
        ──► Table.ToRecords ──► Json.FromValue: [{"column": value, …}, …]
        ──► Web.Contents(url, [Headers, Content]) (a POST; Bearer token when one is set)
        ──► Json.Document: {"predictions", "classes", "probabilities"}
        ──► the table with "prediction" and "probability <class>" columns added

The request is kept this plain on purpose: one JSON array of records, winserve's own format,
so a test can send exactly what the snippet sends (tests/test_power_query.py).
"""

from __future__ import annotations

from winserve.model_info import ModelInfo

TABLE = "Table1"  # Excel's name for the first table made with Insert > Table
TOKEN_PLACEHOLDER = "paste the token here"


def m_text(value: str) -> str:
    """``value`` as an M text literal (a quote is doubled, as in Excel formulas)."""
    return '"' + value.replace('"', '""') + '"'


def snippet(info: ModelInfo, url: str, token: bool) -> str:
    """The query for ``info``'s columns, sending to ``url`` (its ``/predict``)."""
    columns = ", ".join(m_text(name) for name in info.feature_names)
    headers = '#"Content-Type" = "application/json"'
    lines = [
        "let",
        f"    // the rows to score: an Excel table named {TABLE} with these columns (others stay)",
        f"    Source = Excel.CurrentWorkbook(){{[Name = {m_text(TABLE)}]}}[Content],",
        f"    Columns = {{{columns}}},",
        f"    Url = {m_text(url + ('?proba=true' if info.has_proba else ''))},",
    ]
    if token:
        lines.append("    // this server needs a token: ask whoever runs it")
        lines.append(f"    Token = {m_text(TOKEN_PLACEHOLDER)},")
        headers += ', Authorization = "Bearer " & Token'
    added = '{"prediction"}'
    answers = "{Answer[predictions]}"
    if info.has_proba:
        added += ' & List.Transform(Answer[classes], each "probability " & Text.From(_))'
        answers += " & List.Zip(Answer[probabilities])"
    lines += [
        "    Body = Json.FromValue(Table.ToRecords(Table.SelectColumns(Source, Columns))),",
        f"    Answer = Json.Document(Web.Contents(Url, [Headers = [{headers}], Content = Body])),",
        "    Scored = Table.FromColumns(",
        f"        Table.ToColumns(Source) & {answers},",
        f"        Table.ColumnNames(Source) & {added}",
        "    )",
        "in",
        "    Scored",
    ]
    return "\n".join(lines)
