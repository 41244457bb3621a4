"""Plain HTTP requests on the local server's WebSocket port (``POST /v1/realtime/client_secrets``).

Clients take one base URL for both REST and the socket (the Node SDK derives ``wss://`` from its
``https://`` ``baseURL``), so REST calls must be answered on the same port as the WebSocket. The
websockets library only parses ``GET`` upgrade requests; :class:`HttpOrWebSocket` — passed to
its ``serve(create_connection=...)`` — looks at the first bytes of each connection: a ``GET``
goes to websockets unchanged, anything else is parsed with h11 and answered by the server's
``http_handler``, then the connection is closed (one request per connection,
``Connection: close``). TLS, when on, sits below this, so both paths are encrypted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import h11
from websockets.asyncio.server import ServerConnection

__all__ = ["HttpOrWebSocket", "HttpRequest", "HttpResponse", "json_response"]

#: Largest request body accepted (client secrets are small; SDP offers a few KB).
MAX_BODY = 1024 * 1024


@dataclass
class HttpRequest:
    """One parsed request: ``method`` (upper case), ``target`` (path and query), lower-cased
    ``headers`` (last value wins) and the whole ``body``."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes = b""

    def json(self) -> Any:
        """The body as JSON; raises ``ValueError`` with the parser's reason."""
        return json.loads(self.body.decode("utf-8") or "null")


@dataclass
class HttpResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, obj: Any, **headers: str) -> HttpResponse:
    return HttpResponse(status, json.dumps(obj).encode(), {"Content-Type": "application/json",
                                                           **headers})


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


class HttpOrWebSocket(ServerConnection):
    """A websockets server connection that answers non-``GET`` requests itself (see the module
    docstring). ``http_handler`` must not raise; it gets the request once its body is complete."""

    def __init__(self, *args: Any, http_handler: Handler, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._http_handler = http_handler
        self._head = b""
        self._mode: str | None = None  # "ws" or "http" once the first bytes are seen
        self._mode_known: asyncio.Future[None] = self.loop.create_future()
        self._h11: h11.Connection | None = None
        self._request: HttpRequest | None = None
        self._body: list[bytes] = []
        self._size = 0

    # -------------------------------------------------------------- asyncio.Protocol
    def data_received(self, data: bytes) -> None:
        if self._mode is None:
            self._head += data
            if len(self._head) < 4:
                return
            data, self._head = self._head, b""
            self._mode = "ws" if data.startswith(b"GET ") else "http"
            if not self._mode_known.done():
                self._mode_known.set_result(None)
            if self._mode == "http":
                self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        if self._mode == "ws":
            super().data_received(data)
            return
        assert self._h11 is not None
        if self._h11.their_state is h11.DONE:
            return  # one request per connection
        self._h11.receive_data(data)
        self._pump()

    def eof_received(self) -> None:
        if self._mode == "http":
            if self._h11 is not None and self._h11.their_state is not h11.DONE:
                self.transport.close()
            return None
        return super().eof_received()

    # -------------------------------------------------------------- websockets hook
    async def handshake(self, *args: Any, **kwargs: Any) -> None:
        """For HTTP requests: wait until the answer is sent and the connection closed, then
        return without a WebSocket (the server then drops the connection quietly)."""
        await asyncio.wait([self._mode_known, self.connection_lost_waiter],
                           return_when=asyncio.FIRST_COMPLETED)
        if self._mode == "http":
            await asyncio.shield(self.connection_lost_waiter)
            return
        await super().handshake(*args, **kwargs)

    # -------------------------------------------------------------- HTTP
    def _pump(self) -> None:
        assert self._h11 is not None
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as err:
                self._answer(HttpResponse(400, f"Bad request: {err}\n".encode()))
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self._request = HttpRequest(
                    event.method.decode("ascii", "replace").upper(),
                    event.target.decode("ascii", "replace"),
                    {k.decode("latin-1").lower(): v.decode("latin-1")
                     for k, v in event.headers})
            elif isinstance(event, h11.Data):
                self._size += len(event.data)
                if self._size > MAX_BODY:
                    self._answer(HttpResponse(413, b"Request body too large\n"))
                    return
                self._body.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                assert self._request is not None
                self._request.body = b"".join(self._body)
                task = self.loop.create_task(self._serve(self._request))
                task.add_done_callback(lambda t: t.cancelled() or t.exception())
                return
            elif isinstance(event, h11.ConnectionClosed):
                self.transport.close()
                return

    async def _serve(self, request: HttpRequest) -> None:
        try:
            response = await self._http_handler(request)
        except Exception:  # the handler's contract is not to raise; stay a server anyway
            self.logger.exception("HTTP handler failed")
            response = json_response(500, {"error": {
                "message": "The server had an error while processing your request.",
                "type": "server_error", "code": None, "param": None}})
        self._answer(response)

    def _answer(self, response: HttpResponse) -> None:
        conn = self._h11
        assert conn is not None
        headers = [("Content-Length", str(len(response.body))), ("Connection", "close"),
                   *response.headers.items()]
        with contextlib.suppress(h11.LocalProtocolError):
            self.transport.write(conn.send(h11.Response(status_code=response.status,
                                                        headers=headers)) or b"")
            self.transport.write(conn.send(h11.Data(data=response.body)) or b"")
            self.transport.write(conn.send(h11.EndOfMessage()) or b"")
        self.transport.close()
