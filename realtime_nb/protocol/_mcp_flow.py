"""MCP tools inside :class:`~realtime_nb.protocol.state.SessionCore`: listings, calls, approvals.

:class:`McpFlow` lists the tools of each ``mcp`` tool (``"mcp_list"`` jobs), holds responses
back while a listing or call runs, streams the model's MCP calls as ``mcp_call`` items and runs
them (``"mcp_call"`` jobs), and handles approval requests and answers. The rules of a tool
config (``allowed_tools``, ``require_approval``, token redaction) are in :mod:`.mcp`.

It is one part of SessionCore (a mixin using the core's ``emit``, ``jobs``, conversation and
response parts) and is not used alone.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from ._ids import new_id
from ._responses import _pieces, _Response, _tokens, _untranscribed
from .jobs import McpCallJob, McpListJob
from .mcp import allowed, fingerprint, mcp_tools, needs_approval
from .schema import ProtocolError

__all__ = ["McpFlow"]

if TYPE_CHECKING:
    from ._parts import SessionParts  # the core's members this part uses (see ._parts)
else:
    SessionParts = object  # at run time a plain mixin


class McpFlow(SessionParts):
    """MCP listings, calls and approvals of a SessionCore (see the module docstring). Owns
    ``mcp_servers``, ``_approvals``, ``_running_calls`` and ``_deferred`` (responses waiting
    for MCP work), created by the core."""

    # ------------------------------------------------------------------ MCP tools
    # The order of events follows what the official clients show of the service (UNCONFIRMED
    # beyond that; see the README's MCP section): listing items are conversation items made
    # outside any response; a call's arguments stream inside the response, the call runs before
    # the response ends, and the model does not answer from its output until the next
    # response.create. A call that needs approval ends its response after the
    # mcp_approval_request item; an approving mcp_approval_response runs it right away.
    def _sync_mcp(self, tools: Any) -> None:
        """List the tools of every ``mcp`` tool that is new, now reached differently, or whose
        last listing failed (sending the same config again retries)."""
        for tool in mcp_tools(tools):
            label = tool["server_label"]
            fp = fingerprint(tool)
            known = self.mcp_servers.get(label)
            if known is not None and known["fp"] == fp and known["status"] != "failed":
                known["tool"] = copy.deepcopy(tool)  # require_approval etc. apply at once
                continue
            item = {"id": new_id("item"), "type": "mcp_list_tools", "server_label": label,
                    "tools": []}
            self.mcp_servers[label] = {"tool": copy.deepcopy(tool), "fp": fp,
                                       "item_id": item["id"], "status": "in_progress",
                                       "tools": []}
            self._insert(item, None)
            self.emit("conversation.item.added", previous_item_id=self._previous_id(item),
                      item=copy.deepcopy(item))
            self.emit("mcp_list_tools.in_progress", item_id=item["id"])
            self.jobs.append(McpListJob({"item_id": item["id"],
                                              "server": copy.deepcopy(tool)}))

    def mcp_list_done(self, item_id: str, tools: list[dict[str, Any]] | None = None,
                      error: str | None = None) -> None:
        """Report an ``"mcp_list"`` job: the server's ``tools`` (``mcp_list_tools`` entries), or
        ``error``, a message saying why listing failed (it must not contain credentials).

        Emits ``mcp_list_tools.completed`` (the item's ``tools`` filled, ``allowed_tools``
        applied) or ``mcp_list_tools.failed`` followed by an ``error`` event carrying the
        message (code ``mcp_list_tools_failed``: UNCONFIRMED, the service's wording for this is
        not documented), then ``conversation.item.done``; responses waiting for it start.
        """
        server = next((s for s in self.mcp_servers.values() if s["item_id"] == item_id), None)
        item = self._index.get(item_id)
        if server is not None:
            server["status"] = "completed" if error is None else "failed"
            server["tools"] = allowed(server["tool"], tools or []) if error is None else []
            if item is not None:
                item["tools"] = copy.deepcopy(server["tools"])
        if error is None:
            self.emit("mcp_list_tools.completed", item_id=item_id)
        else:
            self.emit("mcp_list_tools.failed", item_id=item_id)
            self.emit("error", error={"type": "invalid_request_error",
                                      "code": "mcp_list_tools_failed", "message": error,
                                      "param": None, "event_id": None})
        if item is not None:
            self.emit("conversation.item.done", previous_item_id=self._previous_id(item),
                      item=copy.deepcopy(item))
        self._release_responses()

    def _mcp_busy(self, resp: _Response) -> bool:
        if self._running_calls:
            return True
        return any(self.mcp_servers.get(t["server_label"], {}).get("status") == "in_progress"
                   for t in mcp_tools(resp.tools))

    def _release_responses(self) -> None:
        """Start the responders of responses no longer waiting for MCP listings or calls."""
        for rid, (job, fresh) in list(self._deferred.items()):
            resp = self.responses.get(rid)
            if resp is None or resp.status != "in_progress":
                del self._deferred[rid]
                continue
            if self._mcp_busy(resp):
                continue
            del self._deferred[rid]
            request = job.payload["request"]
            if fresh:  # the conversation as it is now (with what the MCP work added)
                context = copy.deepcopy(self.items)
                request["conversation"] = context
                request["pending_item_ids"] = _untranscribed(context)
            request["tools"] = self._expand_tools(resp.tools)
            self.jobs.append(job)

    def _expand_tools(self, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Function tools as given; each ``mcp`` tool replaced by its listed, allowed tools as
        ``{"type": "mcp", "server_label", "name", "description", "input_schema",
        "annotations"}`` (none when its listing failed)."""
        out: list[dict[str, Any]] = []
        for tool in tools:
            if tool.get("type") != "mcp":
                out.append(copy.deepcopy(tool))
                continue
            server = self.mcp_servers.get(tool["server_label"])
            if server is None or server["status"] != "completed":
                continue
            for listed in allowed(tool, server["tools"]):
                out.append({"type": "mcp", "server_label": tool["server_label"],
                            "name": listed["name"], "description": listed.get("description"),
                            "input_schema": copy.deepcopy(listed.get("input_schema")),
                            "annotations": copy.deepcopy(listed.get("annotations"))})
        return out

    def _advance_mcp(self, resp: _Response) -> bool:
        """Emit the response's next MCP calls; True when one is running (wait for its job)."""
        while resp.pending_mcp:
            label, name, args = resp.pending_mcp.pop(0)
            tool = next((t for t in mcp_tools(resp.tools) if t["server_label"] == label), None)
            server = self.mcp_servers.get(label) or {}
            listed = next((t for t in server.get("tools", []) if t["name"] == name),
                          {"name": name})
            ask = tool is not None and needs_approval(tool, listed)
            item: dict[str, Any] = {"id": new_id("item"), "type": "mcp_call",
                                    "server_label": label, "name": name, "arguments": "",
                                    "approval_request_id": new_id("item") if ask else None,
                                    "output": None, "error": None}
            self._open_item(resp, item)
            idx = len(resp.output) - 1
            for piece in _pieces(args, 24):
                self.emit("response.mcp_call_arguments.delta", response_id=resp.id,
                          item_id=item["id"], output_index=idx, delta=piece)
            item["arguments"] = args
            resp.output_text_tokens += _tokens(args)
            self.emit("response.mcp_call_arguments.done", response_id=resp.id,
                      item_id=item["id"], output_index=idx, arguments=args)
            if tool is None:
                item["error"] = {"type": "tool_execution_error",
                                 "message": f"MCP server '{label}' is not among the tools."}
                self.emit("response.mcp_call.failed", item_id=item["id"], output_index=idx)
                self._close_open_item(resp, "completed")
                continue
            if ask:
                self._close_open_item(resp, "completed")
                request = {"id": item["approval_request_id"], "type": "mcp_approval_request",
                           "server_label": label, "name": name, "arguments": args}
                self._open_item(resp, request)
                self._close_open_item(resp, "completed")
                self._approvals[request["id"]] = {"item": item, "output_index": idx,
                                                  "server": copy.deepcopy(tool)}
                continue
            self.emit("response.mcp_call.in_progress", item_id=item["id"], output_index=idx)
            resp.waiting_call = item["id"]
            self._run_call(item, idx, tool, resp.id)
            return True
        return False

    def _run_call(self, item: dict[str, Any], idx: int, tool: dict[str, Any],
                  response_id: str | None) -> None:
        self._running_calls[item["id"]] = {"item": item, "output_index": idx,
                                           "response_id": response_id}
        self.jobs.append(McpCallJob({"item_id": item["id"], "server": copy.deepcopy(tool),
                                          "name": item["name"],
                                          "arguments": item["arguments"]}))

    def mcp_call_done(self, item_id: str, output: str | None = None,
                      error: dict[str, Any] | None = None) -> None:
        """Report an ``"mcp_call"`` job: the tool's ``output`` text, or ``error`` (the item's
        error object: ``protocol_error`` / ``tool_execution_error`` / ``http_error``).

        Emits ``response.mcp_call.completed`` or ``.failed``; a call inside a response then
        closes its item and the response goes on. An approved call (run outside any response)
        is followed by ``conversation.item.done`` with the filled item (UNCONFIRMED: how the
        service shows an approved call's output is not documented).
        """
        run = self._running_calls.pop(item_id, None)
        if run is None:
            return
        item, idx = run["item"], run["output_index"]
        if error is None:
            item["output"] = output
        else:
            item["error"] = error
        resp = self.responses.get(run["response_id"] or "")
        self.emit("response.mcp_call.completed" if error is None else "response.mcp_call.failed",
                  item_id=item_id, output_index=idx)
        if resp is not None and resp.waiting_call == item_id and resp.status == "in_progress":
            resp.waiting_call = None
            self._close_open_item(resp, "completed")
            if not self._advance_mcp(resp):
                self._complete(resp)
        elif item_id in self._index:
            self.emit("conversation.item.done", previous_item_id=self._previous_id(item),
                      item=copy.deepcopy(item))
        self._release_responses()

    def _check_approval(self, item: dict[str, Any]) -> dict[str, Any] | None:
        """Refuse an ``mcp_approval_response`` naming no approval request, or one already
        answered (codes and wording UNCONFIRMED); returns the call it approves, if any."""
        rid = item["approval_request_id"]
        request = self._index.get(rid)
        if request is None or request.get("type") != "mcp_approval_request":
            raise ProtocolError(
                "item_not_found",
                f"Approval request with id '{rid}' not found in conversation.",
                "item.approval_request_id",
            )
        if any(it.get("type") == "mcp_approval_response" and it.get("approval_request_id") == rid
               for it in self.items):
            raise ProtocolError(
                "invalid_value",
                f"Approval request '{rid}' has already been answered.",
                "item.approval_request_id",
            )
        return self._approvals.pop(rid, None)

    def _answer_approval(self, pending: dict[str, Any], answer: dict[str, Any]) -> None:
        if not answer.get("approve"):
            return  # denied: the call never runs; the model sees the answer next response
        item, idx = pending["item"], pending["output_index"]
        self.emit("response.mcp_call.in_progress", item_id=item["id"], output_index=idx)
        self._run_call(item, idx, pending["server"], None)
