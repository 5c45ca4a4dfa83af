"""The model card: what people see about a model, from an optional sidecar file next to it.

``churn.joblib`` → ``churn.toml``::

    title = "Customer churn"
    description = "Chance that a customer leaves within 90 days."

    [example]                 # prefills the form
    tenure_months = 12
    plan = "basic"

    [classes]                 # friendly names for class labels (shown on the page only)
    "0" = "Stays"
    "1" = "Leaves"

    [features.tenure_months]
    label = "Tenure"
    help = "Whole months since the customer signed up."
    unit = "months"

    [features.plan]
    allowed = ["basic", "plus", "pro"]   # a select on the form
    kind = "category"         # pins the column's kind where the model does not declare it
                              # (category, number, text, bool or datetime; issue 22)

    [features.signed]
    kind = "datetime"         # ISO text (2024-03-01T12:30) becomes a datetime64 column, as
                              # pd.to_datetime makes it (a model reading df["signed"].dt…)

    [inputs.pixels]           # a tensor input (an ONNX graph's, issue 24): what it is
    kind = "image"            # or "tensor" (nested lists of its shape per row)
    size = [224, 224]         # height, width: images are resized to it (bilinear)
    channels = "RGB"          # or "L" (grey)
    layout = "NCHW"           # or "NHWC"
    scale = 0.00392156862745098   # 1/255: pixel values 0…255 to 0…1, then (x - mean) / std
    mean = [0.485, 0.456, 0.406]
    std = [0.229, 0.224, 0.225]

    [inputs.tokens]           # a tensor input of a file that does not declare it (TorchScript,
    kind = "tensor"           # a saved nn.Module): its shape per row (-1: any length) and dtype
    shape = [128]
    dtype = "int64"

The sidecar is plain data read by the web process; a malformed one is reported on the console
and on the page, and the model is served without it.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from winserve.host import mlflow_folder
from winserve.host.describe import MAX_CATEGORIES_LISTED
from winserve.model_info import Feature, ModelInfo

log = logging.getLogger("winserve")
DEMO_CARD = Path(__file__).parent / "web" / "demo.toml"
CARD_KEYS = {
    "title",
    "description",
    "example",
    "classes",
    "features",
    "workers",
    "inputs",
    "reference",
}
INPUT_KEYS = {"kind", "size", "channels", "layout", "scale", "mean", "std", "shape", "dtype"}
# what a tensor input's table may say beyond its kind: its shape per row and its dtype, for a
# file that does not declare them (a TorchScript file, a saved nn.Module; issue 24)
TENSOR_KEYS = {"kind", "shape", "dtype"}
INPUT_KINDS = ("image", "tensor")
FEATURE_KEYS = {"label", "help", "unit", "allowed", "kind"}
# [features.<name>] kind = …: the card's word → the column kind winserve validates with
CARD_KINDS = {
    "category": "category",
    "number": "number",
    "text": "string",
    "bool": "bool",
    "datetime": "datetime",  # a pandas datetime64 column (issue 22)
}
# the form's hint for a datetime column: the text pd.to_datetime reads without a guess
DATETIME_HINT = "a date and time, e.g. 2024-03-01 12:30 (year-month-day; the time may be left out)"


@dataclass(frozen=True)
class FeatureDoc:
    label: str = ""
    help: str = ""
    unit: str = ""
    allowed: tuple[Any, ...] = ()
    kind: str = ""  # a column kind pinned by the card (a value of CARD_KINDS), issue 22


@dataclass(frozen=True)
class ModelCard:
    title: str = ""
    description: str = ""
    example: dict[str, Any] = field(default_factory=dict)
    classes: dict[str, str] = field(default_factory=dict)
    features: dict[str, FeatureDoc] = field(default_factory=dict)
    source: str = ""
    problem: str = ""  # why the sidecar could not be used
    workers: int = 0  # replicas of this model in a folder of models; 0: the setting workers
    # [inputs.<name>]: what a tensor input is, checked against the graph in the model host
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # reference = "…": the reference sample's file, from the card's folder (issue 25); "":
    # <name>.reference.csv beside the model
    reference: str = ""

    def class_name(self, label: Any) -> str:
        return self.classes.get(str(label), str(label))

    @property
    def kinds(self) -> dict[str, str]:
        """The column kinds the card pins, by column name (what the model host applies)."""
        return {name: doc.kind for name, doc in self.features.items() if doc.kind}


@dataclass(frozen=True)
class FormField:
    """One input of the generated form."""

    name: str
    label: str
    kind: str  # number | select | text | textarea (free text)
    options: tuple[str, ...]
    help: str
    unit: str
    value: str
    required: bool = False  # the model refuses a missing value here
    missing_ok: bool = False  # it takes one: a drop-down offers an empty choice


def sidecar_for(model: Path | None, *, demo: bool = False) -> Path | None:
    """Where the card of ``model`` lives (the demo's ships with winserve; factories have none)."""
    if demo:
        return DEMO_CARD
    return model.with_suffix(".toml") if model is not None else None


def _text(data: dict[str, Any], key: str, where: str) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise ValueError(f"{where}{key} must be text")
    return value


def parse(data: dict[str, Any], source: str = "") -> ModelCard:
    unknown = sorted(set(data) - CARD_KEYS)
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}; expected {', '.join(sorted(CARD_KEYS))}")
    example = data.get("example", {})
    classes = data.get("classes", {})
    features = data.get("features", {})
    for key, value in (("example", example), ("classes", classes), ("features", features)):
        if not isinstance(value, dict):
            raise ValueError(f"[{key}] must be a table")
    docs: dict[str, FeatureDoc] = {}
    for name, spec in features.items():
        where = f"features.{name}."
        if not isinstance(spec, dict):
            raise ValueError(f"[features.{name}] must be a table")
        extra = sorted(set(spec) - FEATURE_KEYS)
        if extra:
            raise ValueError(
                f"unknown key {where}{extra[0]}; expected label, help, unit, allowed, kind"
            )
        kind = spec.get("kind", "")
        if kind != "" and kind not in CARD_KINDS:
            raise ValueError(f"{where}kind must be one of {', '.join(CARD_KINDS)}, not {kind!r}")
        allowed = spec.get("allowed", [])
        if not isinstance(allowed, list):
            raise ValueError(f"{where}allowed must be a list")
        docs[str(name)] = FeatureDoc(
            label=_text(spec, "label", where),
            help=_text(spec, "help", where),
            unit=_text(spec, "unit", where),
            allowed=tuple(allowed),
            kind=CARD_KINDS.get(kind, ""),
        )
    inputs = _inputs(data.get("inputs", {}))
    workers = data.get("workers", 0)
    if type(workers) is not int or not 0 <= workers <= 64:
        raise ValueError("workers must be a whole number from 1 to 64 (replicas of this model)")
    return ModelCard(
        workers=workers,
        title=_text(data, "title", ""),
        description=_text(data, "description", ""),
        example={str(k): _example_value(v) for k, v in example.items()},
        classes={str(k): str(v) for k, v in classes.items()},
        features=docs,
        source=source,
        inputs=inputs,
        reference=_reference(data, source),
    )


def _example_value(value: Any) -> Any:
    """A TOML date or time in [example] as ISO text, as a JSON or CSV row would send it: the
    sample prediction then asks what real rows ask (a TOML datetime passed a check whose
    model refused every JSON row, issue 22); a ``kind = "datetime"`` column reads it back."""
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    return value


def _reference(data: dict[str, Any], source: str) -> str:
    """The card's ``reference`` as a full path (a relative one is from the card's folder)."""
    named = _text(data, "reference", "")
    if not named:
        return ""
    path = Path(named)
    if not path.is_absolute() and source:
        path = Path(source).parent / path
    return str(path)


def _inputs(tables: Any) -> dict[str, dict[str, Any]]:
    """The [inputs.<name>] tables, their keys and kinds checked here (the values against the
    graph's input in the model host, which knows its shape; issue 24)."""
    if not isinstance(tables, dict):
        raise ValueError("[inputs] must be a table")
    found: dict[str, dict[str, Any]] = {}
    for name, spec in tables.items():
        if not isinstance(spec, dict):
            raise ValueError(f"[inputs.{name}] must be a table")
        extra = sorted(set(spec) - INPUT_KEYS)
        if extra:
            raise ValueError(
                f"unknown key inputs.{name}.{extra[0]}; expected {', '.join(sorted(INPUT_KEYS))}"
            )
        kind = spec.get("kind", "tensor")
        if kind not in INPUT_KINDS:
            raise ValueError(f"inputs.{name}.kind is image or tensor, not {kind!r}")
        if kind == "tensor" and set(spec) - TENSOR_KEYS:
            raise ValueError(
                f"inputs.{name}: only an image has {', '.join(sorted(set(spec) - TENSOR_KEYS))}"
            )
        if kind == "image" and "shape" in spec:
            raise ValueError(f"inputs.{name}: an image has size and channels, not shape")
        found[str(name)] = dict(spec)
    return found


def load(model: Path | None, *, demo: bool = False, quiet: bool = False) -> ModelCard:
    found = _load(model, demo=demo, quiet=quiet)
    if not found.example and model is not None and mlflow_folder.is_model_folder(model):
        # an MLflow folder's input example stands in for the card's (the card wins)
        return dataclasses.replace(found, example=mlflow_folder.input_example(model))
    return found


def _load(model: Path | None, *, demo: bool, quiet: bool) -> ModelCard:
    path = sidecar_for(model, demo=demo)
    if path is None or not path.is_file() or path.name == "winserve.toml":
        return ModelCard()
    try:
        with path.open("rb") as file:
            return parse(tomllib.load(file), str(path))
    except (OSError, ValueError) as exc:  # tomllib.TOMLDecodeError is a ValueError
        problem = f"the model card {path.name} was not used: {exc}"
        if not quiet:
            log.warning("%s", problem)
        return ModelCard(source=str(path), problem=problem)


def check_against(card: ModelCard, info: ModelInfo) -> list[str]:
    """What in the card the model does not have: names that are not its inputs, and allowed
    values that are not among a column's fitted categories (shown as warnings on the page and
    by ``winserve check``, logged when a version loads)."""
    names = set(info.feature_names)
    stray = [n for n in card.features if n not in names]
    stray += [n for n in card.example if n not in names and n not in stray]
    notes = [f"the model card names {n!r}, which is not an input of the model" for n in stray]
    by_name = {f.name: f for f in info.features}
    for name, doc in card.features.items():
        feature = by_name.get(name)
        if feature is not None and doc.allowed:
            notes += _unknown_allowed(name, doc.allowed, feature)
    return notes


def _unknown_allowed(name: str, allowed: tuple[Any, ...], feature: Feature) -> list[str]:
    """The card's ``allowed`` values for ``feature`` that the model was not fitted on: the
    drop-down would offer them, and the model refuses them (a strict OneHotEncoder) or reads
    them as a category it never saw (handle_unknown="ignore", a pandas category: missing)."""
    known = feature.categories
    if not known or len(known) >= MAX_CATEGORIES_LISTED:
        return []  # no categories known, or only the first of a longer list: nothing to tell
    shown = {_shown(c) for c in known}
    unknown = [v for v in allowed if _shown(v) not in shown]
    if not unknown:
        return []
    values = ", ".join(repr(_shown(v)) for v in unknown[:10]) + (" …" if len(unknown) > 10 else "")
    fitted = ", ".join(repr(_shown(c)) for c in known[:10]) + (" …" if len(known) > 10 else "")
    if feature.strict_categories:
        effect = "it refuses them"
    elif feature.dtype == "category":
        effect = "they reach it as a missing value"
    else:
        effect = "it treats them as a category it never saw"
    many = len(unknown) > 1
    return [
        f"the model card allows {values} for {name!r}, which the model does not know "
        f"({effect}; it was fitted on {fitted}): remove {'them' if many else 'it'} from "
        f"[features.{name}] allowed, or retrain the model with {'them' if many else 'it'}"
    ]


def _shown(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else str(value)
    return "" if value is None else str(value)


def form_fields(
    card: ModelCard, info: ModelInfo, values: dict[str, str] | None = None
) -> list[FormField]:
    """The form for ``info``'s features, prefilled with ``values``, else the card's example,
    else the reference sample's typical row (issue 25: a number's median, a drop-down's most
    frequent value), else where nobody has chosen anything (issue 22)."""
    typical = info.extra.get("typical") or {}
    ranges = info.extra.get("ranges") or {}  # the sample's usual range: a hint, never a limit
    fields = []
    for feature in info.features:
        doc = card.features.get(feature.name, FeatureDoc())
        options = tuple(str(v) for v in (doc.allowed or _categories(feature)))
        help_text = doc.help
        start = _typical(feature, options, typical)
        if values is not None:
            value = values.get(feature.name, "")
        elif feature.name in card.example:
            value = _shown(card.example[feature.name])
        elif start is not None:
            value = start
        elif options and feature.missing != "accepted":
            value = options[0]
        else:  # a column that takes a missing value starts on it: nobody chose one (issue 22)
            value = ""
        if options:
            kind = "select"
        elif feature.kind == "number":
            kind = "number"
            help_text = _with_range(help_text, ranges.get(feature.name))
        elif feature.kind == "datetime":
            kind, help_text = "text", f"{doc.help} ({DATETIME_HINT})" if doc.help else DATETIME_HINT
        else:
            kind = "textarea" if feature.kind == "string" else "text"
        fields.append(
            FormField(
                name=feature.name,
                label=doc.label or feature.name,
                kind=kind,
                options=options,
                help=help_text,
                unit=doc.unit,
                value=value,
                required=feature.required,
                missing_ok=feature.missing == "accepted",
            )
        )
    return fields


def _with_range(help_text: str, usual: list[float] | None) -> str:
    """A number field's help, with the reference sample's usual range after it."""
    if not usual:
        return help_text
    low, high = (_shown(round(v, 2)) for v in usual)
    hint = f"usually between {low} and {high} (reference sample)"
    return f"{help_text} ({hint})" if help_text else hint


def _typical(feature: Feature, options: tuple[str, ...], typical: dict[str, Any]) -> str | None:
    """The reference sample's typical value of ``feature`` as the form shows it: a number
    field's median, a drop-down's most frequent value when it is one of its choices (the
    sample may hold a value the card's ``allowed`` leaves out); None for free text."""
    if feature.name not in typical:
        return None
    value = typical[feature.name]
    if options:
        shown = _shown(value)
        return next((o for o in options if o == shown or o == str(value)), None)
    if feature.kind == "number" and isinstance(value, (int, float)):
        return _shown(float(value))
    return None


def _categories(feature: Feature) -> tuple[Any, ...]:
    if feature.kind == "bool":
        return feature.categories or (False, True)
    return feature.categories if feature.kind in ("category", "string") or feature.dtype else ()
