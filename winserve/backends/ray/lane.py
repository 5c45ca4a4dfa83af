"""``RayLane``: the pool's replica on a Ray cluster, a lane to one keeper actor, called directly.

::

    PoolBackend (queue, batching, deadlines) ── one dispatcher + Supervisor per lane
        │ RayLane.predict(payload, timeout)
        ▼
    keeper = RayBackend.keepers.keeper(i)  (keepers.py: keeper i mod n of the n ready now)
        │ keeper.handle.predict.remote(…) ; ray.get(timeout + RAY_GRACE)
        ▼
    HostKeeper on a Ray node ─► its local model host (ray/replica.py)
        ◄── the host's answer record, or a KeeperFault {"winserve": "timeout" | "gone"}

A lane is a ``ReplicaRunner`` (``backends/runner.py``): it maps Ray's failures onto the ones a
local host raises (a timeout → ``TimeoutError``; a dead actor, a lost node, an unreachable
cluster, a keeper whose host died → ``HostGone``), so the pool answers 504/503 and "restarts"
the lane, which only means finding a keeper that answers: Serve itself replaces a dead replica.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import TYPE_CHECKING, Any

from winserve.backends.base import NotAvailableHere
from winserve.backends.runner import HostGone, Lifecycle
from winserve.errors import ModelLoadError
from winserve.host.answers import AskAnswer, HostInfo, PredictAnswer
from winserve.model_info import ModelSpec

if TYPE_CHECKING:
    from winserve.backends.ray.backend import RayBackend

RAY_GRACE = 1.0  # seconds past a call's deadline the lane waits for the replica's own verdict


@dataclasses.dataclass(frozen=True)
class Keeper:
    """A replica's keeper actor, as the web process calls it (``replica.HostKeeper``)."""

    name: str
    handle: Any
    record: dict[str, Any]  # its load record: info, node, pid, host_pid


class RayLane(Lifecycle):
    """The pool's replica ``index``: a lane to one of the deployment's keepers, called directly.
    Lane ``i`` calls keeper ``i mod n`` of the ``n`` ready now, so the lanes spread over the
    replicas as Serve adds or replaces them."""

    def __init__(self, index: int, spec: ModelSpec, backend: RayBackend) -> None:
        super().__init__(index, spec)
        self._backend = backend
        self._call_ref: Any = None
        self._stopped = False
        self._gone = ""

    @property
    def pid(self) -> int | None:
        keeper = self._backend.keepers.keeper(self.index)  # the keeper this lane calls now
        return keeper.record.get("pid") if keeper is not None else None

    def start(self, load_timeout: float) -> HostInfo:
        began = time.monotonic()
        if self._stopped:
            raise HostGone("the lane was stopped")
        try:
            self._backend.deployed(load_timeout)
            keeper = self._backend.keepers.wait_for(self.index, began + load_timeout)
        except TimeoutError:
            why = self._backend.problem()
            if why:  # Serve's own reason (no CPU for a replica, …) says more than the time
                raise ModelLoadError(
                    f"the model did not load within {load_timeout:g} s: {why}"
                ) from None
            raise
        self._gone = ""
        self.loaded_since(began)
        info: HostInfo = keeper.record["info"]
        return info

    def predict(
        self, payload: dict[str, Any], proba: bool, timeout: float, scores: bool = False
    ) -> PredictAnswer:
        import ray

        keeper = self._backend.keepers.keeper(self.index)
        if keeper is None or self._stopped:
            raise HostGone(self._backend.problem() or "no Ray replica is ready")
        ref = keeper.handle.predict.remote(payload, proba, scores, timeout)
        self._call_ref = ref
        try:
            record: dict[str, Any] = ray.get(ref, timeout=timeout + RAY_GRACE)
        except TimeoutError:  # ray.exceptions.GetTimeoutError is one
            raise
        except Exception as exc:  # Ray's: a dead actor, a lost node, an unreachable cluster
            self._backend.keepers.forget(keeper)
            self._gone = _describe_failure(exc)
            raise HostGone(self._gone) from None
        finally:
            self._call_ref = None
        fault = record.get("winserve")  # a KeeperFault (ray/replica.py), else the host's answer
        if fault:  # its host is replaced: the lanes call the others meanwhile
            self._backend.keepers.reloading(keeper)
        if fault == "timeout":
            raise TimeoutError(record["reason"])
        if fault == "gone":
            self._gone = f"the model host on the Ray node: {record['reason']}"
            raise HostGone(self._gone)
        answer: PredictAnswer = record  # type: ignore[assignment]  # the host's, unchanged
        return answer

    def ask(
        self, name: str, payload: dict[str, Any], options: dict[str, Any], timeout: float
    ) -> AskAnswer:
        """Not made on Ray (issue 25): ``RayBackend`` never asks a lane, as ``Backend.ask``."""
        raise NotAvailableHere(f"{name} is not available where this model runs (the Ray backend)")

    def alive(self) -> bool:
        # Only a failed deployment ends a lane from outside: a lost node or a silent cluster
        # is reported on /health, and the lane's own calls find out whether replicas answer
        # (a lost node without replicas on it must not stop serving)
        return not self._stopped and not self._backend.deploy_error

    def exit_description(self) -> str:
        return self._gone or self._backend.problem() or "the Ray replica stopped answering"

    def kill(self) -> None:
        ref = self._call_ref
        if ref is not None:
            import ray

            with contextlib.suppress(Exception):  # already finished, or the cluster is gone
                ray.cancel(ref)

    def stop(self) -> None:
        self._stopped = True
        self.kill()
        self.mark("stopped")


def _describe_failure(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"the Ray replica failed ({type(exc).__name__}: {first[:200]})"
