"""ONNX graphs of any rank, tensors from JSON, images (issue 24).

Graphs are built at test time (``tests/tensor_graphs.py``): a digits classifier over 8 × 8 grey
images, a sequence model ``[N, T, 4]``, a graph with two inputs. Every answer is compared with
onnxruntime run in this process on the same arrays (for images: the card's preprocessing done
by hand with Pillow): labels exact, probabilities within 1e-5. The in-process tests use the
app on a ``LocalBackend`` (the host's code, without a process); the server tests a real
server with spawned model hosts.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from tests import tensor_graphs as tg
from tests.helpers import local_client, running_server

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("PIL")


def b64(data: bytes) -> dict[str, str]:
    return {"b64": base64.b64encode(data).decode("ascii")}


def _client(folder: Path, name: str, graph: bytes, card: str = "") -> Any:
    from winserve.model_info import ModelSpec

    path = tg.write(folder, name, graph, card)
    inputs = tomllib.loads(card).get("inputs", {}) if card else {}
    return local_client(ModelSpec(path=str(path), inputs=inputs))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tensors")


@pytest.fixture(scope="module")
def digits_graph() -> bytes:
    return tg.digits_graph()


@pytest.fixture(scope="module")
def images(folder: Path, digits_graph: bytes) -> Any:
    return _client(folder, "digits_image", digits_graph, tg.DIGITS_CARD)


@pytest.fixture(scope="module")
def pixels(folder: Path, digits_graph: bytes) -> Any:
    """The same graph without a card: its rank-4 input is a tensor."""
    return _client(folder, "digits_tensor", digits_graph)


def _expected_digits(graph: bytes, pngs: list[bytes]) -> tuple[list[int], np.ndarray]:
    batch = np.stack([tg.by_hand(png) for png in pngs])
    (probabilities,) = tg.run(graph, {"image": batch})
    return probabilities.argmax(axis=1).tolist(), probabilities


# -- what the model takes, from the graph and the card ----------------------------------------


def test_the_inputs_come_from_the_graph_and_the_card(images: Any, pixels: Any) -> None:
    (image,) = images.get("/model").get_json()["features"]
    assert (image["name"], image["kind"], image["shape"]) == ("image", "image", [1, 8, 8])
    (tensor,) = pixels.get("/model").get_json()["features"]
    assert (tensor["kind"], tensor["shape"], tensor["dtype"]) == ("tensor", [1, 8, 8], "float32")
    meta = pixels.get("/v2/models/digits_tensor").get_json()
    assert meta["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]


# -- images -----------------------------------------------------------------------------------


def test_an_image_as_base64_and_as_an_upload(images: Any, digits_graph: bytes) -> None:
    pngs = [tg.digit_png(i) for i in (0, 7, 42)]
    labels, probabilities = _expected_digits(digits_graph, pngs)
    one = images.post("/predict?proba=true", json={"image": b64(pngs[0])})
    assert one.status_code == 200, one.get_json()
    tg.assert_same_digits(one.get_json(), labels[:1], probabilities[:1])
    several = images.post("/predict?proba=true", json={"inputs": {"image": [b64(p) for p in pngs]}})
    tg.assert_same_digits(several.get_json(), labels, probabilities)
    records = images.post("/predict?proba=true", json=[{"image": b64(p)} for p in pngs])
    tg.assert_same_digits(records.get_json(), labels, probabilities)
    upload = images.post(
        "/predict?proba=true",
        data={"image": [(io.BytesIO(p), f"{i}.png") for i, p in enumerate(pngs)]},
        content_type="multipart/form-data",
    )
    assert upload.status_code == 200, upload.get_json()
    tg.assert_same_digits(upload.get_json(), labels, probabilities)


def test_a_colour_jpeg_of_another_size_is_prepared_as_the_card_says(
    images: Any, digits_graph: bytes
) -> None:
    from PIL import Image

    grey = Image.open(io.BytesIO(tg.digit_png(5))).convert("RGB").resize((32, 32))
    out = io.BytesIO()
    grey.save(out, format="JPEG", quality=95)
    labels, probabilities = _expected_digits(digits_graph, [out.getvalue()])
    answer = images.post("/predict?proba=true", json={"image": b64(out.getvalue())})
    tg.assert_same_digits(answer.get_json(), labels, probabilities)


def _too_large_png(width: int, height: int) -> bytes:
    """A PNG whose header says ``width`` × ``height``: the rest is never read."""
    import struct
    import zlib

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + header
    ihdr = struct.pack(">I", len(header)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    data = b"IDAT" + zlib.compress(b"\0" * 64)
    idat = struct.pack(">I", len(data) - 4) + data + struct.pack(">I", zlib.crc32(data))
    return b"\x89PNG\r\n\x1a\n" + ihdr + idat


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"image": b64(b"GIF89a not really")}, 400, "not an image file"),
        ({"image": b64(b"%!PS-Adobe-3.0 EPSF-3.0\n")}, 400, "not an image file"),
        ({"image": b64(_too_large_png(40_000, 40_000))}, 400, "40,000 × 40,000 pixels"),
        ({"image": {"b64": "not base64!"}}, 400, "row 1, input 'image': not valid base64"),
        ({"image": {"b64": ""}}, 400, "the image file is empty"),
        ({"image": [1, 2]}, 400, "expected an image"),
        ({"picture": b64(b"x")}, 400, "missing input 'image'; unknown input 'picture'"),
    ],
)
def test_what_is_not_an_image_is_refused_by_name(
    images: Any, body: dict[str, Any], status: int, words: str
) -> None:
    answer = images.post("/predict", json=body)
    assert answer.status_code == status, answer.get_json()
    message = answer.get_json()["error"]["message"]
    assert words in message
    assert "Traceback" not in message


def test_a_bad_image_among_good_ones_is_named_by_its_row(images: Any) -> None:
    pngs = [b64(tg.digit_png(1)), b64(b"not an image"), b64(tg.digit_png(2))]
    answer = images.post("/predict", json={"inputs": {"image": pngs}})
    assert answer.status_code == 400
    message = answer.get_json()["error"]["message"]
    assert message.startswith("row 2: ")
    assert "input 'image': not an image file" in message


# -- tensors ----------------------------------------------------------------------------------


def test_a_tensor_as_nested_lists(pixels: Any, digits_graph: bytes) -> None:
    batch = np.stack([tg.by_hand(tg.digit_png(i)) for i in (3, 9)])
    (probabilities,) = tg.run(digits_graph, {"image": batch})
    labels = probabilities.argmax(axis=1).tolist()
    for body in (
        {"inputs": {"image": batch.tolist()}},
        {"inputs": batch.tolist()},
        batch.tolist(),
        [{"image": row} for row in batch.tolist()],
    ):
        answer = pixels.post("/predict?proba=true", json=body)
        assert answer.status_code == 200, (body.__class__, answer.get_json())
        tg.assert_same_digits(answer.get_json(), labels, probabilities)


def test_mlflow_inputs_and_instances(pixels: Any, digits_graph: bytes) -> None:
    batch = np.stack([tg.by_hand(tg.digit_png(i)) for i in (4, 8)])
    (probabilities,) = tg.run(digits_graph, {"image": batch})
    for body in (
        {"inputs": batch.tolist()},
        {"inputs": {"image": batch.tolist()}},
        {"instances": batch.tolist()},
    ):
        answer = pixels.post("/invocations", json=body)
        assert answer.status_code == 200, answer.get_json()
        assert answer.get_json()["predictions"] == probabilities.argmax(axis=1).tolist()


def test_oip_fp32_tensor_and_bytes_image(images: Any, pixels: Any, digits_graph: bytes) -> None:
    pngs = [tg.digit_png(i) for i in (11, 12)]
    labels, probabilities = _expected_digits(digits_graph, pngs)
    batch = np.stack([tg.by_hand(p) for p in pngs])
    outputs = [{"name": "predict"}, {"name": "predict_proba"}]
    tensor = {
        "inputs": [
            {
                "name": "image",
                "datatype": "FP32",
                "shape": list(batch.shape),
                "data": batch.ravel().tolist(),
            }
        ],
        "outputs": outputs,
    }
    image = {
        "inputs": [
            {
                "name": "image",
                "datatype": "BYTES",
                "shape": [2],
                "data": [b64(p)["b64"] for p in pngs],
            }
        ],
        "outputs": outputs,
    }
    for client, body, name in ((pixels, tensor, "digits_tensor"), (images, image, "digits_image")):
        answer = client.post(f"/v2/models/{name}/infer", json=body)
        assert answer.status_code == 200, answer.get_json()
        found = {o["name"]: o for o in answer.get_json()["outputs"]}
        assert np.asarray(found["predict"]["data"]).ravel().tolist() == labels
        np.testing.assert_allclose(
            np.asarray(found["predict_proba"]["data"]).reshape(2, 10),
            probabilities,
            atol=tg.TOLERANCE,
            rtol=0,
        )
    bad = dict(
        tensor,
        inputs=[
            dict(
                tensor["inputs"][0],
                shape=[2, 64],
            )
        ],
    )
    answer = pixels.post("/v2/models/digits_tensor/infer", json=bad)
    assert answer.status_code == 400
    assert "expected shape [N, 1, 8, 8]" in answer.get_json()["error"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"inputs": [[[[0.0] * 8] * 8]] * 2 + [[[[0.0] * 7] * 8]]}, "row 3, input 'image'"),
        (
            {"inputs": [[[[0.0] * 8] * 7]]},
            "expected shape [N, 1, 8, 8] (N: the rows), got [1, 1, 7, 8]",
        ),
        ({"inputs": [[[["a"] * 8] * 8]]}, "row 1, input 'image': text is not a number"),
        ({"inputs": [[[[None] * 8] * 8]]}, "null; a tensor has no missing values"),
        ({"inputs": [[[[True] * 8] * 8]]}, "takes numbers (float32), not true/false"),
        ({"inputs": [[[[1e39] * 8] * 8]]}, "row 1, input 'image': a number beyond ±3.402823e+38"),
        ({"inputs": {"pixels": []}}, "missing input 'image'; unknown input 'pixels'"),
        ({"inputs": {"image": []}}, "no rows to predict"),
        ({"inputs": {"image": 3}}, "takes a list of rows"),
    ],
)
def test_bad_tensors_are_refused_with_row_input_and_shape(
    pixels: Any, body: Any, words: str
) -> None:
    answer = pixels.post("/predict", json=body)
    assert answer.status_code == 400, answer.get_json()
    assert words in answer.get_json()["error"]["message"]


def test_a_sequence_of_any_length(folder: Path) -> None:
    graph = tg.sequence_graph()
    client = _client(folder, "sequence", graph)
    (feature,) = client.get("/model").get_json()["features"]
    assert feature["shape"] == [None, 4]
    for length in (1, 5):
        rows = np.arange(2 * length * 4, dtype=np.float32).reshape(2, length, 4) / 7
        (probabilities,) = tg.run(graph, {"seq": rows})
        answer = client.post("/predict?proba=true", json={"inputs": {"seq": rows.tolist()}})
        assert answer.status_code == 200, answer.get_json()
        assert answer.get_json()["predictions"] == probabilities.argmax(axis=1).tolist()
        np.testing.assert_allclose(
            answer.get_json()["probabilities"], probabilities, atol=tg.TOLERANCE, rtol=0
        )
    ragged = [[[0.0] * 4] * 2, [[0.0] * 4] * 3]  # two lengths in one request
    answer = client.post("/predict", json={"inputs": ragged})
    assert answer.status_code == 400
    assert (
        "row 2, input 'seq': shape [3, 4] differs from row 1's [2, 4]"
        in (answer.get_json()["error"]["message"])
    )


def test_two_inputs_of_two_dtypes(folder: Path) -> None:
    graph = tg.two_inputs_graph()
    client = _client(folder, "two_inputs", graph)
    a = np.arange(3 * 6, dtype=np.float32).reshape(3, 2, 3) / 3
    b = np.array([[1, 2, 3], [4, 5, 6], [-7, 8, 9]], dtype=np.int64)
    (expected,) = tg.run(graph, {"a": a, "b": b})
    answer = client.post("/predict", json={"inputs": {"a": a.tolist(), "b": b.tolist()}})
    assert answer.status_code == 200, answer.get_json()
    np.testing.assert_allclose(
        answer.get_json()["predictions"], expected.ravel(), atol=tg.TOLERANCE
    )
    records = [{"a": x, "b": y} for x, y in zip(a.tolist(), b.tolist(), strict=True)]
    assert client.post("/predict", json=records).get_json() == answer.get_json()
    for body, words in (
        (
            {"inputs": {"a": a.tolist(), "b": (b + 0.5).tolist()}},
            "row 1, input 'b' takes whole numbers (int64)",
        ),
        (
            {"inputs": {"a": a.tolist(), "b": b[:2].tolist()}},
            "input 'b' has 2 rows, the inputs before it 3",
        ),
        ({"inputs": {"a": a.tolist()}}, "missing input 'b'"),
        ({"inputs": [[1]]}, '"inputs" must be an object naming the model\'s 2 inputs'),
    ):
        refused = client.post("/predict", json=body)
        assert refused.status_code == 400, refused.get_json()
        assert words in refused.get_json()["error"]["message"]


def test_the_card_must_match_the_graph(folder: Path, digits_graph: bytes) -> None:
    client = _client(
        folder,
        "digits_wrong_card",
        digits_graph,
        '[inputs.image]\nkind = "image"\nchannels = "RGB"\n',
    )
    health = client.get("/health").get_json()
    assert health["status"] != "ready"
    assert "channels = 'RGB' gives 3, the graph takes 1" in json.dumps(health)


# -- a real server: spawned hosts, batching ---------------------------------------------------


@pytest.fixture(scope="module")
def server(folder: Path, digits_graph: bytes) -> Iterator[str]:
    path = tg.write(folder, "digits_served", digits_graph, tg.DIGITS_CARD)
    with running_server(
        [str(path), "--workers", "1", "--max-batch-wait-ms", "100"], cwd=folder
    ) as served:
        yield served.url


@pytest.mark.spawn
@pytest.mark.server
def test_served_images_and_concurrent_requests_batched(server: str, digits_graph: bytes) -> None:
    pngs = [tg.digit_png(i) for i in range(8)]
    labels, probabilities = _expected_digits(digits_graph, pngs)
    upload = requests.post(
        f"{server}/predict?proba=true",
        files=[("image", (f"{i}.png", p, "image/png")) for i, p in enumerate(pngs)],
        timeout=30,
    )
    assert upload.status_code == 200, upload.text
    tg.assert_same_digits(upload.json(), labels, probabilities)

    def calls_with_rows_above_one() -> float:
        text = requests.get(f"{server}/metrics", timeout=10).text
        counts = {}
        for line in text.splitlines():
            if line.startswith("winserve_batch_rows_bucket") and 'le="1.0"' in line:
                counts["one"] = float(line.rsplit(" ", 1)[1])
            if line.startswith("winserve_batch_rows_count"):
                counts["all"] = float(line.rsplit(" ", 1)[1])
        return counts["all"] - counts["one"]

    before = calls_with_rows_above_one()
    answers: list[Any] = [None] * 8
    barrier = threading.Barrier(8)

    def send(i: int) -> None:
        barrier.wait(10)
        answers[i] = requests.post(
            f"{server}/predict?proba=true", json={"image": b64(pngs[i])}, timeout=30
        )

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for i, answer in enumerate(answers):
        assert answer is not None and answer.status_code == 200
        tg.assert_same_digits(answer.json(), labels[i : i + 1], probabilities[i : i + 1])
    assert calls_with_rows_above_one() > before  # some requests went into one call together
    bad = requests.post(f"{server}/predict", json={"image": b64(b"\x00" * 100)}, timeout=30)
    assert bad.status_code == 400
    assert "not an image file" in bad.json()["error"]["message"]


# -- batching: which payloads go into one call ------------------------------------------------


def _tensor_job(rows: int, width: int, dtype: str = "float32") -> Any:
    from winserve.backends.batch import Call

    payload = {"tensors": {"x": np.zeros((rows, width), dtype=dtype)}}
    return Call(payload, rows, False, deadline=1e12, timeout=30.0)


def test_tensors_merge_only_with_their_shape_and_within_the_byte_cap() -> None:
    from winserve.backends.batch import merge_payloads, row_count
    from winserve.backends.queues import Waiting

    waiting = Waiting(max_batch_rows=256, max_batch_bytes=3 * 4 * 10)
    same = [_tensor_job(1, 4), _tensor_job(2, 4)]
    other = [_tensor_job(1, 5), _tensor_job(1, 4, "int64"), _tensor_job(1, 4)]
    waiting.interactive.extend([*same, *other])
    jobs, rows = waiting.take_batch([], 0)
    # [N, 5] and int64 wait for the next calls, in place; the [N, 4] float32 behind them joins
    assert jobs == [*same, other[2]] and rows == 4
    merged = merge_payloads([j.payload for j in jobs])
    assert merged["tensors"]["x"].shape == (4, 4) and row_count(merged) == 4
    assert waiting.take_batch([], 0)[0] == other[:1]  # alone: the next has another shape
    assert waiting.take_batch([], 0)[0] == other[1:2]  # int64 does not go with float32
    # bytes: 10 rows of 4 float32 are 160 bytes, over the 120 allowed with another job
    waiting.interactive.extend([_tensor_job(1, 4), _tensor_job(2, 4), _tensor_job(10, 4)])
    assert [j.rows for j in waiting.take_batch([], 0)[0]] == [1, 2]  # 48 bytes together
    assert [j.rows for j in waiting.take_batch([], 0)[0]] == [10]  # alone, whatever its size


def test_images_of_any_size_merge() -> None:
    from winserve.backends.batch import batch_key, merge_payloads, payload_bytes

    first = {"tensors": {"image": [b"a" * 10]}}
    second = {"tensors": {"image": [b"b" * 20, b"c"]}}
    assert batch_key(first) == batch_key(second)
    assert payload_bytes(second) == 21
    assert merge_payloads([first, second]) == {
        "tensors": {"image": [b"a" * 10, b"b" * 20, b"c"]},
        "call_starts": [0, 1],  # where each call's rows start (issue 23)
    }
    assert batch_key({"matrix": np.zeros((1, 2))}) is None  # tables merge as before


# -- the card's other layouts, the graph's class names, the card's own checks -----------------


def test_an_nhwc_graph_gets_channels_last(folder: Path) -> None:
    graph = tg.digits_graph(layout="NHWC")
    card = tg.DIGITS_CARD.replace('layout = "NCHW"', 'layout = "NHWC"')
    client = _client(folder, "digits_nhwc", graph, card)
    (feature,) = client.get("/model").get_json()["features"]
    assert feature["shape"] == [8, 8, 1]
    png = tg.digit_png(33)
    (probabilities,) = tg.run(graph, {"image": tg.by_hand(png).transpose(1, 2, 0)[None]})
    answer = client.post("/predict?proba=true", json={"image": b64(png)})
    tg.assert_same_digits(answer.get_json(), probabilities.argmax(axis=1).tolist(), probabilities)


def test_class_names_from_the_graphs_metadata(folder: Path, digits_graph: bytes) -> None:
    import onnx

    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    proto = onnx.load_from_string(digits_graph)
    entry = proto.metadata_props.add()
    entry.key, entry.value = "classes", json.dumps(names)
    client = _client(folder, "digits_named", proto.SerializeToString(), tg.DIGITS_CARD)
    assert client.get("/model").get_json()["classes"] == names
    png = tg.digit_png(7)  # a 7
    (probabilities,) = tg.run(digits_graph, {"image": tg.by_hand(png)[None]})
    answer = client.post("/predict", json={"image": b64(png)}).get_json()
    assert answer["predictions"] == [names[int(probabilities.argmax())]]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[inputs.image]\nkind = "video"\n', "inputs.image.kind is image or tensor, not 'video'"),
        ('[inputs.image]\nkind = "image"\ncolour = "RGB"\n', "unknown key inputs.image.colour"),
        ('[inputs.seq]\nkind = "tensor"\nsize = 3\n', "inputs.seq: only an image has size"),
        ("inputs = 3\n", "[inputs] must be a table"),
    ],
)
def test_the_cards_inputs_are_checked(text: str, words: str) -> None:
    from winserve import card

    with pytest.raises(ValueError) as raised:
        card.parse(tomllib.loads(text))
    assert words in str(raised.value)


def test_a_card_naming_no_input_of_the_graph_fails_the_load(
    folder: Path, digits_graph: bytes
) -> None:
    client = _client(folder, "digits_stray", digits_graph, '[inputs.pixels]\nkind = "tensor"\n')
    health = json.dumps(client.get("/health").get_json())
    assert "[inputs.pixels], which is not an input of digits_stray.onnx" in health


def test_tensors_sent_to_a_table_model_are_refused_saying_so(iris_forest: Path) -> None:
    from winserve.model_info import ModelSpec

    client = local_client(ModelSpec(path=str(iris_forest)))
    answer = client.post("/predict", json={"inputs": [[1.0, 2.0, 3.0, 4.0]]})
    assert answer.status_code == 400
    assert answer.get_json()["error"]["message"].startswith(
        '{"inputs": ...} is for a model that takes tensors or images; this one takes columns ('
    )


@pytest.mark.spawn
@pytest.mark.server
def test_tritons_client_sends_images_as_bytes(server: str, digits_graph: bytes) -> None:
    """Triton's own client, binary and JSON: the files' bytes, or their base64 in JSON."""
    httpclient = pytest.importorskip("tritonclient.http")
    pngs = [tg.digit_png(i) for i in (20, 21, 22)]
    labels, probabilities = _expected_digits(digits_graph, pngs)
    client = httpclient.InferenceServerClient(server.removeprefix("http://"))
    try:
        meta = client.get_model_metadata("digits_served")
        assert meta["inputs"] == [{"name": "image", "datatype": "BYTES", "shape": [-1]}]
        for binary, files in ((True, pngs), (False, [base64.b64encode(p) for p in pngs])):
            tensor = httpclient.InferInput("image", [len(pngs)], "BYTES")
            tensor.set_data_from_numpy(np.array(files, dtype=np.object_), binary_data=binary)
            wanted = [
                httpclient.InferRequestedOutput(name, binary_data=False)
                for name in ("predict", "predict_proba")
            ]
            result = client.infer("digits_served", [tensor], outputs=wanted)
            assert result.as_numpy("predict").ravel().tolist() == labels
            np.testing.assert_allclose(
                result.as_numpy("predict_proba"), probabilities, atol=tg.TOLERANCE, rtol=0
            )
    finally:
        client.close()


def test_the_api_document_describes_tensors_and_images(images: Any, pixels: Any) -> None:
    from jsonschema import Draft202012Validator
    from openapi_spec_validator import validate

    for client, body in (
        (pixels, {"inputs": {"image": [[[[0.5] * 8] * 8]]}}),
        (images, {"inputs": {"image": [b64(tg.digit_png(0))]}}),
    ):
        document = client.get("/openapi.json").get_json()
        validate(document)
        content = document["paths"]["/predict"]["post"]["requestBody"]["content"]
        variants = content["application/json"]["schema"]["oneOf"]
        batched = [v for v in variants if "inputs" in v.get("properties", {})]
        assert len(batched) == 1
        Draft202012Validator(batched[0]).validate(body)
        wrong = {"inputs": {"image": [[[[0.5] * 8] * 7]]}}  # a row of 7 × 8
        assert not Draft202012Validator(batched[0]).is_valid(wrong)
        assert ("multipart/form-data" in content) == (client is images)


def test_images_that_would_be_too_large_once_prepared_are_refused() -> None:
    from winserve import tensors
    from winserve.errors import PayloadTooLarge
    from winserve.model_info import Feature, ModelInfo
    from winserve.service import PredictRequest

    image = Feature(name="image", kind="image", dtype="float32", shape=(3, 1024, 1024))
    info = ModelInfo("m", "t", "classification", (image,), feature_names_known=True)
    few = PredictRequest.from_inputs({"image": [b"x"] * 85})  # 85 × 12 MB: 1,020 MB
    assert tensors.prepare(few, info, max_rows=1000)[1] == 85
    many = PredictRequest.from_inputs({"image": [b"x"] * 86})
    with pytest.raises(PayloadTooLarge, match="86 images for input 'image' would be 1,032 MB"):
        tensors.prepare(many, info, max_rows=1000)


def test_a_uint8_nhwc_graph_takes_the_pixels_as_they_are(folder: Path) -> None:
    graph = tg.digits_graph(layout="NHWC", uint8=True)
    client = _client(folder, "digits_uint8", graph, '[inputs.image]\nkind = "image"\n')
    (feature,) = client.get("/model").get_json()["features"]
    assert (feature["shape"], feature["dtype"]) == ([8, 8, 1], "uint8")
    png = tg.digit_png(44)
    pixels = np.round(tg.by_hand(png) * 255).astype(np.uint8).transpose(1, 2, 0)[None]
    (probabilities,) = tg.run(graph, {"image": pixels})
    answer = client.post("/predict?proba=true", json={"image": b64(png)})
    tg.assert_same_digits(answer.get_json(), probabilities.argmax(axis=1).tolist(), probabilities)
    numbers = client.post("/predict", json={"inputs": {"image": [[[[255]] * 8] * 8]}})
    assert numbers.status_code == 400  # an image input takes image files, not pixel values
    assert "expected an image" in numbers.get_json()["error"]["message"]
