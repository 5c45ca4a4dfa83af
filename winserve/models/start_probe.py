"""Why a model process died before it could say anything (issue 24, a new user's finding).

A spawned model host that fails while Python starts it (importing winserve, or the module
that started the server, as multiprocessing's spawn does before any winserve code runs in
it) prints its traceback on the console and exits; the server only sees the pipe close:
"the model process exited with code 1 while loading (EOFError)". Its stderr is the console's,
not a pipe of ours (multiprocessing starts it, on Windows too), so it cannot be read back.

So, when a load ends that way, the start is done again as spawn does it, in a process whose
stderr is read::

    Loader: a load failed "… exited with code N while loading (EOFError)"
      └─► probe(): python -c "spawn.prepare(<this process's preparation data>);
                              import the model host's modules"   (stderr: a pipe)
            exit 0 ──► None: the start itself works; the model's load killed the host
            else   ──► the last line of its stderr ("ImportError: cannot import name …")

It costs one interpreter start, only after such a failure (not on a replica's restarts).
"""

from __future__ import annotations

import logging
import pickle
import re
import subprocess
from multiprocessing import spawn

log = logging.getLogger("winserve")

PROBE_SECONDS = 60.0
# what the supervisor says of a host gone before it answered its load (backends/supervisor.py)
DIED_STARTING = re.compile(r"(exited with code \d+|stopped answering) while loading \(\w+\)")
# what a spawned host imports before winserve's code runs in it (spawn.prepare first runs the
# module that started the server again, as __mp_main__: the console script imports
# winserve.cli): the manager's server (its process's target), the model host (the manager's
# registered type) and the watchdog (its initializer)
HOST_MODULES = ("winserve.backends.proxy", "winserve.host.model_host", "winserve.host.watchdog")
CODE = (
    "import pickle, sys\n"
    "from multiprocessing import spawn\n"
    "spawn.prepare(pickle.loads(sys.stdin.buffer.read()))\n"
    + "".join(f"import {name}\n" for name in HOST_MODULES)
)


def died_starting(reason: str) -> bool:
    """Whether ``reason`` says a host ended before it answered, with nothing more to say."""
    return DIED_STARTING.search(reason) is not None


def probe() -> str | None:
    """The last line a model process started as spawn starts one writes on stderr when that
    start fails ("ImportError: …"); None when the start works (or cannot be tried)."""
    data = spawn.get_preparation_data("winserve-start-probe")
    data.pop("authkey", None)  # not needed to import; never handed to another process
    data.pop("start_method", None)  # the probe's own: prepare would force it
    try:
        done = subprocess.run(
            [spawn.get_executable(), "-c", CODE],
            input=pickle.dumps(data),
            capture_output=True,
            timeout=PROBE_SECONDS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("the start probe could not run: %s", exc)
        return None
    if done.returncode == 0:
        return None
    lines = done.stderr.decode("utf-8", errors="replace").strip().splitlines()
    return lines[-1].strip() if lines else f"exit code {done.returncode}, nothing on stderr"


def explained(reason: str) -> str:
    """``reason`` with why the host died while it started, when a probe finds it."""
    if not died_starting(reason):
        return reason
    found = probe()
    if found is None:
        return reason
    return f"{reason}: {found}"
