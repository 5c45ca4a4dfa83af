"""The one place a view finds its model: the slot (one loaded version) this request uses.

A request takes one snapshot of its slot, the first time it asks, and keeps it to the end: a
new version that starts serving meanwhile gets the next requests, and the version this one
started on is not stopped under it (the registry counts it in flight until the request ends).
The model is the one named in the path (``/models/<name>/…``, ``/v2/models/<name>/…``), else
the default model (``Registry.default_name``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from flask import Flask, current_app, g

from winserve.models.registry import Registry, Slot

KEY = "winserve.models.registry"


def registry() -> Registry:
    found: Registry = current_app.extensions[KEY]
    return found


def model_name() -> str | None:
    """The model named in this request's path (``/models/<name>/…``), or None."""
    name: str | None = g.get("winserve_model")
    return name


def model_used() -> str:
    """The model this request used (its first slot), else the one its path named, else ""."""
    taken: dict[str | None, Slot] | None = g.get("winserve_slots")
    if taken:
        return next(iter(taken.values())).name
    return g.get("winserve_model") or ""


def slot(name: str | None = None) -> Slot:
    """This request's snapshot of the slot of ``name`` (default: the path's, else the default
    model); the same object every time the request asks."""
    state = g._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup
    name = name if name is not None else state.get("winserve_model")
    taken: dict[str | None, Slot] = state.setdefault("winserve_slots", {})
    found = taken.get(name)
    if found is None:
        found = taken[name] = registry().acquire(name)
    return found


def slot_version(name: str, version: str) -> Slot:
    """This request's snapshot of version ``version`` of ``name`` (serving or draining)."""
    taken: dict[str | None, Slot] = g.setdefault("winserve_slots", {})
    key = f"{name}\0{version}"
    found = taken.get(key)
    if found is None:
        found = taken[key] = registry().acquire_version(name, version)
    return found


def base(found: Slot | None = None) -> str:
    """Where this request's model's pages and routes live: "" for the bare routes, else
    ``/models/<name>``."""
    name = model_name()
    # quoted: a name with ?, #, % or \ sent the page's links and forms elsewhere (issue 28)
    return f"/models/{quote(name, safe='')}" if name is not None else ""


def install(app: Flask, chosen: Registry) -> None:
    app.extensions[KEY] = chosen

    @app.url_value_preprocessor
    def take_model(endpoint: str | None, values: dict[str, Any] | None) -> None:
        if values and "model" in values:
            g.winserve_model = values.pop("model")

    @app.teardown_request
    def release(_: BaseException | None) -> None:
        for taken in g.pop("winserve_slots", {}).values():
            chosen.release(taken)
