"""One supervisor for every replica: start it, classify its failure, back off, restart.

::

    Supervisor.run  (a pool's dispatcher thread, or a Ray keeper's host thread)
      ┌─► mark "loading" | "restarting"
      │   start(runner) ──► HostInfo ──► hooks.started ─► mark "ready" ─► hooks.serve(runner)
      │        │                                           (until a call timed out or lost
      │        └──► Failure: load error | timeout | crash    its host, or the owner closes)
      │             mark "failed" ─► hooks.started
      │   runner.kill()
      │   hooks.keep_trying(runner)? ── no ──► runner.stop(), the end
      │   count the restart
      │   the file on disk is not the one first loaded? ─► "failed", wait (no spawn) until
      │                                                    it is back, then load at once
      └── back off: at once, then 0.5, 1, 2 … 30 s (reset once a replica served 30 s)

    check ──► start(runner) once: the model's HostInfo, or the Failure in words

The pool (``pool.py``), the Ray keeper (``ray/replica.py``) and ``winserve check`` used to
write this loop, its failure messages and its backoff three times (issue 23). A call's own
failure is classified here too (``call_failure``): a ``TimeoutError`` is a timeout, a
``HostGone`` a crash, anything else a broken reply; the caller decides what each costs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from winserve.backends.runner import HostGone, ReplicaRunner
from winserve.errors import ModelLoadError
from winserve.host.answers import HostInfo
from winserve.model_file import sha256_of, stamp

BACKOFF_FIRST = 0.5  # a first failure restarts at once; repeated ones wait 0.5, 1, 2, … s
BACKOFF_MAX = 30.0
BACKOFF_RESET_AFTER = 30.0  # a replica that served this long resets its backoff
FILE_CHECK = 1.0  # seconds between looks at a changed model file, waiting for the loaded one

FailureKind = Literal["load_error", "timeout", "crash", "broken"]


@dataclass(frozen=True)
class Failure:
    """Why a start or a call failed: its kind, and the reason as ``/health`` shows it."""

    kind: FailureKind
    reason: str


def start(runner: ReplicaRunner, load_timeout: float) -> HostInfo | Failure:
    """Start ``runner`` and load the model: the host's description, or why it failed."""
    try:
        return runner.start(load_timeout)
    except ModelLoadError as exc:
        return Failure("load_error", str(exc))
    except TimeoutError:
        return Failure("timeout", f"the model did not load within {load_timeout:g} s")
    except HostGone as exc:
        cause = type(exc.__cause__ or exc).__name__  # EOFError, BrokenPipeError, …
        return Failure("crash", f"{runner.exit_description()} while loading ({cause})")


def call_failure(exc: BaseException, runner: ReplicaRunner, timeout: float) -> Failure:
    """What a prediction call that raised ``exc`` says about its replica."""
    if isinstance(exc, TimeoutError):
        return Failure("timeout", f"a prediction took longer than {timeout:g} s")
    if isinstance(exc, HostGone):
        return Failure("crash", runner.exit_description())
    return Failure("broken", f"unexpected reply failure ({type(exc).__name__})")


class Backoff:
    """The pause before a restart: none after a first failure, then ``BACKOFF_FIRST``,
    doubling up to ``BACKOFF_MAX``; back to none once a replica served ``reset_after``
    seconds (the constants are read when used: the fast tests shorten them)."""

    def __init__(self, reset_after: float | None = None) -> None:
        self._reset_after = BACKOFF_RESET_AFTER if reset_after is None else reset_after
        self._pause = 0.0

    def next(self) -> float:
        """The pause before this restart; the next one is longer."""
        pause = self._pause
        self._pause = min(max(pause * 2, BACKOFF_FIRST), BACKOFF_MAX)
        return pause

    def served(self, seconds: float) -> None:
        if seconds > self._reset_after:
            self._pause = 0.0

    def reset(self) -> None:
        self._pause = 0.0


def _nothing(*_: object) -> None:
    return None


def _always(_: ReplicaRunner) -> bool:
    return True


@dataclass(frozen=True)
class Hooks:
    """What the supervisor's owner (a pool, a Ray keeper) does at each step."""

    serve: Callable[[ReplicaRunner], None]  # until the runner must restart, or the owner closes
    # after every start, loaded or not (the runner's state says which), before "ready"
    started: Callable[[ReplicaRunner, HostInfo | Failure], None] = _nothing
    keep_trying: Callable[[ReplicaRunner], bool] = _always  # after a failure: restart?
    changed: Callable[[], None] = _nothing  # the runner's state changed (for waiters)
    holding: Callable[[ReplicaRunner, bool], None] = _nothing  # waits for the loaded file


class Supervisor:
    """Keeps one replica loaded until ``stopping`` is set: ``run`` from the thread that is to
    own its host (on Linux a host dies with the thread that started it)."""

    def __init__(
        self,
        runner: ReplicaRunner,
        hooks: Hooks,
        *,
        load_timeout: float,
        stopping: threading.Event,
        label: str,
        log: logging.Logger,
        watch_file: bool = True,
        reset_after: float | None = None,
    ) -> None:
        self.runner = runner
        self._hooks = hooks
        self._load_timeout = load_timeout
        self._stopping = stopping
        self._label = label
        self._log = log
        self._watch_file = watch_file
        self._reset_after = reset_after

    def run(self) -> None:
        runner, hooks, stopping = self.runner, self._hooks, self._stopping
        backoff = Backoff(self._reset_after)
        while not stopping.is_set():
            runner.mark("loading" if runner.restarts == 0 else "restarting")
            hooks.changed()
            outcome = start(runner, self._load_timeout)
            if isinstance(outcome, Failure):
                runner.mark("failed", outcome.reason)
            hooks.started(runner, outcome)
            if not isinstance(outcome, Failure):
                runner.mark("ready")  # the last error stays, with its time (issue 23)
                hooks.changed()
                hooks.serve(runner)
                backoff.served(time.monotonic() - runner.started_at)
            if stopping.is_set():
                break  # stop() below ends the host: asked first, killed if it does not go
            runner.kill()
            if not hooks.keep_trying(runner):
                break
            runner.count_restart()  # serve marked "restarting" (or the start "failed") already
            hooks.changed()
            if self._watch_file and self._hold_while_file_changed():
                backoff.reset()  # the loaded file is back: load it at once
                continue
            pause = backoff.next()
            self._log.warning("%s: %s; restarting in %.1f s", self._label, runner.last_error, pause)
            stopping.wait(pause)
        failed = runner.state == "failed" and not stopping.is_set()
        runner.stop()
        if failed:
            runner.mark("failed")  # the model cannot be loaded: say so, not "stopped"
        hooks.changed()

    def _hold_while_file_changed(self) -> bool:
        """A restart must load the file the first load did (``ModelSpec.same_as``). When the
        file on disk is another one now (retrained and overwritten), no restart can succeed:
        the replica is "failed" with what to do, and waits, without spawning hosts, until the
        loaded file is back (or the owner stops). Returns whether it waited."""
        runner = self.runner
        path = Path(runner.spec.path) if runner.spec.path else None
        reason = not_the_loaded_file(path, runner.spec.same_as)
        if path is None or not reason:
            return False
        self._hooks.holding(runner, True)
        runner.mark("failed", reason)
        self._hooks.changed()
        self._log.error("%s: %s", self._label, reason)
        seen: tuple[int, ...] | None = stamp(path)
        while not self._stopping.wait(FILE_CHECK):
            now = stamp(path)
            if now == seen:
                continue
            seen = now  # taken before hashing: a write after the hash is seen next round
            if not not_the_loaded_file(path, runner.spec.same_as):
                self._log.info("%s: %s is the loaded file again", self._label, path.name)
                break
        self._hooks.holding(runner, False)
        return True


def not_the_loaded_file(path: Path | None, loaded_sha256: str) -> str:
    """Why the model file on disk is not the one loaded first, with what to do; "" if it is."""
    if path is None or not loaded_sha256:
        return ""
    try:
        digest = sha256_of(path)
    except OSError:
        return (
            f"{path.name} is no longer where winserve loaded it from, so it cannot be loaded "
            "again: put it back, or restart winserve with another model file"
        )
    if digest == loaded_sha256:
        return ""
    return (
        f"{path.name} changed on disk since winserve loaded it (SHA-256 {loaded_sha256[:12]}… "
        f"then, {digest[:12]}… now), so it cannot be loaded again: restart winserve to serve "
        "the new file, or put the old one back"
    )
