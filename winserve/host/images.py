"""Image files to the arrays a model takes, in the model host (issue 24).

Bytes of an image file (from a multipart upload, base64 in JSON, an OIP ``BYTES`` element)
arrive here untouched by the web process; each becomes one array the way the model card's
``[inputs.<name>]`` says (``prepare_spec`` fills what the card leaves out from the graph)::

    bytes ─ Image.open (the header only: format and size) ─ refused if not an image of an
      allowed format, or more than MAX_PIXELS ─ convert to RGB / L ─ resize to size (bilinear)
      ─ float32 × scale ─ (x − mean) / std per channel ─ HWC → CHW for NCHW ─ the model's dtype

What is refused raises ``ValueError`` (a 400 naming the input), before anything reaches the
model. ``Image.open`` is lazy: the size is known from the header before any pixel is decoded,
so a 40,000 × 40,000 file costs nothing. Only formats a camera, a browser or a plotting
library writes are opened: Pillow's other plugins (EPS runs Ghostscript) are not for files
from strangers.
"""

from __future__ import annotations

import io
from typing import Any

MAX_PIXELS = 50_000_000  # 50 megapixels: a large phone photo; 40,000 × 40,000 is refused
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")
MODES = {"RGB": 3, "L": 1}
LAYOUTS = ("NCHW", "NHWC")


def prepare_spec(card: dict[str, Any], shape: list[Any], dtype: str) -> dict[str, Any]:
    """The preprocessing of an image input: the card's ``[inputs.<name>]`` where it says,
    else read from the graph's input shape (``[N, 3, H, W]`` or ``[N, H, W, C]``)."""
    dims = [d if isinstance(d, int) else None for d in shape[1:]]
    if len(dims) != 3:
        raise ValueError(f"an image input has shape [N, C, H, W] or [N, H, W, C], not {shape}")
    layout = str(card.get("layout") or ("NCHW" if dims[0] in (1, 3) else "NHWC"))
    if layout not in LAYOUTS:
        raise ValueError(f"layout is NCHW or NHWC, not {layout!r}")
    channel_dim = dims[0] if layout == "NCHW" else dims[2]
    default_mode = "L" if channel_dim == 1 else "RGB"
    mode = str(card.get("channels") or default_mode)
    if mode not in MODES:
        raise ValueError(f"channels is RGB or L, not {mode!r}")
    if channel_dim is not None and channel_dim != MODES[mode]:
        raise ValueError(f"channels = {mode!r} gives {MODES[mode]}, the graph takes {channel_dim}")
    height, width = (dims[1], dims[2]) if layout == "NCHW" else (dims[0], dims[1])
    size = card.get("size")
    if isinstance(size, int):
        size = [size, size]
    if size is None:
        if height is None or width is None:
            raise ValueError("the graph's image size is not fixed: give size = [height, width]")
        size = [height, width]
    if not (isinstance(size, list) and len(size) == 2 and all(_positive(s) for s in size)):
        raise ValueError(f"size is [height, width] in pixels, not {size!r}")
    if (height is not None and size[0] != height) or (width is not None and size[1] != width):
        raise ValueError(f"size = {size} but the graph takes {height} × {width}")
    floats = dtype.startswith("float")
    scale = card.get("scale", 1 / 255 if floats else 1)
    channels = MODES[mode]
    return {
        "size": [int(size[0]), int(size[1])],
        "channels": mode,
        "layout": layout,
        "scale": float(scale),
        "mean": _per_channel(card.get("mean", 0.0), channels, "mean"),
        "std": _per_channel(card.get("std", 1.0), channels, "std"),
        "dtype": dtype,
    }


def _positive(value: Any) -> bool:
    return type(value) is int and value > 0


def _per_channel(value: Any, channels: int, key: str) -> list[float]:
    values = value if isinstance(value, list) else [value] * channels
    if len(values) != channels or not all(isinstance(v, (int, float)) for v in values):
        raise ValueError(f"{key} is a number or a list of {channels} (one per channel)")
    if key == "std" and any(v == 0 for v in values):
        raise ValueError("std cannot be 0")
    return [float(v) for v in values]


def shape_of(spec: dict[str, Any]) -> list[int]:
    """The array one image becomes (without the batch dimension)."""
    height, width = spec["size"]
    channels = MODES[spec["channels"]]
    return [channels, height, width] if spec["layout"] == "NCHW" else [height, width, channels]


def prepare(data: bytes, spec: dict[str, Any]) -> Any:
    """One image file as the model's array, or ``ValueError`` saying why not."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    # Pillow's decompression-bomb check is this same test of the header's size, made here
    # instead so that the refusal names the size (its own stays on for the model's code)
    saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as image:
            width, height = image.size  # from the header: nothing decoded yet
            if width * height > MAX_PIXELS:
                raise ValueError(_too_large(width, height))
            Image.MAX_IMAGE_PIXELS = saved
            image.seek(0)  # an animation's first frame
            converted = image.convert(spec["channels"])
    except UnidentifiedImageError:
        raise ValueError(_not_an_image(data)) from None
    except (OSError, SyntaxError, EOFError) as exc:  # a truncated or corrupt file
        raise ValueError(f"the image file could not be decoded ({exc})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    height, width = spec["size"]
    if converted.size != (width, height):
        converted = converted.resize((width, height), Image.Resampling.BILINEAR)
    array: Any = np.asarray(converted, dtype=np.float32)
    if array.ndim == 2:
        array = array[:, :, None]
    array = array * np.float32(spec["scale"])
    array = (array - np.asarray(spec["mean"], np.float32)) / np.asarray(spec["std"], np.float32)
    if spec["layout"] == "NCHW":
        array = array.transpose(2, 0, 1)
    return np.ascontiguousarray(array, dtype=spec["dtype"])


def _too_large(width: int, height: int) -> str:
    return (
        f"the image is {width:,} × {height:,} pixels, more than the {MAX_PIXELS:,} winserve "
        "decodes: send a smaller image"
    )


def _not_an_image(data: bytes) -> str:
    return f"not an image file (expected one of {', '.join(FORMATS)}, got {_first_bytes(data)})"


def _first_bytes(data: bytes) -> str:
    return f"a file starting {data[:8]!r}" if data else "an empty file"


def batch(files: list[Any], spec: dict[str, Any], name: str) -> Any:
    """Every row's image as one array ``[N, ...]``, or the first bad one's ``ValueError``."""
    import numpy as np

    arrays = []
    for data in files:
        if not isinstance(data, (bytes, bytearray)):
            raise ValueError(f"input {name!r} takes an image file per row")
        try:
            arrays.append(prepare(bytes(data), spec))
        except ValueError as exc:  # its row is named by the service, which isolates it
            raise ValueError(f"input {name!r}: {exc}") from None
    return np.stack(arrays)


def blank(spec: dict[str, Any]) -> bytes:
    """A grey PNG of the input's size: the sample prediction at load goes through decoding."""
    from PIL import Image

    height, width = spec["size"]
    image = Image.new(
        spec["channels"], (width, height), color=128 if spec["channels"] == "L" else (128, 128, 128)
    )
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
