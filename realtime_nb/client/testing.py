"""A scriptable fake Realtime server for tests, demos and fault injection.

:class:`FakeRealtimeServer` listens on loopback (port 0 by default) and answers each connection
with a :class:`~realtime_nb.protocol.SessionCore` — the same protocol rules as the local server,
and its timer loop (``server.connection.drive_timers``) —
but without models: VAD is the loudness stand-in (:class:`realtime_nb.vad.EnergyVAD`),
transcription returns ``transcript``, and the responder answers ``reply_text`` (as text, or as
``reply_audio_ms`` of a tone per sentence when audio is asked for). Everything is deterministic
and fast.

Fault injection, for what a real service or network does to clients:

* ``created_delay`` / ``reply_delay`` — a slow server;
* :meth:`push` — send any frame (an event dict, raw text, malformed JSON, binary);
* :meth:`drop` — cut every TCP connection without a close frame (network failure);
* :meth:`close_all` — close with a code and reason (server restart, policy);
* ``on_client_event`` — a hook called with each parsed client event before the core sees it;
  return True to swallow the event (e.g. to die in the middle of a response);
* ``max_duration_s`` — session expiry (``session_expired``, close 1001) after a few seconds;
* ``trace`` — pre-encoded frames sent right after ``session.created`` (recorded traces).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from realtime_nb.protocol import Job, ProtocolError, Reply, SessionCore
from realtime_nb.server.connection import drive_timers

from .backend import REDACT_HEADERS

__all__ = ["FakeConnection", "FakeRealtimeServer", "tone_pcm16"]

_LOGGER = logging.getLogger("realtime_nb.client.testing")
_LOGGER.addFilter(REDACT_HEADERS)


def tone_pcm16(ms: float, freq: float = 440.0, level: float = 0.3, rate: int = 24000) -> bytes:
    """A sine tone as PCM16 LE mono bytes (a deterministic stand-in for speech)."""
    n = int(rate * ms / 1000)
    t = np.arange(n) / rate
    return (np.sin(2 * math.pi * freq * t) * level * 32767).astype("<i2").tobytes()


class FakeConnection:
    """One client connection of the fake server: its core, socket and received events."""

    def __init__(self, server: FakeRealtimeServer, ws: ServerConnection) -> None:
        self.server = server
        self.ws = ws
        self.received: list[dict[str, Any]] = []
        vad_model, make_seg = server._vad()
        self.core = SessionCore(max_duration_s=server.max_duration_s, vad_model=vad_model,
                                make_segmenter=make_seg)
        self.tasks: set[asyncio.Task[Any]] = set()
        self.wake = asyncio.Event()

    async def flush(self) -> None:
        """Send what the core emitted and run its jobs."""
        for ev in self.core.drain():
            with contextlib.suppress(ConnectionClosed):
                await self.ws.send(json.dumps(ev))
        for job in self.core.take_jobs():
            task = asyncio.ensure_future(self._job(job))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        if self.core.closed:
            with contextlib.suppress(ConnectionClosed):
                await self.ws.close(self.core.close_code or 1000, "session closed")
        self.wake.set()

    async def _job(self, job: Job) -> None:
        srv = self.server
        if srv.reply_delay:
            await asyncio.sleep(srv.reply_delay)
        if job.kind == "transcribe":
            self.core.transcription_done(job.payload["item_id"], srv.transcript,
                                         emit=job.payload["emit"])
        elif job.kind == "respond":
            rid = job.payload["response_id"]
            req = job.payload["request"]
            self.core.response_output(rid, Reply(text=srv.reply_text))
            await self.flush()
            if "audio" in req["output_modalities"] and srv.reply_text:
                for sentence in [s for s in srv.reply_text.split(". ") if s]:
                    if not self.core.response_audio(rid, tone_pcm16(srv.reply_audio_ms),
                                                    sentence):
                        break
                    await self.flush()
                    await asyncio.sleep(srv.audio_interval)
            self.core.response_finish(rid)
        await self.flush()

    async def run(self) -> None:
        srv = self.server
        if srv.created_delay:
            await asyncio.sleep(srv.created_delay)
        if srv.send_created:
            self.core.start()
            await self.flush()
        for frame in srv.trace:
            await self.ws.send(frame)
        timer = asyncio.ensure_future(self._timer())
        try:
            async for message in self.ws:
                if isinstance(message, bytes):
                    self.core.error(ProtocolError("invalid_event", "Binary frames are not "
                                                  "supported.", None))
                    await self.flush()
                    continue
                try:
                    event = json.loads(message)
                except ValueError:
                    self.core.error(ProtocolError("invalid_json", "The server could not parse "
                                                  "the event as JSON.", None))
                    await self.flush()
                    continue
                self.received.append(event)
                srv.received.append(event)
                if srv.on_client_event is not None:
                    swallow = srv.on_client_event(self, event)
                    if asyncio.iscoroutine(swallow):
                        swallow = await swallow
                    if swallow:
                        continue
                if srv.reply_delay:
                    await asyncio.sleep(srv.reply_delay)
                self.core.handle(event)
                await self.flush()
                if self.core.closed:
                    break
        except ConnectionClosed:
            pass
        finally:
            timer.cancel()
            for t in list(self.tasks):
                t.cancel()

    async def _timer(self) -> None:
        await drive_timers(self.core, self.wake, self.flush)


class FakeRealtimeServer:
    """See the module docstring. ``async with FakeRealtimeServer() as fake: fake.url``."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        reply_text: str = "Hello from the fake server.",
        reply_audio_ms: float = 300.0,
        audio_interval: float = 0.0,
        transcript: str = "hello",
        created_delay: float = 0.0,
        reply_delay: float = 0.0,
        send_created: bool = True,
        vad: bool = True,
        max_duration_s: float = 3600.0,
        trace: list[str | bytes] | None = None,
        on_client_event: Callable[[FakeConnection, dict[str, Any]], Any] | None = None,
        require_key: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.reply_text = reply_text
        self.reply_audio_ms = reply_audio_ms
        self.audio_interval = audio_interval
        self.transcript = transcript
        self.created_delay = created_delay
        self.reply_delay = reply_delay
        self.send_created = send_created
        self.use_vad = vad
        self.max_duration_s = max_duration_s
        self.trace = list(trace or [])
        self.on_client_event = on_client_event
        self.require_key = require_key
        self.connections: list[FakeConnection] = []
        self.received: list[dict[str, Any]] = []
        self.handshakes: list[dict[str, str]] = []
        self._server: Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    def _vad(self) -> tuple[Any, Any]:
        if not self.use_vad:
            return None, None
        from realtime_nb.server import make_segmenter
        from realtime_nb.vad import EnergyVAD

        return EnergyVAD(), make_segmenter

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/v1/realtime?model=gpt-realtime"

    async def start(self) -> FakeRealtimeServer:
        self._server = await serve(self._handle, self.host, self.port, compression=None,
                                   max_size=None, ping_interval=None,
                                   process_request=self._process_request, logger=_LOGGER)
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        return self

    def _process_request(self, connection: ServerConnection, request: Any) -> Any:
        self.handshakes.append(dict(request.headers.raw_items()))
        if self.require_key is not None and request.headers.get(
                "Authorization") != f"Bearer {self.require_key}":
            body = json.dumps({"error": {"type": "invalid_request_error",
                                         "code": "invalid_api_key",
                                         "message": "Incorrect API key provided.",
                                         "param": None}})
            return connection.respond(401, body)
        return None

    async def stop(self) -> None:
        if self._server is not None:
            for task in list(self._handlers):
                task.cancel()
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    async def __aenter__(self) -> FakeRealtimeServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _handle(self, ws: ServerConnection) -> None:
        conn = FakeConnection(self, ws)
        self.connections.append(conn)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            await conn.run()
        finally:
            self._handlers.discard(task)  # type: ignore[arg-type]

    @property
    def live(self) -> list[FakeConnection]:
        """Connections whose socket is still open."""
        from websockets.protocol import State

        return [c for c in self.connections if c.ws.protocol.state is State.OPEN]

    async def push(self, event: dict[str, Any] | str | bytes) -> None:
        """Send a frame to every open connection: a dict (as JSON text), text or bytes as is."""
        frame = json.dumps(event) if isinstance(event, dict) else event
        for c in self.live:
            with contextlib.suppress(ConnectionClosed):
                await c.ws.send(frame)

    async def drop(self) -> None:
        """Abort every connection's TCP socket (no close frame: a network failure)."""
        for c in self.live:
            c.ws.transport.abort()

    async def close_all(self, code: int = 1012, reason: str = "service restart") -> None:
        """Close every connection with ``code`` / ``reason`` (1012 = server restarting)."""
        for c in self.live:
            with contextlib.suppress(Exception):
                await c.ws.close(code, reason)
