"""The local server's MCP client: list and call the tools of a session's ``mcp`` tools.

The state machine (:class:`realtime_nb.protocol.SessionCore`) asks for this work as ``"mcp_list"``
and ``"mcp_call"`` jobs; :mod:`realtime_nb.server.jobs` runs them here, on the server's event loop,
with the ``mcp`` package's client (``pip install 'realtime_nb[mcp]'``).

* ``server_url`` is dialled as given (any host: the local server's own sockets bind loopback, but
  an MCP server may be anywhere). A URL whose path ends in ``/sse`` uses the SSE transport,
  anything else streamable HTTP.
* ``headers`` are sent on every request; ``authorization`` is sent as ``Authorization: Bearer
  <token>``. Neither appears in any message this module produces.
* ``connector_id`` / ``tunnel_id`` need OpenAI's infrastructure: they fail with
  :class:`McpFailure` saying so.

Each listing and each call opens its own MCP session (initialize, request, close).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any
from urllib.parse import urlparse

__all__ = ["McpFailure", "call_tool", "list_tools"]

#: Seconds allowed to connect and to wait for one answer of the MCP server.
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0


class McpFailure(Exception):
    """Listing or calling failed; ``error`` is the ``mcp_call`` item's error object
    (``protocol_error`` / ``tool_execution_error`` / ``http_error``) and ``str()`` says why."""

    def __init__(self, message: str, error: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.error = error or {"type": "tool_execution_error", "message": message}


def _headers(server: dict[str, Any]) -> dict[str, str]:
    headers = {str(k): str(v) for k, v in (server.get("headers") or {}).items()}
    token = server.get("authorization")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _url(server: dict[str, Any]) -> str:
    label = server.get("server_label")
    if server.get("connector_id"):
        raise McpFailure(
            f"MCP server '{label}': connector '{server['connector_id']}' is an OpenAI service "
            "connector; the local server cannot reach it (use server_url, or backend='openai').")
    if server.get("tunnel_id"):
        raise McpFailure(
            f"MCP server '{label}': tunnel_id needs OpenAI's Secure MCP Tunnel; the local server "
            "cannot reach it (use server_url, or backend='openai').")
    url = str(server.get("server_url") or "")
    if urlparse(url).scheme not in ("http", "https"):
        raise McpFailure(f"MCP server '{label}': server_url must be an http(s) URL, got "
                         f"{url!r}.")
    return url


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside (possibly nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _failure(server: dict[str, Any], exc: BaseException, doing: str) -> McpFailure:
    import httpx2
    from mcp.shared.exceptions import MCPError

    exc = _leaf(exc)
    label = server.get("server_label")
    if isinstance(exc, McpFailure):
        return exc
    if isinstance(exc, MCPError):
        msg = f"MCP server '{label}' refused {doing}: {exc.message}"
        return McpFailure(msg, {"type": "protocol_error", "code": int(exc.code),
                                "message": exc.message})
    if isinstance(exc, httpx2.HTTPStatusError):
        status = exc.response.status_code
        reason = exc.response.reason_phrase or ""
        msg = f"MCP server '{label}' answered HTTP {status} {reason}".rstrip() + f" to {doing}."
        return McpFailure(msg, {"type": "http_error", "code": status, "message": msg})
    detail = str(exc) or type(exc).__name__
    msg = f"Could not reach MCP server '{label}' for {doing}: {detail}"
    return McpFailure(msg, {"type": "tool_execution_error", "message": msg})


@contextlib.asynccontextmanager
async def _connect(server: dict[str, Any]) -> Any:
    import httpx2
    from mcp import Client
    from mcp.client.sse import sse_client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    url = _url(server)
    headers = _headers(server)
    async with contextlib.AsyncExitStack() as stack:
        if urlparse(url).path.rstrip("/").endswith("/sse"):
            transport: Any = sse_client(url, headers=headers, timeout=CONNECT_TIMEOUT_S,
                                        sse_read_timeout=READ_TIMEOUT_S)
        else:
            http = await stack.enter_async_context(create_mcp_http_client(
                headers=headers, timeout=httpx2.Timeout(CONNECT_TIMEOUT_S, read=READ_TIMEOUT_S)))
            transport = streamable_http_client(url, http_client=http)
        client = await stack.enter_async_context(
            Client(transport, read_timeout_seconds=READ_TIMEOUT_S))
        yield client


def _tool_entry(tool: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": tool.name, "input_schema": tool.input_schema
                             if hasattr(tool, "input_schema") else tool.inputSchema}
    entry["description"] = tool.description
    annotations = getattr(tool, "annotations", None)
    hint = getattr(annotations, "read_only_hint", None) if annotations is not None else None
    if hint is None and annotations is not None:
        hint = getattr(annotations, "readOnlyHint", None)
    # The Responses API shows the hint as {"read_only": ...}; other hints are not carried.
    entry["annotations"] = {"read_only": bool(hint)} if hint is not None else None
    return entry


async def list_tools(server: dict[str, Any]) -> list[dict[str, Any]]:
    """Every tool the MCP server offers, as ``mcp_list_tools`` item entries
    (``name``, ``input_schema``, ``description``, ``annotations``). Raises :class:`McpFailure`."""
    try:
        async with _connect(server) as client:
            tools: list[dict[str, Any]] = []
            cursor: str | None = None
            while True:
                page = await client.list_tools(cursor=cursor)
                tools.extend(_tool_entry(t) for t in page.tools)
                cursor = getattr(page, "next_cursor", None) or getattr(page, "nextCursor", None)
                if not cursor:
                    return tools
    except Exception as exc:  # every failure becomes the listing's explanation
        raise _failure(server, exc, "tools/list") from None


def _output_text(result: Any) -> str:
    parts: list[str] = []
    for block in result.content or []:
        text = getattr(block, "text", None)
        if isinstance(text, str):
            parts.append(text)
        else:
            parts.append(json.dumps(block.model_dump(exclude_none=True, by_alias=True)))
    if not parts:
        structured = getattr(result, "structured_content", None)
        if structured is None:
            structured = getattr(result, "structuredContent", None)
        if structured is not None:
            parts.append(json.dumps(structured))
    return "\n".join(parts)


async def call_tool(server: dict[str, Any], name: str, arguments: str) -> str:
    """Run tool ``name`` with ``arguments`` (a JSON object string) and return its output text.

    A tool that reports an error (``isError``) or cannot be run raises :class:`McpFailure` whose
    ``error`` is the item's error object.
    """
    try:
        args = json.loads(arguments or "{}")
    except json.JSONDecodeError as exc:
        msg = f"Arguments for tool '{name}' are not valid JSON: {exc}"
        raise McpFailure(msg, {"type": "tool_execution_error", "message": msg}) from None
    try:
        async with _connect(server) as client:
            result = await client.call_tool(name, args if isinstance(args, dict) else {})
    except Exception as exc:
        raise _failure(server, exc, f"tools/call '{name}'") from None
    text = _output_text(result)
    if getattr(result, "is_error", None) or getattr(result, "isError", None):
        raise McpFailure(text or f"Tool '{name}' failed.",
                         {"type": "tool_execution_error", "message": text or "Tool failed."})
    return text
