"""Why a model is not served, as the people using it read it (issue 22).

The console keeps the full text of a failed load (the model's own message, a library's source
locations, its stack); answers and pages get ``public_reason``: one line, without what only a
library's developers can use (XGBoost's ``[14:02:11] /workspace/src/learner.cc:1234:``,
onnxruntime's ``/onnxruntime_src/…/gemm_helper.h:14 onnxruntime::GemmHelper::GemmHelper(…)``)::

    model host ──(full reason)──► replica.last_error ──► console (as it is)
                                          └──► public_reason ──► /health, /model, /predict, page
"""

from __future__ import annotations

import re

MAX_PUBLIC = 600  # characters of a reason shown to colleagues

# a source file of a compiled library, with its line: "/workspace/src/data/data.cc:123:"
_SOURCE = re.compile(
    r"(?:[A-Za-z]:)?[\\/]?(?:[\w.+-]+[\\/])+[\w.+-]+\.(?:cc|cpp|cxx|c|h|hpp|hxx|cu|cuh|pyx)"
    r"(?::\d+)+:?"
    # and the C++ function named after it: "onnxruntime::GemmHelper::GemmHelper(…) const"
    r"(?:\s+[\w~<>,]+(?:::[\w~<>,]+)+(?:\([^()]*\))?(?:\s*const)?)?"
)
_TIMESTAMP = re.compile(r"\[\d{1,2}:\d{2}:\d{2}\]\s*")  # XGBoost's "[14:02:11] "


def public_reason(reason: str) -> str:
    """``reason``'s first line, without a library's source locations, at most ``MAX_PUBLIC``
    characters: what a colleague can act on (the operator's console has the rest)."""
    line = next((each.strip() for each in reason.splitlines() if each.strip()), "")
    line = _TIMESTAMP.sub("", _SOURCE.sub("", line))
    line = re.sub(r"\s{2,}", " ", line).strip()
    if len(line) > MAX_PUBLIC:
        line = line[: MAX_PUBLIC - 1].rstrip() + "…"
    return line
