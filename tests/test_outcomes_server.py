"""Outcomes and accuracy through a real server (issue 26): ``python -m winserve`` on a free
port, a spawned model host, the prediction log's writer process and its SQLite file.
Predictions are made and their request ids kept; outcomes are uploaded by request id (the
monitor page's form, and a program's multipart upload) and by an input column (a program's
text/csv body); ``/monitor.json`` and the page show the accuracy computed here by hand."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import joblib
import pytest
import requests
from sklearn.metrics import f1_score

from tests.helpers import csrf_token, job_ended, records, running_server, wait_until
from tests.model_files import customer_model, customers

pytestmark = [pytest.mark.server, pytest.mark.spawn, pytest.mark.timeout(240)]

TIMEOUT = 30
PROGRAM = {"X-Winserve-Client": "tests"}
ALONE = 30  # requests of one row each, joined by their request id
TOGETHER = 6  # rows of one request, joined by customer_id


def test_outcomes_by_request_id_and_by_an_input_give_the_accuracy(tmp_path: Path) -> None:
    joblib.dump(customer_model(), tmp_path / "churn.joblib")
    log = tmp_path / "log.sqlite"
    args = [str(tmp_path / "churn.joblib"), "--log-path", str(log), "--max-body-mb", "0.05"]
    with running_server(args, cwd=tmp_path) as server:
        url = server.url
        alone = customers(ALONE, 5)
        ids: list[str] = []
        said: list[int] = []
        for row in records(alone):
            answer = requests.post(f"{url}/predict", json=[row], timeout=TIMEOUT)
            assert answer.status_code == 200, answer.text
            ids.append(answer.headers["X-Request-Id"])
            said.append(answer.json()["predictions"][0])
        together = customers(TOGETHER, 6)
        together["customer_id"] += 5000
        answer = requests.post(f"{url}/predict", json=records(together), timeout=TIMEOUT)
        assert answer.status_code == 200, answer.text
        said_together: list[int] = answer.json()["predictions"]
        several = answer.headers["X-Request-Id"]

        def monitored() -> dict[str, Any]:
            found = requests.get(f"{url}/monitor.json", timeout=TIMEOUT)
            assert found.status_code == 200, found.text
            body: dict[str, Any] = found.json()
            return body

        # the writer commits about every half second, then tells the web process its count
        wait_until(lambda: monitored()["log_status"]["written"] == ALONE + 1, 30)
        before = monitored()["accuracy"]
        assert before["outcomes"] == 0 and "request id" in before["hint"]

        # the truth: the model right on all but every third of the single rows
        truth = [p if i % 3 else 1 - p for i, p in enumerate(said)]
        half = ALONE // 2
        # the first half by the monitor page's own form (a person, with the page's CSRF value)
        with requests.Session() as person:
            page = person.get(f"{url}/monitor", timeout=TIMEOUT)
            assert page.status_code == 200 and 'id="outcomes-form"' in page.text
            lines = ["Request ID,outcome"] + [
                f"{r},{t}" for r, t in zip(ids[:half], truth[:half], strict=True)
            ]
            posted = person.post(
                f"{url}/outcomes",
                data={"csrf_token": csrf_token(page.text), "outcome": "outcome"},
                files={"file": ("outcomes.csv", "\n".join(lines).encode(), "text/csv")},
                allow_redirects=False,
                timeout=TIMEOUT,
            )
            assert posted.status_code == 303, posted.text
            assert posted.headers["Location"].endswith("/monitor#accuracy")
        # the second half by a program's multipart upload, with an id winserve never gave
        lines = ["request_id,outcome"] + [
            f"{r},{t}" for r, t in zip(ids[half:], truth[half:], strict=True)
        ]
        lines.append("0123456789abcdef,1")
        uploaded = requests.post(
            f"{url}/outcomes",
            files={"file": ("outcomes.csv", "\n".join(lines).encode(), "text/csv")},
            headers=PROGRAM,
            timeout=TIMEOUT,
        )
        assert uploaded.status_code == 200, uploaded.text
        assert uploaded.json()["matched"] == ALONE - half
        assert uploaded.json()["unmatched_examples"] == ["0123456789abcdef"]

        # the rows of one request by the input the model drops, customer_id; the last row
        # also by its request id and row (<id>-<n>): joined once per key, so twice
        truth_together = [1 - p if i == 0 else p for i, p in enumerate(said_together)]
        body = "customer_id,churned\n" + "".join(
            f"{c}.0,{t}\n" for c, t in zip(together["customer_id"], truth_together, strict=True)
        )
        by_key = requests.post(
            f"{url}/outcomes",
            params={"key": "customer_id", "outcome": "churned"},
            data=body.encode(),
            headers={**PROGRAM, "Content-Type": "text/csv"},
            timeout=TIMEOUT,
        )
        assert by_key.status_code == 200, by_key.text
        assert (by_key.json()["matched"], by_key.json()["unmatched"]) == (TOGETHER, 0)
        last = f"{several}-{TOGETHER}"
        by_row = requests.post(
            f"{url}/outcomes",
            data=f"request id,outcome\n{last},{truth_together[-1]}\n".encode(),
            headers={**PROGRAM, "Content-Type": "text/csv"},
            timeout=TIMEOUT,
        )
        assert by_row.status_code == 200 and by_row.json()["matched"] == 1, by_row.text

        # by hand: every pair joined
        labels = truth + truth_together + [truth_together[-1]]
        predicted = said + said_together + [said_together[-1]]
        right = sum(t == p for t, p in zip(labels, predicted, strict=True))
        found = monitored()["accuracy"]
        assert found["kind"] == "classifier"
        assert (found["outcomes"], found["joined_rows"]) == (ALONE + 1 + TOGETHER + 1, len(labels))
        assert (found["unmatched"], found["unmatched_examples"]) == (1, ["0123456789abcdef"])
        sha = requests.get(f"{url}/model", timeout=TIMEOUT).json()["sha256"]
        assert found["serving"] == sha[:12]
        week, whole = found["scores"]  # one week, one version
        assert whole["week"] == "all" and whole["version"] == sha[:12]
        assert week["rows"] == whole["rows"] == len(labels)
        assert whole["accuracy"] == pytest.approx(right / len(labels), abs=1e-6)
        assert whole["macro_f1"] == pytest.approx(f1_score(labels, predicted, average="macro"))

        page = requests.get(f"{url}/monitor", timeout=TIMEOUT)
        assert page.status_code == 200
        assert f"{100 * right / len(labels):.1f} %" in page.text
        assert f"{sha[:12]} (serving)" in page.text
        assert 'id="accuracy-chart"' in page.text  # one week, one version: a dot
        assert "1 outcome matched no logged prediction (for example 0123456789abcdef)" in page.text

        # re-uploading an id replaces its outcome: the first row now right
        fixed = requests.post(
            f"{url}/outcomes",
            data=f"request id,outcome\n{ids[0]},{said[0]}\n".encode(),
            headers={**PROGRAM, "Content-Type": "text/csv"},
            timeout=TIMEOUT,
        )
        assert fixed.status_code == 200, fixed.text
        again = monitored()["accuracy"]
        assert again["outcomes"] == found["outcomes"]
        assert again["scores"][-1]["accuracy"] == pytest.approx((right + 1) / len(labels))

        # bad uploads: a 400 naming the problem, in the native shape; too big: 413
        missing = requests.post(
            f"{url}/outcomes",
            data=b"request id,truth\nabc,1\n",
            headers={**PROGRAM, "Content-Type": "text/csv"},
            timeout=TIMEOUT,
        )
        assert missing.status_code == 400
        assert missing.json()["error"]["message"].startswith(
            "the file has no column 'outcome' (its columns: 'request id', 'truth')"
        )
        big = b"request id,outcome\n" + b"".join(b"%016x,1\n" % i for i in range(4000))
        refused = requests.post(
            f"{url}/outcomes",
            data=big,
            headers={**PROGRAM, "Content-Type": "text/csv"},
            timeout=TIMEOUT,
        )
        assert refused.status_code == 413 and "max_body_mb" in refused.text
        # a person's bad file gets a page saying why
        with requests.Session() as person:
            page = person.get(f"{url}/monitor", timeout=TIMEOUT)
            posted = person.post(
                f"{url}/outcomes",
                data={"csrf_token": csrf_token(page.text)},
                files={"file": ("o.csv", b"id,outcome\n1,1\n", "text/csv")},
                timeout=TIMEOUT,
            )
            assert posted.status_code == 400 and "text/html" in posted.headers["Content-Type"]
            assert "The outcomes were not stored" in posted.text
            assert "no &#39;request id&#39; column" in posted.text


def test_a_colleagues_user_token_cannot_upload_outcomes_an_owners_can(tmp_path: Path) -> None:
    from winserve import tokens

    joblib.dump(customer_model(), tmp_path / "churn.joblib")
    book = tmp_path / "tokens.toml"
    alice = tokens.add(book, "alice")  # a colleague: predicts and scores
    bob = tokens.add(book, "bob", tokens.OWNER)
    args = [str(tmp_path / "churn.joblib"), "--log-path", str(tmp_path / "log.sqlite")]
    with running_server([*args, "--tokens-file", str(book)], cwd=tmp_path) as server:
        body = b"request id,outcome\n0123456789abcdef,1\n"

        def upload(token: str) -> requests.Response:
            return requests.post(
                f"{server.url}/outcomes",
                data=body,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "text/csv"},
                timeout=TIMEOUT,
            )

        refused = upload(alice)
        assert refused.status_code == 403, refused.text
        assert "'alice' is a user token" in refused.json()["error"]["message"]
        accepted = upload(bob)
        assert accepted.status_code == 200, accepted.text
        assert (accepted.json()["stored"], accepted.json()["unmatched"]) == (1, 1)
        nobody = requests.post(
            f"{server.url}/outcomes",
            data=body,
            headers={"Content-Type": "text/csv"},
            timeout=TIMEOUT,
        )
        assert nobody.status_code == 401


def test_a_scored_file_with_an_outcome_column_added_gives_the_accuracy(tmp_path: Path) -> None:
    """The owner's round trip: a CSV scored on the page, the file that came back with an
    'outcome' column added, uploaded as it is: its 'request id' cells join the job's rows
    the log kept (all of them: a small file)."""
    joblib.dump(customer_model(), tmp_path / "churn.joblib")
    args = [str(tmp_path / "churn.joblib"), "--log-path", str(tmp_path / "log.sqlite")]
    rows = 40
    with running_server(args, cwd=tmp_path) as server:
        url = server.url
        text = customers(rows, 9).to_csv(index=False)
        begun = requests.post(
            f"{url}/jobs",
            files={"file": ("customers.csv", text.encode(), "text/csv")},
            headers=PROGRAM,
            timeout=TIMEOUT,
        )
        assert begun.status_code == 202, begun.text
        links = begun.json()
        assert job_ended(requests, links["status_url"])["state"] == "done"
        scored = requests.get(links["result_url"], timeout=TIMEOUT)
        table = list(csv.reader(io.StringIO(scored.content.decode("utf-8-sig"))))
        header, body = table[0], table[1:]
        assert header[-1] == "request id" and len(body) == rows
        at = header.index("prediction")
        # the truth: the model wrong on every fourth row
        truth = [r[at] if i % 4 else str(1 - int(r[at])) for i, r in enumerate(body)]
        out = io.StringIO()
        csv.writer(out).writerows(
            [[*header, "outcome"], *([*r, t] for r, t in zip(body, truth, strict=True))]
        )

        def logged() -> bool:
            found = requests.get(f"{url}/log.csv", timeout=TIMEOUT).text
            return body[0][-1].rpartition("-")[0] in found  # the job's entry, once written

        wait_until(logged, 30)
        uploaded = requests.post(
            f"{url}/outcomes",
            files={"file": ("customers-scored.csv", out.getvalue().encode(), "text/csv")},
            headers=PROGRAM,
            timeout=TIMEOUT,
        )
        assert uploaded.status_code == 200, uploaded.text
        assert (uploaded.json()["matched"], uploaded.json()["unmatched"]) == (rows, 0)
        found = requests.get(f"{url}/monitor.json", timeout=TIMEOUT).json()["accuracy"]
        assert found["joined_rows"] == rows
        assert found["scores"][-1]["accuracy"] == pytest.approx(0.75)

        # the same with a workbook: scored through /jobs, the outcome column added in its
        # scored sheet (the result also has an About sheet), uploaded as it came back
        import openpyxl

        sheet_in = io.BytesIO()
        book = openpyxl.Workbook()
        book.active.append(list(customers(rows, 10).columns))
        for values in customers(rows, 10).itertuples(index=False):
            book.active.append([float(v) for v in values])
        book.save(sheet_in)
        begun = requests.post(
            f"{url}/jobs",
            files={"file": ("customers.xlsx", sheet_in.getvalue())},
            headers=PROGRAM,
            timeout=TIMEOUT,
        )
        assert begun.status_code == 202, begun.text
        links = begun.json()
        assert job_ended(requests, links["status_url"])["state"] == "done"
        scored_book = openpyxl.load_workbook(
            io.BytesIO(requests.get(links["result_url"], timeout=TIMEOUT).content)
        )
        assert len(scored_book.sheetnames) == 2  # the scored sheet and About
        table_sheet = scored_book[scored_book.sheetnames[0]]
        titles = [c.value for c in table_sheet[1]]
        at, width = titles.index("prediction"), len(titles)
        table_sheet.cell(row=1, column=width + 1, value="outcome")
        right_too = 0
        for number in range(2, rows + 2):
            said_here = table_sheet.cell(row=number, column=at + 1).value
            truth_here = said_here if number % 2 else 1 - int(said_here)  # half wrong
            right_too += truth_here == said_here
            table_sheet.cell(row=number, column=width + 1, value=truth_here)
        out_book = io.BytesIO()
        scored_book.save(out_book)
        job_id = table_sheet.cell(row=2, column=width).value.rpartition("-")[0]
        wait_until(lambda: job_id in requests.get(f"{url}/log.csv", timeout=TIMEOUT).text, 30)
        uploaded = requests.post(
            f"{url}/outcomes",
            files={"file": ("customers-scored.xlsx", out_book.getvalue())},
            headers=PROGRAM,
            timeout=TIMEOUT,
        )
        assert uploaded.status_code == 200, uploaded.text
        assert (uploaded.json()["matched"], uploaded.json()["unmatched"]) == (rows, 0)
        found = requests.get(f"{url}/monitor.json", timeout=TIMEOUT).json()["accuracy"]
        assert found["joined_rows"] == 2 * rows
        assert found["scores"][-1]["accuracy"] == pytest.approx((30 + right_too) / (2 * rows))
