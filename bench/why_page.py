"""Time of the page's why and what-if (issue 25): ``python bench/why_page.py [--repeat N]``.

The forests of ``bench/explain.py`` (200 trees, 20 inputs, 1,000 reference rows) served by a
real server; one row posted as the page's form does: the answer alone (what the page's script
asks first, ``later=1``), the explanation and what-if charts it then fetches (``why-panel``),
the what-if charts redrawn after an edit (``whatif-panel``), and the form post without the
script (answer, explanation and charts in one page). Prints a markdown table: median and worst
seconds of ``--repeat`` runs, and the load average when the case started.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.explain import forests  # noqa: E402
from tests.helpers import csrf_token, running_server  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    print("| model | request | median s | worst s | load avg |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for name, (path, data) in forests(Path(folder)).items():
            row = data.iloc[0]
            with running_server([str(path)], cwd=Path(folder)) as server:
                session = requests.Session()
                page = session.get(server.url + "/", timeout=60)
                form = {f"f{i}": f"{value!r}" for i, value in enumerate(row.tolist())}
                form["csrf_token"] = csrf_token(page.text)
                cases = [
                    ("answer alone (later=1)", "/", {**form, "later": "1"}, "why-note"),
                    ("why-panel (explanation + what-if)", "/why-panel", form, "why-table"),
                    ("whatif-panel (after an edit)", "/whatif-panel", form, "whatif-chart"),
                    ("form post without the script", "/", form, "why-table"),
                ]
                for label, where, body, marker in cases:
                    load = os.getloadavg()[0]
                    seconds = []
                    for _ in range(args.repeat):
                        began = time.perf_counter()
                        answer = session.post(
                            server.url + where,
                            data=body,
                            headers={"Origin": server.url},
                            timeout=120,
                        )
                        seconds.append(time.perf_counter() - began)
                        assert answer.status_code == 200 and marker in answer.text, answer.text
                    print(
                        f"| {name} | {label} | {statistics.median(seconds):.3f} | "
                        f"{max(seconds):.3f} | {load:.2f} |"
                    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
