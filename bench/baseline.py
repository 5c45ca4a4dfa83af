"""The baseline winserve is measured against: Flask under waitress, the model in a global.

This is the usual recipe (one model call per request, in the web process). Run as
``python bench/baseline.py MODEL PORT THREADS``; it answers ``POST /predict`` with a list of
records, like winserve's native API.
"""

from __future__ import annotations

import sys

import joblib
import pandas as pd
from flask import Flask, jsonify, request
from waitress import serve


def main() -> None:
    model_path, port, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    model = joblib.load(model_path)
    app = Flask(__name__)

    @app.post("/predict")
    def predict():  # type: ignore[no-untyped-def]
        frame = pd.DataFrame(request.get_json())
        return jsonify({"predictions": model.predict(frame).tolist()})

    @app.get("/health")
    def health():  # type: ignore[no-untyped-def]
        return jsonify({"status": "ready"})

    serve(app, host="127.0.0.1", port=port, threads=threads, ident="baseline", _quiet=True)


if __name__ == "__main__":
    main()
