"""The model host: the only part of winserve that imports the model's libraries.

It runs in a process of its own (spawned by ``winserve.backends.pool``) or, for tests and
``--in-process``, inside the web process (``winserve.backends.local``). Everything it returns is
plain data: dicts, lists, strings, numbers, numpy arrays.
"""

from winserve.host.model_host import ModelHost

__all__ = ["ModelHost"]
