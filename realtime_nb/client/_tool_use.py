"""The Session's tool-use room: Python functions as tools, and MCP approvals.

* :meth:`_ToolUse.use_tools` declares Python functions as function tools and runs the model's
  calls to them on every ``response.done`` (:class:`~realtime_nb.client.tools.Tools` runs them).
* :attr:`_ToolUse.pending_approvals` / :meth:`_ToolUse.approve_mcp` answer the approval requests
  of MCP tools (the calls themselves run on the server, OpenAI's or the local one).

One room of :class:`~realtime_nb.client.session.Session` (a mixin; the state it uses is set by
``Session.__init__``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from realtime_nb.protocol import new_id

from .errors import RealtimeError

if TYPE_CHECKING:
    from ._parts import SessionParts  # the Session's members this room uses (see ._parts)
    from .session import Session
    from .tools import Tools
else:
    SessionParts = object  # at run time a plain mixin


class _ToolUse(SessionParts):
    """Function tools run for the model, and answers to MCP approval requests."""

    @property
    def pending_approvals(self) -> list[Any]:
        """MCP ``mcp_approval_request`` items not answered yet (:class:`~.mirror.ItemState`,
        with ``server_label``, ``name``, ``arguments``), oldest first: see :meth:`approve_mcp`."""
        return self.mirror.pending_approvals()

    async def approve_mcp(self, request: Any, approve: bool = True, *,
                          reason: str | None = None, respond: bool = True,
                          timeout: float | None = 60.0) -> dict[str, Any]:
        """Answer an MCP approval request: ``conversation.item.create`` of an
        ``mcp_approval_response`` (``approve``, optional ``reason``).

        ``request`` is the request's id, its :class:`~.mirror.ItemState` (e.g. from
        :attr:`pending_approvals`) or its item dict. An approved call then runs on the server
        (OpenAI, or the local server) without a new response; the model answers from its output
        (or from the denial) only on the next ``response.create``. With ``respond`` (default)
        this waits for the approved call to finish (``response.mcp_call.completed`` /
        ``.failed``, up to ``timeout`` s) and then creates that response; a denial creates it
        at once. Returns the server's ``conversation.item.added`` for the answer. A request
        whose server session has ended (``mcp_state == "expired"``, after a renewal or a
        reconnect) raises RealtimeError ``mcp_approval_expired`` and sends nothing.
        """
        rid = getattr(request, "id", None)
        if rid is None and isinstance(request, Mapping):
            rid = request.get("id")
        if rid is None and isinstance(request, str):
            rid = request
        if not isinstance(rid, str):
            raise TypeError("approve_mcp() takes an approval request id, its ItemState or its "
                            f"item dict, not {type(request).__name__}")
        known = self.mirror.all_items.get(rid)
        if known is not None and known.mcp_state == "expired":
            raise RealtimeError(
                "mcp_approval_expired", f"The MCP approval request {rid} belonged to a server "
                "session that has ended; it can no longer be answered.", source="client",
                fatal=False, hint="Ask again: the model requests approval again when it still "
                "needs the tool (a renewal or reconnect does not carry pending approvals).")
        item: dict[str, Any] = {"type": "mcp_approval_response", "id": new_id("item"),
                                "approval_request_id": rid, "approve": bool(approve)}
        if reason is not None:
            item["reason"] = reason
        call = next((it.id for it in self.mirror.all_items.values()
                     if it.type == "mcp_call" and it.approval_request_id == rid), None)
        mark = len(self.events)
        sent = await self.create_item(item, wait=True, timeout=timeout)
        if respond:
            if approve:
                await self.wait_for(
                    lambda e: e.get("type") in ("response.mcp_call.completed",
                                                "response.mcp_call.failed")
                    and (call is None or e.get("item_id") == call), timeout, since=mark)
            await self.create_response()
        return sent

    async def use_tools(self, *functions: Callable[..., Any], respond: bool = True,
                        thread: bool = True, tool_choice: str = "auto") -> Tools:
        """Let the model call these Python functions; run them for it in every turn.

        Declares them (``session.update(tools=..., tool_choice=...)``, replacing the session's
        tools; schemas from signatures and docstrings, see
        :func:`~realtime_nb.client.tools.function_tool`) and, on each ``response.done`` that
        holds calls to them, runs the calls, sends each result as a ``function_call_output``
        and — with ``respond`` — creates the follow-up response. Works hands-free with server
        VAD; after :meth:`say`, ``await tools.answer(reply)`` gives the final answer. A tool's
        exception goes back to the model as ``{"error": ...}``. Plain functions run in a
        worker thread unless ``thread=False``. Returns the :class:`~.tools.Tools` (its
        ``calls`` list every call); calling ``use_tools`` again replaces it.
        """
        from .tools import Tools, function_tool

        declared = {(decl := function_tool(fn)).name: (decl, fn) for fn in functions}
        # function_tool always names the tool (a FunctionTool's name may be UNSET in general)
        named = {cast(str, name): fn for name, (_decl, fn) in declared.items()}
        if self._tools is not None:
            self._tools.close()
        await self.update(tools=[decl for decl, _fn in declared.values()],
                          tool_choice=tool_choice)
        # self is the Session (this class is one of its rooms)
        tools = Tools(cast("Session", self), named, respond=respond, thread=thread)
        self.on("response.done", tools._on_done)
        self._tools = tools
        return tools
