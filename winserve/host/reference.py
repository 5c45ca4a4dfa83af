"""The model's reference sample (issue 25, DESIGN 15): ``<name>.reference.csv`` beside the
model file, read in the model host at load.

::

    churn.joblib
    churn.reference.csv ──► sniff (separator, decimal mark, encoding: winserve.spreadsheet)
                          ──► pd.read_csv (a scored CSV's fidelity: NA strings, dtypes)
                          ──► the model's input columns, numbers as numbers
    churn.reference.parquet ──► pd.read_parquet (needs pyarrow: said so when missing) ──┘
                          ──► at most MAX_ROWS rows, sampled with a fixed seed
                          ──► Reference(frame, source) | Reference(None, source, problem)

The frame is the background of explanations and the range of what-if curves. A file that
cannot be used (a column missing, text in a number column) leaves the model served, and
says why in ``/model`` and ``winserve check``; explanations then answer 409 with that reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from winserve import spreadsheet

MAX_ROWS = 2000  # rows kept: enough for a stable baseline, small enough to sweep fast
SEED = 0
SUFFIX = ".reference.csv"
PARQUET = ".reference.parquet"  # the same sample with its dtypes kept (pandas' own format)


@dataclass(frozen=True)
class Reference:
    frame: Any  # pandas.DataFrame of the model's input columns, or None
    source: str  # the file's name (never its full path: it may name the user)
    problem: str = ""

    def describe(self) -> dict[str, Any]:
        """What ``/model`` says of it: ``{rows, source}`` (and ``problem`` when unusable)."""
        rows = 0 if self.frame is None else len(self.frame)
        described: dict[str, Any] = {"rows": rows, "source": self.source}
        if self.problem:
            described["problem"] = self.problem
        return described


def path_for(model_path: Path, suffix: str = SUFFIX) -> Path:
    """``churn.joblib`` → ``churn.reference.csv`` (beside it, as the card ``churn.toml`` and
    the code ``churn_code.py`` are)."""
    return model_path.with_name(model_path.stem + suffix)


def beside(model_path: Path) -> list[Path]:
    """The reference files beside ``model_path`` that exist: the CSV, then the Parquet file."""
    return [p for p in (path_for(model_path), path_for(model_path, PARQUET)) if p.is_file()]


def not_a_table(kinds: list[str], covers: str = "explanations and what-if curves cover") -> str:
    """Why a model that takes images or tensors has no explanations (or drift: ``covers``),
    and so no use for a reference sample ("" for a model of columns): they cover table models
    (issue 24; its page told such a model's owner to add a sample of rows, which would change
    nothing)."""
    if "image" in kinds:
        takes = "images"
    elif "tensor" in kinds:
        takes = "tensors (arrays per row)"
    else:
        return ""
    return (
        f"{covers} table models (inputs that are columns of numbers, categories or text); "
        f"this model takes {takes}"
    )


def how_to_make(model_path: str) -> str:
    """The sentence that says what file to add and how to make it."""
    name = path_for(Path(model_path)).name if model_path else "<model>" + SUFFIX
    return (
        f"put a sample of the training rows beside the model as {name} (in Python: "
        f'df.sample(1000).to_csv("{name}", index=False)) and load the model again'
    )


def load(model_path: str, features: list[dict[str, Any]], named: str = "") -> Reference | None:
    """The reference sample of the model at ``model_path`` for its input ``features``: the
    file the model card names (``named``, a full path), else ``<name>.reference.csv`` beside
    the model; None when there is no such file."""
    if named:
        path = Path(named)
        if not path.is_file():
            return Reference(
                None, path.name, f"the model card names {path.name} (reference), not found"
            )
    elif not model_path:
        return None
    else:
        found = beside(Path(model_path))
        if not found:
            return None
        path = found[0]
    try:
        frame = read(path, features)
    except (ValueError, OSError) as exc:
        return Reference(None, path.name, f"{path.name} cannot be used: {exc}")
    return Reference(frame, path.name)


def read(path: Path, features: list[dict[str, Any]]) -> Any:
    """The model's input columns of the CSV (or Parquet file) at ``path``, read as a scored
    CSV is."""
    import pandas as pd

    names = [str(f["name"]) for f in features]
    numbers = [str(f["name"]) for f in features if f.get("kind") == "number"]
    frame = _parquet(path) if path.suffix.lower() == ".parquet" else _csv(path, names, numbers)
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [n for n in names if n not in frame.columns]
    if missing:
        shown = ", ".join(repr(n) for n in missing[:10])
        raise ValueError(f"it has no column {shown} (the model takes {', '.join(names)})")
    frame = frame[names]
    for name in numbers:
        converted = pd.to_numeric(frame[name], errors="coerce")
        bad = frame[name].notna() & converted.isna()
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise ValueError(
                f"column {name!r} holds {frame[name].iloc[row]!r} on row {row + 1}, not a number"
            )
        frame[name] = converted.astype("float64")
    for name in (str(f["name"]) for f in features if f.get("kind") == "datetime"):
        frame[name] = _datetimes(frame[name], name)
    if frame.empty:
        raise ValueError("it has no rows")
    if len(frame) > MAX_ROWS:
        frame = frame.sample(n=MAX_ROWS, random_state=SEED)
    return frame.reset_index(drop=True)


def _datetimes(column: Any, name: str) -> Any:
    """A ``kind = "datetime"`` column as the request path hands it to the model (ISO text,
    ``winserve.dates.datetime_column``, one format for the whole column: read cell by cell,
    09.03.2023 beside 29.09.2022 was 3 September): an explanation mixes the row's values with
    the sample's in one column, and a model parsing dates with one format refused the mix (a
    new user's trial)."""
    from winserve.cells import RowProblem
    from winserve.dates import datetime_column
    from winserve.model_info import Feature

    problems: list[RowProblem] = []
    values = datetime_column(Feature(name=name, kind="datetime"), column.tolist(), problems)
    if problems:
        raise ValueError(str(problems[0]))
    return column.__class__(values, index=column.index, dtype=object, name=column.name)


def _csv(path: Path, names: list[str], numbers: list[str]) -> Any:
    import pandas as pd

    try:
        dialect = spreadsheet.sniff(path, names, numbers)
    except Exception as exc:  # BadRequest: an Excel workbook, not text, one endless line
        raise ValueError(str(exc)) from exc
    return pd.read_csv(
        path,
        sep=dialect.delimiter,
        decimal="," if dialect.decimal_comma else ".",
        encoding=dialect.encoding,
        skipinitialspace=False,
    )


def _parquet(path: Path) -> Any:
    import pandas as pd

    try:
        return pd.read_parquet(path)
    except ImportError as exc:  # pandas reads Parquet with pyarrow (or fastparquet) only
        raise ValueError(
            "reading a .parquet file needs pyarrow in the model's environment "
            "(pip install pyarrow), or save the sample as .reference.csv"
        ) from exc
    except Exception as exc:  # pyarrow's own errors: not a Parquet file, truncated
        raise ValueError(f"it is not a readable Parquet file ({exc})") from exc
