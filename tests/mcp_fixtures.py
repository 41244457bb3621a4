"""A real MCP server for the tests: the ``mcp`` package's MCPServer over streamable HTTP on a
free loopback port, served by uvicorn in a background thread.

The same tools are served over SSE at ``sse_url``. Its tools: ``add_numbers(a, b)``
(read-only; the sum, so outputs are checkable), ``fail_loudly(reason)`` (raises a ToolError
naming the reason) and ``erase_everything()`` (for ``allowed_tools`` filtering). Every HTTP
request's headers and every tool call are recorded, so tests can tell whether a call ran and
what credentials reached the server.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest


@dataclass
class McpTestServer:
    url: str  # streamable HTTP; the same tools over SSE at sse_url
    sse_url: str
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    def reset(self) -> None:
        self.calls.clear()
        self.headers.clear()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def mcp_server() -> Any:
    uvicorn = pytest.importorskip("uvicorn")
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import ToolAnnotations

    port = _free_port()
    state = McpTestServer(url=f"http://127.0.0.1:{port}/mcp", sse_url=f"http://127.0.0.1:{port}/sse")
    srv = MCPServer("calc")

    @srv.tool(annotations=ToolAnnotations(read_only_hint=True))
    def add_numbers(a: int, b: int) -> int:
        """Add two integers."""
        state.calls.append(("add_numbers", {"a": a, "b": b}))
        return a + b

    @srv.tool()
    def fail_loudly(reason: str) -> str:
        """Always fails, saying why."""
        state.calls.append(("fail_loudly", {"reason": reason}))
        raise ToolError(f"refused on purpose: {reason}")

    @srv.tool()
    def erase_everything() -> str:
        """A tool no test should be allowed to run."""
        state.calls.append(("erase_everything", {}))
        return "erased"

    inner = srv.streamable_http_app()
    sse = srv.sse_app()  # the older SSE transport: GET /sse, POST /messages/

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            state.headers.append({k.decode(): v.decode() for k, v in scope["headers"]})
            if scope["path"] == "/sse" or scope["path"].startswith("/messages"):
                await sse(scope, receive, send)
                return
        await inner(scope, receive, send)

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True, name="mcp-test-server")
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the test MCP server did not start")
        time.sleep(0.05)
    yield state
    server.should_exit = True
    thread.join(10)
