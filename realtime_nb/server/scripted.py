"""A scriptable test server: the local server with scripted engines and fault hooks.

:class:`FakeRealtimeServer` (public as :mod:`realtime_nb.client.testing`) is a
:class:`~realtime_nb.server.app.LocalServer` — the same admission, connection driver, send queue,
timers and jobs — whose engines are scripted (:class:`ScriptedEngines`): VAD is the loudness
stand-in (:class:`realtime_nb.vad.EnergyVAD`, or none with ``vad=False``), transcription returns
``transcript``, the responder answers ``reply_text``, and speech synthesis gives
``reply_audio_ms`` of a tone per sentence. Everything is deterministic, fast and offline.

Fault injection, for what a real service or network does to clients:

* ``created_delay`` / ``reply_delay`` — a slow server (``reply_delay`` before each client event
  reaches the session and before each transcription and reply);
* ``audio_interval`` — seconds between a reply's audio sentences (paced speech);
* :meth:`FakeRealtimeServer.push` — send any frame (an event dict, raw text, malformed JSON,
  binary);
* :meth:`FakeRealtimeServer.drop` — cut every TCP connection without a close frame;
* :meth:`FakeRealtimeServer.close_all` — close with a code and reason (server restart, policy);
* ``on_client_event`` — called with (:class:`FakeConnection`, event) for each parsed client event
  before the session sees it (may be a coroutine function); return True to swallow the event;
* ``send_created=False`` — never send ``session.created``;
* ``max_duration_s`` — session expiry (``session_expired``, close 1001) after a few seconds;
* ``trace`` — frames sent as they are right after ``session.created`` (recorded traces);
* ``require_key`` — refuse the upgrade (HTTP 401, ``invalid_api_key``) without this key.

The faults use :class:`~realtime_nb.server.connection.ConnectionHooks`, the connection's seams.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from realtime_nb.audio import Audio
from realtime_nb.server.app import LocalServer
from realtime_nb.server.connection import Connection, ConnectionHooks
from realtime_nb.server.engines.asr_types import Transcript
from realtime_nb.server.engines.responder_types import Reply, ResponseRequest

__all__ = ["FakeConnection", "FakeRealtimeServer", "ScriptedEngines", "tone_pcm16"]


def tone_pcm16(ms: float, freq: float = 440.0, level: float = 0.3, rate: int = 24000) -> bytes:
    """A sine tone as PCM16 LE mono bytes (a deterministic stand-in for speech)."""
    n = int(rate * ms / 1000)
    t = np.arange(n) / rate
    return (np.sin(2 * math.pi * freq * t) * level * 32767).astype("<i2").tobytes()


class ScriptedEngines:
    """The engines of a :class:`FakeRealtimeServer`: they read the server's script
    (``transcript``, ``reply_text``, ``reply_audio_ms``, ``reply_delay``, ``audio_interval``)
    when called, so a test may change it between turns. They run in the server's worker threads:
    their waits are ``time.sleep`` there, never on the event loop."""

    def __init__(self, server: FakeRealtimeServer) -> None:
        from realtime_nb.vad import EnergyVAD

        self.server = server
        self.vad: Any = EnergyVAD() if server.use_vad else False  # False: no VAD at all
        self.turn = False  # no end-of-turn model: semantic_vad uses the length rule
        self.noise = False  # appended audio is never filtered
        self.responder = self
        self.synthesizer = self
        self.transcriber = self

    def noise_filter_factory(self) -> None:
        """No input noise filter."""
        return None

    def transcribe(self, audio: Any, **_options: Any) -> Transcript:
        """``transcript`` after ``reply_delay``, whatever the audio and options."""
        if self.server.reply_delay:
            time.sleep(self.server.reply_delay)
        text = self.server.transcript
        return Transcript(text, deltas=(text,) if text else ())

    def respond(self, request: ResponseRequest) -> Reply:
        """``reply_text`` after ``reply_delay``."""
        if self.server.reply_delay:
            time.sleep(self.server.reply_delay)
        return Reply(text=self.server.reply_text)

    def synthesize(self, text: str, *, voice: str | None = None,
                   speed: float | None = None) -> Iterator[Audio]:
        """``reply_audio_ms`` of a tone for the sentence, ready ``audio_interval`` s later."""
        if self.server.audio_interval:
            time.sleep(self.server.audio_interval)
        yield Audio.from_pcm16(tone_pcm16(self.server.reply_audio_ms))


class FakeConnection:
    """One client connection of the fake server: its session (``conn``, a local-server
    :class:`~realtime_nb.server.connection.Connection`), core, socket and received events."""

    def __init__(self, server: FakeRealtimeServer, conn: Connection) -> None:
        self.server = server
        self.conn = conn
        self.core = conn.core
        self.ws: ServerConnection = conn.peer.ws
        self.received: list[dict[str, Any]] = []

    async def flush(self) -> None:
        """Send what the core emitted and start its jobs (after changing ``core`` directly)."""
        self.conn.flush()


class _FaultHooks(ConnectionHooks):
    """The fake server's faults, on the connection's seams."""

    def __init__(self, server: FakeRealtimeServer) -> None:
        self.server = server
        self.fakes: dict[int, FakeConnection] = {}

    async def opening(self, conn: Connection) -> bool:
        fake = FakeConnection(self.server, conn)
        self.fakes[id(conn)] = fake
        self.server.connections.append(fake)
        if self.server.created_delay:
            await asyncio.sleep(self.server.created_delay)
        return self.server.send_created

    def after_created(self, conn: Connection) -> list[str | bytes]:
        return list(self.server.trace)

    async def client_event(self, conn: Connection, event: Any) -> bool:
        srv = self.server
        fake = self.fakes[id(conn)]
        fake.received.append(event)
        srv.received.append(event)
        if srv.on_client_event is not None:
            swallow = srv.on_client_event(fake, event)
            if asyncio.iscoroutine(swallow):
                swallow = await swallow
            if swallow:
                return True
        if srv.reply_delay:
            await asyncio.sleep(srv.reply_delay)
        return False


class FakeRealtimeServer(LocalServer):
    """See the module docstring. ``async with FakeRealtimeServer() as fake: fake.url``.

    The script (``reply_text``, ``transcript``, ``reply_delay``, ``audio_interval``, …) and
    ``on_client_event`` are read when used: change them on a running server. ``received`` holds
    every parsed client event of every connection, ``connections`` each
    :class:`FakeConnection`, ``handshakes`` each upgrade request's headers."""

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
        self.reply_text = reply_text
        self.reply_audio_ms = reply_audio_ms
        self.audio_interval = audio_interval
        self.transcript = transcript
        self.created_delay = created_delay
        self.reply_delay = reply_delay
        self.send_created = send_created
        self.use_vad = vad
        self.trace = list(trace or [])
        self.on_client_event = on_client_event
        self.require_key = require_key
        self.connections: list[FakeConnection] = []
        self.received: list[dict[str, Any]] = []
        self.handshakes: list[dict[str, str]] = []
        # scripted engines sleep in worker threads: enough of them for concurrent sessions
        super().__init__(host, port, engines=ScriptedEngines(self), api_key=require_key,
                         max_duration_s=max_duration_s, workers=8, asr_workers=4,
                         connection_hooks=_FaultHooks(self))

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/v1/realtime?model=gpt-realtime"

    async def start(self, warm_up: bool = True) -> FakeRealtimeServer:
        await super().start(warm_up=warm_up)
        return self

    async def __aenter__(self) -> FakeRealtimeServer:
        return await self.start()

    def _process_request(self, connection: ServerConnection, request: Any) -> Any:
        self.handshakes.append(dict(request.headers.raw_items()))
        return super()._process_request(connection, request)

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
