"""The one place a view finds its model: the data plane, and the version this request holds.

A request takes one snapshot of its model's version (a ``Held``), the first time it asks,
and keeps it to the end: a new version that starts serving meanwhile gets the next requests,
and the version this one started on is not stopped under it (the data plane counts it in
flight until the request's teardown releases it). The model is the one named in the path
(``/models/<name>/…``, ``/v2/models/<name>/…``), else the default model.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from flask import Flask, current_app, g

from winserve.dataplane import DataPlane, Held

KEY = "winserve.dataplane"
# the registry under the data plane, for the tests that look at what is served (never a view)
REGISTRY_KEY = "winserve.models.registry"


def plane() -> DataPlane:
    found: DataPlane = current_app.extensions[KEY]
    return found


def model_name() -> str | None:
    """The model named in this request's path (``/models/<name>/…``), or None."""
    name: str | None = g.get("winserve_model")
    return name


def model_used() -> str:
    """The model this request used (its first held version), else the one its path named,
    else ""."""
    first = first_held()
    if first is not None:
        return first.name
    return g.get("winserve_model") or ""


def first_held() -> Held | None:
    """The first version this request held, if it held one."""
    taken: dict[str | None, Held] | None = g.get("winserve_held")
    return next(iter(taken.values())) if taken else None


def held(name: str | None = None) -> Held:
    """This request's snapshot of the version serving ``name`` (default: the path's, else
    the default model); the same object every time the request asks."""
    state = g._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup
    name = name if name is not None else state.get("winserve_model")
    taken: dict[str | None, Held] = state.setdefault("winserve_held", {})
    found = taken.get(name)
    if found is None:
        found = taken[name] = plane().hold(name)
    return found


def held_version(name: str, version: str) -> Held:
    """This request's snapshot of version ``version`` of ``name`` (serving or draining)."""
    taken: dict[str | None, Held] = g.setdefault("winserve_held", {})
    key = f"{name}\0{version}"
    found = taken.get(key)
    if found is None:
        found = taken[key] = plane().hold_version(name, version)
    return found


def base() -> str:
    """Where this request's model's pages and routes live: "" for the bare routes, else
    ``/models/<name>``."""
    name = model_name()
    # quoted: a name with ?, #, % or \ sent the page's links and forms elsewhere (issue 28)
    return f"/models/{quote(name, safe='')}" if name is not None else ""


def install(app: Flask, chosen: DataPlane) -> None:
    app.extensions[KEY] = chosen
    app.extensions[REGISTRY_KEY] = chosen.registry

    @app.url_value_preprocessor
    def take_model(endpoint: str | None, values: dict[str, Any] | None) -> None:
        if values and "model" in values:
            g.winserve_model = values.pop("model")

    @app.teardown_request
    def release(_: BaseException | None) -> None:
        for taken in g.pop("winserve_held", {}).values():
            chosen.release(taken)
