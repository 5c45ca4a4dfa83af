"""PyTorch files served without code (issue 24): a digits CNN saved three ways.

A small convolutional network is trained here on scikit-learn's ``load_digits`` (8 × 8 grey
images, a second of CPU) and saved as a ``torch.export`` program (``.pt2``), a TorchScript
file (``torch.jit.save``) and a whole module (``torch.save``, its class in
``<name>_code.py`` as a notebook would leave it: defined in ``__main__``). Each file is
served twice from one folder by a real server (spawned model hosts): with a card saying its
input is an image, and as a tensor. Every answer is compared with the network run in this
process on the same arrays (images: the card's preprocessing done by hand with Pillow):
labels exact, probabilities (softmax of the logits) within 1e-5.

torch is optional (its own extra and CI step): without it these tests skip, except where the
CI step asks for them (``TORCH_LANE=1`` with ``CI=true``): then they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tomllib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from tests import tensor_graphs as tg
from tests.helpers import ServerProcess, local_client, running_server

if os.environ.get("CI") == "true" and os.environ.get("TORCH_LANE") == "1":
    import torch  # the torch lane of .ci/run: a missing torch fails, never skips
else:
    torch = pytest.importorskip("torch")

NET_CODE = '''"""The network's class, as the notebook that trained it defined it."""

import torch
from torch import nn


class DigitsNet(nn.Module):
    """A small CNN over 8 x 8 grey digits: conv, ReLU, max-pool, linear; logits out."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(8 * 4 * 4, 10)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        features = self.pool(torch.relu(self.conv(image)))
        return self.head(features.flatten(1))
'''
TENSOR_CARD = '[inputs.image]\nkind = "tensor"\nshape = [1, 8, 8]\ndtype = "float32"\n'
FORMATS = ("export", "script", "module")


def _digits() -> tuple[np.ndarray, np.ndarray]:
    """The images as the card's preprocessing gives them: pixel = value × 255 / 16, / 255."""
    images, target = tg.digits_data()
    x = (np.round(images * 255 / 16) / 255).astype(np.float32)[:, None, :, :]
    return x, target


def _net_class(code_file: Path) -> Any:
    """DigitsNet as a notebook defines it: in ``__main__`` (compiled from ``code_file`` so
    that TorchScript finds its source)."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(NET_CODE, str(code_file), "exec"), namespace)
    return namespace["DigitsNet"]


def _train(net: Any) -> Any:
    x, target = _digits()
    inputs, labels = torch.from_numpy(x), torch.from_numpy(np.array(target)).long()
    torch.manual_seed(0)
    optimiser = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(20):  # full batch: a second or two of CPU, 95 % right
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(inputs), labels)
        loss.backward()
        optimiser.step()
    return net.eval()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("torch")


@pytest.fixture(scope="module")
def net(folder: Path) -> Any:
    """The trained network, saved three ways, each with an image card and a tensor card."""
    code = folder / "code.py"
    code.write_text(NET_CODE, encoding="utf-8")
    torch.manual_seed(0)
    net = _train(_net_class(code)())
    x, _ = _digits()
    batch = torch.export.Dim("batch")
    program = torch.export.export(net, (torch.from_numpy(x[:4]),), dynamic_shapes=[{0: batch}])
    main = sys.modules["__main__"]
    main.DigitsNet = type(net)  # type: ignore[attr-defined]  # pickle finds it where it was made
    try:
        for card, kind in ((tg.DIGITS_CARD, "image"), (TENSOR_CARD, "tensor")):
            torch.export.save(program, str(folder / f"export_{kind}.pt2"))
            with warnings.catch_warnings():  # torch deprecates TorchScript; users have it
                warnings.simplefilter("ignore", FutureWarning)  # 2.14
                warnings.simplefilter("ignore", DeprecationWarning)  # 2.13
                torch.jit.save(torch.jit.script(net), str(folder / f"script_{kind}.pt"))
            torch.save(net, folder / f"module_{kind}.pth")
            shutil.copyfile(code, folder / f"module_{kind}_code.py")
            for name in (f"script_{kind}", f"module_{kind}"):
                (folder / f"{name}.toml").write_text(card, encoding="utf-8")
        (folder / "export_image.toml").write_text(tg.DIGITS_CARD, encoding="utf-8")
        # export_tensor has no card: the program itself says [N, 1, 8, 8] float32
        # a module whose class is nowhere (no orphan_code.py beside it): refused, saying so
        shutil.copyfile(folder / "module_tensor.pth", folder / "orphan.pth")
        (folder / "orphan.toml").write_text(TENSOR_CARD, encoding="utf-8")
    finally:
        del main.DigitsNet  # type: ignore[attr-defined]
    code.unlink()
    return net


def _expected(net: Any, batch: np.ndarray) -> tuple[list[int], np.ndarray]:
    with torch.inference_mode():
        probabilities = torch.softmax(net(torch.from_numpy(batch)), dim=1).numpy()
    return probabilities.argmax(axis=1).tolist(), probabilities


def test_the_network_learned_the_digits(net: Any) -> None:
    x, target = _digits()
    labels, _ = _expected(net, x)
    assert (np.asarray(labels) == target).mean() > 0.9  # else the comparisons below prove little


# -- a real server: the six files from one folder ---------------------------------------------


@pytest.fixture(scope="module")
def served(folder: Path, net: Any) -> Iterator[ServerProcess]:
    args = [str(folder), "--workers", "1"]
    with running_server(args, cwd=folder, ready=False) as served:
        # seven model hosts each import torch (3 s of CPU) at once: more than the usual minute
        # on a busy machine
        served.wait_ready(timeout=400)
        yield served


@pytest.fixture(scope="module")
def server(served: ServerProcess) -> str:
    return served.url


@pytest.mark.spawn
@pytest.mark.server
@pytest.mark.timeout(600)
@pytest.mark.parametrize("kind", FORMATS)
def test_each_file_answers_tensors_as_the_network_does(server: str, net: Any, kind: str) -> None:
    x, _ = _digits()
    batch = x[[3, 9, 100, 1500]]
    labels, probabilities = _expected(net, batch)
    url = f"{server}/models/{kind}_tensor"
    described = requests.get(f"{url}/model", timeout=30).json()
    (feature,) = described["features"]
    assert (feature["kind"], feature["shape"], feature["dtype"]) == ("tensor", [1, 8, 8], "float32")
    assert described["runtime"].startswith("torch ")
    for body in ({"inputs": {"image": batch.tolist()}}, batch.tolist()):
        answer = requests.post(f"{url}/predict?proba=true", json=body, timeout=60)
        assert answer.status_code == 200, answer.text
        tg.assert_same_digits(answer.json(), labels, probabilities)
    wrong = requests.post(f"{url}/predict", json={"inputs": {"image": [[[1.0, 2.0]]]}}, timeout=30)
    assert wrong.status_code == 400
    assert "[N, 1, 8, 8]" in wrong.json()["error"]["message"]


@pytest.mark.spawn
@pytest.mark.server
@pytest.mark.timeout(600)
@pytest.mark.parametrize("kind", FORMATS)
def test_each_file_answers_png_uploads_as_the_network_does(
    server: str, net: Any, kind: str
) -> None:
    pngs = [tg.digit_png(i) for i in (0, 7, 42, 1000)]
    labels, probabilities = _expected(net, np.stack([tg.by_hand(p) for p in pngs]))
    url = f"{server}/models/{kind}_image"
    (feature,) = requests.get(f"{url}/model", timeout=30).json()["features"]
    assert (feature["kind"], feature["shape"]) == ("image", [1, 8, 8])
    upload = requests.post(
        f"{url}/predict?proba=true",
        files=[("image", (f"{i}.png", p, "image/png")) for i, p in enumerate(pngs)],
        timeout=60,
    )
    assert upload.status_code == 200, upload.text
    tg.assert_same_digits(upload.json(), labels, probabilities)
    bad = requests.post(f"{url}/predict", files=[("image", ("x.png", b"\0" * 64))], timeout=30)
    assert bad.status_code == 400
    assert "not an image file" in bad.json()["error"]["message"]


@pytest.mark.spawn
@pytest.mark.server
@pytest.mark.timeout(600)
def test_a_module_whose_class_is_missing_names_the_code_file(served: ServerProcess) -> None:
    # in a real model host: the notebook's class is looked up in its __main__, which pytest's
    # own __main__ would hide in this process
    health = json.dumps(requests.get(f"{served.url}/health", timeout=30).json())
    assert "orphan" in health
    told = health + "\n".join(served.lines)
    assert "'DigitsNet'" in told and "orphan_code.py" in told


# -- in this process: what the files declare, what is refused -----------------------------------


def _client(path: Path, card: str = "") -> Any:
    from winserve.model_info import ModelSpec

    inputs = tomllib.loads(card).get("inputs", {}) if card else {}
    return local_client(ModelSpec(path=str(path), inputs=inputs))


def _health(client: Any) -> str:
    return json.dumps(client.get("/health").get_json())


def test_a_state_dict_is_refused_saying_how_to_save_the_network(folder: Path, net: Any) -> None:
    path = folder / "weights.pt"
    torch.save(net.state_dict(), path)
    health = _health(_client(path))
    assert "weights.pt holds a state dict, not a network winserve can call" in health
    assert "torch.save(model, path)" in health and "torch.export" in health


def test_torch_saves_old_format_loads_and_other_files_are_refused(folder: Path, net: Any) -> None:
    import pickle

    main = sys.modules["__main__"]
    main.DigitsNet = type(net)  # type: ignore[attr-defined]
    try:
        with warnings.catch_warnings():  # the old format keeps the class's source, if found
            warnings.simplefilter("ignore", UserWarning)
            torch.save(net, folder / "legacy.pth", _use_new_zipfile_serialization=False)
    finally:
        del main.DigitsNet  # type: ignore[attr-defined]
    (folder / "legacy_code.py").write_text(NET_CODE, encoding="utf-8")
    x, _ = _digits()
    labels, probabilities = _expected(net, x[:3])
    client = _client(folder / "legacy.pth", TENSOR_CARD)
    answer = client.post("/predict?proba=true", json=x[:3].tolist())
    assert answer.status_code == 200, answer.get_json()
    tg.assert_same_digits(answer.get_json(), labels, probabilities)
    (folder / "text.pt").write_text("not a model", encoding="utf-8")
    (folder / "pickled.pt2").write_bytes(pickle.dumps({"a": 1}))
    for name in ("text.pt", "pickled.pt2"):
        assert f"cannot load {name}: it is not a PyTorch file" in _health(_client(folder / name))


def test_torchscript_without_a_card_says_what_to_write_in_it(folder: Path) -> None:
    shutil.copyfile(folder / "script_tensor.pt", folder / "bare.pt")
    health = _health(_client(folder / "bare.pt"))
    assert "does not say what its input 'image' is" in health
    assert "bare.toml" in health and "[inputs.image]" in health


@pytest.mark.parametrize(
    ("card", "words"),
    [
        (
            TENSOR_CARD.replace("[1, 8, 8]", "[3, 8, 8]"),
            "shape = [3, 8, 8], the file says [1, 8, 8]",
        ),
        (TENSOR_CARD.replace("float32", "int64"), "dtype = 'int64', the file says float32"),
        ('[inputs.pixels]\nkind = "tensor"\n', "[inputs.pixels], which is not an input"),
    ],
)
def test_a_card_that_contradicts_the_program_fails_the_load(
    folder: Path, card: str, words: str
) -> None:
    assert words in _health(_client(folder / "export_tensor.pt2", card))


def test_a_program_exported_with_a_fixed_batch_answers_any_number_of_rows(
    folder: Path, net: Any
) -> None:
    x, _ = _digits()
    program = torch.export.export(net, (torch.from_numpy(x[:1]),))  # batch 1, no Dim
    path = folder / "fixed.pt2"
    torch.export.save(program, str(path))
    client = _client(path)
    batch = x[[5, 6, 7]]
    labels, probabilities = _expected(net, batch)
    answer = client.post("/predict?proba=true", json={"inputs": {"image": batch.tolist()}})
    assert answer.status_code == 200, answer.get_json()
    tg.assert_same_digits(answer.get_json(), labels, probabilities)


@pytest.mark.parametrize("ending", ["softmax", "log_softmax"])
def test_a_network_ending_in_a_softmax_keeps_its_probabilities(
    folder: Path, net: Any, ending: str
) -> None:
    wrapped = torch.nn.Sequential(
        net, torch.nn.Softmax(dim=1) if ending == "softmax" else torch.nn.LogSoftmax(dim=1)
    )
    path = folder / f"ends_{ending}.pt"
    with warnings.catch_warnings():  # torch deprecates TorchScript (2.13, 2.14 differently)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.trace(wrapped, torch.zeros(2, 1, 8, 8)), str(path))
    x, _ = _digits()
    batch = x[[11, 12]]
    labels, probabilities = _expected(net, batch)
    card = TENSOR_CARD.replace("[inputs.image]", "[inputs.input]")
    answer = _client(path, card).post("/predict?proba=true", json=batch.tolist())
    assert answer.status_code == 200, answer.get_json()
    tg.assert_same_digits(answer.get_json(), labels, probabilities)


def test_threads_are_the_cores_shared_by_the_replicas() -> None:
    from winserve.host.torch_model import threads_for

    cores = os.cpu_count() or 1
    assert threads_for(1) == cores
    assert threads_for(cores * 2) == 1
    assert threads_for(2) == max(1, cores // 2)
