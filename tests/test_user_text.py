"""User-facing text describes winserve, not its issue tracker (a new user's trial: "(issue 26)"
in the /api page's endpoint table and in /openapi.json). Code comments and docstrings may
cite issues; what a user reads may not: the pages and documents served, every string literal
of the package that is not a docstring (messages, help, files written), and the templates
outside their {# comments #}."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from flask.testing import FlaskClient

import winserve
from tests.helpers import local_client
from winserve.model_info import ModelSpec

pytestmark = pytest.mark.timeout(60)

ISSUE = re.compile(r"\b[Ii]ssues? #?\d+")
PACKAGE = Path(winserve.__file__).parent


def _issues(text: str) -> list[str]:
    return [text[max(0, m.start() - 60) : m.end()] for m in ISSUE.finditer(text)]


@pytest.mark.parametrize("token", ["", "s3cret-token-for-tests"])
def test_the_api_page_and_openapi_name_no_issue(iris_forest: Path, token: str) -> None:
    client: FlaskClient = local_client(ModelSpec(str(iris_forest)), token=token)
    who = {"Authorization": f"Bearer {token}"} if token else {}
    for path in ("/api", "/openapi.json", "/", "/health", "/v2"):
        answer = client.get(path, headers=who)
        assert answer.status_code == 200, (path, answer.status_code)
        assert _issues(answer.get_data(as_text=True)) == [], path


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        kinds = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        if isinstance(node, kinds) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def test_no_string_a_user_reads_cites_an_issue() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docs
                and ISSUE.search(node.value)
            ):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {node.value[:80]!r}")
    for path in sorted(PACKAGE.rglob("*.html")):
        text = re.sub(r"\{#.*?#\}", "", path.read_text(encoding="utf-8"), flags=re.S)
        found += [f"{path.relative_to(PACKAGE)}: {hit!r}" for hit in _issues(text)]
    assert found == []
