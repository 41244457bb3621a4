"""A recording comm for kernel-side widget tests (after ipywidgets' own tests' DummyComm).

``recording_comm`` replaces the comm factory so that widgets created in a test record what they
send instead of needing a frontend; ``browser_msg`` delivers a message as the browser would
(through the widget's comm message handler, buffers included).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ipywidgets.comm
import pytest


class RecordingComm:
    """Stands in for a kernel comm: keeps every message the widget sends."""

    kernel = "present"

    def __init__(self, **kwargs: Any) -> None:
        self.comm_id = kwargs.get("comm_id") or f"comm-{id(self)}"
        self.messages: list[tuple[dict[str, Any], list[Any]]] = []
        self.handler: Any = None

    def open(self, *args: Any, **kwargs: Any) -> None:
        pass

    def on_msg(self, callback: Any) -> None:
        self.handler = callback

    def send(self, data: Any = None, metadata: Any = None, buffers: Any = None) -> None:
        self.messages.append((data, list(buffers or [])))

    def close(self, *args: Any, **kwargs: Any) -> None:
        pass

    def custom(self) -> list[tuple[dict[str, Any], list[Any]]]:
        """The custom messages sent so far: ``(content, buffers)`` pairs."""
        return [(m["content"], b) for m, b in self.messages if m.get("method") == "custom"]

    def updates(self) -> list[dict[str, Any]]:
        """The trait updates sent so far (their ``state`` dicts)."""
        return [m["state"] for m, _ in self.messages if m.get("method") == "update"]


@pytest.fixture
def recording_comm(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(ipywidgets.comm, "create_comm", lambda **kw: RecordingComm(**kw))
    yield


def browser_msg(widget: Any, content: dict[str, Any], buffers: list[Any] | None = None) -> None:
    """Deliver a custom message from the browser, as the kernel's comm would."""
    widget.comm.handler({"content": {"data": {"method": "custom", "content": content}},
                         "buffers": list(buffers or [])})


def browser_update(widget: Any, **state: Any) -> None:
    """Deliver a trait update from the browser (what ``model.save_changes()`` sends)."""
    widget.comm.handler({"content": {"data": {"method": "update", "state": state}},
                         "buffers": []})
