"""The models as tools for AI assistants (issue 27): ``/mcp`` (the Model Context Protocol,
streamable HTTP, JSON responses) and ``/tools.json``.

The protocol's edges are checked on the app (Flask's test client); the official MCP Python
SDK's client then connects to real servers (waitress, spawned model hosts) as an assistant
would: both protocol eras, a single model and a folder, a token, a model swapped meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import joblib
import pandas as pd
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import iris_frame
from tests.helpers import close_jobs, jobs_client, local_client, running_server, wait_until
from tests.model_files import constant_model
from winserve import tools
from winserve.card import FeatureDoc, ModelCard
from winserve.model_info import Feature, ModelInfo, ModelSpec

MODERN = "2026-07-28"
HANDSHAKE = "2025-11-25"
IRIS_ROW = {
    "sepal length (cm)": 6.1,
    "sepal width (cm)": 2.8,
    "petal length (cm)": 4.7,
    "petal width (cm)": 1.2,
}
IRIS_CARD = """title = "Iris species"
description = "Which iris a flower is, from four measurements."

[classes]
setosa = "Setosa (bristle-pointed iris)"

[features."petal length (cm)"]
label = "Petal length"
help = "From the base of the petal to its tip."
unit = "cm"
"""


# -- tool descriptions (no server) ----------------------------------------------------------


def test_tool_names_are_what_tools_may_be_called_and_stay_distinct() -> None:
    names = tools.tool_names(["sales 2024", "sales_2024", "Kündigung", "a" * 100, "---"])
    assert set(names.values()) == {"sales 2024", "sales_2024", "Kündigung", "a" * 100, "---"}
    for name in names:
        assert 1 <= len(name) <= 64 and all(
            (c.isalnum() and c.isascii()) or c in "_-" for c in name
        )
    assert names["sales_2024"] == "sales 2024" and names["sales_2024_2"] == "sales_2024"
    assert names["K_ndigung"] == "Kündigung"


def test_input_schema_names_inputs_as_the_card_does_and_says_what_may_be_missing() -> None:
    info = ModelInfo(
        name="churn",
        model_type="Pipeline",
        task="classification",
        features=(
            Feature("tenure", kind="number", missing="refused"),
            Feature("plan", kind="category", categories=("basic", "pro"), strict_categories=True),
            Feature("note", kind="string", missing="accepted"),
        ),
        feature_names_known=True,
        classes=(0, 1),
        has_proba=True,
    )
    card = ModelCard(
        title="Customer churn",
        description="Chance that a customer leaves.",
        classes={"1": "Leaves"},
        features={
            "tenure": FeatureDoc(label="Tenure", help="Months since signing up.", unit="months")
        },
    )
    tool = tools.describe("churn", "churn", info, card)
    schema = tool.input_schema
    assert schema["required"] == ["tenure"]
    assert schema["properties"]["tenure"] == {
        "type": "number",
        "title": "Tenure",
        "description": "Tenure; Months since signing up.; unit: months; "
        "required: the model takes no missing value",
    }
    assert schema["properties"]["plan"]["enum"] == ["basic", "pro", None]
    assert schema["properties"]["note"]["type"] == ["string", "null"]
    assert tool.title == "Customer churn" and "1 (Leaves)" in tool.description
    output = tool.output_schema["properties"]
    assert output["prediction"]["enum"] == [0, 1]
    assert list(output["probabilities"]["properties"]) == ["0", "1"]
    answer = tools.result(info, card, 1, [0.25, 0.75])
    assert answer == {"prediction": 1, "label": "Leaves", "probabilities": {"0": 0.25, "1": 0.75}}


# -- the protocol's edges, on the app -------------------------------------------------------


@pytest.fixture
def app_client() -> Any:
    return jobs_client()


def rpc(method: str, params: dict[str, Any] | None = None, request_id: Any = 1) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def modern(
    method: str, params: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """A 2026-07-28 request: the version in the envelope and in the headers."""
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    headers = {"MCP-Protocol-Version": MODERN, "Mcp-Method": method}
    if params and "name" in params:
        headers["Mcp-Name"] = params["name"]
    return rpc(method, {**(params or {}), "_meta": meta}), headers


def test_handshake_negotiates_a_version_and_lists_and_calls_the_tool(app_client: Any) -> None:
    init = app_client.post(
        "/mcp",
        json=rpc("initialize", {"protocolVersion": "2025-06-18", "capabilities": {}}),
    )
    assert init.status_code == 200 and init.json["result"]["protocolVersion"] == "2025-06-18"
    assert init.json["result"]["capabilities"] == {"tools": {"listChanged": False}}
    newer = app_client.post("/mcp", json=rpc("initialize", {"protocolVersion": "2099-01-01"}))
    assert newer.json["result"]["protocolVersion"] == HANDSHAKE  # the newest it speaks
    note = app_client.post("/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert note.status_code == 202 and note.data == b""
    headers = {"MCP-Protocol-Version": "2025-06-18"}
    listed = app_client.post("/mcp", json=rpc("tools/list"), headers=headers).json["result"]
    assert [t["name"] for t in listed["tools"]] == ["chaos"] and "resultType" not in listed
    called = app_client.post(
        "/mcp", json=rpc("tools/call", {"name": "chaos", "arguments": {"a": 1, "b": 2}})
    ).json["result"]
    assert called["structuredContent"] == {"prediction": 3.0} and "isError" not in called
    refused = app_client.post(
        "/mcp", json=rpc("tools/call", {"name": "chaos", "arguments": {"a": -1, "b": 2}})
    ).json["result"]
    assert refused["isError"] is True and "a must not be -1" in refused["content"][0]["text"]
    stray = app_client.post(
        "/mcp", json=rpc("tools/call", {"name": "chaos", "arguments": {"a": 1, "b": 2, "c": 3}})
    ).json["result"]
    assert stray["isError"] is True and "'c'" in stray["content"][0]["text"]


def test_the_2026_envelope_is_checked_against_the_headers(app_client: Any) -> None:
    body, headers = modern("server/discover")
    found = app_client.post("/mcp", json=body, headers=headers).json["result"]
    assert MODERN in found["supportedVersions"] and found["resultType"] == "complete"
    body, headers = modern("tools/call", {"name": "chaos", "arguments": {"a": 2, "b": 2}})
    called = app_client.post("/mcp", json=body, headers=headers).json["result"]
    assert called["structuredContent"] == {"prediction": 4.0}
    assert called["resultType"] == "complete"

    wrong = app_client.post("/mcp", json=body, headers={**headers, "Mcp-Name": "other"})
    assert wrong.status_code == 400 and wrong.json["error"]["code"] == -32020
    wrong = app_client.post(
        "/mcp", json=body, headers={**headers, "MCP-Protocol-Version": HANDSHAKE}
    )
    assert wrong.status_code == 400 and wrong.json["error"]["code"] == -32020
    body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = "2030-01-01"
    future = app_client.post(
        "/mcp", json=body, headers={**headers, "MCP-Protocol-Version": "2030-01-01"}
    )
    assert future.status_code == 400 and future.json["error"]["code"] == -32022
    assert future.json["error"]["data"]["requested"] == "2030-01-01"
    assert MODERN in future.json["error"]["data"]["supported"]
    bare = app_client.post("/mcp", json=rpc("tools/list"), headers={"MCP-Protocol-Version": MODERN})
    assert bare.status_code == 400 and bare.json["error"]["code"] == -32602


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        ("{not json", {}, 400, -32700),
        ([rpc("ping")], {}, 400, -32600),
        ({"jsonrpc": "1.0", "id": 1, "method": "ping"}, {}, 400, -32600),
        (rpc("ping", request_id=None), {}, 400, -32600),
        (rpc("resources/list"), {}, 404, -32601),
        (rpc("tools/call", {"name": "nope"}), {}, 400, -32602),
        (rpc("tools/call", {"name": "chaos", "arguments": [1, 2]}), {}, 400, -32602),
        (rpc("tools/list"), {"MCP-Protocol-Version": "1999-01-01"}, 400, -32600),
        (rpc("ping"), {"Origin": "http://evil.example"}, 403, -32600),
        (rpc("ping"), {"Origin": "null"}, 403, -32600),
        (rpc("ping"), {"Origin": "http://[::1"}, 403, -32600),
    ],
)
def test_protocol_errors_are_json_rpc_error_objects(
    app_client: Any, body: Any, headers: dict[str, str], status: int, code: int
) -> None:
    if isinstance(body, str):
        answer = app_client.post(
            "/mcp", data=body, headers={**headers, "Content-Type": "application/json"}
        )
    else:
        answer = app_client.post("/mcp", json=body, headers=headers)
    assert answer.status_code == status, answer.json
    assert answer.json["jsonrpc"] == "2.0" and answer.json["error"]["code"] == code
    assert answer.json["error"]["message"] and "Traceback" not in answer.text


@pytest.fixture(scope="module")
def iris_client(iris_forest: Path) -> Iterator[Any]:
    """A model with no values that stop its process (the chaos model has), for fuzzing."""
    client = local_client(ModelSpec(str(iris_forest)))
    yield client
    close_jobs(client)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.sampled_from(["iris_forest", "2.0", MODERN, HANDSHAKE, "petal width (cm)", 0.2]),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["a", "b", "name", "arguments", "_meta"]), inner, max_size=3
        )
    ),
    max_leaves=15,
)
meta = st.fixed_dictionaries(
    {
        "io.modelcontextprotocol/protocolVersion": st.sampled_from([MODERN, HANDSHAKE, "x"]),
        "io.modelcontextprotocol/clientCapabilities": json_values,
    }
)
messages = st.fixed_dictionaries(
    {"jsonrpc": st.sampled_from(["2.0", "2.0", "1.0"])},
    optional={
        "id": st.one_of(st.integers(), st.text(max_size=3), st.none(), st.booleans()),
        "method": st.one_of(
            st.sampled_from(["initialize", "ping", "server/discover", "tools/list", "tools/call"]),
            scalars,
        ),
        "params": st.one_of(
            json_values,
            st.fixed_dictionaries(
                {},
                optional={
                    "name": st.one_of(st.just("iris_forest"), scalars),
                    "arguments": json_values,
                    "_meta": st.one_of(meta, json_values),
                },
            ),
        ),
    },
)
version_headers = st.dictionaries(
    st.sampled_from(["MCP-Protocol-Version", "Mcp-Method", "Mcp-Name"]),
    st.sampled_from([MODERN, HANDSHAKE, "tools/call", "iris_forest", "x"]),
    max_size=3,
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(message=st.one_of(messages, json_values), headers=version_headers)
def test_any_message_gets_a_json_rpc_answer_never_a_server_error(
    iris_client: Any, message: Any, headers: dict[str, str]
) -> None:
    answer = iris_client.post("/mcp", json=message, headers=headers)
    assert answer.status_code < 500, answer.json
    if answer.status_code == 202:  # a notification, or a response from the client
        assert isinstance(message, dict) and ("id" not in message or "method" not in message)
        return
    body = answer.json
    assert body["jsonrpc"] == "2.0" and ("result" in body) != ("error" in body), body
    if "error" in body:
        assert body["error"]["message"] and isinstance(body["error"]["code"], int)


def test_origin_of_this_server_is_allowed_and_get_is_405(app_client: Any) -> None:
    for origin in ("http://localhost", "http://127.0.0.1:8000"):
        ok = app_client.post("/mcp", json=rpc("ping"), headers={"Origin": origin})
        assert ok.status_code == 200 and ok.json["result"] == {}, origin
    stream = app_client.get("/mcp", headers={"Accept": "text/event-stream"})
    assert stream.status_code == 405 and "POST" in stream.headers["Allow"].split(", ")


@pytest.mark.parametrize(
    ("allowed", "origin", "status"),
    [
        ((".example.org",), "https://ml.example.org", 200),
        ((".example.org",), "http://evil.example", 403),
        (("*",), "http://localhost", 200),  # the request's own origin
        (("*",), "http://intranet.example.org", 403),
    ],
)
def test_origin_names_the_server_answers_to(allowed: tuple[str], origin: str, status: int) -> None:
    client = jobs_client(allowed_hosts=allowed)
    answer = client.post("/mcp", json=rpc("ping"), headers={"Origin": origin})
    assert answer.status_code == status, answer.json


def test_tools_json_gives_the_mcp_tools_as_functions(app_client: Any) -> None:
    listed = app_client.post("/mcp", json=rpc("tools/list")).json["result"]["tools"]
    functions = app_client.get("/tools.json").json
    assert [f["type"] for f in functions] == ["function"] * len(listed)
    assert [
        (f["function"]["name"], f["function"]["description"], f["function"]["parameters"])
        for f in functions
    ] == [(t["name"], t["description"], t["inputSchema"]) for t in listed]


# -- the official SDK's client against real servers -----------------------------------------


@contextlib.asynccontextmanager
async def connect(url: str, token: str = "", mode: str = "auto") -> AsyncIterator[Any]:
    """The SDK's client on ``url``/mcp, over an HTTP client sending ``token`` (closed after)."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        transport = streamable_http_client(f"{url}/mcp", http_client=http)
        async with Client(transport, mode=mode) as client:
            yield client


def run(work: Callable[[], Awaitable[Any]], seconds: float = 60) -> Any:
    async def bounded() -> Any:
        with anyio.fail_after(seconds):
            return await work()

    return anyio.run(bounded)


def listed_tools(url: str, token: str = "", mode: str = "auto") -> dict[str, Any]:
    async def work() -> dict[str, Any]:
        async with connect(url, token, mode) as client:
            return {t.name: t for t in (await client.list_tools()).tools}

    result: dict[str, Any] = run(work)
    return result


def call(
    url: str, name: str, arguments: dict[str, Any], token: str = "", mode: str = "auto"
) -> Any:
    async def work() -> Any:
        async with connect(url, token, mode) as client:
            return await client.call_tool(name, arguments)

    return run(work)


@pytest.fixture(scope="module")
def iris_folder(tmp_path_factory: pytest.TempPathFactory, iris_forest: Path) -> Path:
    folder = tmp_path_factory.mktemp("mcp")
    shutil.copyfile(iris_forest, folder / "iris.joblib")
    (folder / "iris.toml").write_text(IRIS_CARD, encoding="utf-8")
    return folder


@pytest.mark.server
@pytest.mark.spawn
@pytest.mark.timeout(180)
@pytest.mark.parametrize("mode", ["auto", "legacy"])  # 2026-07-28's envelope; the handshake
def test_an_assistant_lists_and_calls_a_single_model(
    iris_folder: Path, tmp_path: Path, mode: str
) -> None:
    model = joblib.load(iris_folder / "iris.joblib")
    frame = pd.DataFrame([IRIS_ROW])
    with running_server([str(iris_folder / "iris.joblib")], cwd=tmp_path) as server:
        found = listed_tools(server.url, mode=mode)
        assert list(found) == ["iris"]
        tool = found["iris"]
        assert tool.title == "Iris species" and "Which iris" in (tool.description or "")
        petal = tool.input_schema["properties"]["petal length (cm)"]
        assert petal["title"] == "Petal length" and "From the base" in petal["description"]
        assert set(tool.output_schema["properties"]["probabilities"]["properties"]) == set(
            model.classes_
        )

        answer = call(server.url, "iris", IRIS_ROW, mode=mode)
        assert not answer.is_error
        expected = model.predict(frame)[0]
        assert answer.structured_content["prediction"] == expected
        probabilities = answer.structured_content["probabilities"]
        for label, chance in zip(model.classes_, model.predict_proba(frame)[0], strict=True):
            assert probabilities[label] == pytest.approx(chance, abs=1e-12)

        refused = call(server.url, "iris", {**IRIS_ROW, "sepal width (cm)": "wide"}, mode=mode)
        assert refused.is_error
        assert "sepal width (cm)" in refused.content[0].text

        first = dict(zip(IRIS_ROW, iris_frame()[0].iloc[0], strict=True))
        setosa = call(server.url, "iris", first, mode=mode)
        assert setosa.structured_content["label"] == "Setosa (bristle-pointed iris)"

        functions = requests.get(f"{server.url}/tools.json", timeout=10).json()
        assert [f["function"]["parameters"] for f in functions] == [tool.input_schema]


@pytest.mark.server
@pytest.mark.spawn
@pytest.mark.timeout(180)
def test_with_a_token_mcp_needs_it(iris_folder: Path, tmp_path: Path) -> None:
    token = "s3cret-token-for-mcp"
    with running_server(
        [str(iris_folder / "iris.joblib"), "--token", token], cwd=tmp_path
    ) as server:
        assert list(listed_tools(server.url, token)) == ["iris"]
        assert call(server.url, "iris", IRIS_ROW, token).structured_content["prediction"]
        for wrong, said in (("", "needs a token"), ("not-the-token", "is not this server's")):
            with pytest.raises(Exception) as refused:  # the SDK's error, maybe in a group
                listed_tools(server.url, wrong)
            assert said in messages(refused.value)  # the server's own words reach the client
        plain = requests.post(f"{server.url}/mcp", json=rpc("tools/list"), timeout=10)
        assert plain.status_code == 401 and "Bearer" in plain.headers["WWW-Authenticate"]
        assert plain.json()["error"]["data"] == {"status": 401, "code": "unauthorized"}
        # a tool call may be as large as a prediction (max_body_mb), past the 64 KB of the
        # routes that take no body (issue 28's limits, checked by waitress's gate)
        note = "x" * 200_000
        big = rpc("tools/call", {"name": "iris", "arguments": {**IRIS_ROW, "note": note}})
        auth = {"Authorization": f"Bearer {token}"}
        answer = requests.post(f"{server.url}/mcp", json=big, headers=auth, timeout=30)
        assert answer.status_code == 200, answer.text[:500]
        result = answer.json()["result"]
        assert result["isError"] is True and "'note'" in result["content"][0]["text"]
        assert requests.get(f"{server.url}/tools.json", timeout=10).status_code == 401


@pytest.mark.server
@pytest.mark.spawn
@pytest.mark.timeout(240)
def test_a_folders_tools_follow_the_folder(iris_folder: Path, tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copyfile(iris_folder / "iris.joblib", folder / "iris.joblib")
    constant_model(folder / "sales 2024.joblib", 7.0)
    with running_server([str(folder), "--watch-seconds", "0.5"], cwd=tmp_path) as server:
        url = server.url
        assert sorted(listed_tools(url)) == ["iris", "sales_2024"]
        assert call(url, "sales_2024", {"a": 1, "b": 2}).structured_content == {"prediction": 7.0}
        assert call(url, "iris", IRIS_ROW).structured_content["prediction"] == "versicolor"

        # swapped meanwhile: the next call answers from the new version
        constant_model(tmp_path / "next.tmp", 8.0)
        os.replace(tmp_path / "next.tmp", folder / "sales 2024.joblib")
        wait_until(
            lambda: (
                call(url, "sales_2024", {"a": 1, "b": 2}).structured_content["prediction"] == 8.0
            ),
            60,
            0.3,
        )
        # a model added appears, a model removed disappears
        constant_model(tmp_path / "added.tmp", 1.0)
        os.replace(tmp_path / "added.tmp", folder / "added.joblib")
        wait_until(lambda: "added" in listed_tools(url), 60, 0.3)
        (folder / "iris.joblib").unlink()
        wait_until(lambda: "iris" not in listed_tools(url), 60, 0.3)
        assert sorted(listed_tools(url, mode="legacy")) == ["added", "sales_2024"]
        with pytest.raises(Exception) as gone:  # the SDK raises a JSON-RPC error
            call(url, "iris", IRIS_ROW)
        assert "unknown tool 'iris'; the tools are: added, sales_2024" in messages(gone.value)


def messages(error: BaseException) -> str:
    """What an error says, with those of the errors an exception group gathered."""
    if isinstance(error, BaseExceptionGroup):
        return " | ".join(messages(e) for e in error.exceptions)
    return str(error)
