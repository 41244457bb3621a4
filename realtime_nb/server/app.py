"""The local Realtime-compatible server: transport, auth, dialects, and the engine job runner.

Each WebSocket connection gets one :class:`~realtime_nb.protocol.SessionCore` (all protocol rules
live there, I/O-free). This module only moves bytes: it parses frames, translates the retired beta
dialect at the edge, runs the core's jobs (speech recognition, the responder, speech synthesis) in
worker pools so the event loop never blocks, drives the core's timers, and sends what the core
emits, in order. MCP jobs (listing a server's tools, calling one) are network I/O and run as
tasks on the loop itself (:mod:`realtime_nb.server.mcp_client`).

Turn latency: the core asks for a speculative transcription at the first silent frame of every
pause; it runs at once in the transcription pool and is dropped (even mid-run, at Whisper's next
checkpoint) as soon as the speaker resumes, so the pause that really ends the turn never waits
behind a stale one. When the turn ends at that pause its transcript is usually ready by the time
the silence window has passed. Replies (responder, speech synthesis) run in their own pool.

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
import re
import secrets
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from realtime_nb.net import is_loopback
from realtime_nb.protocol import Job, ProtocolError, Reply, SessionCore, validate_client_event
from realtime_nb.protocol.beta import BetaTranslator
from realtime_nb.protocol.state import new_id
from realtime_nb.server.admission import (
    REALTIME_MODELS,
    ClientSecret,
    ConnInfo,
    admit,
    bearer_key,
    connection_info,
    find_secret,
    origin_allowed,
    refusal_after_upgrade,
    refuse_key,
    session_defaults,
)
from realtime_nb.server.engines.asr import LanguageUnsupported, TranscriptionCancelled
from realtime_nb.server.http import HttpOrWebSocket, HttpRequest, HttpResponse, json_response
from realtime_nb.vad import make_segmenter

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

@dataclass
class _Speculation:
    """A transcription started at a pause, before the turn is known to end there."""

    task: asyncio.Future[Any]
    cancel: threading.Event
    #: the engine options it runs with (model, language, prompt, logprobs): a turn reuses it
    #: only when its own transcription asks for the same
    options: tuple[Any, ...] = ()

    def abandon(self) -> None:
        """Drop it: unstarted, it never runs; running, Whisper stops at its next checkpoint."""
        self.cancel.set()
        self.task.cancel()


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
        self.sessions: set[_Connection] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.vad_batch_s = vad_batch_s
        self.allowed_origins = tuple(allowed_origins)
        self.client_secrets: dict[str, ClientSecret] = {}
        self.calls: dict[str, Any] = {}  # call id -> live WebRTC .webrtc.Call
        self._call_tasks: set[asyncio.Task[Any]] = set()
        self._vad_dirty: dict[_Connection, None] = {}
        self._vad_timer: asyncio.TimerHandle | None = None
        self.turn_batch = turn_batch
        self.turn_workers = max(1, int(turn_workers))
        self._turn_pool: ThreadPoolExecutor | None = None
        self._turn_queue: list[tuple[_Connection, Any, Any]] = []
        self._turn_busy = 0  # batches running

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
            create_connection=functools.partial(HttpOrWebSocket, http_handler=self._http),
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
        self._turn_queue.clear()
        self._turn_busy = 0

    async def __aenter__(self) -> LocalServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ batched VAD
    def schedule_vad(self, conn: _Connection) -> None:
        """Queue a session whose appended audio awaits VAD; all queued sessions' audio goes
        through the speech model in one batched call a few milliseconds later."""
        self._vad_dirty[conn] = None
        if self._vad_timer is None and self.loop is not None:
            self._vad_timer = self.loop.call_later(self.vad_batch_s, self._run_vad_batch)

    def _run_vad_batch(self) -> None:
        self._vad_timer = None
        conns, self._vad_dirty = list(self._vad_dirty), {}
        by_model: dict[int, list[tuple[_Connection, Any, Any]]] = {}
        for conn in conns:
            samples = conn.core.take_vad_input()
            stream = conn.core.vad_stream
            if samples is None or stream is None:
                continue
            by_model.setdefault(id(conn.vad_model), []).append((conn, stream, samples))
        for work in by_model.values():
            model = work[0][0].vad_model
            try:
                probs = model.process_many([(stream, samples) for _, stream, samples in work])
            except Exception:
                logger.exception("batched VAD failed; falling back to per-session inference")
                probs = [stream.process(samples) for _, stream, samples in work]
            for (conn, _, _), p in zip(work, probs, strict=True):
                conn.core.feed_probabilities(p)
                conn.flush()

    # ------------------------------------------------------------------ batched end of turn
    def schedule_turn(self, conn: _Connection, check: Any, audio: Any) -> None:
        """Queue a session's end-of-turn question; questions queued while every end-of-turn
        thread (``turn_workers``) is busy are answered together in the next batch (``turn_batch``
        per inference call)."""
        self._turn_queue.append((conn, check, audio))
        if self._turn_busy < self.turn_workers:
            self._next_turn_batch()

    def _next_turn_batch(self) -> None:
        # questions whose pause already ended (speech resumed, session gone) are dropped unrun
        queue = [(c, chk, a) for c, chk, a in self._turn_queue
                 if not c.core.closed and c.core.turn_check_open(chk)]
        batch, self._turn_queue = queue[:self.turn_batch], queue[self.turn_batch:]
        if not batch:
            return
        if self._turn_pool is None or self.loop is None:  # not started / stopping: answer here
            self._turn_answered(batch, None)
            return
        model = batch[0][0].turn_model
        self._turn_busy += 1
        fut = self.loop.run_in_executor(
            self._turn_pool, functools.partial(model.predict_many, [a for _, _, a in batch],
                                               batch_size=self.turn_batch))
        fut.add_done_callback(lambda f: self._turn_answered(batch, f))

    def _turn_answered(self, batch: list[tuple[_Connection, Any, Any]], fut: Any) -> None:
        if fut is not None:
            self._turn_busy = max(0, self._turn_busy - 1)
        probs: list[float] | None = None
        if fut is not None and not fut.cancelled() and fut.exception() is None:
            probs = fut.result()
        elif fut is not None and not fut.cancelled():
            logger.error("end-of-turn batch failed", exc_info=fut.exception())
        for k, (conn, check, audio) in enumerate(batch):
            if conn.core.closed:
                continue
            if probs is not None:
                p = probs[k]
            else:
                try:  # the batch failed (or the server is stopping): this question alone
                    p = conn.turn_model.predict(audio)
                except Exception:
                    # without a judgement the turn waits the full eagerness timeout
                    logger.exception("end-of-turn model failed; waiting the maximum")
                    p = 0.0
            conn.core.turn_decision(check, p)
            conn.flush()
        while self._turn_queue and self._turn_busy < self.turn_workers:
            before = len(self._turn_queue)
            self._next_turn_batch()
            if len(self._turn_queue) == before:
                break

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

    def _refuse_key(self, key: str | None, *, secrets_ok: bool) -> dict[str, Any] | None:
        return refuse_key(key, api_key=self.api_key, secrets=self.client_secrets,
                          secrets_ok=secrets_ok)

    # ------------------------------------------------------------------ REST
    async def _http(self, request: HttpRequest) -> HttpResponse:
        """Answer a plain HTTP request on the WebSocket port (see :mod:`.http`).

        Pages on loopback origins (and ``allowed_origins``) get CORS headers, so a notebook page
        can post its SDP offer here; preflights (``OPTIONS``) are answered for every route."""
        origin = request.headers.get("origin")
        if origin and not origin_allowed(origin, self.allowed_origins):
            return _api_error(403, f"Origin {origin} may not use this local server.")
        response = await self._route(request)
        if origin:
            response.headers.update({"Access-Control-Allow-Origin": origin, "Vary": "Origin",
                                     "Access-Control-Expose-Headers": "Location"})
        return response

    async def _route(self, request: HttpRequest) -> HttpResponse:
        path = urlsplit(request.target).path.rstrip("/")
        hangup = re.fullmatch(r"/v1/realtime/calls/([^/]+)/hangup", path)
        if path not in ("/v1/realtime/client_secrets", "/v1/realtime/calls") and not hangup:
            return _api_error(404, f"Invalid URL ({request.method} {path})")
        if request.method == "OPTIONS":
            headers = {"Access-Control-Allow-Methods": "POST",
                       "Access-Control-Allow-Headers": "Authorization, Content-Type",
                       "Access-Control-Max-Age": "600"}
            if request.headers.get("access-control-request-private-network") == "true":
                headers["Access-Control-Allow-Private-Network"] = "true"
            return HttpResponse(204, b"", headers)
        if request.method != "POST":
            return _api_error(405, f"Method {request.method} not allowed on {path}: use POST.",
                              Allow="POST")
        key = bearer_key(request.headers)
        refusal = self._refuse_key(key, secrets_ok=path != "/v1/realtime/client_secrets")
        if refusal is not None:
            return json_response(401, refusal)
        if hangup:
            return await self._hangup(hangup.group(1))
        if path == "/v1/realtime/calls":
            return await self._create_call(request, key)
        try:
            body = request.json()
            secret = self.mint_client_secret(body)
        except ValueError as err:
            return _api_error(400, f"We could not parse the JSON body of your request. ({err})")
        except ProtocolError as err:
            return _api_error(400, err.message, err.param, err.code)
        core = SessionCore(kind=secret.session.get("type", "realtime"),
                           model=secret.session.get("model", "gpt-realtime"),
                           session_defaults=session_defaults(secret.session))
        return json_response(200, {"value": secret.value, "expires_at": secret.expires_at,
                                   "session": core.session_object()})

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

    async def _create_call(self, request: HttpRequest, key: str | None) -> HttpResponse:
        """``POST /v1/realtime/calls``: answer the SDP offer and start the call's session."""
        from . import webrtc

        if not webrtc.webrtc_available():
            return _api_error(501, "WebRTC calls need aiortc on the local server: pip install "
                                   "'realtime_nb[webrtc]'.")
        try:
            sdp, session = webrtc.parse_call_request(request.headers.get("content-type", ""),
                                                     request.body)
        except ValueError as err:
            return _api_error(400, str(err))
        secret = find_secret(self.client_secrets, key) if key and key.startswith("ek_") else None
        bound = dict(secret.session) if secret is not None else {"type": "realtime"}
        if session is not None:
            try:
                bound = self._check_session(session, "session")
            except ProtocolError as err:
                return _api_error(400, err.message, err.param, err.code)
        if bound.get("type") != "realtime":
            return _api_error(400, "WebRTC calls need a realtime session (type 'realtime'); "
                                   "transcription sessions use the WebSocket.", "session.type",
                              "invalid_value")
        try:
            call, answer = await webrtc.answer(sdp, self._call_audio_idle)
        except ValueError as err:
            return _api_error(400, str(err), "sdp", "invalid_offer")
        info = ConnInfo(beta=False, kind="realtime", model=bound.get("model", "gpt-realtime"),
                         defaults=session_defaults(bound))
        conn = _Connection(self, call, info, transport="webrtc")
        call.conn = conn
        self.calls[call.id] = call
        self.sessions.add(conn)
        task = asyncio.ensure_future(self._run_call(call, conn))
        self._call_tasks.add(task)
        task.add_done_callback(self._call_tasks.discard)
        return HttpResponse(201, answer.encode(), {
            "Content-Type": "application/sdp", "Location": f"/v1/realtime/calls/{call.id}"})

    async def _run_call(self, call: Any, conn: _Connection) -> None:
        try:
            await conn.run()
        finally:
            self.sessions.discard(conn)
            self.calls.pop(call.id, None)
            await call.close(conn.core.close_code or 1000, "call ended")

    @staticmethod
    def _call_audio_idle(call: Any, response_id: str) -> None:
        if call.conn is not None:
            call.conn.playout_idle(response_id)

    async def _hangup(self, call_id: str) -> HttpResponse:
        call = self.calls.get(call_id)
        if call is None:
            return _api_error(404, f"No active call with id '{call_id}'.", "call_id",
                              "call_not_found")
        call.end()
        return HttpResponse(200, b"", {})

    def mint_client_secret(self, body: Any) -> ClientSecret:
        """Validate a ``POST /v1/realtime/client_secrets`` body and store a new secret.

        ``body`` is ``{"expires_after": {"anchor": "created_at", "seconds": 10..7200},
        "session": {"type": "realtime" | "transcription", ...}}`` (both optional; 600 s and a
        default realtime session). The session is checked by the same validator as
        ``session.update``; raises :class:`ProtocolError` with the service's code and param.
        """
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise ProtocolError("invalid_type", "Invalid type for 'body': expected an object.",
                                None)
        for name in body:
            if name not in ("expires_after", "session"):
                raise ProtocolError("unknown_parameter", f"Unknown parameter: '{name}'.", name)
        seconds = 600
        after = body.get("expires_after")
        if after is not None:
            if not isinstance(after, dict):
                raise ProtocolError("invalid_type", "Invalid type for 'expires_after': expected "
                                    "an object.", "expires_after")
            for name in after:
                if name not in ("anchor", "seconds"):
                    raise ProtocolError("unknown_parameter",
                                        f"Unknown parameter: 'expires_after.{name}'.",
                                        f"expires_after.{name}")
            if after.get("anchor", "created_at") != "created_at":
                raise ProtocolError("invalid_value", f"Invalid value: '{after.get('anchor')}'. "
                                    "Supported values are: 'created_at'.",
                                    "expires_after.anchor")
            seconds = after.get("seconds", 600)
            if isinstance(seconds, bool) or not isinstance(seconds, int):
                raise ProtocolError("invalid_type", "Invalid type for 'expires_after.seconds': "
                                    "expected an integer.", "expires_after.seconds")
            if not 10 <= seconds <= 7200:
                raise ProtocolError(
                    "integer_out_of_range", "Invalid 'expires_after.seconds': integer out of "
                    f"range. Expected a value between 10 and 7200, but got {seconds} instead.",
                    "expires_after.seconds")
        session = self._check_session(body.get("session") or {"type": "realtime"}, "session")
        now = time.time()
        self._forget_expired(now)
        secret = ClientSecret("ek_" + secrets.token_hex(16), int(now) + seconds, session)
        self.client_secrets[secret.value] = secret
        return secret

    @staticmethod
    def _check_session(session: Any, param: str) -> dict[str, Any]:
        """A session config as ``session.update`` would take it (type defaults to realtime);
        raises :class:`ProtocolError` with the validator's code and param."""
        if not isinstance(session, dict):
            raise ProtocolError("invalid_type", f"Invalid type for '{param}': expected an "
                                "object.", param)
        session = dict(session)
        session.setdefault("type", "realtime")
        validate_client_event({"type": "session.update", "session": session})
        model = session.get("model")
        if session["type"] == "realtime" and model is not None and not REALTIME_MODELS.search(
                str(model)):
            raise ProtocolError("invalid_model", f"Model '{model}' is not supported in realtime "
                                "mode.", "session.model")
        return session

    def _forget_expired(self, now: float) -> None:
        for value in [v for v, s in self.client_secrets.items() if s.expires_at <= now]:
            del self.client_secrets[value]

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
        conn = _Connection(self, _SocketPeer(ws), info)
        self.sessions.add(conn)
        try:
            await conn.run()
        finally:
            self.sessions.discard(conn)


#: Unsent server events per session before the server stops reading that client's events.
_MAX_QUEUED = 4096


def _retrieve(fut: asyncio.Future[Any]) -> None:
    """Done-callback that marks a future's exception as retrieved (nobody else may await it)."""
    if not fut.cancelled():
        fut.exception()


def _api_error(status: int, message: str, param: str | None = None, code: str | None = None,
               **headers: str) -> HttpResponse:
    """An ``invalid_request_error`` answer shaped as the service's REST errors."""
    return json_response(status, {"error": {"message": message, "type": "invalid_request_error",
                                            "param": param, "code": code}}, **headers)


def _log_failure(fut: asyncio.Future[Any]) -> None:
    """Done-callback for background engine work nobody awaits: log a failure once."""
    if not fut.cancelled() and fut.exception() is not None:
        logger.warning("engine warm-up failed: %s", fut.exception())


class _SocketPeer:
    """A session's peer over one WebSocket (the other peer is a WebRTC :class:`.webrtc.Call`):
    iterate for client messages; ``send``, ``close``, ``abort``; ``play`` is never needed
    (WebSocket sessions carry their audio in events)."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws

    def __aiter__(self) -> Any:
        return self.ws.__aiter__()

    async def send(self, text: str) -> None:
        await self.ws.send(text)

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code, reason)

    def abort(self) -> None:
        transport = self.ws.transport
        if transport is not None:
            transport.abort()

    def play(self, kind: str, response_id: str, pcm16_24k: bytes) -> None:
        raise AssertionError("a WebSocket session has no output audio track")

    def idle(self, response_id: str) -> bool:
        return True


class _Connection:
    """One session: the core, its send queue, its jobs and its timer. Its ``peer`` is a
    :class:`_SocketPeer` or a WebRTC :class:`.webrtc.Call` (then ``transport="webrtc"``)."""

    def __init__(self, server: LocalServer, peer: Any, info: ConnInfo,
                 transport: str = "websocket") -> None:
        from realtime_nb.vad import default_speech_model

        self.server = server
        self.peer = peer
        self.info = info
        engines = server.engines
        assert engines is not None
        self.engines = engines
        vad_model = engines.vad if getattr(engines, "vad", None) is not None else (
            default_speech_model())
        self.vad_model = vad_model
        self.turn_model = server.turn_model
        self.core = SessionCore(
            kind=info.kind,
            model=info.model,
            vad_model=vad_model,
            make_segmenter=functools.partial(make_segmenter,
                                             decisions=self.turn_model is not None),
            turn_model=self.turn_model,
            max_duration_s=server.max_duration_s,
            session_defaults=info.defaults,
            transport=transport,
            noise_filter=_noise_factory(engines),
        )
        self.core.defer_vad = hasattr(vad_model, "process_many")
        self.core.defer_turn = self.turn_model is not None
        self.deferred: dict[str, dict[str, Any]] = {}
        self.speculations: dict[int, _Speculation] = {}  # not yet claimed by a turn
        self.claimed: dict[str, _Speculation] = {}  # item id -> the speculation of its turn
        self.beta = BetaTranslator() if info.beta else None
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.space = asyncio.Event()  # set when the send queue is short again
        self.sender_gone = False  # the peer is gone: never wait for queue space again
        self.tasks: set[asyncio.Task[Any]] = set()
        self.transcripts: dict[str, asyncio.Future[str]] = {}
        self.wake = asyncio.Event()

    def flush(self) -> None:
        """Queue the core's pending server events and start its pending jobs."""
        for ev in self.core.drain():
            if self.beta is not None:
                for out in self.beta.server_event(ev):
                    self.queue.put_nowait(json.dumps(out))
            else:
                self.queue.put_nowait(json.dumps(ev))
        if self.core.transport == "webrtc":
            for kind, rid, pcm in self.core.take_playout():
                self.peer.play(kind, rid, pcm)
            rid = self.core.playing
            if rid is not None and self.peer.idle(rid):
                self.playout_idle(rid)
        for job in self.core.take_jobs():
            if job.kind == "speculate":
                self._speculate(job.payload)
                continue
            if job.kind == "turn_check":
                self.server.schedule_turn(self, job.payload["check"], job.payload["audio"])
                continue
            if job.kind == "transcribe":
                spec = self.speculations.pop(job.payload.get("speculation"), None)
                if spec is not None:
                    self.claimed[job.payload["item_id"]] = spec
            self._spawn(self._run_job(job))
        self._drop_stale_speculations()
        self.wake.set()

    def playout_idle(self, response_id: str) -> None:
        """The outgoing track has sent all of ``response_id``'s audio (WebRTC)."""
        if self.core.playing is None:
            return
        self.core.playout_idle(response_id)
        if self.core.outbox:
            self.flush()

    def append_media(self, data: bytes) -> None:
        """Audio from the call's track, already in the input format (WebRTC)."""
        if not data or self.core.closed:
            return
        self.core.append_audio(data)
        if self.core.defer_vad and self.core._vad_pending:
            self.server.schedule_vad(self)
        self.flush()

    def _drop_stale_speculations(self) -> None:
        """Abandon speculative transcriptions no turn can use any more (speech resumed after
        their pause), so they stop taking the CPU from the one that matters."""
        if not self.speculations:
            return
        keep = self.core.open_speculation
        for sid in [sid for sid in self.speculations if sid != keep]:
            self.speculations.pop(sid).abandon()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def run(self) -> None:
        self.core.start()
        if self.beta is not None and self.info.kind == "realtime":
            self.core.emit("conversation.created", conversation={
                "id": self.core.conversation_id, "object": "realtime.conversation"})
        self.flush()
        sender = asyncio.ensure_future(self._sender())
        timer = asyncio.ensure_future(self._timer())
        try:
            async for message in self.peer:
                self._receive(message)
                self.flush()
                while self.queue.qsize() > _MAX_QUEUED and not self.sender_gone:  # not reading:
                    self.space.clear()  # stop reading from it until it catches up (or is gone)
                    await self.space.wait()
                if self.core.defer_vad and self.core._vad_pending:
                    self.server.schedule_vad(self)
                if self.core.closed:
                    break
        except ConnectionClosed:
            pass
        finally:
            timer.cancel()
            for t in list(self.tasks):
                t.cancel()
            for spec in [*self.speculations.values(), *self.claimed.values()]:
                spec.abandon()
            self.speculations.clear()
            self.claimed.clear()
            self.queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sender, 5)

    def _receive(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            self.core.error(ProtocolError(
                "invalid_event", "Binary frames are not supported: send JSON text frames.", None))
            return
        try:
            event = json.loads(message)
        except (ValueError, RecursionError) as err:
            reason = "it is nested too deeply" if isinstance(err, RecursionError) else str(err)
            self.core.error(ProtocolError(
                "invalid_json", f"The server could not parse the event as JSON: {reason}.", None))
            return
        eid = event.get("event_id") if isinstance(event, dict) else None
        eid = eid if isinstance(eid, str) else None
        if self.beta is not None:
            try:
                event = self.beta.client_event(event)
            except ProtocolError as err:
                self.core.error(err, eid)
                return
            except (TypeError, AttributeError, ValueError):
                pass  # malformed beyond translation: the validator names what is wrong
        try:
            self.core.handle(event)
        except RecursionError:
            self.core.error(ProtocolError(
                "invalid_value", "The event is nested too deeply to be processed.", None), eid)
        except Exception:  # never let one bad event end the session
            logger.exception("error while handling a client event")
            self.core.error(ProtocolError(
                "server_error", "The server had an error while processing your request. Sorry "
                f"about that! (Please include the session ID {self.core.id} in your message.)",
                None, type="server_error"), eid)

    async def _sender(self) -> None:
        while True:
            text = await self.queue.get()
            if text is None:
                break
            if self.queue.qsize() < _MAX_QUEUED // 2:
                self.space.set()
            try:
                await self.peer.send(text)
            except ConnectionClosed:
                self.sender_gone = True
                self.space.set()
                break
            if self.core.closed and self.queue.empty():
                await self.peer.close(self.core.close_code or 1000, "session closed")
                break

    async def _timer(self) -> None:
        while not self.core.closed:
            deadline = self.core.next_deadline()
            self.wake.clear()
            delay = None if deadline is None else max(0.0, deadline - time.monotonic())
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.wake.wait(), delay)
                continue
            self.core.tick()
            self.flush()

    # ------------------------------------------------------------------ jobs
    async def _in_pool(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` in the engine pool (responder, speech synthesis)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.server._pool, lambda: fn(*args, **kwargs))

    def _in_asr_pool(self, fn: Any, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        """Run ``fn`` in the transcription pool (never behind a reply's synthesis)."""
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self.server._asr_pool, lambda: fn(*args, **kwargs))

    async def _run_job(self, job: Job) -> None:
        try:
            if job.kind == "transcribe":
                if job.payload["emit"]:
                    await self._transcribe(job.payload)
                else:  # nobody asked for the text yet: transcribe when a response needs it
                    self.deferred[job.payload["item_id"]] = job.payload
            elif job.kind == "respond":
                await self._respond(job.payload)
            elif job.kind in ("mcp_list", "mcp_call"):
                await self._mcp(job)
                self.flush()
        except asyncio.CancelledError:
            raise
        except Exception as err:  # an engine failed: report it the way the service does
            if isinstance(err, LanguageUnsupported):  # a setting, not a bug: no traceback
                logger.warning("transcription refused: %s", err)
            else:
                logger.exception("engine job failed")
            if job.kind == "respond":
                self.core.response_failed(job.payload["response_id"], f"{type(err).__name__}: "
                                          f"{err}")
            elif job.kind == "mcp_list":
                self.core.mcp_list_done(job.payload["item_id"], error=f"{type(err).__name__}")
            elif job.kind == "mcp_call":
                self.core.mcp_call_done(job.payload["item_id"], error={
                    "type": "tool_execution_error", "message": type(err).__name__})
            else:
                fut = self.transcripts.get(job.payload["item_id"])
                if fut is not None and not fut.done():
                    fut.set_result("")
                if job.payload["emit"] and isinstance(err, LanguageUnsupported):
                    self.core.transcription_failed(job.payload["item_id"], str(err),
                                                   code="unsupported_language")
                elif job.payload["emit"]:
                    self.core.transcription_failed(job.payload["item_id"],
                                                   "The audio could not be transcribed.")
            self.flush()

    async def _mcp(self, job: Job) -> None:
        """List or call an MCP server's tools (the ``mcp`` extra) and report to the core."""
        p = job.payload
        try:
            from . import mcp_client
        except ImportError:
            msg = ("MCP tools need the 'mcp' package on the local server: "
                   "pip install 'realtime_nb[mcp]'.")
            if job.kind == "mcp_list":
                self.core.mcp_list_done(p["item_id"], error=msg)
            else:
                self.core.mcp_call_done(p["item_id"], error={"type": "tool_execution_error",
                                                             "message": msg})
            return
        if job.kind == "mcp_list":
            try:
                tools = await mcp_client.list_tools(p["server"])
            except mcp_client.McpFailure as failure:
                self.core.mcp_list_done(p["item_id"], error=str(failure))
            else:
                self.core.mcp_list_done(p["item_id"], tools=tools)
            return
        try:
            output = await mcp_client.call_tool(p["server"], p["name"], p["arguments"])
        except mcp_client.McpFailure as failure:
            self.core.mcp_call_done(p["item_id"], error=failure.error)
        else:
            self.core.mcp_call_done(p["item_id"], output=output)

    def _speculate(self, payload: dict[str, Any]) -> None:
        """Start transcribing a turn at its first pause (older speculations are dropped by
        :meth:`_drop_stale_speculations`)."""
        from realtime_nb.audio import decode_format

        if not payload["audio"]:
            return
        try:
            audio = decode_format(payload["audio"], payload["format"])
        except Exception:  # the turn's own transcription will report the problem
            logger.exception("could not decode the audio to speculate on")
            return
        cancel = threading.Event()
        options = _asr_options(payload)
        model, language, prompt, logprobs = options
        task = self._in_asr_pool(self.engines.transcribe, audio, has_speech=True, cancel=cancel,
                                 model_name=model, language=language, prompt=prompt,
                                 logprobs=logprobs)
        task.add_done_callback(_retrieve)  # an abandoned one's outcome is never awaited
        self.speculations[payload["speculation"]] = _Speculation(task, cancel, options)

    async def _transcribe(self, payload: dict[str, Any]) -> None:
        from realtime_nb.audio import decode_format

        item_id = payload["item_id"]
        fut = self.transcripts.setdefault(item_id, asyncio.get_running_loop().create_future())
        audio = decode_format(payload["audio"], payload["format"]) if payload["audio"] else None
        options = _asr_options(payload)
        model, language, prompt, logprobs = options
        spec = self.claimed.pop(item_id, None)
        tr = None
        if audio is None or audio.duration_ms < 50:
            text, deltas = "", []
            if spec is not None:
                spec.abandon()
        else:
            if spec is not None and spec.options == options:
                try:
                    tr = await asyncio.shield(spec.task)  # the pause ended the turn: text ready
                except TranscriptionCancelled:
                    pass  # (never abandoned once claimed; transcribe afresh to be safe)
                except asyncio.CancelledError:
                    if not spec.task.cancelled():
                        raise  # this job itself is being cancelled (the session is closing)
            elif spec is not None:
                spec.abandon()  # the settings changed since the pause (model, language, ...)
            if tr is None:
                tr = await self._in_asr_pool(self.engines.transcribe, audio,
                                             has_speech=payload.get("has_speech"),
                                             model_name=model, language=language,
                                             prompt=prompt, logprobs=logprobs)
            text = tr.text.strip()
            deltas = list(getattr(tr, "deltas", None) or ([text] if text else []))
        if payload["emit"]:
            per_delta = _delta_logprobs(tr, len(deltas)) if logprobs else None
            for k, d in enumerate(deltas):
                if per_delta is None:
                    self.core.transcription_delta(item_id, d)
                else:
                    self.core.transcription_delta(item_id, d, logprobs=per_delta[k])
            if logprobs:
                self.core.transcription_done(item_id, text, logprobs=_all_logprobs(tr))
            else:
                self.core.transcription_done(item_id, text)
        else:
            self.core.transcription_done(item_id, text, emit=False)
        if not fut.done():
            fut.set_result(text)
        self.flush()

    async def _respond(self, payload: dict[str, Any]) -> None:
        from .engines.responder import ResponseRequest

        rid = payload["response_id"]
        req = payload["request"]
        loop = asyncio.get_running_loop()
        for item_id in req["pending_item_ids"]:
            if item_id in self.deferred and item_id not in self.transcripts:
                await self._transcribe(self.deferred.pop(item_id))
            fut = self.transcripts.setdefault(item_id, loop.create_future())
            with contextlib.suppress(asyncio.TimeoutError):
                text = await asyncio.wait_for(asyncio.shield(fut), 30)
                for it in req["conversation"]:
                    if it.get("id") == item_id:
                        for part in it.get("content", []):
                            if part.get("type") == "input_audio":
                                part["transcript"] = text
        if not self.core.is_live(rid):
            return
        request = ResponseRequest(
            instructions=req["instructions"], conversation=req["conversation"],
            tools=req["tools"], tool_choice=req["tool_choice"],
            max_output_tokens=req["max_output_tokens"],
        )
        reply = await self._in_pool(self.engines.responder.respond, request)
        if not self.core.is_live(rid):
            return
        all_calls = list(getattr(reply, "function_calls", ()))
        calls = [(c.name, c.arguments_json) for c in all_calls
                 if getattr(c, "server_label", None) is None]
        mcp_calls = [(c.server_label, c.name, c.arguments_json) for c in all_calls
                     if getattr(c, "server_label", None) is not None]
        text = getattr(reply, "text", "") or ""
        self.core.response_output(rid, Reply(text=text, function_calls=calls,
                                             truncated=bool(getattr(reply, "truncated", False)),
                                             mcp_calls=mcp_calls))
        self.flush()
        if text and "audio" in req["output_modalities"]:
            for sentence in _sentences(text):
                pieces = await self._in_pool(
                    lambda s=sentence: list(self.engines.synthesizer.synthesize(
                        s, voice=req["voice"], speed=req["speed"])))
                pcm = b"".join(p.to_pcm16() for p in pieces)
                if not self.core.response_audio(rid, pcm, sentence):
                    self.flush()
                    return
                self.flush()
                await asyncio.sleep(0)
        self.core.response_finish(rid)
        self.flush()


def _noise_factory(engines: Any) -> Any:
    """The engines' noise filter factory (any object without one: the default)."""
    get = getattr(engines, "noise_filter_factory", None)
    if callable(get):
        return get()
    from .engines.denoise import default_noise_filter

    return default_noise_filter


def _asr_options(payload: dict[str, Any]) -> tuple[Any, ...]:
    """(model name, language, prompt, logprobs) for a transcription job or speculation.

    ``keywords`` are added to the prompt (Whisper's prompt is where vocabulary goes); a
    ``languages`` list of one is used as ``language``, a longer one leaves the language to the
    model (English-only models transcribe English; multilingual ones detect among all
    languages, not only those listed). ``delay`` does not apply: the local server transcribes
    a turn once it is committed."""
    cfg = payload.get("config") or {}
    prompt = cfg.get("prompt") or None
    keywords = [k for k in cfg.get("keywords") or [] if k]
    if keywords:
        prompt = f"{prompt} {', '.join(keywords)}" if prompt else ", ".join(keywords)
    language = cfg.get("language") or None
    languages = cfg.get("languages") or []
    if language is None and len(languages) == 1:
        language = languages[0]
    return (cfg.get("model"), language, prompt, bool(payload.get("logprobs")))


def _wire_logprobs(tokens: Any) -> list[dict[str, Any]] | None:
    return None if tokens is None else [t.to_wire() for t in tokens]


def _all_logprobs(tr: Any) -> list[dict[str, Any]] | None:
    """The completed event's ``logprobs``: every token (``[]`` for an empty transcript), or
    ``None`` when the engine computes none (pocketsphinx, most custom engines)."""
    if tr is None:
        return []
    return _wire_logprobs(getattr(tr, "logprobs", None))


def _delta_logprobs(tr: Any, n: int) -> list[list[dict[str, Any]] | None]:
    groups = getattr(tr, "delta_logprobs", None) if tr is not None else None
    if groups is None or len(groups) != n:
        return [None] * n
    return [_wire_logprobs(g) for g in groups]


def _sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?])\s+", text.strip())
    return [p for p in parts if p]


# ---------------------------------------------------------------------- process-wide server
_GLOBAL: LocalServer | None = None
_GLOBAL_LOCK = threading.Lock()


def ensure_local_server(**kwargs: Any) -> LocalServer:
    """Start (once per process) a local server in a background thread and return it.

    The server has its own event loop, so it keeps serving while notebook cells run and never
    blocks the kernel. Keyword arguments go to :class:`LocalServer` the first time only.
    """
    global _GLOBAL
    with _GLOBAL_LOCK:
        if _GLOBAL is not None and _GLOBAL.loop is not None and _GLOBAL.loop.is_running():
            return _GLOBAL
        server = LocalServer(**kwargs)
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(server.start())
            except BaseException as err:  # surfaced to the caller below
                errors.append(err)
                ready.set()
                return
            ready.set()
            loop.run_forever()

        thread = threading.Thread(target=run, name="realtime_nb-local-server", daemon=True)
        thread.start()
        ready.wait(60)
        if errors:
            raise errors[0]
        _GLOBAL = server
        return server


def stop_local_server() -> None:
    """Stop the process-wide server started by :func:`ensure_local_server` (if any)."""
    global _GLOBAL
    with _GLOBAL_LOCK:
        server, _GLOBAL = _GLOBAL, None
    if server is None or server.loop is None:
        return
    fut = asyncio.run_coroutine_threadsafe(server.stop(), server.loop)
    with contextlib.suppress(Exception):
        fut.result(10)
    server.loop.call_soon_threadsafe(server.loop.stop)
