"""Tensors and images on their way in (issue 24): checked in the web process, stacked per input.

A model whose inputs are tensors or images (``Feature.kind`` ``"tensor"`` / ``"image"``, read
from the graph and the model card in the model host) takes its rows in one of these forms,
decoded by the protocols into a ``PredictRequest``::

    {"inputs": {"<name>": [row, row, ...], ...}}     batched, one entry per input
    {"inputs": [row, row, ...]}                      the same, for a model with one input
    {"<name>": row, ...} / [{"<name>": row}, ...]    records: one row each (as for columns)
    [row, row, ...]                                  positional rows, for a model with one input

where a tensor's row is nested lists of the input's shape per row, and an image's row is
``{"b64": "<base64 of the file>"}`` (a ``data:`` URL's text is taken too) or the file's bytes
(a multipart upload, an OIP ``BYTES`` element).

Each tensor input becomes one array with one NumPy call, then is checked: its kind (numbers,
no text, no null), its shape against the model's (the row and the expected shape named on
error), and its range against the input's dtype (whole numbers within an integer type's
range; a float32 input refuses numbers beyond float32, which would become infinities). The
payload is ``{"tensors": {name: array | [image bytes, ...]}}``: the pool stacks payloads with
the same per-row shapes into one call (``winserve.rows``); images are decoded and prepared
in the model host (``winserve.host.images``), never here.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from winserve.errors import BadRequest, PayloadTooLarge, SchemaMismatch
from winserve.model_info import Feature, ModelInfo
from winserve.rows import Columns, Payload, PredictRequest, Rows, Tensors, Values

DATA_URL_MARK = ";base64,"
MAX_SHAPE_SHOWN = 8
# images a request may carry, by their size once decoded and prepared in the model host: a
# body of small compressed files (20 MB of PNGs of one colour) could otherwise ask the host
# for gigabytes (issue 24)
MAX_DECODED_BYTES = 1 << 30


def shape_text(feature: Feature) -> str:
    """The shape a request's tensor has for ``feature``: ``[N, 3, 8, 8]`` (N: the rows)."""
    dims = ["N", *("any" if d is None else str(d) for d in feature.shape)]
    return "[" + ", ".join(dims) + "]"


def _shown(shape: tuple[int, ...]) -> str:
    dims = [str(d) for d in shape[:MAX_SHAPE_SHOWN]]
    return "[" + ", ".join(dims) + (", …" if len(shape) > MAX_SHAPE_SHOWN else "") + "]"


def by_input(request: PredictRequest, info: ModelInfo) -> dict[str, Any]:
    """The request's values per input, each a batch (a list of rows, or an array)."""
    names = info.feature_names
    given: dict[str, Any]
    data = request.data
    if isinstance(data, Tensors):
        inputs = data.inputs
        if isinstance(inputs, dict) and not _is_image_value(inputs):
            given = dict(inputs)
        elif len(names) == 1:
            given = {names[0]: inputs}
        else:
            raise BadRequest(
                f'"inputs" must be an object naming the model\'s {len(names)} inputs: '
                + ", ".join(repr(n) for n in names)
            )
    elif isinstance(data, Columns):
        given = dict(data.columns)
    elif isinstance(data, Rows) and data.names is not None:
        index = {name: position for position, name in enumerate(data.names)}
        _check_names(list(data.names), info)
        given = {n: [row[index[n]] for row in data.rows] for n in names}
    elif len(names) == 1 and isinstance(data, (Rows, Values)):
        given = {names[0]: data.rows if isinstance(data, Rows) else data.values}
    elif isinstance(data, Rows):
        raise BadRequest(
            f"this model takes {len(names)} inputs ({', '.join(repr(n) for n in names)}): "
            'send {"inputs": {"<name>": [...], ...}} or one object per row'
        )
    else:
        raise BadRequest("no rows to predict: send at least one row")
    _check_names(list(given), info)
    # one image alone ({"image": {"b64": ...}} under "inputs") is a batch of one
    return {
        name: [value] if _is_image_value(value) or isinstance(value, bytes) else value
        for name, value in given.items()
    }


def _check_names(given: list[str], info: ModelInfo) -> None:
    expected = info.feature_names
    missing = [n for n in expected if n not in given]
    unknown = [n for n in given if n not in expected]
    parts = []
    if missing:
        parts.append("missing input" + ("s " if len(missing) > 1 else " ") + _names(missing))
    if unknown:
        parts.append("unknown input" + ("s " if len(unknown) > 1 else " ") + _names(unknown))
    if parts:
        shapes = ", ".join(f"{f.name!r} {kind_text(f)}" for f in info.features)
        raise SchemaMismatch("; ".join(parts) + f". The model takes: {shapes}")


def _names(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names[:20])


def kind_text(feature: Feature) -> str:
    if feature.kind == "image":
        return "(an image)"
    return f"({feature.dtype} {shape_text(feature)})"


def _is_image_value(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"b64"}


def prepare(request: PredictRequest, info: ModelInfo, *, max_rows: int) -> tuple[Payload, int]:
    """The payload for ``request`` and its row count, or the error naming what is wrong."""
    given = by_input(request, info)
    tensors: dict[str, Any] = {}
    rows = -1
    for feature in info.features:
        value = given[feature.name]
        if feature.kind == "image":
            tensors[feature.name] = images(value, feature)
        else:
            tensors[feature.name] = tensor(value, feature)
        count = len(tensors[feature.name])
        if rows not in (-1, count):
            raise BadRequest(
                f"input {feature.name!r} has {count} rows, the inputs before it {rows}: every "
                "input needs one entry per row"
            )
        rows = count
    if rows == 0:
        raise BadRequest("no rows to predict: send at least one row")
    if rows > max_rows:
        raise PayloadTooLarge(
            f"{rows} rows is more than the {max_rows} allowed per request (setting: max_rows)"
        )
    _decoded_size(info, rows)
    return {"tensors": tensors}, rows


def _decoded_size(info: ModelInfo, rows: int) -> None:
    """Refuse images that would take more than MAX_DECODED_BYTES once prepared."""
    import math

    import numpy as np

    for feature in info.features:
        if feature.kind != "image":
            continue
        per_row = math.prod(d or 1 for d in feature.shape) * np.dtype(feature.dtype).itemsize
        if rows * per_row > MAX_DECODED_BYTES:
            raise PayloadTooLarge(
                f"{rows} images for input {feature.name!r} would be {rows * per_row / 2**20:,.0f}"
                f" MB once prepared ({shape_text(feature)}, {feature.dtype}), more than the "
                f"{MAX_DECODED_BYTES // 2**20:,} MB one request may ask for: send fewer"
            )


def tensor(value: Any, feature: Feature) -> Any:
    """``value`` (nested lists, or an array from OIP) as the input's array, checked."""
    import numpy as np

    where = f"input {feature.name!r}"
    expected = shape_text(feature)
    if isinstance(value, np.ndarray):
        array = value
    else:
        if not isinstance(value, list):
            raise BadRequest(
                f"{where} takes a list of rows ({feature.dtype}, shape {expected} with N "
                f"the rows); got {type(value).__name__}"
            )
        try:
            array = np.asarray(value)  # the one call that reads the rows (issue 24)
        except (ValueError, TypeError, OverflowError):
            raise BadRequest(_ragged(value, feature)) from None
    if array.ndim >= 1 and array.shape[0] == 0:
        raise BadRequest(f"no rows to predict: {where} has none")
    if array.dtype.kind not in "biuf":
        raise BadRequest(_not_numbers(value, array, feature))
    if array.dtype.kind == "b":
        raise BadRequest(f"{where} takes numbers ({feature.dtype}), not true/false")
    if array.ndim != len(feature.shape) + 1 or any(
        want is not None and got != want
        for got, want in zip(array.shape[1:], feature.shape, strict=False)
    ):
        raise BadRequest(
            f"{where}: expected shape {expected} (N: the rows), got {_shown(array.shape)}"
        )
    return _in_range(array, feature)


def _in_range(array: Any, feature: Feature) -> Any:
    import numpy as np

    where = f"input {feature.name!r}"
    dtype = np.dtype(feature.dtype or "float32")
    if dtype.kind == "f":
        limit = np.finfo(dtype).max
        with np.errstate(invalid="ignore"):
            beyond = np.abs(array) > limit  # NaN compares False: it goes to the model
        if beyond.any():
            row = int(np.argwhere(beyond)[0][0])
            raise BadRequest(
                f"row {row + 1}, {where}: a number beyond ±{float(limit):.7g}, the range of "
                f"{dtype.name}"
            )
        return array.astype(dtype, copy=False)
    if array.dtype.kind == "f":
        whole = np.isfinite(array) & (array == np.round(array))
        if not whole.all():
            row = int(np.argwhere(~whole)[0][0])
            raise BadRequest(f"row {row + 1}, {where} takes whole numbers ({dtype.name})")
    info = np.iinfo(dtype)
    outside = (array < info.min) | (array > info.max)
    if outside.any():
        row = int(np.argwhere(outside)[0][0])
        raise BadRequest(
            f"row {row + 1}, {where}: a number outside {info.min}…{info.max}, the range of "
            f"{dtype.name}"
        )
    return array.astype(dtype)


def _ragged(rows: list[Any], feature: Feature) -> str:
    """Which row does not have the shape of the others (or of the model's)."""
    import numpy as np

    where = f"input {feature.name!r}"
    want: tuple[Any, ...] | None = None
    for index, row in enumerate(rows):
        try:
            shape = np.shape(row)
        except ValueError:
            return (
                f"row {index + 1}, {where}: its nested lists have different lengths; "
                f"expected shape {shape_text(feature)}"
            )
        if want is None:
            want = shape
        elif shape != want:
            return (
                f"row {index + 1}, {where}: shape {_shown(shape)} differs from row 1's "
                f"{_shown(want)}; expected shape {shape_text(feature)}"
            )
    return f"{where}: the rows are not a tensor of shape {shape_text(feature)}"


def _not_numbers(value: Any, array: Any, feature: Feature) -> str:
    """What is not a number in a tensor (text, null, an object), with its row."""
    import numpy as np

    where = f"input {feature.name!r}"
    if array.dtype.kind == "O" and array.ndim >= 1:
        flat = array.reshape(array.shape[0], -1)
        for index, row in enumerate(flat):
            for item in row:
                if item is None:
                    return f"row {index + 1}, {where}: null; a tensor has no missing values"
                if not isinstance(item, (int, float)) or isinstance(item, bool):
                    return f"row {index + 1}, {where}: {type(item).__name__} is not a number"
    if array.dtype.kind in "US" and array.ndim >= 1:
        first = np.argwhere(np.ones(array.shape, dtype=bool))[0][0]
        return f"row {int(first) + 1}, {where}: text is not a number ({feature.dtype} expected)"
    return f"{where} takes numbers ({feature.dtype}) of shape {shape_text(feature)}"


def images(value: Any, feature: Feature) -> list[bytes]:
    """Each row's image file as bytes (decoded from base64 here, as images in the host)."""
    where = f"input {feature.name!r}"
    if not isinstance(value, list):
        raise BadRequest(
            f'{where} takes an image per row: {{"b64": "<base64 of the file>"}} or an upload'
        )
    files: list[bytes] = []
    for index, item in enumerate(value):
        if isinstance(item, bytes):
            data = item
        elif _is_image_value(item) and isinstance(item["b64"], str):
            data = _b64(item["b64"], f"row {index + 1}, {where}")
        else:
            raise BadRequest(
                f'row {index + 1}, {where}: expected an image as {{"b64": "<base64 of the '
                f'file>"}}, got {type(item).__name__}'
            )
        if not data:
            raise BadRequest(f"row {index + 1}, {where}: the image file is empty")
        files.append(data)
    return files


def _b64(text: str, where: str) -> bytes:
    if text.startswith("data:") and DATA_URL_MARK in text[:100]:
        text = text.split(DATA_URL_MARK, 1)[1]  # a data: URL, as a browser's FileReader gives
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{where}: not valid base64") from None
