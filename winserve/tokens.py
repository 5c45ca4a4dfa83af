"""Named callers (issue 26): the tokens file, its hashes, and which caller a token names.

::

    winserve token add alice [--owner] ──► a random token, printed once; the file gets the line
                                  alice = { role = "user", hash = "sha256:<salt>:<digest>" }
    a request's Bearer token or login ───► TokenBook.find(token) ──► Caller(name, role) | None
        the `token` setting: compared as it always was (the caller "owner", an owner)
        a line of the file: its salted hash; a token found is remembered under an HMAC of it
        (a key made at each start), so a known caller costs one HMAC, not a walk of the file
        the file is looked at (os.stat) at most once a second and read again when it changed:
        `token add` and `token remove` take effect on a running server, no restart

The file is TOML (read with ``tomllib``): one line per name; a value is a table with ``hash``
and ``role`` (``owner`` or ``user``, the default), or a bare hash string (a user). A hash is
``sha256:<salt hex>:<digest hex>``, the SHA-256 of the salt's bytes then the token's, or
``sha256:<digest hex>`` for a line written by hand (``printf %s TOKEN | sha256sum``).

Why a salted SHA-256 and not PBKDF2/scrypt: the tokens ``add`` makes are 256 random bits
(``secrets.token_urlsafe(32)``), so no one reverses a stolen hash by guessing, however fast the
hash. A slow hash defends a guessable password, which these are not, and it would make every
wrong token (a stranger may send ~100 a minute past the throttle, ``web/throttle.py``) cost one
slow hash per line of the file: a lever on the server's CPU. The salt keeps two equal tokens
from having equal lines.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import re
import secrets
import sys
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from winserve.errors import SettingsError

log = logging.getLogger("winserve.tokens")

OWNER = "owner"
USER = "user"
ROLES = (OWNER, USER)
# a name is a TOML bare key (letters, digits, _ and -), so it needs no quoting in the file,
# in a cookie or on a log line
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
SINGLE_NAME = "owner"  # who holds the `token` setting
LOCAL_NAME = "local"  # this computer, when no token is set
RESERVED = frozenset({SINGLE_NAME, LOCAL_NAME})
FILE_NAME = "tokens.toml"
RECHECK_SECONDS = 1.0  # how often a running server looks whether the file changed
HEADER = (
    "# winserve's named tokens: only a salted SHA-256 of each token is kept here.\n"
    "# Add one: winserve token add NAME [--owner]; remove one: winserve token remove NAME\n"
)


class TokensError(SettingsError):
    """The tokens file cannot be read or is not in its format."""


@dataclass(frozen=True)
class Caller:
    """Who sent a request: a token's name (``owner`` for the ``token`` setting), ``local`` (this
    computer, no token set) or ``-`` (anyone else), and what they may do."""

    name: str
    role: str

    @property
    def is_owner(self) -> bool:
        return self.role == OWNER


LOCAL = Caller(LOCAL_NAME, OWNER)
ANYONE = Caller("-", USER)
SINGLE = Caller(SINGLE_NAME, OWNER)


@dataclass(frozen=True)
class Line:
    """One name of the file: its role and its hash as written."""

    name: str
    role: str
    hash: str


def default_path() -> Path:
    """``tokens.toml`` in the per-user data folder, beside the prediction logs."""
    from winserve.platform import data_dir

    return data_dir() / FILE_NAME


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str, salt: bytes | None = None) -> str:
    """The line's hash of ``token``: ``sha256:<salt>:<digest>``."""
    salt = secrets.token_bytes(16) if salt is None else salt
    return f"sha256:{salt.hex()}:{hashlib.sha256(salt + token.encode()).hexdigest()}"


def _parsed_hash(text: str) -> tuple[bytes, bytes] | None:
    """(salt, digest) of a hash as written, or None when it is not one."""
    parts = text.split(":")
    try:
        if len(parts) == 2 and parts[0] == "sha256" and len(parts[1]) == 64:
            return b"", bytes.fromhex(parts[1])
        if len(parts) == 3 and parts[0] == "sha256" and len(parts[2]) == 64 and parts[1]:
            return bytes.fromhex(parts[1]), bytes.fromhex(parts[2])
    except ValueError:
        return None
    return None


def matches(token: str, hashed: str) -> bool:
    """Whether ``token`` is the one ``hashed`` was made from (compared in constant time)."""
    parsed = _parsed_hash(hashed)
    if parsed is None:
        return False
    salt, digest = parsed
    return hmac.compare_digest(hashlib.sha256(salt + token.encode()).digest(), digest)


def parse(text: str, where: str) -> list[Line]:
    """The lines of a tokens file's ``text``; ``TokensError`` naming the name and the problem."""
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TokensError(f"tokens file {where} is not TOML: {exc}") from None
    lines: list[Line] = []
    for name, value in table.items():
        if not NAME.fullmatch(name) or name in RESERVED:
            raise TokensError(
                f"tokens file {where}: {name[:64]!r} cannot be a name (letters, digits, _ and -, "
                f"at most 64; not {' or '.join(sorted(RESERVED))})"
            )
        if isinstance(value, str):
            role, hashed = USER, value
        elif isinstance(value, dict):
            role, hashed = value.get("role", USER), value.get("hash", "")
            unknown = set(value) - {"role", "hash"}
            if unknown:
                raise TokensError(
                    f"tokens file {where}: {name}: unknown key {sorted(unknown)[0]!r} "
                    "(expected role and hash)"
                )
        else:
            raise TokensError(f"tokens file {where}: {name}: expected a hash or a table")
        if role not in ROLES:
            raise TokensError(
                f"tokens file {where}: {name}: role must be 'owner' or 'user', not {role!r}"
            )
        if not isinstance(hashed, str) or _parsed_hash(hashed) is None:
            raise TokensError(
                f"tokens file {where}: {name}: the hash must be sha256:<salt hex>:<64 hex "
                "digits> (or sha256:<64 hex digits>); winserve token add writes it"
            )
        lines.append(Line(name, role, hashed))
    return lines


def read(path: Path) -> list[Line]:
    """The lines of the file at ``path`` ([] when there is none)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise TokensError(f"cannot read tokens file {path}: {exc.strerror or exc}") from None
    return parse(text, str(path))


def render(lines: list[Line]) -> str:
    """The file's text for ``lines``."""
    body = "".join(f'{x.name} = {{ role = "{x.role}", hash = "{x.hash}" }}\n' for x in lines)
    return HEADER + body


def write(path: Path, lines: list[Line]) -> None:
    """Replace the file at ``path`` with ``lines`` at once (a running server never reads half
    of it); created readable by this user only on POSIX (Windows: the per-user folder's own
    permissions, which other users cannot read)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)
    handle = os.open(part, flags, 0o600)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as file:
            file.write(render(lines))
        if sys.platform != "win32":
            os.chmod(part, 0o600)  # a umask cannot widen it, but an older file's mode could
        _replace(part, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(part)
        raise


def _replace(part: Path, path: Path) -> None:
    """``os.replace``, tried again for a moment on Windows, which refuses while a running server
    happens to be reading the file."""
    for attempt in range(40):
        try:
            os.replace(part, path)
            return
        except PermissionError:
            if sys.platform != "win32" or attempt == 39:
                raise
            time.sleep(0.05)


def add(path: Path, name: str, role: str = USER) -> str:
    """A new token for ``name`` (its line written, replacing an older one of that name): the
    token itself, which only the caller of this function ever sees."""
    if not NAME.fullmatch(name) or name in RESERVED:
        raise TokensError(
            f"{name[:64]!r} cannot be a name: letters, digits, _ and - (at most 64), and not "
            f"{' or '.join(sorted(RESERVED))}"
        )
    if role not in ROLES:
        raise TokensError(f"role must be 'owner' or 'user', not {role!r}")
    token = new_token()
    lines = [x for x in read(path) if x.name != name]
    write(path, [*lines, Line(name, role, hash_token(token))])
    return token


def remove(path: Path, name: str) -> bool:
    """Remove ``name``'s line; whether there was one."""
    lines = read(path)
    kept = [x for x in lines if x.name != name]
    if len(kept) == len(lines):
        return False
    write(path, kept)
    return True


class TokenBook:
    """The tokens a server accepts: the ``token`` setting and the file's lines, looked up by
    token (``find``) or by name (``named``, for a login cookie). Shared by every waitress
    thread and the gate's I/O thread."""

    def __init__(
        self,
        path: Path | None,
        single: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = path
        self._single = single
        self._clock = clock
        self._key = secrets.token_bytes(32)  # the cache's, made at each start
        self._lock = threading.Lock()
        self._lines: dict[str, Line] = {}
        self._seen: tuple[int, int] | None = None  # the file's (mtime_ns, size) when read
        self._checked = float("-inf")
        self._known: dict[bytes, Caller] = {}  # HMAC of a token found → its caller
        self._refresh(force=True)

    @property
    def required(self) -> bool:
        """Whether any token exists, so that every caller needs one (decided at start)."""
        return self._required

    def _refresh(self, force: bool = False) -> None:
        now = self._clock()
        if not force and now - self._checked < RECHECK_SECONDS:
            return
        with self._lock:
            if not force and now - self._checked < RECHECK_SECONDS:
                return
            self._checked = now
            if self._path is None:
                self._required = bool(self._single)
                return
            try:
                stat = os.stat(self._path)
                seen: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
            except OSError:
                seen = None
            if seen == self._seen and not force:
                return
            try:
                lines = {x.name: x for x in read(self._path)} if seen is not None else {}
            except TokensError as exc:
                if force:
                    raise
                # a broken file names no one (a half-edited removal must not keep a name)
                log.error("%s; no named token is accepted until it is mended", exc)
                lines = {}
            self._lines, self._seen = lines, seen
            self._known = {}  # a removed or changed name must not be found in the cache
            if force:
                self._required = bool(self._single) or bool(lines)

    def _mac(self, token: str) -> bytes:
        return hmac.new(self._key, token.encode("utf-8", "replace"), hashlib.sha256).digest()

    def find(self, given: str) -> Caller | None:
        """The caller ``given`` names, or None (every comparison constant-time)."""
        self._refresh()
        if self._single and hmac.compare_digest(
            given.encode("utf-8", "replace"), self._single.encode()
        ):
            return SINGLE
        if not self._lines:
            return None
        mac = self._mac(given)
        known = self._known
        caller = known.get(mac)
        if caller is not None:
            return caller
        for line in self._lines.values():
            if matches(given, line.hash):
                caller = Caller(line.name, line.role)
                known[mac] = caller  # at most one entry per line: only right tokens
                return caller
        return None

    def named(self, name: str) -> Caller | None:
        """The caller of that name as the file says now (None: removed, or never there)."""
        if name == SINGLE_NAME:
            return SINGLE if self._single else None
        self._refresh()
        line = self._lines.get(name)
        return Caller(line.name, line.role) if line is not None else None
