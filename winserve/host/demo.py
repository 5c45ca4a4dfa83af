"""The built-in demo: an iris classifier trained on first use from scikit-learn's bundled data.

Nothing is downloaded. The trained file is cached per user and per scikit-learn version, written
atomically so that replicas starting together never read half a file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from winserve.platform import cache_dir

DEMO_NAME = "iris-demo"
DEMO_DESCRIPTION = (
    "DEMO model: guesses the species of an iris flower from four measurements. "
    "Serve your own model with: python -m winserve path/to/model.joblib"
)


def train() -> object:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    iris = load_iris(as_frame=True)
    species = iris.target.map(dict(enumerate(iris.target_names)))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return model.fit(iris.data, species)


def demo_path() -> Path:
    from sklearn import __version__

    return cache_dir() / f"{DEMO_NAME}-sklearn{__version__}.joblib"


def ensure_demo_model() -> Path:
    import joblib

    path = demo_path()
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".demo-", suffix=".tmp")
    os.close(handle)
    try:
        joblib.dump(train(), temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path
