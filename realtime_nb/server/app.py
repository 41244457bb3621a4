"""The local Realtime-compatible server: :class:`LocalServer`, and the process-wide one.

:class:`LocalServer` holds the configuration (host, key, beta policy, session age limit, TLS,
worker counts), owns what its sessions share (the engines, the worker pools, the batched
inference, the live client secrets and WebRTC calls) and wires the rooms of the server together.
Where each concern lives:

* :mod:`.admission` — who may connect: origin, key and client-secret checks, what a connection
  asks for (dialect, session type, model), decided without I/O;
* :mod:`.connection` — one session: the driver between a peer (WebSocket or WebRTC call) and
  its :class:`~realtime_nb.protocol.SessionCore` (all protocol rules live there, I/O-free):
  client events in, the ordered send queue out, the timers;
* :mod:`.jobs` — the core's jobs: transcription (with speculation at each pause), replies
  (responder, speech synthesis), MCP tool listing and calls;
* :mod:`.batching` — VAD and semantic_vad's end-of-turn questions, batched across sessions;
* :mod:`.rest` — ``POST /v1/realtime/client_secrets``, ``/calls``, ``/calls/<id>/hangup``
  (parsed by :mod:`.http` on the WebSocket's port); :mod:`.webrtc` — the calls themselves;
* :mod:`.thread` — a server on its own loop in a background thread.

semantic_vad: at each pause the session's segmenter asks the end-of-turn model (Smart Turn v3.2,
:mod:`realtime_nb.vad.turn`, when ``pipecat-ai`` is installed) whether the turn is complete. The
questions of every session are batched and answered in a dedicated thread, started as soon as the
pause is 64 ms old; a session's later VAD frames wait for its answer only if they could end the
turn, so the answer never changes what is decided, only (rarely) when. Without the model
semantic_vad uses the utterance-length fallback; :attr:`LocalServer.semantic_vad` says which, and a
warning is logged.

Use it three ways:

* ``python -m realtime_nb.server --port 8765`` (prints the URL it serves);
* ``async with LocalServer() as server: ... server.url`` inside a running event loop (tests);
* :func:`ensure_local_server` — one process-wide server in a background thread with its own event
  loop, which survives notebook cell executions and never blocks the kernel.

It binds to loopback unless told otherwise (``allow_remote=True`` in Python, an explicit ``--host``
on the command line).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http
import json
import logging
import os
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from realtime_nb.net import is_loopback
from realtime_nb.protocol.state import new_id
from realtime_nb.server.admission import (
    ClientSecret,
    admit,
    connection_info,
    refusal_after_upgrade,
)
from realtime_nb.server.batching import TurnBatches, VadBatches
from realtime_nb.server.connection import Connection, ConnectionHooks, SocketPeer
from realtime_nb.server.http import HttpOrWebSocket
from realtime_nb.server.rest import RestApi, mint_client_secret
from realtime_nb.server.thread import ServerThread

__all__ = ["LocalServer", "ensure_local_server", "stop_local_server"]

logger = logging.getLogger(__name__)


def _ws_logger() -> logging.Logger:
    """websockets' server logger with credential headers masked (its DEBUG handshake log would
    otherwise print ``Authorization: Bearer <key>``)."""
    from realtime_nb.credentials import REDACT_HEADERS

    log = logging.getLogger("realtime_nb.server.websockets")
    if REDACT_HEADERS not in log.filters:
        log.addFilter(REDACT_HEADERS)
    return log

class LocalServer:
    """An offline server speaking the Realtime API's WebSocket protocol.

    ``engines`` defaults to :meth:`Engines.default` (Silero VAD, faster-whisper tiny.en, espeak-ng,
    the echo responder). ``api_key``: when set (non-empty), the upgrade is refused with HTTP 401
    unless the client presents exactly this key (compared in constant time). ``beta``:
    ``"translate"`` serves the retired beta dialect (``OpenAI-Beta: realtime=v1``) by
    translation; ``"retired"`` answers it as today's service does (``beta_api_shape_disabled``,
    close 4000). ``max_duration_s`` is the session age limit (the service's is 60 minutes).
    Browsers may connect only from loopback pages unless their origin is in ``allowed_origins``.

    TLS: pass ``ssl_certfile`` (and ``ssl_keyfile`` unless the key is in the same file), or a
    ready ``ssl_context``; the server then speaks ``wss://`` (see :mod:`realtime_nb.server.tls`
    for a self-signed loopback certificate and how to make clients trust it).

    Engines run in two thread pools so a reply never waits behind speech recognition:
    ``asr_workers`` threads transcribe (Whisper runs one call at a time anyway, and a queued
    speculative transcription the turn no longer needs can still be dropped), ``workers`` threads
    run the responder and speech synthesis. semantic_vad's end-of-turn questions run in
    ``turn_workers`` threads (default 1, leaving a core to the event loop), ``turn_batch`` per
    inference call.

    ``connection_hooks`` (a :class:`~realtime_nb.server.connection.ConnectionHooks`, default
    none) are test seams for fault injection; :mod:`realtime_nb.server.scripted` uses them.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        engines: Any = None,
        api_key: str | None = None,
        beta: str = "translate",
        max_duration_s: float = 3600.0,
        allow_remote: bool = False,
        workers: int = 2,
        vad_batch_s: float = 0.005,
        turn_batch: int = 8,
        turn_workers: int = 1,
        allowed_origins: tuple[str, ...] = (),
        asr_workers: int = 1,
        ssl_certfile: str | os.PathLike[str] | None = None,
        ssl_keyfile: str | os.PathLike[str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        connection_hooks: ConnectionHooks | None = None,
    ) -> None:
        if not is_loopback(host) and not allow_remote:
            raise ValueError(
                f"Refusing to bind the local server to {host!r}: it binds to loopback "
                "(127.0.0.1) unless you pass allow_remote=True."
            )
        if beta not in ("translate", "retired"):
            raise ValueError("beta must be 'translate' or 'retired'")
        if api_key is not None and not api_key:
            raise ValueError("api_key must not be empty (pass None to accept any key)")
        if ssl_context is None and ssl_certfile is not None:
            from .tls import server_ssl_context

            ssl_context = server_ssl_context(ssl_certfile, ssl_keyfile)
        elif ssl_keyfile is not None and ssl_certfile is None:
            raise ValueError("ssl_keyfile needs ssl_certfile")
        self.ssl_context = ssl_context
        self.host = host
        self.port = port
        self.engines = engines
        self.api_key = api_key
        self.beta = beta
        self.max_duration_s = max_duration_s
        self.workers = workers
        self.asr_workers = asr_workers
        self._server: Server | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._asr_pool: ThreadPoolExecutor | None = None
        self.sessions: set[Connection] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.vad_batch_s = vad_batch_s
        self.allowed_origins = tuple(allowed_origins)
        self.client_secrets: dict[str, ClientSecret] = {}
        self.calls: dict[str, Any] = {}  # call id -> live WebRTC .webrtc.Call
        self._call_tasks: set[asyncio.Task[Any]] = set()
        self._rest = RestApi(self)
        self._vad_batches = VadBatches(self)
        self.turn_batch = turn_batch
        self.turn_workers = max(1, int(turn_workers))
        self._turn_pool: ThreadPoolExecutor | None = None
        self._turn_batches = TurnBatches(self)
        #: test seams every session calls (:class:`.connection.ConnectionHooks`; ``None``: none)
        self.connection_hooks = connection_hooks

    @property
    def turn_model(self) -> Any:
        """The end-of-turn model semantic_vad sessions use (``None``: the length-rule fallback).

        ``engines.turn`` when set (``False`` turns the model off), else the shared Smart Turn
        model if ``pipecat-ai`` is installed."""
        chosen = getattr(self.engines, "turn", None)
        if chosen is False:
            return None
        if chosen is not None:
            return chosen
        from realtime_nb.vad.turn import default_turn_model

        return default_turn_model()

    @property
    def semantic_vad(self) -> str:
        """How this server's semantic_vad decides: the model's name (e.g.
        ``"smart-turn-v3.2"``) or ``"length-rule fallback: <why>"``."""
        model = self.turn_model
        if model is not None:
            return str(getattr(model, "name", type(model).__name__))
        if getattr(self.engines, "turn", None) is False:
            return "length-rule fallback: engines.turn is False"
        from realtime_nb.vad.turn import turn_model_status

        return turn_model_status()

    @property
    def noise_reduction(self) -> str:
        """What this server does with ``audio.input.noise_reduction``: ``"speex"`` (the Speex
        suppressor filters appended audio before VAD and transcription), ``"off"`` (the engines
        say never), ``"custom"`` (the engines' own filter) or ``"not applied: ..."`` (the
        package is missing; the setting is accepted and echoed, the audio is not filtered)."""
        from .engines.denoise import noise_filter_status

        noise = getattr(self.engines, "noise", None)
        if noise is False:
            return "off"
        if noise is not None:
            return "custom"
        return noise_filter_status()

    @property
    def transcription_engines(self) -> dict[str, str]:
        """Which local engine runs each transcription model name a session may ask for
        (``audio.input.transcription.model``), e.g. ``{"whisper-1": "faster-whisper (Whisper
        tiny.en, ...)", ..., "pocketsphinx": "pocketsphinx (...)"}``."""
        from .engines import Engines
        from .engines.asr import transcription_engines

        if isinstance(self.engines, Engines):
            return self.engines.transcription_engines()
        return transcription_engines(getattr(self.engines, "transcriber", None))

    @property
    def tls(self) -> bool:
        """Whether the server speaks TLS (``wss://``)."""
        return self.ssl_context is not None

    @property
    def _authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """``ws://HOST:PORT/v1/realtime`` (``wss://`` with TLS; add ``?model=...`` or
        ``?intent=transcription``)."""
        return f"{self.base_url}/realtime"

    @property
    def base_url(self) -> str:
        """``ws://HOST:PORT/v1`` (``wss://`` with TLS) — what the openai SDK's
        ``websocket_base_url`` wants."""
        return f"{'wss' if self.tls else 'ws'}://{self._authority}/v1"

    @property
    def http_base_url(self) -> str:
        """``http://HOST:PORT/v1`` (``https://`` with TLS) — a REST ``base_url``. The Node SDK
        derives its ``wss://`` URL from this."""
        return f"{'https' if self.tls else 'http'}://{self._authority}/v1"

    async def start(self, warm_up: bool = True) -> LocalServer:
        """Start listening (port 0 picks a free port; read it back from :attr:`port`).

        With ``warm_up`` the engines (and the VAD model) load their models in the worker pools
        right away, so the first turn does not pay for it.
        """
        if self.engines is None:
            from .engines import Engines

            self.engines = Engines.default()
        self.loop = asyncio.get_running_loop()
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="realtime_nb-engine")
        self._asr_pool = ThreadPoolExecutor(self.asr_workers, thread_name_prefix="realtime_nb-asr")
        self._turn_pool = ThreadPoolExecutor(self.turn_workers,
                                             thread_name_prefix="realtime_nb-turn")
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._process_request,
            select_subprotocol=self._select_subprotocol,
            max_size=32 * 1024 * 1024,
            compression=None,
            ping_interval=None,
            logger=_ws_logger(),
            ssl=self.ssl_context,
            # websockets annotates type[ServerConnection]; its docs take a wrapper too (a factory)
            create_connection=functools.partial(  # type: ignore[arg-type]
                HttpOrWebSocket, http_handler=self._rest.handle),
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        if warm_up:
            self._warm_up()
        logger.info("realtime_nb local server on %s", self.url)
        return self

    def _warm_up(self) -> None:
        """Load every model in the background: the transcriber in the ASR pool (its first call
        also compiles the decoding path), the rest in the engine pool."""
        from realtime_nb.vad import default_speech_model

        assert self.loop is not None and self.engines is not None
        jobs: list[tuple[ThreadPoolExecutor | None, Any]] = [
            (self._asr_pool, getattr(self.engines.transcriber, "warm_up", None)),
            (self._pool, getattr(self.engines.synthesizer, "warm_up", None)),
            (self._pool, getattr(self.engines.responder, "warm_up", None)),
        ]
        if getattr(self.engines, "vad", None) is None:
            jobs.append((self._pool, default_speech_model))
        if getattr(self.engines, "turn", None) is None:
            from realtime_nb.vad.turn import default_turn_model

            jobs.append((self._turn_pool, default_turn_model))
        if getattr(self.engines, "noise", None) is None:
            from .engines.denoise import warm_up as warm_noise_filter

            jobs.append((self._pool, warm_noise_filter))
        for pool, fn in jobs:
            if callable(fn):
                fut = self.loop.run_in_executor(pool, fn)
                fut.add_done_callback(_log_failure)

    async def stop(self) -> None:
        """Close every session (WebRTC calls too) and stop listening."""
        for call in list(self.calls.values()):
            call.end()
        if self._call_tasks:
            await asyncio.wait(list(self._call_tasks), timeout=5)
        if self._server is not None:
            self._server.close()
            try:
                await asyncio.wait_for(asyncio.shield(self._server.wait_closed()), 5)
            except TimeoutError:
                # a client that stopped reading keeps close() waiting on drain(): cut it
                for conn in list(self.sessions):
                    conn.peer.abort()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None
        for pool in (self._pool, self._asr_pool, self._turn_pool):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._asr_pool = self._turn_pool = None
        self._turn_batches.clear()

    async def __aenter__(self) -> LocalServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ batched inference
    def schedule_vad(self, conn: Connection) -> None:
        """Queue a session whose appended audio awaits VAD; all queued sessions' audio goes
        through the speech model in one batched call a few milliseconds later."""
        self._vad_batches.schedule(conn)

    def schedule_turn(self, conn: Connection, check: Any, audio: Any) -> None:
        """Queue a session's end-of-turn question; questions queued while every end-of-turn
        thread (``turn_workers``) is busy are answered together in the next batch (``turn_batch``
        per inference call)."""
        self._turn_batches.schedule(conn, check, audio)

    # ------------------------------------------------------------------ handshake
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """websockets' handshake hook: the upgrade's refusal from :func:`.admission.admit`."""
        refusal = admit(request.path, request.headers, api_key=self.api_key,
                        secrets=self.client_secrets, allowed_origins=self.allowed_origins,
                        calls=self.calls)
        if refusal is None:
            return None
        response = connection.respond(http.HTTPStatus(refusal.status), refusal.body)
        for name, value in refusal.headers.items():
            response.headers[name] = value
        return response

    # ------------------------------------------------------------------ WebRTC calls
    async def _sideband(self, ws: ServerConnection, call_id: str) -> None:
        """A WebSocket attached to a live call (``?call_id=``): it sees the call's events from a
        fresh ``session.created`` on, and its client events steer the call's session."""
        call = self.calls.get(call_id)
        if call is None or call.conn is None or call.ended.is_set():
            await ws.close(1008, "call_not_found")  # (ended between the handshake and here)
            return
        core = call.conn.core
        created = json.dumps({"type": "session.created", "event_id": new_id("event"),
                              "session": core.session_object()})
        await call.serve_sideband(ws, created)

    def mint_client_secret(self, body: Any) -> ClientSecret:
        """Validate a ``POST /v1/realtime/client_secrets`` body and store a new secret in
        :attr:`client_secrets` (see :func:`.rest.mint_client_secret`: the body's shape, the
        service's codes and params on a :class:`ProtocolError`)."""
        return mint_client_secret(body, self.client_secrets)

    @staticmethod
    def _select_subprotocol(connection: ServerConnection, subprotocols: Any) -> Any:
        return "realtime" if "realtime" in subprotocols else None

    # ------------------------------------------------------------------ sessions
    async def _handle(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        query = parse_qs(urlsplit(request.path).query)
        if "call_id" in query:
            await self._sideband(ws, query["call_id"][0])
            return
        info = connection_info(request.path, request.headers, self.client_secrets)
        refusal = refusal_after_upgrade(info, self.beta)
        if refusal is not None:
            event, code, reason = refusal
            await ws.send(json.dumps(event))
            await ws.close(code, reason)
            return
        conn = Connection(self, SocketPeer(ws), info)
        self.sessions.add(conn)
        try:
            await conn.run()
        finally:
            self.sessions.discard(conn)


def _log_failure(fut: asyncio.Future[Any]) -> None:
    """Done-callback for background engine work nobody awaits: log a failure once."""
    if not fut.cancelled() and fut.exception() is not None:
        logger.warning("engine warm-up failed: %s", fut.exception())


# ---------------------------------------------------------------------- process-wide server
_GLOBAL: ServerThread | None = None
_GLOBAL_LOCK = threading.Lock()


def ensure_local_server(**kwargs: Any) -> LocalServer:
    """Start (once per process) a local server in a background thread and return it.

    The server has its own event loop (:class:`~realtime_nb.server.thread.ServerThread`), so it
    keeps serving while notebook cells run and never blocks the kernel. Keyword arguments go to
    :class:`LocalServer` the first time only. Raises what the server's start raised, or
    ``TimeoutError`` when it has not started within 60 s.
    """
    global _GLOBAL
    with _GLOBAL_LOCK:
        if _GLOBAL is not None and _GLOBAL.running:
            return _GLOBAL.server
        _GLOBAL = ServerThread(LocalServer(**kwargs)).start()
        return _GLOBAL.server


def stop_local_server() -> None:
    """Stop the process-wide server started by :func:`ensure_local_server` (if any)."""
    global _GLOBAL
    with _GLOBAL_LOCK:
        running, _GLOBAL = _GLOBAL, None
    if running is not None:
        running.stop()
