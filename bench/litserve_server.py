"""LitServe with batching, the way its docs build a server: the baseline issue 29 asks for.

A request's JSON body (a list of one record, as ``bench/run.py`` sends to every server) flows
``decode_request`` (the record's values in the model's column order, a NumPy row) → LitServe's
batcher (up to ``MAX_BATCH`` rows, waiting at most ``TIMEOUT`` seconds for them; its default
``batch`` stacks the rows) → ``predict`` (one model call per batch, in LitServe's inference
worker process) → its default ``unbatch`` (one prediction per request) → ``encode_response``
(``{"predictions": [label]}``, like winserve's native API). ``GET /health`` is LitServe's own
("ok" once its worker has run ``setup``).

Run as ``python bench/litserve_server.py MODEL PORT MAX_BATCH TIMEOUT``. litserve 0.2.19 (the
``bench`` extra) takes ``max_batch_size``/``batch_timeout`` on the ``LitAPI``; passing them to
``LitServer``, as older docs show, still works there but warns that it is deprecated.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import joblib
import litserve as ls
import litserve.server as litserve_server
import numpy as np


class ModelAPI(ls.LitAPI):  # type: ignore[misc]
    def __init__(self, path: str, max_batch_size: int, batch_timeout: float) -> None:
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout)
        self.path = path

    def setup(self, device: str) -> None:
        # a DataFrame-fitted model warns on every array; the user who chose arrays silences it
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        self.model = joblib.load(self.path)
        self.columns = list(self.model.feature_names_in_)

    # No annotation on ``request`` nor on encode_response's return: LitServe builds its FastAPI
    # endpoint from them (an annotated ``request`` would be read as a query parameter)
    def decode_request(self, request):  # type: ignore[no-untyped-def]
        (record,) = request  # one record per request, as the other servers are sent
        return np.array([record[c] for c in self.columns], dtype=np.float64)

    def predict(self, x: np.ndarray[Any, Any]) -> list[Any]:
        return list(self.model.predict(x).tolist())

    def encode_response(self, output: Any):  # type: ignore[no-untyped-def]
        return {"predictions": [output]}


def main() -> None:
    path, port = sys.argv[1], int(sys.argv[2])
    max_batch, timeout = int(sys.argv[3]), float(sys.argv[4])
    # litserve 0.2.19 turns its MCP endpoint on when the package ``mcp`` is installed (winserve's
    # test extra has mcp 2.x) but imports it only with ``fastmcp``: the server then dies with
    # NameError 'MCPServer'. The bench serves no MCP: off.
    litserve_server._MCP_AVAILABLE = False
    api = ModelAPI(path, max_batch_size=max_batch, batch_timeout=timeout)
    server = ls.LitServer(api, accelerator="cpu")
    server.run(host="127.0.0.1", port=port, log_level="warning", generate_client_file=False)


if __name__ == "__main__":
    main()
