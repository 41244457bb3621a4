"""Conversation order: where an item goes, given its ``previous_item_id``.

The one home of the rule both ends apply: the session state machine places the items it creates
(:class:`~realtime_nb.protocol.state.SessionCore`) and the client's mirror places the items the
server announces (:class:`realtime_nb.client.items.Items`), so both hold the same order:

* an item goes right after its ``previous_item_id`` when that item is held;
* ``previous_item_id`` ``None`` (the wire's ``null``) means "first": it goes at ``start`` (0 for
  one session's conversation; the mirror, which keeps several sessions' items, passes where
  this session's items begin);
* an id that is not held puts the item at the end (the mirror may have missed it; the server
  refuses such an id before it gets here);
* an id already held is not inserted again.
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["ItemOrder"]

T = TypeVar("T")


class ItemOrder(Generic[T]):
    """Items (any value) in conversation order, by id.

    ``ids`` and ``values`` are the order (parallel lists), ``by_id`` the lookup; read them
    freely, change them only through the methods. The owner may also keep an item in ``by_id``
    alone (an item outside any conversation, such as a transcription session's).
    """

    __slots__ = ("by_id", "ids", "values")

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.values: list[T] = []
        self.by_id: dict[str, T] = {}

    def position_after(self, previous_item_id: str | None, start: int = 0) -> int:
        """Where an item that follows ``previous_item_id`` goes (see the module docstring)."""
        if previous_item_id is None:
            return start
        if previous_item_id not in self.by_id:
            return len(self.ids)
        return self.ids.index(previous_item_id) + 1

    def insert(self, item_id: str, value: T, previous_item_id: str | None,
               start: int = 0) -> bool:
        """Place ``value`` after ``previous_item_id``; False (and nothing changes) when
        ``item_id`` is already held."""
        if item_id in self.by_id:
            return False
        pos = self.position_after(previous_item_id, start)
        self.ids.insert(pos, item_id)
        self.values.insert(pos, value)
        self.by_id[item_id] = value
        return True

    def append(self, item_id: str, value: T) -> bool:
        """Place ``value`` last (an item the server adds at the end of the conversation)."""
        return self.insert(item_id, value, None, len(self.ids))

    def remove(self, item_id: str) -> T | None:
        """Take the item out of the order; None when it was not held. An item held by id
        alone (outside the order) raises ``ValueError`` and stays held."""
        if item_id not in self.by_id:
            return None
        i = self.ids.index(item_id)
        del self.ids[i]
        del self.values[i]
        return self.by_id.pop(item_id)

    def previous_id(self, item_id: str) -> str | None:
        """The id of the item before ``item_id`` (None when it is first)."""
        i = self.ids.index(item_id)
        return self.ids[i - 1] if i > 0 else None
