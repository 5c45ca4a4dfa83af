"""The keepers of one Ray application, as the web process finds them: which lane calls which.

::

    RayLane i ── keeper(i) ──► Keepers ── look(): Ray's named actors "<application>#…" ──► Ray
         │                      │           each new one asked for its load record
         │ a call failed:       ├─ found       keepers with a loaded model, by name
         ├─ forget(keeper)      ├─ reloading   keepers replacing their model host (called
         └─ reloading(keeper)   │              again once a look finds them answering)
                                ├─ forgotten   keepers a call found dead (Serve replaces them)
                                └─ failed      keepers whose first load failed (its reason)

Lane ``i`` calls keeper ``i mod n`` of the ``n`` answering now, so the lanes spread over the
replicas as Serve adds or replaces them. One look at a time, at most every ``LOOK_SECONDS``
from a lane waiting for a keeper, and every few seconds from the backend's monitor.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

from winserve.backends.ray.lane import Keeper
from winserve.backends.runner import HostGone
from winserve.errors import ModelLoadError

log = logging.getLogger("winserve.ray")

LOOK_SECONDS = 0.5  # at most this often, a lane without a keeper asks Ray for the keepers


class Keepers:
    """The keepers of application ``app_name``, found by name; thread-safe."""

    def __init__(self, app_name: str, closing: threading.Event) -> None:
        self.app_name = app_name
        self._closing = closing
        self._found: list[Keeper] = []  # the replicas' keepers with a loaded model, by name
        self._failed: dict[str, dict[str, Any]] = {}  # keepers whose first load failed
        self._forgotten: set[str] = set()  # keepers a call found dead
        self._reloading: set[str] = set()  # keepers reloading their model host
        self._looked = 0.0
        self._look_lock = threading.Lock()

    def keeper(self, index: int) -> Keeper | None:
        """The keeper lane ``index`` calls now (``None`` while none is ready): one whose model
        host answers, unless every keeper is reloading its host (then the call waits there)."""
        keepers = self._found
        if self._reloading:
            keepers = [k for k in keepers if k.name not in self._reloading] or keepers
        return keepers[index % len(keepers)] if keepers else None

    def reloading(self, keeper: Keeper) -> None:
        """``keeper`` is reloading its model host (it died or missed a deadline): the lanes
        call the others until a look finds it answering again."""
        self._reloading.add(keeper.name)

    def forget(self, keeper: Keeper) -> None:
        """A call found ``keeper`` dead: no lane calls it again (Serve replaces its replica)."""
        self._forgotten.add(keeper.name)
        self._found = [k for k in self._found if k.name != keeper.name]

    def wait_for(self, index: int, end: float) -> Keeper:
        """Lane ``index``'s keeper once one is ready; ``ModelLoadError`` when the replicas
        failed to load the model, ``TimeoutError`` at ``end``."""
        while True:
            if self._closing.is_set():
                raise HostGone("winserve is stopping")
            if time.monotonic() - self._looked >= LOOK_SECONDS:
                self.look()
            keeper = self.keeper(index)
            if keeper is not None:
                return keeper
            if self._failed:
                record = next(iter(self._failed.values()))
                raise ModelLoadError(record["error"]["message"])
            if time.monotonic() >= end:
                raise TimeoutError("no Ray replica of the model was ready in time")
            time.sleep(0.1)

    def look(self) -> None:
        """Find this application's keepers among Ray's named actors; ask new ones for their
        load record (a keeper still loading is asked again next time)."""
        import ray

        from winserve.backends.ray.replica import NAMESPACE

        # one look at a time; the others go on with what was found (with the cluster gone,
        # Ray's calls here wait for its reconnect timeout, and no lane must wait behind them)
        if not self._look_lock.acquire(blocking=False):
            return
        try:
            self._looked = time.monotonic()
            prefix = f"{self.app_name}#"
            try:
                names = sorted(
                    actor["name"]
                    for actor in ray.util.list_named_actors(all_namespaces=True)
                    if actor.get("namespace") == NAMESPACE and actor["name"].startswith(prefix)
                )
            except Exception as exc:  # the cluster is unreachable: problem() says so
                log.debug("listing the keepers failed: %s", exc)
                return
            known = {keeper.name: keeper for keeper in self._found}
            probes = {}
            for name in names:
                if name in self._reloading and name in known:
                    probes[name] = (known[name].handle, known[name].handle.describe.remote(0.0))
                    continue
                if name in known or name in self._failed or name in self._forgotten:
                    continue
                with contextlib.suppress(Exception):  # ended meanwhile
                    handle = ray.get_actor(name, namespace=NAMESPACE)
                    probes[name] = (handle, handle.describe.remote(0.0))
            found = [known[name] for name in names if name in known]
            for name, (handle, ref) in probes.items():
                try:
                    record = ray.get(ref, timeout=5.0)
                except Exception:
                    continue
                if name in known:  # reloading: back in the lanes' turn once it answers
                    if record.get("ready"):
                        self._reloading.discard(name)
                elif record["ok"]:
                    found.append(Keeper(name, handle, record))
                elif not record.get("loading"):
                    self._failed[name] = record
            found = [keeper for keeper in found if keeper.name not in self._forgotten]
            self._found = sorted(found, key=lambda keeper: keeper.name)
            alive = set(names)
            self._failed = {name: r for name, r in self._failed.items() if name in alive}
            self._forgotten &= alive
            self._reloading &= alive
        finally:
            self._look_lock.release()
