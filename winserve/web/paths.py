"""Server paths out of every answer (issue 13, item 10; SECURITY.md promises it).

A message from the model host or the model itself can name a file by its full path
("model file not found: C:\\Users\\anna\\models\\churn.joblib", a model's own FileNotFoundError):
on Windows that shows the user name, everywhere it shows the layout of the server. Answers
keep the file's name only; the console keeps the full message.
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

# what ends a path inside a message: whitespace, quotes and the punctuation around a path
_REST = r"(?:[\\/]+[^\s'\"<>|,;()\[\]{}]*)?"


def folders(model: Path | None, config: Path | None) -> list[str]:
    """The folders a server path in a message is likely to start with, longest first."""
    found: set[str] = set()
    candidates: list[Path | None] = [
        model.parent if model is not None else None,
        config.parent if config is not None else None,
        Path.cwd(),
        Path.home(),
        Path(tempfile.gettempdir()),
        Path(sys.prefix),
        Path(sys.base_prefix),
    ]
    for folder in candidates:
        if folder is None:
            continue
        for form in {str(folder), str(folder.resolve())}:
            if len(form.strip("\\/")) > 2:  # never "/" or "C:\"
                found.add(form)
                found.add(form.replace("\\", "\\\\"))  # as repr() of a Windows path shows it
    return sorted(found, key=len, reverse=True)


def pattern(known: Iterable[str]) -> re.Pattern[str] | None:
    choices = "|".join(re.escape(f) for f in known)
    return re.compile(f"(?:{choices}){_REST}") if choices else None


def _name(match: re.Match[str]) -> str:
    return re.split(r"[\\/]+", match.group(0).rstrip("\\/"))[-1]


def hide(text: str, compiled: re.Pattern[str] | None) -> str:
    """``text`` with each server path in it cut to its last part (the file's name)."""
    return compiled.sub(_name, text) if compiled is not None and text else text


def public(text: str) -> str:
    """``hide`` with this app's folders (the page's messages use it too)."""
    from flask import current_app, has_app_context

    if not has_app_context():
        return text
    return hide(text, current_app.extensions.get("winserve.paths"))
