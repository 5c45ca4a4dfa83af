"""The API page (``/api``, and ``/models/<name>/api``): how a program calls this model, with
examples in each protocol built from its columns, and an outline of its OpenAPI document.

::

    GET /api ─► page.model_state() ─► examples.api_examples (ready-to-paste requests, grouped
                by protocol) + examples.openapi_outline ─► api.html

On the page's blueprint (``page.bp``), as the model's page (``ui``) is: its errors are pages.
"""

from __future__ import annotations

from flask import current_app, render_template, request
from flask.typing import ResponseReturnValue

from winserve.web import auth, held
from winserve.web.examples import Example, api_examples, openapi_outline
from winserve.web.page import bp, model_state


def _grouped(examples: list[Example]) -> list[tuple[str, list[Example]]]:
    groups: dict[str, list[Example]] = {}
    for example in examples:
        groups.setdefault(example.protocol, []).append(example)
    return list(groups.items())


@bp.get("/api")
def api_page() -> ResponseReturnValue:
    info, health = model_state()
    base = request.host_url.rstrip("/")
    token = auth.tokens_required(current_app)  # the token setting or named ones (issue 26)
    card = held.held().card
    return render_template(
        "api.html",
        info=info,
        health=health,
        card=card,
        groups=_grouped(
            api_examples(info, card, base, token, held.base()) if info is not None else []
        ),
        outline=openapi_outline(info, base, token),
        base=base,
        token=token,
    )
