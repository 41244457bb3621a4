"""The MCP approval rows: one per pending ``mcp_approval_request``, with Approve / Deny.

A server added with ``require_approval`` asks before each tool call: the request is an item
(``mcp_approval_request``) that waits for the client's ``mcp_approval_response``. The panel
shows each pending request under the transcript (:class:`ApprovalRows`, rebuilt when the set of
pending requests changes); a button sends the answer through the panel's outbox, and once an
approved call has run (at once for a denial) asks for the response that uses its output.

What the caller must know: answering never waits (the waiting is a task of its own, up to
300 s for the call's ``response.mcp_call.completed`` / ``failed``); a request is answered once,
whatever is pressed after.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

from ._outbox import PanelCalls
from ._tree import close_tree

__all__ = ["ApprovalRows"]


class ApprovalRows:
    """The approval rows of a Session (see the module docstring); ``box`` is the widget.

    Args:
        session: the :class:`~realtime_nb.Session` (its ``pending_approvals`` are shown).
        calls: the panel's :class:`~._outbox.PanelCalls` (outbox, tasks, redraws).
    """

    def __init__(self, session: Any, calls: PanelCalls) -> None:
        self.session = session
        self._calls = calls
        self.box = widgets.VBox([])
        self.box.add_class("rtnb-approvals")
        self._ids: tuple[str, ...] = ()
        self._answered: set[str] = set()

    def sync(self) -> None:
        """Rebuild the approval rows when the set of pending requests changed."""
        pending = [it for it in self.session.pending_approvals if it.id not in self._answered]
        ids = tuple(it.id for it in pending)
        if ids == self._ids:
            return
        self._ids = ids
        old = self.box.children
        rows = []
        on_loop = self._calls.on_loop
        for it in pending:
            call = html.escape(f"{it.name or '?'}({it.arguments})")
            text = widgets.HTML(
                f'<span class="rtnb-turn-who">MCP {html.escape(it.server_label or "?")}</span> '
                f"may I run <code>{call}</code>?")
            yes = widgets.Button(description="Approve", button_style="success",
                                 tooltip="Send mcp_approval_response approve=true")
            no = widgets.Button(description="Deny", button_style="danger",
                                tooltip="Send mcp_approval_response approve=false")
            yes.on_click(on_loop(lambda _b, i=it.id: self.answer(i, True)))
            no.on_click(on_loop(lambda _b, i=it.id: self.answer(i, False)))
            rows.append(widgets.HBox([text, yes, no],
                                     layout=widgets.Layout(align_items="center")))
        self.box.children = tuple(rows)
        for row in old:
            close_tree(row)

    def answer(self, request_id: str, approve: bool) -> None:
        """Approve or deny the pending MCP approval request ``request_id`` (what the Approve /
        Deny buttons do). The answer goes out in order with the panel's other calls; when the
        approved call has run (at once for a denial) the panel asks for the response that uses
        its output. Never waits: the waiting is a task of its own."""
        if request_id in self._answered:
            return
        self._answered.add(request_id)
        s = self.session
        call = next((it.id for it in s.mirror.all_items.values()
                     if it.type == "mcp_call" and it.approval_request_id == request_id), None)
        mark = len(s.events)

        async def send() -> None:
            await s.approve_mcp(request_id, approve, respond=False)

        async def respond() -> None:
            if approve:
                await s.wait_for(
                    lambda e: e.get("type") in ("response.mcp_call.completed",
                                                "response.mcp_call.failed")
                    and (call is None or e.get("item_id") == call), 300.0, since=mark)
            self._calls.put("response.create", s.create_response)

        self._calls.put("mcp_approval_response", send)
        self._calls.spawn(respond(), "mcp approval")
        self._calls.changed()
