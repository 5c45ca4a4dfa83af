"""One input tensor of an Open Inference Protocol request, read and checked: its name, shape
and datatype, its data nested or flat (row-major) in JSON or raw in Triton's binary extension,
each element checked against its datatype. A tensor object in; a float64 array (numbers) or a
list (texts, nulls, image files) out, or a ``BadRequest`` naming the tensor and the element."""

from __future__ import annotations

import math
import struct
from typing import Any

from winserve.errors import BadRequest, shown

INT_RANGES = {
    "INT8": (-(2**7), 2**7 - 1),
    "INT16": (-(2**15), 2**15 - 1),
    "INT32": (-(2**31), 2**31 - 1),
    "INT64": (-(2**63), 2**63 - 1),
    "UINT8": (0, 2**8 - 1),
    "UINT16": (0, 2**16 - 1),
    "UINT32": (0, 2**32 - 1),
    "UINT64": (0, 2**64 - 1),
}

FLOATS = ("FP16", "FP32", "FP64")

# The largest value each narrow float holds, and the magnitude from which a number rounds to
# infinity in it (half a unit past the largest): FP16/FP32 data beyond are refused, never
# passed on as numbers the type cannot hold (issue 28)
FLOAT_LIMITS = {
    "FP16": (65504.0, 65520.0),
    "FP32": (3.4028234663852886e38, 2.0**128 * (1 - 2.0**-25)),
}

DATATYPES = ("BOOL", *INT_RANGES, *FLOATS, "BYTES")

NUMPY_DTYPES = {
    "BOOL": "?",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}


def _name(value: Any) -> str:
    return shown(value)


def _shape(tensor: dict[str, Any], label: str) -> list[int]:
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise BadRequest(f'{label}: "shape" must be a list of non-negative integers')
    return shape


def _flatten(data: Any, label: str, size: int) -> list[Any]:
    """Row-major flattening of nested lists, without recursion; stops early when too long."""
    if not isinstance(data, list):
        raise BadRequest(f'{label}: "data" must be a list')
    out: list[Any] = []
    stack: list[Any] = [iter(data)]
    while stack:
        item = next(stack[-1], stack)
        if item is stack:
            stack.pop()
        elif isinstance(item, list):
            stack.append(iter(item))
        else:
            out.append(item)
            if len(out) > size:
                break
    return out


def _check_element(value: Any, datatype: str) -> Any:
    """The value as the model should see it, or ``ValueError`` saying what was expected."""
    if value is None:
        return None  # a missing value: the service decides whether the model takes one
    if datatype == "BYTES":
        if isinstance(value, str):
            return value
        raise ValueError("BYTES elements must be strings")
    if datatype == "BOOL":
        if isinstance(value, bool):
            return float(value)
        raise ValueError("BOOL elements must be true or false")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{datatype} elements must be numbers")
    if datatype in FLOATS:
        if value != value:
            return None  # NaN, only possible in binary data: missing, as in pandas
        if not math.isfinite(value):
            raise ValueError(f"{datatype} elements must be finite")
        if datatype in FLOAT_LIMITS and abs(value) >= FLOAT_LIMITS[datatype][1]:
            largest = FLOAT_LIMITS[datatype][0]
            raise ValueError(f"{datatype} elements must lie between -{largest:g} and {largest:g}")
        return float(value)
    low, high = INT_RANGES[datatype]
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{datatype} elements must be whole numbers")
    if not low <= value <= high:
        raise ValueError(f"{datatype} elements must lie between {low} and {high}")
    return int(value)


def _from_binary(raw: bytes, datatype: str, label: str, keep_bytes: bool = False) -> Any:
    """BYTES as a list of texts (``keep_bytes``: of bytes, an image input's files, issue 24);
    any other datatype as a NumPy array over ``raw``."""
    if datatype == "BYTES":
        values: list[Any] = []
        offset = 0
        while offset < len(raw):
            if offset + 4 > len(raw):
                raise BadRequest(f"{label}: the binary BYTES data ends inside a length prefix")
            (length,) = struct.unpack_from("<I", raw, offset)
            offset += 4
            chunk = raw[offset : offset + length]
            if len(chunk) != length:
                raise BadRequest(f"{label}: the binary BYTES data ends inside an element")
            try:
                values.append(bytes(chunk) if keep_bytes else chunk.decode("utf-8"))
            except UnicodeDecodeError:
                raise BadRequest(f"{label}: a BYTES element is not UTF-8 text") from None
            offset += length
        return values
    import numpy as np

    dtype = np.dtype(NUMPY_DTYPES[datatype])
    if len(raw) % dtype.itemsize:
        raise BadRequest(
            f"{label}: {len(raw)} bytes of binary data is not a whole number of "
            f"{datatype} elements ({dtype.itemsize} bytes each)"
        )
    return np.frombuffer(raw, dtype=dtype)  # type: ignore[no-any-return]


def _as_numbers(flat: Any, datatype: str) -> Any:
    """A numeric tensor's elements as one float64 array, checked as a whole; ``None`` when some
    element needs a closer look (text, a bool where numbers go, null, out of range, not whole,
    infinite): ``_check_element`` then names the first one. NaN (binary only) is missing."""
    import numpy as np

    if isinstance(flat, list):
        kinds = {type(v) for v in flat}
        if not (kinds <= {bool} if datatype == "BOOL" else kinds <= {int, float}):
            return None
        try:
            array = np.array(flat, dtype=np.float64)
        except (OverflowError, ValueError):
            return None
    else:
        array = flat.astype(np.float64)
    if datatype in INT_RANGES:
        low, high = INT_RANGES[datatype]
        if isinstance(flat, list) and not (
            (np.mod(array, 1) == 0).all() and (array >= low).all() and (array <= high).all()
        ):
            return None
    elif np.isinf(array).any():
        return None
    elif datatype in FLOAT_LIMITS and (np.abs(array) >= FLOAT_LIMITS[datatype][1]).any():
        return None  # past what the type holds: named by _check_element
    return array


def tensor_values(
    tensor: Any,
    position: int,
    binary: memoryview | None,
    offset: int,
    images: frozenset[str] = frozenset(),
) -> tuple[str, list[int], Any, int]:
    """Name, shape and checked values of one input tensor (a float64 array for numbers, else a
    list; for a BYTES tensor of an input in ``images``, its elements as sent: texts in JSON,
    the files' bytes in binary); the new offset into ``binary``."""
    if not isinstance(tensor, dict):
        raise BadRequest(f"inputs[{position}] must be an object with name, shape, datatype, data")
    name = tensor.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest(f'inputs[{position}] needs a "name" (a string)')
    label = f"input {_name(name)}"
    datatype = tensor.get("datatype")
    if datatype not in DATATYPES:
        raise BadRequest(f'{label}: "datatype" must be one of {", ".join(DATATYPES)}')
    shape = _shape(tensor, label)
    size = math.prod(shape)
    parameters = tensor.get("parameters") or {}
    binary_size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
    if binary_size is not None:
        if binary is None or not isinstance(binary_size, int) or binary_size < 0:
            raise BadRequest(
                f"{label}: binary_data_size needs a binary body after the JSON header "
                "(header Inference-Header-Content-Length)"
            )
        if offset + binary_size > len(binary):
            raise BadRequest(f"{label}: the body holds less binary data than binary_data_size")
        keep = datatype == "BYTES" and name in images  # image files, not text (issue 24)
        raw = bytes(binary[offset : offset + binary_size])
        flat = _from_binary(raw, datatype, label, keep_bytes=keep)
        offset += binary_size
    else:
        if "data" not in tensor:
            raise BadRequest(f'{label}: "data" is missing')
        flat = _flatten(tensor["data"], label, size)
    if len(flat) != size:
        shown = f"more than {size}" if len(flat) > size else str(len(flat))
        raise BadRequest(f"{label}: shape {shape} needs {size} values; data has {shown}")
    if datatype == "BYTES" and name in images:
        return name, shape, flat, offset
    if datatype != "BYTES":
        numbers = _as_numbers(flat, datatype)
        if numbers is not None:
            return name, shape, numbers, offset
    values: list[Any] = []
    for index, value in enumerate(flat if isinstance(flat, list) else flat.tolist()):
        try:
            values.append(_check_element(value, datatype))
        except ValueError as exc:
            shown = repr(value)[:40]
            raise BadRequest(f"{label}: element {index} is {shown}; {exc}") from None
    return name, shape, values, offset
