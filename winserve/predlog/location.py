"""Where the prediction log lives (issue 26): one SQLite file per model file or folder served,
the same path for the server that writes it and the checked swap that reads it.

::

    Settings ─► log_file(settings): None (log = false) | log_path | default_path(model, label)
        default_path: <per-user data folder>/predictions/<stem>-<hash of the full path>.sqlite
    server.open_prediction_log ─► PredictionLog(path) (writer.py)   models/swap.py ─► swap_rows
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING

from winserve.platform import data_dir

if TYPE_CHECKING:
    from winserve.settings import Settings


def default_path(served: Path | None, label: str) -> Path:
    """One log per model file or folder served (``label`` when none: the demo, a factory),
    under the per-user data folder: the name says which, a hash of the full path keeps two
    ``model.joblib`` in different folders apart."""
    where = str(served.resolve()) if served is not None else label
    stem = served.name if served is not None else label
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem)[:60] or "model"
    digest = hashlib.sha256(where.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return data_dir() / "predictions" / f"{stem}-{digest}.sqlite"


def log_file(settings: Settings) -> Path | None:
    """The prediction log's file for these settings (None: the log is off): ``log_path``, else
    the per-user one of the model or folder served. The server writes it; the checked swap
    reads it."""
    if not settings.log:
        return None
    label = "demo" if settings.is_demo else settings.factory or "model"
    return settings.log_path or default_path(settings.model, label)
