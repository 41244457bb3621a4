"""One session on the local server: the driver between a peer and its :class:`SessionCore`.

A :class:`Connection` owns one :class:`~realtime_nb.protocol.SessionCore` (all protocol rules
live there, I/O-free) and moves bytes for it: it reads the peer's client events (parsing JSON,
translating the retired beta dialect at the edge, turning a bad event into the service's
``error`` rather than ending the session), sends what the core emits through one ordered send
queue, drives the core's timers, and starts the jobs the core asks for. Its ``peer`` is a
:class:`SocketPeer` (one WebSocket) or a WebRTC :class:`~realtime_nb.server.webrtc.Call`.

Back-pressure: a client that stops reading its events makes the queue grow; past
``_MAX_QUEUED`` unsent events the connection stops reading that client's events until the queue
is half empty again (or the peer is gone), so a stuck client cannot make the server buffer
without bound.

The :class:`~realtime_nb.server.app.LocalServer` creates connections and owns what they share:
the engines, the worker pools and the batched VAD and end-of-turn inference.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from realtime_nb.protocol import Job, ProtocolError, Reply, SessionCore
from realtime_nb.protocol.beta import BetaTranslator
from realtime_nb.server.admission import ConnInfo
from realtime_nb.server.engines.asr import LanguageUnsupported, TranscriptionCancelled
from realtime_nb.vad import make_segmenter

if TYPE_CHECKING:
    from realtime_nb.server.app import LocalServer

__all__ = ["Connection", "SocketPeer"]

logger = logging.getLogger(__name__)


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


#: Unsent server events per session before the server stops reading that client's events.
_MAX_QUEUED = 4096


def _retrieve(fut: asyncio.Future[Any]) -> None:
    """Done-callback that marks a future's exception as retrieved (nobody else may await it)."""
    if not fut.cancelled():
        fut.exception()


class SocketPeer:
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


class Connection:
    """One session: the core, its send queue, its jobs and its timer. Its ``peer`` is a
    :class:`SocketPeer` or a WebRTC :class:`.webrtc.Call` (then ``transport="webrtc"``)."""

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

