"""The console's ``access`` line (issue 26, a new user's finding): the banner says which tokens
are in force, so the person who started winserve knows why a caller is asked for one.

``banner.access`` on real tokens files written by ``winserve token add``; the banners with it;
and a real server's console (the line is where the serving block is printed).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import running_server
from winserve import banner, tokens
from winserve.dataplane import HealthSummary
from winserve.settings import Settings

pytestmark = pytest.mark.timeout(120)


def test_no_token_says_anyone_who_can_open_the_address(tmp_path: Path) -> None:
    said = banner.access(Settings(tokens_file=tmp_path / "tokens.toml"))
    assert said.startswith("no token: anyone who can open the address")
    assert "winserve token add NAME" in said


def test_named_tokens_are_counted_by_role_with_their_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    for name, role in (("alice", tokens.OWNER), ("bob", tokens.USER), ("carol", tokens.USER)):
        tokens.add(path, name, role)
    said = banner.access(Settings(tokens_file=path))
    assert said == f"3 named tokens (1 owner, 2 users) in {path}; every caller needs a token"
    tokens.remove(path, "alice")
    tokens.remove(path, "carol")
    one = banner.access(Settings(tokens_file=path, token="a-long-token"))
    assert one == (
        f"1 named token (1 user) in {path} and the token setting (an owner); "
        "every caller needs a token"
    )


def test_the_token_setting_alone(tmp_path: Path) -> None:
    said = banner.access(Settings(tokens_file=tmp_path / "none.toml", token="a-long-token"))
    assert said == "the token setting (an owner); every caller needs a token"


def test_a_tokens_file_broken_since_the_start_says_so(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    path.write_text("alice = 3\n")
    said = banner.access(Settings(tokens_file=path))
    assert "tokens file" in said and "alice" in said


def test_both_banners_carry_the_line() -> None:
    summary = HealthSummary(status="ready", starting=False, models=(), folder="/srv/models")
    text = banner.folder(summary, "127.0.0.1", 8000, "3 named tokens (…)")
    assert "  access    3 named tokens (…)" in text.splitlines()
    assert "access" not in banner.folder(summary, "127.0.0.1", 8000)


@pytest.mark.server
@pytest.mark.spawn
def test_a_served_models_console_says_its_named_tokens(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    tokens.add(path, "alice", tokens.OWNER)
    tokens.add(path, "bob", tokens.USER)
    with running_server(
        ["--factory", "tests.models:plain", "--tokens-file", str(path)], cwd=tmp_path
    ) as server:
        lines = [x for x in server.lines if x.startswith("  access")]
    assert lines == [
        f"  access    2 named tokens (1 owner, 1 user) in {path}; every caller needs a token"
    ]
