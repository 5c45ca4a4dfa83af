"""The Open Inference Protocol v2 (KServe, Triton, MLServer), REST flavour.

Inputs are either one 2-D tensor ``[rows, features]`` in the model's column order, or one
tensor per column (shape ``[rows]`` or ``[rows, 1]``) named after the model's features; mixed
types travel as ``BYTES``; a model that takes one text per row takes one ``BYTES`` tensor of
shape ``[rows]`` or ``[rows, 1]``. Data may be nested or flat (row-major); a ``null`` element,
or a NaN in a binary floating-point tensor, is a missing value. Triton's binary tensor
extension (``Inference-Header-Content-Length``) is read too, because Triton's own client sends
it by default. Outputs are ``predict`` (default), ``predict_proba`` and the model's score method
(``decision_function`` or ``score_samples``) where it has one, shaped as MLServer's
scikit-learn runtime shapes them (a 1-D prediction is ``[rows, 1]``; a multi-output one
``[rows, outputs]``). Errors are ``{"error": message}`` with 400, 404 or the error's own status.

Explanations (issue 25, winserve's extension): ``"parameters": {"explain": true}`` in the
request, or the output ``explanations`` asked for by name, adds one more output tensor,
``explanations``: FP64, shape ``[rows, inputs + 1]``, each row the Shapley value of each input
in the order of the model's metadata ``inputs`` (its columns), then the baseline, so that a
row adds up to the number explained (the predicted class's probability, or the regressor's
value), as Triton's forest backend lays out its Shapley output (the bias last). A tensor,
not response ``parameters``: those hold only scalars (str, number, bool), and every OIP
client reads an extra output by name (``result.as_numpy("explanations")``) and ignores it
otherwise. The tensor's ``parameters`` say what is explained (``explained``) and name the
columns (``columns``, a JSON list in a string).


The protocol in three modules, in the order a request passes them::

    body ─▶ decode.decode ─▶ tensor_values (each input tensor) ─▶ InferRequest ─▶ the data plane
    Prediction (+ explanations) ─▶ encode.encode ─▶ response body
    ModelInfo ─▶ encode.model_metadata ─▶ GET /v2/models/<name>
"""

from __future__ import annotations

from winserve.protocols.oip.decode import (
    EXPLANATIONS,
    VERSION,
    InferRequest,
    check_model,
    decode,
)
from winserve.protocols.oip.encode import (
    encode,
    error_body,
    explanations_tensor,
    input_datatype,
    model_metadata,
    server_metadata,
)
from winserve.protocols.oip.tensor_values import DATATYPES

__all__ = [
    "DATATYPES",
    "EXPLANATIONS",
    "VERSION",
    "InferRequest",
    "check_model",
    "decode",
    "encode",
    "error_body",
    "explanations_tensor",
    "input_datatype",
    "model_metadata",
    "server_metadata",
]
