"""A Keras 3 ``.keras`` file served on Keras's torch backend (issue 24), no TensorFlow.

The model is small and trained without Keras's own fit (which would take tens of seconds
here): a softmax regression fitted by scikit-learn on ``load_digits``, its weights put into
``Input(8, 8, 1) → Flatten → Dense(10, softmax)``. It is saved as a ``.keras`` file twice, with
a card saying its input is a grey image (channels last, as Keras has it) and without one (a
tensor), and served by a real server; every answer is compared with the model called in this
process: labels exact, probabilities within 1e-5.

Skipped without keras or torch, except in the torch lane of ``.ci/run`` (``TORCH_LANE=1``
with ``CI=true``), where they fail.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import requests

from tests import tensor_graphs as tg
from tests.helpers import running_server

os.environ.setdefault("KERAS_BACKEND", "torch")  # read once, at Keras's first import
if os.environ.get("CI") == "true" and os.environ.get("TORCH_LANE") == "1":
    import keras  # the torch lane: a missing keras fails, never skips
else:
    keras = pytest.importorskip("keras")
    pytest.importorskip("torch")

pytestmark = [pytest.mark.spawn, pytest.mark.server, pytest.mark.timeout(600)]
IMAGE_CARD = """
[inputs.image]
kind = "image"
channels = "L"
size = [8, 8]
scale = 0.00392156862745098
"""


def _digits() -> tuple[np.ndarray, np.ndarray]:
    images, target = tg.digits_data()
    return (np.round(images * 255 / 16) / 255).astype(np.float32)[..., None], target


@pytest.fixture(scope="module")
def model() -> Any:
    from sklearn.linear_model import LogisticRegression

    x, target = _digits()
    fitted = LogisticRegression(max_iter=300).fit(x.reshape(len(x), -1), target)
    image = keras.Input(shape=(8, 8, 1), name="image")
    dense = keras.layers.Dense(10, activation="softmax")
    built = keras.Model(image, dense(keras.layers.Flatten()(image)))
    dense.set_weights([fitted.coef_.T.astype(np.float32), fitted.intercept_.astype(np.float32)])
    return built


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, model: Any) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("keras")
    with warnings.catch_warnings():  # Keras's torch backend to NumPy 2: a DeprecationWarning
        warnings.simplefilter("ignore", DeprecationWarning)
        model.save(folder / "digits_image.keras")
        model.save(folder / "digits_tensor.keras")
    (folder / "digits_image.toml").write_text(IMAGE_CARD, encoding="utf-8")
    with running_server([str(folder), "--workers", "1"], cwd=folder, ready=False) as served:
        served.wait_ready(timeout=400)  # two hosts import torch and keras at once
        yield served.url


def _expected(model: Any, batch: np.ndarray) -> tuple[list[int], np.ndarray]:
    import torch

    # the model called as winserve calls it (predict_on_batch's own NumPy conversion warns
    # under NumPy 2)
    with torch.inference_mode():
        probabilities = model(torch.from_numpy(batch), training=False).numpy()
    return probabilities.argmax(axis=1).tolist(), probabilities


def test_the_model_reads_the_digits(model: Any) -> None:
    x, target = _digits()
    labels, _ = _expected(model, x)
    assert (np.asarray(labels) == target).mean() > 0.9


def test_tensors_as_the_model_answers(server: str, model: Any) -> None:
    x, _ = _digits()
    batch = x[[2, 20, 200]]
    labels, probabilities = _expected(model, batch)
    url = f"{server}/models/digits_tensor"
    described = requests.get(f"{url}/model", timeout=30).json()
    (feature,) = described["features"]
    assert (feature["name"], feature["shape"], feature["dtype"]) == ("image", [8, 8, 1], "float32")
    assert "Keras" in described["runtime"] and "torch backend" in described["runtime"]
    answer = requests.post(f"{url}/predict?proba=true", json=batch.tolist(), timeout=60)
    assert answer.status_code == 200, answer.text
    tg.assert_same_digits(answer.json(), labels, probabilities)


def test_png_uploads_as_the_model_answers(server: str, model: Any) -> None:
    pngs = [tg.digit_png(i) for i in (1, 10, 100)]
    batch = np.stack([tg.by_hand(p).transpose(1, 2, 0) for p in pngs])  # channels last
    labels, probabilities = _expected(model, batch)
    url = f"{server}/models/digits_image"
    (feature,) = requests.get(f"{url}/model", timeout=30).json()["features"]
    assert (feature["kind"], feature["shape"]) == ("image", [8, 8, 1])
    upload = requests.post(
        f"{url}/predict?proba=true",
        files=[("image", (f"{i}.png", p, "image/png")) for i, p in enumerate(pngs)],
        timeout=60,
    )
    assert upload.status_code == 200, upload.text
    tg.assert_same_digits(upload.json(), labels, probabilities)
