"""What the web process knows about the model: plain data, computed once in the model host.

The model host describes the loaded model as a ``dict`` of builtins (it crosses a process
boundary); ``ModelInfo.from_dict`` turns it into these frozen records, which the service uses to
decode and validate every request without asking the host again.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# "tensor": an array per row (``shape``, ``dtype``); "image": an image file per row, decoded
# and prepared in the model host as its model card says (issue 24); "datetime": a pandas
# datetime64 column, pinned by the model card (issue 22)
FeatureKind = Literal["number", "category", "string", "bool", "any", "tensor", "image", "datetime"]
TENSOR_KINDS = frozenset({"tensor", "image"})
Missing = Literal["accepted", "refused", "unknown"]
Task = Literal["classification", "regression", "clustering", "outlier_detection", "unknown"]
# The methods besides predict that a request may ask for, in the order they are preferred
SCORE_METHODS = ("decision_function", "score_samples")


@dataclass(frozen=True)
class Feature:
    """One input column.

    ``number``: a float; ``category``: one of ``categories`` (strict when the model refuses
    unknown values); ``string``: free text; ``bool``: true or false; ``any``: passed through
    as sent (no step of the model declares the column's kind: a JSON value keeps its JSON
    type, a CSV column is typed as ``pd.read_csv`` types it; issue 22). ``missing``: whether
    the model takes a missing value here (probed once at load; ``missing_reason`` is what
    the model said when it refused one). ``dtype`` is
    ``"category"`` when the model was fitted on a pandas category column and needs one back
    (LightGBM, XGBoost), built with the training ``categories``.
    """

    name: str
    kind: FeatureKind = "number"
    categories: tuple[Any, ...] = ()
    strict_categories: bool = False
    missing: Missing = "unknown"
    missing_reason: str = ""
    dtype: str = ""
    # why an "any" column is passed as sent (no step declares its kind, dropped, passed
    # through, a FunctionTransformer), or "the model card" where pinned there (issue 22)
    kind_note: str = ""
    # a tensor's or an image's shape per row, as the model takes it (None: any length)
    shape: tuple[int | None, ...] = ()

    @property
    def required(self) -> bool:
        return self.missing == "refused"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    model_type: str
    task: Task
    features: tuple[Feature, ...]
    feature_names_known: bool
    classes: tuple[Any, ...] = ()
    has_proba: bool = False
    # the model takes one text per row, as a list of strings (a TfidfVectorizer pipeline
    # fitted on a list of documents): one input, named "text"
    text_input: bool = False
    n_outputs: int = 1  # more than one: each prediction is a list (multi-output models)
    score_method: str = ""  # decision_function or score_samples, offered as "scores"
    source: str = ""
    sha256: str = ""
    file_size: int = 0
    saved_with_sklearn: str = ""
    sklearn_version: str = ""
    load_seconds: float = 0.0
    loaded_at: str = ""
    demo: bool = False
    mmap: bool = False
    warnings: tuple[str, ...] = ()
    sample_prediction: Any = None
    sample_error: str = ""
    sample_row: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    # what answers: "scikit-learn" (the model itself), "onnxruntime" (an .onnx file), or
    # "onnxruntime (compiled, verified on N rows …)" / why compiling fell back (issue 16)
    runtime: str = "scikit-learn"

    # cached: every request asks (the record is frozen, so the answers never change)
    @functools.cached_property
    def n_features(self) -> int:
        return len(self.features)

    @functools.cached_property
    def all_numeric(self) -> bool:
        return bool(self.features) and all(f.kind == "number" for f in self.features)

    @functools.cached_property
    def tensor_inputs(self) -> bool:
        """The model takes tensors or images, not table columns (issue 24)."""
        return any(f.kind in TENSOR_KINDS for f in self.features)

    @functools.cached_property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def outputs(self) -> list[str]:
        outputs = ["predict", "predict_proba"] if self.has_proba else ["predict"]
        return outputs + ([self.score_method] if self.score_method else [])

    @property
    def accepts_missing(self) -> bool:
        """Some input may be left missing (the form offers an empty choice)."""
        return any(not f.required for f in self.features)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["features"] = [asdict(f) for f in self.features]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelInfo:
        values = dict(data)
        values["features"] = tuple(
            Feature(
                name=str(f["name"]),
                kind=f.get("kind", "number"),
                categories=tuple(f.get("categories", ())),
                strict_categories=bool(f.get("strict_categories", False)),
                missing=f.get("missing", "unknown"),
                missing_reason=str(f.get("missing_reason", "")),
                dtype=str(f.get("dtype", "")),
                kind_note=str(f.get("kind_note", "")),
                shape=tuple(f.get("shape", ())),
            )
            for f in data.get("features", ())
        )
        for key in ("classes", "warnings"):
            values[key] = tuple(data.get(key, ()))
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in values.items() if k in known})


SAMPLE_FAILED = "the sample prediction failed"  # how the host's verdict on a sample begins


def sample_failed(reason: str) -> bool:
    """Whether a load failure is the sample prediction's (the model loaded, then could not
    answer one row): serving waits, saying why, instead of exiting."""
    return reason.startswith(SAMPLE_FAILED)


@dataclass(frozen=True)
class ModelSpec:
    """What to load, as the operator chose it; crosses into the model host (plain data)."""

    path: str = ""
    factory: str = ""
    strict_versions: bool = False
    mmap: bool = True
    sha256: str = ""  # when set, the file must have this SHA-256 before it is unpickled
    # the model card's [example] row: the sample prediction that gates serving uses it
    example: dict[str, Any] = field(default_factory=dict)
    # the model card's pinned kinds ([features.city] kind = "category"), by column (issue 22)
    kinds: dict[str, str] = field(default_factory=dict)
    # set by the pool once the first replica has loaded: every later load (a restart after a
    # crash or a hang) must find the same file, or the replicas would serve different models
    # while the page, the validation and /model describe the first one
    same_as: str = ""
    # the setting trust: type names a .skops file may hold beyond winserve's own list
    trust: tuple[str, ...] = ()
    compile: str = "off"  # "onnx": convert with skl2onnx at load, serve it once verified
    # the model card's [inputs.<name>] tables: what a tensor or an image input is (issue 24)
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # the model card's reference = "…", a full path; "": <name>.reference.csv beside the
    # model file (issue 25)
    reference: str = ""
    # how many replicas hold this model, set by the backend that starts them: a PyTorch
    # model's intra-op threads are the cores divided by them (issue 24)
    replicas: int = 1
    # where a PyTorch or ONNX model runs (the settings device and intra_op_threads, 0: cores
    # divided by replicas) and this replica's index among them, set by the pool: with
    # device = "cuda", replica i goes on GPU i mod their count (issue 24)
    device: str = "cpu"
    intra_op_threads: int = 0
    replica: int = 0

    @property
    def is_demo(self) -> bool:
        return not self.path and not self.factory

    @property
    def label(self) -> str:
        return self.path or (f"factory {self.factory}" if self.factory else "built-in demo")
