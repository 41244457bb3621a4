"""The conversation-order rule shared by the state machine and the client's mirror.

``SessionCore`` places the items it creates and ``Mirror``'s ``Items`` places the items the
server announces with this one rule (tests/test_client_mirror.py checks that the two agree
event by event); here the rule itself.
"""

from __future__ import annotations

from realtime_nb.protocol.item_order import ItemOrder


def _order(*ids: str) -> ItemOrder[str]:
    order: ItemOrder[str] = ItemOrder()
    for item_id in ids:
        order.append(item_id, item_id.upper())
    return order


def test_an_item_goes_right_after_its_previous_item() -> None:
    order = _order("a", "b", "c")
    order.insert("x", "X", "a")
    assert order.ids == ["a", "x", "b", "c"] and order.values == ["A", "X", "B", "C"]
    assert order.by_id["x"] == "X"


def test_no_previous_item_means_first_at_the_given_start() -> None:
    order = _order("a", "b")
    order.insert("x", "X", None)
    order.insert("y", "Y", None, start=2)
    assert order.ids == ["x", "a", "y", "b"]


def test_an_unknown_previous_item_puts_the_item_last() -> None:
    order = _order("a", "b")
    order.insert("x", "X", "missing")
    assert order.ids == ["a", "b", "x"]


def test_an_item_already_held_is_not_inserted_again() -> None:
    order = _order("a", "b")
    assert order.insert("a", "other", "b") is False
    assert order.ids == ["a", "b"] and order.by_id["a"] == "A"


def test_remove_and_previous_id_follow_the_order() -> None:
    order = _order("a", "b", "c")
    assert order.previous_id("a") is None and order.previous_id("c") == "b"
    assert order.remove("b") == "B" and order.remove("b") is None
    assert order.ids == ["a", "c"] and order.previous_id("c") == "a"
