"""Copy-paste examples for the API page, written for the model being served: curl,
PowerShell and Python ``requests``, in winserve's own format, MLflow's and the OIP's; and
a Power Query recipe for Excel (``powerquery.py``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from winserve.card import ModelCard
from winserve.model_info import ModelInfo
from winserve.protocols import oip
from winserve.web import powerquery
from winserve.web.openapi import document

EXCEL = "Excel (Power Query)"
JOBS = "Score a whole file (CSV or .xlsx)"


@dataclass(frozen=True)
class Example:
    protocol: str
    language: str
    code: str


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    summary: str
    tag: str


def example_row(info: ModelInfo, card: ModelCard) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for feature in info.features:
        if feature.name in card.example:
            row[feature.name] = card.example[feature.name]
        elif feature.categories:
            row[feature.name] = feature.categories[0]
        elif feature.kind == "bool":
            row[feature.name] = False
        elif feature.kind == "datetime":
            row[feature.name] = "2024-03-01T12:30:00"
        else:
            row[feature.name] = 1.0 if feature.kind == "number" else "some text"
    return row


def _powershell(url: str, body: Any, token: bool) -> str:
    text = json.dumps(body).replace("'", "''")
    headers = ' -Headers @{ Authorization = "Bearer $env:WINSERVE_TOKEN" }' if token else ""
    return (
        f"$body = '{text}'\n"
        f'Invoke-RestMethod -Method Post -Uri "{url}"{headers} `\n'
        '    -ContentType "application/json" -Body $body'
    )


def _curl(url: str, body: Any, token: bool) -> str:
    auth = ' -H "Authorization: Bearer $WINSERVE_TOKEN"' if token else ""
    text = json.dumps(body).replace("'", "'\\''")
    return f'curl -X POST "{url}" -H "Content-Type: application/json"{auth} \\\n     -d \'{text}\''


def _python(url: str, body: Any, token: bool, read: str) -> str:
    auth = (
        '\nheaders = {"Authorization": "Bearer " + os.environ["WINSERVE_TOKEN"]}' if token else ""
    )
    imports = "import os\n\nimport requests" if token else "import requests"
    call = "requests.post(url, json=body, timeout=30" + (", headers=headers)" if token else ")")
    return (
        f"{imports}\n\nurl = {url!r}\nbody = {json.dumps(body, indent=4)}{auth}\n"
        f"answer = {call}\nanswer.raise_for_status()\nprint({read})"
    )


def _jobs_curl(url: str, token: bool) -> str:
    """Upload, wait, download, with curl and a POSIX shell only (no jq): the answer's URLs
    are picked out with sed (issue 27)."""
    who = '"Authorization: Bearer $WINSERVE_TOKEN"' if token else '"X-Winserve-Client: 1"'
    url_of = 'sed -n \'s/.*"%s": *"\\([^"]*\\)".*/\\1/p\''
    return (
        f'job=$(curl -s -X POST "{url}" -H {who} -F "file=@rows.csv")\n'
        f'status=$(printf %s "$job" | {url_of % "status_url"})\n'
        f'result=$(printf %s "$job" | {url_of % "result_url"})\n'
        f'until curl -s "$status" -H {who} | grep -Eq \'"state": *"(done|failed)"\'; '
        "do sleep 2; done\n"
        f'curl -s -H {who} -o rows-scored.csv "$result"  # a failed job: see $status'
    )


def _jobs_powershell(url: str, token: bool) -> str:
    who = (
        '@{ Authorization = "Bearer $env:WINSERVE_TOKEN" }'
        if token
        else '@{ "X-Winserve-Client" = "1" }'
    )
    return (
        f"$who = {who}\n"
        f'$job = Invoke-RestMethod -Method Post -Uri "{url}" -Headers $who `\n'
        '    -Form @{ file = Get-Item "rows.csv" }   # PowerShell 7\n'
        "do { Start-Sleep 2; $s = Invoke-RestMethod $job.status_url -Headers $who }\n"
        'while ($s.state -in "queued", "running")\n'
        'Invoke-WebRequest $job.result_url -Headers $who -OutFile "rows-scored.csv"'
    )


def _jobs_python(url: str, token: bool) -> str:
    if token:
        imports = "import os\nimport time\n\nimport requests"
        who = '{"Authorization": "Bearer " + os.environ["WINSERVE_TOKEN"]}'
    else:
        imports, who = "import time\n\nimport requests", '{"X-Winserve-Client": "1"}'
    return (
        f"{imports}\n\nwho = {who}\n"
        'with open("rows.csv", "rb") as rows:\n'
        f'    job = requests.post({url!r}, files={{"file": rows}}, headers=who, timeout=60)\n'
        "job.raise_for_status()\n"
        "links = job.json()  # id, status_url, result_url\n"
        "while True:\n"
        '    status = requests.get(links["status_url"], headers=who, timeout=30).json()\n'
        '    if status["state"] in ("done", "failed"):\n'
        "        break\n"
        "    time.sleep(2)\n"
        'if status["state"] == "failed":\n'
        '    raise SystemExit(status["error"])\n'
        'result = requests.get(links["result_url"], headers=who, timeout=60)\n'
        "result.raise_for_status()\n"
        'with open("rows-scored.csv", "wb") as scored:\n'
        "    scored.write(result.content)"
    )


def _oip_body(info: ModelInfo, row: dict[str, Any]) -> dict[str, Any]:
    if info.all_numeric:
        values = [row[f.name] for f in info.features]
        inputs = [
            {"name": "input-0", "shape": [1, len(values)], "datatype": "FP64", "data": [values]}
        ]
    else:
        inputs = [
            {
                "name": f.name,
                "shape": [1],
                "datatype": oip.input_datatype(f.kind),
                "data": [row[f.name]],
            }
            for f in info.features
        ]
    outputs = [{"name": o} for o in info.outputs]
    return {"inputs": inputs, "outputs": outputs}


def api_examples(
    info: ModelInfo, card: ModelCard, base: str, token: bool, model_base: str = ""
) -> list[Example]:
    """``model_base``: ``/models/<name>`` for a model of a folder (its native and MLflow
    routes live there; its OIP ones under /v2/models/<name> as always)."""
    row = example_row(info, card)
    proba = "?proba=true" if info.has_proba else ""
    calls = [
        ("winserve", f"{base}{model_base}/predict{proba}", [row], 'answer.json()["predictions"]'),
        (
            "MLflow",
            f"{base}{model_base}/invocations",
            {"dataframe_records": [row]},
            'answer.json()["predictions"]',
        ),
        (
            "Open Inference Protocol v2",
            f"{base}/v2/models/{quote(info.name)}/infer",
            _oip_body(info, row),
            'answer.json()["outputs"]',
        ),
    ]
    examples = []
    for protocol, url, body, read in calls:
        examples += [
            Example(protocol, "curl", _curl(url, body, token)),
            Example(protocol, "PowerShell", _powershell(url, body, token)),
            Example(protocol, "Python", _python(url, body, token, read)),
        ]
    # a whole file for a program, as the page scores it (issue 27)
    jobs = f"{base}{model_base}/jobs"
    examples += [
        Example(JOBS, "curl", _jobs_curl(jobs, token)),
        Example(JOBS, "PowerShell", _jobs_powershell(jobs, token)),
        Example(JOBS, "Python", _jobs_python(jobs, token)),
    ]
    # Excel without a page (issue 27): the same /predict, from a table of the open workbook
    excel = powerquery.snippet(info, f"{base}{model_base}/predict", token)
    return [*examples, Example(EXCEL, "Power Query (M)", excel)]


def openapi_outline(info: ModelInfo | None, base: str, token: bool) -> list[Endpoint]:
    """The OpenAPI document as a readable list (the page links the JSON itself)."""
    outline = []
    for path, operations in document(info, base, token)["paths"].items():
        for method, operation in operations.items():
            tag = (operation.get("tags") or [""])[0]
            outline.append(Endpoint(method.upper(), path, operation.get("summary", ""), tag))
    return outline
