"""Backends: where the model runs. One interface (``Backend``), two implementations:
``LocalBackend`` (in this process) and ``PoolBackend`` (model-host replicas behind one queue).

A pool's replica is any ``ReplicaRunner`` (``runner.py``): a spawned host (``replica.py``) or a
lane to a Ray keeper (``ray/lane.py``), each kept by a ``Supervisor`` (``supervisor.py``); a
request that queues travels the pool as a ``Call`` (``batch.py``), in its queues (``queues.py``)."""

from winserve.backends.base import Backend, Health, Prediction, ReplicaHealth

__all__ = ["Backend", "Health", "Prediction", "ReplicaHealth"]
