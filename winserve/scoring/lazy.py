"""A chunk's rows read only when asked for.

A job keeps a few rows of each chunk for the prediction log's sample and reads a refused
row's cells for its reasons; reading every row would cost what the chunk's fast paths save
(issue 29). ``Lazy`` is the ``Sequence`` both kinds below share: a subclass says how long it
is and how to read one item, slices are made of items.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar, overload

T = TypeVar("T")


class Lazy(Sequence[T]):
    """A sequence whose items are made from ``_item`` when asked for."""

    def __len__(self) -> int:
        raise NotImplementedError

    def _item(self, index: int) -> T:
        raise NotImplementedError

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self._item(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._item(index)
