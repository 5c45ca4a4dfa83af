"""Named tokens (issue 26): the tokens file's format, its hashes, the book a server looks
tokens up in, and the ``winserve token`` command. No server: ``test_roles_server.py`` has one."""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from pathlib import Path

import pytest

from winserve import cli, settings, tokens
from winserve.errors import SettingsError


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["token", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_add_prints_the_token_once_and_keeps_only_a_salted_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sub" / "tokens.toml"
    code, out, err = _run(capsys, "--tokens-file", str(path), "add", "alice")
    token = out.strip()
    assert code == 0 and len(token) >= 40 and "shown only this once" in err
    text = path.read_text(encoding="utf-8")
    assert token not in text and "alice" in text
    (line,) = tokens.read(path)
    assert (line.name, line.role) == ("alice", tokens.USER)
    assert tokens.matches(token, line.hash) and not tokens.matches(token + "x", line.hash)
    _, salt, digest = line.hash.split(":")
    assert digest == hashlib.sha256(bytes.fromhex(salt) + token.encode()).hexdigest()
    if sys.platform != "win32":
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # the same token twice gets two different lines (the salt)
    assert tokens.hash_token(token) != tokens.hash_token(token)


def test_list_remove_and_the_owner_role(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "tokens.toml")
    _run(capsys, "--tokens-file", path, "add", "alice")
    _run(capsys, "--tokens-file", path, "add", "bob", "--owner")
    code, out, err = _run(capsys, "--tokens-file", path, "list")
    assert code == 0 and out.splitlines() == ["alice\tuser", "bob\towner"]
    assert f"2 named tokens in {path}" in err
    first = tokens.read(Path(path))[0].hash
    code, out, err = _run(capsys, "--tokens-file", path, "add", "alice")  # a new one for her
    assert code == 0 and "alice's earlier token no longer works" in err
    (again,) = [x for x in tokens.read(Path(path)) if x.name == "alice"]
    assert again.hash != first and tokens.matches(out.strip(), again.hash)
    assert _run(capsys, "--tokens-file", path, "remove", "alice")[0] == 0
    code, _, err = _run(capsys, "--tokens-file", path, "remove", "alice")
    assert code == 1 and "no token named 'alice'" in err
    assert [x.name for x in tokens.read(Path(path))] == ["bob"]


@pytest.mark.parametrize("name", ["local", "owner", "a b", "é", "x" * 65, ""])
def test_a_name_that_cannot_be_one_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    code, out, err = _run(capsys, "--tokens-file", str(tmp_path / "t.toml"), "add", name)
    assert code == 2 and out == "" and "cannot be a name" in err
    assert not (tmp_path / "t.toml").exists()


def test_the_command_finds_the_file_a_server_started_here_would_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WINSERVE_TOKENS_FILE", raising=False)
    (tmp_path / "winserve.toml").write_text('tokens_file = "team.toml"\n', encoding="utf-8")
    _run(capsys, "add", "carol")
    assert [x.name for x in tokens.read(tmp_path / "team.toml")] == ["carol"]
    loaded = settings.load({}, env={}, cwd=tmp_path)
    assert loaded.tokens_file == tmp_path / "team.toml"
    monkeypatch.setenv("WINSERVE_TOKENS_FILE", str(tmp_path / "env.toml"))
    _run(capsys, "add", "dave")
    assert [x.name for x in tokens.read(tmp_path / "env.toml")] == ["dave"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert settings.load({}, env={}, cwd=elsewhere).tokens_file == tokens.default_path()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("alice = ", "is not TOML"),
        ('alice = { role = "admin", hash = "sha256:' + "0" * 64 + '" }', "role must be"),
        ('alice = "md5:abc"', "the hash must be"),
        ('alice = { hash = "sha256:zz:' + "0" * 64 + '" }', "the hash must be"),
        ('local = "sha256:' + "0" * 64 + '"', "cannot be a name"),
        ('alice = { hash = "sha256:' + "0" * 64 + '", colour = "red" }', "unknown key 'colour'"),
        ("alice = 3", "expected a hash or a table"),
    ],
)
def test_a_broken_file_is_named_with_its_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "tokens.toml"
    path.write_text(text + "\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=problem):
        tokens.read(path)
    # a server does not start on it: one line, exit code 2 (cli), as any bad setting
    with pytest.raises(SettingsError, match=problem):
        settings.load({"tokens_file": str(path)}, env={}, cwd=tmp_path)


def test_a_hand_written_unsalted_line_and_a_bare_hash_are_user_tokens(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    digest = hashlib.sha256(b"erin's own long token").hexdigest()
    path.write_text(f'erin = "sha256:{digest}"\n', encoding="utf-8")
    book = tokens.TokenBook(path)
    assert book.required
    assert book.find("erin's own long token") == tokens.Caller("erin", tokens.USER)
    assert book.find("erin's own long toke") is None


def test_the_book_finds_each_caller_and_the_single_token_is_the_owner(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    alice = tokens.add(path, "alice")
    bob = tokens.add(path, "bob", tokens.OWNER)
    book = tokens.TokenBook(path, single="the single long token")
    assert book.find(alice) == tokens.Caller("alice", tokens.USER)
    assert book.find(bob) == tokens.Caller("bob", tokens.OWNER)
    assert book.find("the single long token") == tokens.SINGLE
    assert book.find("wrong") is None and book.find("") is None
    assert book.named("bob") == tokens.Caller("bob", tokens.OWNER)
    assert book.named("owner") == tokens.SINGLE and book.named("nobody") is None
    assert not tokens.TokenBook(tmp_path / "none.toml").required
    assert tokens.TokenBook(None, single="x" * 8).required
    assert not tokens.TokenBook(None).required


def test_a_known_token_costs_no_walk_of_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "tokens.toml"
    for n in range(20):
        tokens.add(path, f"name{n}")
    last = tokens.add(path, "last")
    book = tokens.TokenBook(path)
    walked: list[str] = []
    real = tokens.matches

    def spy(token: str, hashed: str) -> bool:
        walked.append(hashed)
        return real(token, hashed)

    monkeypatch.setattr(tokens, "matches", spy)
    assert book.find(last) == tokens.Caller("last", tokens.USER)
    assert len(walked) == 21  # found at the end of the file, once
    walked.clear()
    assert book.find(last) == tokens.Caller("last", tokens.USER)
    assert walked == []  # then by its HMAC
    assert book.find("wrong") is None and len(walked) == 21  # a wrong one is never cached


def test_add_and_remove_take_effect_on_a_running_book(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    alice = tokens.add(path, "alice")
    clock = [0.0]
    book = tokens.TokenBook(path, clock=lambda: clock[0])
    assert book.find(alice) is not None
    tokens.remove(path, "alice")
    bob = tokens.add(path, "bob")
    assert book.find(alice) is not None  # looked at at most once a second
    clock[0] += tokens.RECHECK_SECONDS
    assert book.find(alice) is None  # removed: the cache is emptied with the file's change
    assert book.named("alice") is None
    assert book.find(bob) == tokens.Caller("bob", tokens.USER)
    path.write_text("bob = \n", encoding="utf-8")  # broken while running: no one is named
    clock[0] += tokens.RECHECK_SECONDS
    assert book.find(bob) is None and book.required  # still required: decided at start


def test_the_callers_name_is_stored_in_the_logs_token_name(tmp_path: Path) -> None:
    import time

    from winserve.predlog import store
    from winserve.predlog.store import Entry

    conn = store.connect(tmp_path / "log.sqlite")
    try:
        base = (time.time(), "r", "m", 1, None, "/predict", "POST", "10.0.0.2", 1.0, 200, 1)
        entries = [Entry(*base, token_name=name) for name in ("alice", "local", "-")]
        assert store.write(conn, [*entries, Entry(*base)], keep_inputs=True) == 4
        stored = conn.execute("SELECT token_name, caller FROM requests ORDER BY id").fetchall()
    finally:
        conn.close()
    names = [name for name, caller in stored if caller == "10.0.0.2"]
    assert names == ["alice", "local", "-", None]  # None: an entry made without a caller


def test_named_tokens_alone_guard_the_server_and_the_page_says_so(tmp_path: Path) -> None:
    """In process (Flask's test client): a tokens file without the token setting; the API's
    examples send the token, the login takes a named one, and the roles hold."""
    from tests.helpers import jobs_client
    from winserve.model_info import ModelSpec

    path = tmp_path / "tokens.toml"
    alice, boss = tokens.add(path, "alice"), tokens.add(path, "boss", tokens.OWNER)
    client = jobs_client(ModelSpec(factory="tests.models:chaos"), tokens_file=path)
    assert client.get("/model").status_code == 401
    user = {"Authorization": f"Bearer {alice}"}
    owner = {"Authorization": f"Bearer {boss}"}
    assert client.post("/predict", json={"a": 1, "b": 2}, headers=user).status_code == 200
    refused = client.get("/monitor.json", headers=user)
    assert refused.status_code == 403 and refused.json["error"]["code"] == "forbidden"
    assert "'alice' is a user token" in refused.json["error"]["message"]
    assert client.get("/monitor.json", headers=owner).status_code == 200
    oip = client.post("/v2/repository/index", headers=user)
    assert oip.status_code == 403 and "owner" in oip.json["error"]  # OIP's own error shape
    api = client.get("/api", headers=user).get_data(as_text=True)
    assert "Authorization: Bearer $WINSERVE_TOKEN" in api
    document = client.get("/openapi.json", headers=user).json
    assert document["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
    login = client.post("/login", data={"token": boss, "next": "/monitor"})
    assert login.status_code == 303 and login.headers["Location"] == "/monitor"
    assert client.get("/monitor").status_code == 200  # boss's cookie: an owner's


def test_named_tokens_satisfy_require_token_on_lan(tmp_path: Path) -> None:
    argv = ["--host", "0.0.0.0", "--require-token-on-lan"]
    empty = str(tmp_path / "none.toml")
    with pytest.raises(SettingsError, match="winserve token add NAME"):
        settings.load(cli.parse([*argv, "--tokens-file", empty]), env={}, cwd=tmp_path)
    tokens.add(tmp_path / "team.toml", "alice")
    chosen = cli.parse([*argv, "--tokens-file", "team.toml"])
    assert settings.load(chosen, env={}, cwd=tmp_path).binds_lan
