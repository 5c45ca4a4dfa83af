"""Tensor and image inputs in the model host (issue 24): payload → one array per input.

The web process checked and stacked each tensor input (``winserve.tensors``) and passed
images on as their files' bytes::

    {"tensors": {name: array [N, ...] | [image bytes, ...]}}   a request, or a pool's batch
    {"columns": {name: [row, ...]}}                            the load's sample row

``feed`` turns either into ``{name: array}`` in the model's dtypes (images decoded and
prepared by ``winserve.host.images``), which the model (an ``OnnxModel`` in tensor mode)
takes as it is. ``sample_value`` is the made-up row the load's sample prediction uses when the
model card's ``[example]`` gives none: zeros of the input's shape, a grey image.
"""

from __future__ import annotations

from typing import Any

from winserve.host import images

TENSOR_KINDS = ("tensor", "image")


def takes_tensors(features: list[dict[str, Any]]) -> bool:
    return any(f.get("kind") in TENSOR_KINDS for f in features)


def feed(payload: dict[str, Any], features: list[dict[str, Any]]) -> dict[str, Any]:
    import numpy as np

    given = payload["tensors"] if "tensors" in payload else payload["columns"]
    arrays: dict[str, Any] = {}
    for feature in features:
        name = feature["name"]
        if name not in given:
            raise ValueError(f"input {name!r} is missing")
        values = given[name]
        if any(v is None or (isinstance(v, float) and v != v) for v in values):
            # the load's probe of missing values asks this (ModelHost._probe_missing)
            raise ValueError(f"input {name!r} has no missing values: each row needs one")
        if feature["kind"] == "image":
            arrays[name] = images.batch(list(values), feature["image"], name)
        else:
            try:
                arrays[name] = np.asarray(values, dtype=feature["dtype"])
            except (TypeError, ValueError):
                raise ValueError(
                    f"input {name!r} takes a {feature['dtype']} tensor of shape "
                    f"{['N', *feature['shape']]}"
                ) from None
    return arrays


def sample_value(feature: dict[str, Any]) -> Any:
    import numpy as np

    if feature["kind"] == "image":
        return images.blank(feature["image"])
    shape = [d if isinstance(d, int) else 1 for d in feature.get("shape", [])]
    return np.zeros(shape, dtype=feature["dtype"]).tolist()


def parts(payload: dict[str, Any]) -> tuple[int, Any]:
    """How many rows a tensors payload holds, and a payload of rows ``lo:hi`` of it."""
    tensors = payload["tensors"]
    count = len(next(iter(tensors.values()), []))

    def part(lo: int, hi: int) -> dict[str, Any]:
        return {"tensors": {name: value[lo:hi] for name, value in tensors.items()}}

    return count, part
