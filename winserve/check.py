"""``winserve check MODEL``: load the model in a spawned host exactly as serving would, show
what was found, run one sample prediction, exit 0 or 1 with a one-line reason."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import TextIO

from winserve import banner, card, explaining
from winserve.backends import supervisor
from winserve.backends.replica import Replica
from winserve.model_info import ModelInfo
from winserve.models import start_probe
from winserve.server import model_spec
from winserve.settings import Settings


def check(settings: Settings, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    if settings.is_folder:
        return check_folder(settings, out)
    spec = model_spec(settings)
    print(f"winserve check: {spec.label}", file=out, flush=True)
    # the supervisor's start: the same load, and the same failure in words, as serving's
    replica = Replica(0, spec)
    try:
        outcome = supervisor.start(replica, settings.load_timeout)
    finally:
        replica.stop()
    if isinstance(outcome, supervisor.Failure):
        if outcome.kind == "load_error":
            # a card that was not used explains a failing sample (its [example] was not
            # asked): say so before the failure, not only when the sample passes (issue 22)
            for line in _card_problem(settings):
                print(line, file=out)
        # a host that died while Python started it: why, from its start done again (issue 24)
        return _fail(out, start_probe.explained(outcome.reason))
    info = ModelInfo.from_dict(outcome)
    for line in banner.describe_model(info):
        print(line, file=out)
    for line in _card_lines(settings, info):
        print(line, file=out)
    for line in _kinds_not_declared(settings, info):
        print(line, file=out)
    print(banner.line("reference", explaining.reference_line(info)), file=out)  # issue 25
    if settings.compile == "onnx":  # the details (rows verified, latencies) are on "runtime"
        compiled = info.runtime.startswith("onnxruntime") and "compiled" in info.runtime
        library = info.runtime.split(" (")[0]
        verdict = "verified, onnxruntime answers" if compiled else f"NOT used, {library} answers"
        print(banner.line("compile", f"onnx: {verdict}"), file=out)
    print(f"  {'sample':<{banner.WIDTH}}→ {json.dumps(info.sample_prediction)}", file=out)
    print(
        f"OK: the model loads and predicts (loaded in {info.load_seconds:.2f} s).",
        file=out,
        flush=True,
    )
    return 0


def check_folder(settings: Settings, out: TextIO) -> int:
    """Every model of a folder, each as serving the folder would load it; 1 if any fails."""
    from winserve.models.folder import discover

    assert settings.model is not None
    found, refused = discover(settings.model)
    print(f"winserve check: the folder {settings.model.name} ({len(found)} models)", file=out)
    for reason in refused.values():
        print(banner.line("WARNING", reason), file=out)
    if not found:
        return _fail(out, f"{settings.model.name} holds no model file")
    failed = [
        name
        for name, path in found.items()
        if check(dataclasses.replace(settings, model=path), out) != 0
    ]
    if failed:
        return _fail(out, f"{len(failed)} of {len(found)} models failed: {', '.join(failed)}")
    print(f"OK: all {len(found)} models load and predict.", file=out, flush=True)
    return 0


def _card_problem(settings: Settings) -> list[str]:
    """Why the model card was not used, if it was not (a warning line), else nothing."""
    found = card.load(settings.model, demo=settings.is_demo, quiet=True)
    return [banner.line("WARNING", found.problem)] if found.problem else []


def _card_lines(settings: Settings, info: ModelInfo) -> list[str]:
    """What the page will show about the model, from its sidecar ``<name>.toml``."""
    found = card.load(settings.model, demo=settings.is_demo)
    if found.problem:
        return [banner.line("WARNING", found.problem)]
    if not found.source:
        sidecar = card.sidecar_for(settings.model)
        if sidecar is None:
            return []
        hint = f"none ({sidecar.name} next to the model adds a title, help, an example)"
        return [banner.line("card", hint)]
    described = [
        f"title {found.title!r}" if found.title else "no title",
        f"{len(found.features)} input{'s' if len(found.features) != 1 else ''} described",
        "an example row" if found.example else "no example row",
    ]
    lines = [banner.line("card", f"{Path(found.source).name}: {', '.join(described)}")]
    lines += [banner.line("WARNING", note) for note in card.check_against(found, info)]
    return lines


def _kinds_not_declared(settings: Settings, info: ModelInfo) -> list[str]:
    """A warning per column whose kind the model does not declare (issue 22): it is passed as
    sent, and the card can pin it. Columns the model drops are left out: their kind is moot."""
    sidecar = card.sidecar_for(settings.model)
    where = sidecar.name if sidecar is not None and not settings.factory else "the model card"
    # every kind a card may pin, from the card's own list (the hint left "datetime" out)
    others = ", ".join(f'"{k}"' for k in card.CARD_KINDS if k != "category")
    lines = []
    for feature in info.features:
        if feature.kind != "any" or feature.kind_note.startswith("dropped"):
            continue
        why = feature.kind_note or "no step of the model declares its kind"
        lines.append(
            banner.line(
                "WARNING",
                f"column {feature.name!r}: {why}, so it is passed as sent (JSON values as "
                "typed, CSV cells as pd.read_csv types the column); if the model needs one "
                f'kind there, pin it in {where}: [features.{feature.name}] kind = "category" '
                f"(or {others})",
            )
        )
    return lines


def _fail(out: TextIO, reason: str) -> int:
    print(f"FAILED: {reason}", file=out, flush=True)
    return 1
