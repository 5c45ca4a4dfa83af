"""Serve an MLflow model folder (a folder with an ``MLmodel`` file) without importing MLflow.

``mlflow.sklearn.save_model(model, "churn", signature=..., input_example=...)`` writes::

    churn/
      MLmodel               YAML: flavors.sklearn.pickled_model + serialization_format,
                            signature.inputs (a JSON list of {"name", "type"}), the example
      model.pkl             pickle or cloudpickle (MLflow 2), or model.skops (MLflow 3's
                            default): loaded as winserve loads a file of that kind, a
                            skops one with winserve's trusted types, never the
                            skops_trusted_types that MLmodel may list
      input_example.json    one or more rows, as a DataFrame in "split" or "records" form
      code/                 the training code given as code_paths, put on the import path

Only the scikit-learn flavour is served; any other gets a message naming it. The signature's
input columns give the names, order and kinds of the inputs (``winserve_features``, which
``describe`` uses; the categories of columns the model's encoders consume are still read from
the encoders), and the first row of the input example is the model card's example when the
card (``churn.toml`` beside the folder) has none. MLmodel is YAML: it is read with PyYAML
(``winserve[mlflow]``), since MLflow writes long signatures as quoted strings folded across
lines.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from winserve.errors import ModelLoadError

if TYPE_CHECKING:
    from winserve.host.loading import Loaded

MLMODEL = "MLmodel"
FORMATS = ("pickle", "cloudpickle", "skops")
SIGNATURE_KINDS = {
    "double": "number",
    "float": "number",
    "long": "number",
    "integer": "number",
    "string": "string",
    "boolean": "bool",
    "datetime": "string",
    "binary": "any",
}


def is_model_folder(path: Path) -> bool:
    return path.is_dir() and (path / MLMODEL).is_file()


@dataclass(frozen=True)
class FolderModel:
    """What MLmodel says about the scikit-learn model in a folder."""

    model_file: Path
    serialization_format: str
    signature: list[dict[str, Any]] = field(default_factory=list)  # [{"name", "kind"}]
    code_folder: Path | None = None
    predict_fn: str = "predict"  # what MLflow's scoring server calls (pyfunc_predict_fn)
    # the signature's params schema ([{"name", "type", "default", ...}]): MLflow applies a
    # request's params only when there is one (issue 22)
    params: list[dict[str, Any]] = field(default_factory=list)


def _read_mlmodel(folder: Path) -> dict[str, Any]:
    try:
        import yaml
    except ImportError:
        raise ModelLoadError(
            f"{folder.name} is an MLflow model folder, and reading its MLmodel file needs "
            "PyYAML: pip install pyyaml"
        ) from None
    try:
        data = yaml.safe_load((folder / MLMODEL).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelLoadError(f"cannot read {folder.name}/{MLMODEL}: {reason}") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{folder.name}/{MLMODEL} is not an MLflow model description")
    return data


def read(folder: Path) -> FolderModel:
    data = _read_mlmodel(folder)
    flavors: dict[str, Any] = data["flavors"] if isinstance(data.get("flavors"), dict) else {}
    sklearn = flavors.get("sklearn")
    if not isinstance(sklearn, dict):
        others = [name for name in flavors if name != "python_function"]
        loader = (flavors.get("python_function") or {}).get("loader_module", "")
        found = ", ".join(others) or (
            f"python_function only (loader_module {loader})" if loader else "none"
        )
        raise ModelLoadError(
            f"{folder.name} is an MLflow model of flavour {found}; winserve serves the "
            "sklearn flavour only (saved with mlflow.sklearn.save_model or log_model). "
            "Serve this one with mlflow models serve, or save the scikit-learn model itself"
        )
    pickled = str(sklearn.get("pickled_model") or "")
    fmt = str(sklearn.get("serialization_format") or "pickle")  # as MLflow reads old folders
    if fmt not in FORMATS:
        raise ModelLoadError(
            f"{folder.name}: MLmodel says serialization_format {fmt!r}; winserve loads "
            f"{', '.join(FORMATS)}"
        )
    model_file = (folder / pickled).resolve()
    if not pickled or not model_file.is_relative_to(folder.resolve()) or not model_file.is_file():
        raise ModelLoadError(
            f"{folder.name}: the model file {pickled!r} that MLmodel names is missing"
        )
    code = sklearn.get("code")
    code_folder = folder / str(code) if code else None
    pyfunc = flavors.get("python_function")
    predict_fn = pyfunc.get("predict_fn") if isinstance(pyfunc, dict) else None
    return FolderModel(
        predict_fn=str(predict_fn or "predict"),
        model_file=model_file,
        serialization_format=fmt,
        signature=_signature_inputs(data.get("signature")),
        params=_signature_params(data.get("signature")),
        code_folder=code_folder if code_folder is not None and code_folder.is_dir() else None,
    )


def _signature_inputs(signature: Any) -> list[dict[str, Any]]:
    """Named columns of the signature's input schema; [] for a tensor schema or none."""
    raw = signature.get("inputs") if isinstance(signature, dict) else None
    try:
        columns = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return []
    if not isinstance(columns, list) or not columns:
        return []
    described = []
    for column in columns:
        if not isinstance(column, dict) or not isinstance(column.get("name"), str):
            return []  # an unnamed (tensor) input: the model's own description is better
        kind = SIGNATURE_KINDS.get(str(column.get("type")), "any")
        described.append({"name": column["name"], "kind": kind})
    return described


def _signature_params(signature: Any) -> list[dict[str, Any]]:
    """The signature's params schema (MLflow writes it as a JSON string); [] when none."""
    raw = signature.get("params") if isinstance(signature, dict) else None
    try:
        params = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return []
    if not isinstance(params, list):
        return []
    return [p for p in params if isinstance(p, dict) and isinstance(p.get("name"), str)]


def input_example(folder: Path) -> dict[str, Any]:
    """The first row of ``input_example.json`` as {column: value}; {} when there is none or
    it is not a table (the card's example is optional, so a strange one is skipped)."""
    try:
        data = json.loads((folder / "input_example.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if isinstance(data, dict):
        for key in ("dataframe_split", "dataframe_records", "inputs"):
            if key in data:  # the serving form, {"dataframe_split": {...}}
                data = data[key]
                break
    if isinstance(data, dict) and isinstance(data.get("columns"), list):
        rows = data.get("data") or []
        first = rows[0] if rows and isinstance(rows[0], list) else []
        return dict(zip((str(c) for c in data["columns"]), first, strict=False))
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return {str(k): v for k, v in data[0].items()}
    if isinstance(data, dict) and all(not isinstance(v, dict) for v in data.values()):
        return {str(k): (v[0] if isinstance(v, list) and v else v) for k, v in data.items()}
    return {}


def features_for(model: Any, signature: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The signature's columns, with what the model's encoders know about them (categories)."""
    from winserve.host import describe

    kinds = describe.column_kinds(model, [c["name"] for c in signature])
    return [{**column, **kinds.get(column["name"], {})} for column in signature]


def prepare_code(found: FolderModel) -> None:
    """MLflow puts the folder's ``code/`` (the ``code_paths`` of save_model) on sys.path."""
    if found.code_folder is not None and str(found.code_folder) not in sys.path:
        sys.path.append(str(found.code_folder))


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def load(folder: Path, digest: str, *, strict_versions: bool, trust: tuple[str, ...]) -> Loaded:
    """The folder's model as ``loading.Loaded``, named after the folder; ``digest`` is the
    folder's SHA-256 (already checked against the pins)."""
    from winserve.host import loading  # loading dispatches here: imported when first used

    found = read(folder)
    prepare_code(found)
    loaded = loading.load_file(
        found.model_file,
        # pickle and cloudpickle streams are not joblib's: their arrays cannot be mapped
        mmap=False,
        strict_versions=strict_versions,
        trust=trust,
    )
    if found.signature:
        try:
            # describe() takes this as the input description (the signature's names and
            # order are MLflow's contract for the model, whatever the model keeps itself)
            loaded.model.winserve_features = features_for(loaded.model, found.signature)
        except AttributeError:  # an object that takes no new attributes: its own description
            loaded.warnings.append(
                "the model does not take the signature's input description; its own is used instead"
            )
    # /invocations answers with the folder's predict_fn and applies params as MLflow's server
    # does (winserve.protocols.mlflow.predict_method; issue 22)
    loaded.mlflow = {"predict_fn": found.predict_fn, "params": found.params}
    if found.predict_fn not in ("predict", "predict_proba"):
        loaded.warnings.append(
            f"MLmodel says MLflow's server answers with {found.predict_fn}; winserve answers "
            "predict (or predict_proba: /predict?proba=true)"
        )
    loaded.name, loaded.source, loaded.sha256 = folder.name, str(folder), digest
    loaded.file_size = folder_size(folder)
    return loaded
