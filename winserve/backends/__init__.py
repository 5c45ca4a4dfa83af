"""Backends: where the model runs. One interface (``Backend``), two implementations:
``LocalBackend`` (in this process) and ``PoolBackend`` (spawned model-host replicas)."""

from winserve.backends.base import Backend, Health, Prediction, ReplicaHealth

__all__ = ["Backend", "Health", "Prediction", "ReplicaHealth"]
