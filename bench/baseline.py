"""The baselines winserve is measured against: Flask under waitress, the model in a global.

This is the usual recipe (one model call per request, in the web process), in the two ways a
user would write it: ``dataframe`` builds a pandas DataFrame from the records, as most
tutorials do; ``numpy`` hands ``predict`` the rows as a NumPy array in the model's column
order, the fastest a hand-written server gets. Run as
``python bench/baseline.py MODEL PORT THREADS [dataframe|numpy]``; it answers
``POST /predict`` with a list of records, like winserve's native API.
"""

from __future__ import annotations

import sys
import warnings

import joblib
import numpy as np
import pandas as pd
from flask import Flask, jsonify, request
from waitress import serve


def main() -> None:
    model_path, port, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    mode = sys.argv[4] if len(sys.argv) > 4 else "dataframe"
    model = joblib.load(model_path)
    columns = list(model.feature_names_in_)
    # a DataFrame-fitted model warns on every array; the user who chose arrays silences it
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    app = Flask(__name__)

    @app.post("/predict")
    def predict():  # type: ignore[no-untyped-def]
        rows = request.get_json()
        if mode == "numpy":
            frame = np.array([[row[c] for c in columns] for row in rows], dtype=np.float64)
        else:
            frame = pd.DataFrame(rows)
        return jsonify({"predictions": model.predict(frame).tolist()})

    @app.get("/health")
    def health():  # type: ignore[no-untyped-def]
        return jsonify({"status": "ready"})

    serve(app, host="127.0.0.1", port=port, threads=threads, ident="baseline", _quiet=True)


if __name__ == "__main__":
    main()
