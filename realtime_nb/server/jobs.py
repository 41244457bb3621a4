"""One session's jobs: transcription (with speculation), replies, and MCP tool work.

The :class:`~realtime_nb.protocol.SessionCore` asks for work as :class:`~realtime_nb.protocol.Job`
values (their payloads: :mod:`realtime_nb.protocol.jobs`); its
:class:`~realtime_nb.server.connection.Connection` hands each to its :class:`JobRunner`, which
runs it off the event loop and reports the outcome back to the core (``transcription_delta`` /
``_done`` / ``_failed``, ``response_output`` / ``_audio`` / ``_finish`` / ``_failed``,
``mcp_list_done``, ``mcp_call_done``), then flushes the connection.
An engine's failure becomes the event the service sends for it, never the end of the session.

Where each kind runs: transcriptions in the server's transcription pool (``asr_workers``),
replies (responder, speech synthesis) in its engine pool (``workers``), so a reply never waits
behind speech recognition; MCP jobs (listing a server's tools, calling one) are network I/O and
run as tasks on the loop itself (:mod:`realtime_nb.server.mcp_client`). End-of-turn checks
(``turn_check``) are batched across sessions by the server (:meth:`LocalServer.schedule_turn`).

Turn latency: the core asks for a speculative transcription at the first silent frame of every
pause; it runs at once in the transcription pool and is dropped (even mid-run, at Whisper's next
checkpoint) as soon as the speaker resumes, so the pause that really ends the turn never waits
behind a stale one. When the turn ends at that pause its transcript is usually ready by the time
the silence window has passed.

Two ``Reply`` types meet here, on purpose: the responder's
(:class:`realtime_nb.server.engines.Reply`, the public engine contract with
:class:`~realtime_nb.server.engines.FunctionCall` and :class:`~realtime_nb.server.engines.McpCall`
objects) and the core's (:class:`realtime_nb.protocol.Reply`, plain tuples: ``protocol`` sits
below ``server`` and cannot import the engines). :func:`to_core_reply` is the one conversion.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from realtime_nb.protocol import Job, Reply
from realtime_nb.protocol.jobs import RespondPayload, SpeculatePayload, TranscribePayload
from realtime_nb.server.engines.asr import LanguageUnsupported, TranscriptionCancelled
from realtime_nb.server.engines.tts import split_sentences

if TYPE_CHECKING:
    from realtime_nb.protocol.jobs import McpCallJob, McpListJob
    from realtime_nb.server.connection import Connection

__all__ = ["JobRunner", "to_core_reply"]

logger = logging.getLogger(__name__)


@dataclass
class Speculation:
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


def _retrieve(fut: asyncio.Future[Any]) -> None:
    """Done-callback that marks a future's exception as retrieved (nobody else may await it)."""
    if not fut.cancelled():
        fut.exception()


class JobRunner:
    """Runs the jobs of one connection's core and reports each outcome back to it.

    :meth:`start` takes every job the core hands out (the connection calls it from ``flush``);
    :meth:`drop_stale_speculations` after each batch, :meth:`abandon_speculations` when the
    session ends (its tasks are cancelled by the connection). It keeps the turn transcripts a
    response may wait for (``transcripts``), transcriptions nobody asked to see yet
    (``deferred``: run when a response needs the text) and the speculative transcriptions
    (``speculations`` not yet claimed by a turn, ``claimed`` by item id).
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.server = conn.server
        self.core = conn.core
        self.engines = conn.engines
        self.deferred: dict[str, TranscribePayload] = {}
        self.speculations: dict[int, Speculation] = {}  # not yet claimed by a turn
        self.claimed: dict[str, Speculation] = {}  # item id -> the speculation of its turn
        self.transcripts: dict[str, asyncio.Future[str]] = {}

    def start(self, job: Job) -> None:
        """Start one job: a speculation or a turn check at once, anything else as a task."""
        if job.kind == "speculate":
            self._speculate(job.payload)
            return
        if job.kind == "turn_check":
            self.server.schedule_turn(self.conn, job.payload["check"], job.payload["audio"])
            return
        if job.kind == "transcribe":
            sid = job.payload.get("speculation")
            spec = self.speculations.pop(sid, None) if sid is not None else None
            if spec is not None:
                self.claimed[job.payload["item_id"]] = spec
        self.conn.spawn(self._run(job))

    def drop_stale_speculations(self) -> None:
        """Abandon speculative transcriptions no turn can use any more (speech resumed after
        their pause), so they stop taking the CPU from the one that matters."""
        if not self.speculations:
            return
        keep = self.core.open_speculation
        for sid in [sid for sid in self.speculations if sid != keep]:
            self.speculations.pop(sid).abandon()

    def abandon_speculations(self) -> None:
        """Drop every speculative transcription, claimed or not (the session is ending)."""
        for spec in [*self.speculations.values(), *self.claimed.values()]:
            spec.abandon()
        self.speculations.clear()
        self.claimed.clear()

    async def _in_pool(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` in the engine pool (responder, speech synthesis)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.server._pool, lambda: fn(*args, **kwargs))

    def _in_asr_pool(self, fn: Any, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        """Run ``fn`` in the transcription pool (never behind a reply's synthesis)."""
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self.server._asr_pool, lambda: fn(*args, **kwargs))

    async def _run(self, job: Job) -> None:
        try:
            if job.kind == "transcribe":
                payload = job.payload
                if payload["emit"]:
                    await self._transcribe(payload)
                else:  # nobody asked for the text yet: transcribe when a response needs it
                    self.deferred[payload["item_id"]] = payload
            elif job.kind == "respond":
                await self._respond(job.payload)
            elif job.kind == "mcp_list" or job.kind == "mcp_call":
                await self._mcp(job)
                self.conn.flush()
        except asyncio.CancelledError:
            raise
        except Exception as err:  # an engine failed: report it the way the service does
            if isinstance(err, LanguageUnsupported):  # a setting, not a bug: no traceback
                logger.warning("transcription refused: %s", err)
            else:
                logger.exception("engine job failed")
            if job.kind == "respond":
                self.core.response_failed(job.payload["response_id"],
                                          f"{type(err).__name__}: {err}")
            elif job.kind == "mcp_list":
                self.core.mcp_list_done(job.payload["item_id"], error=f"{type(err).__name__}")
            elif job.kind == "mcp_call":
                self.core.mcp_call_done(job.payload["item_id"], error={
                    "type": "tool_execution_error", "message": type(err).__name__})
            elif job.kind == "transcribe":  # (start never hands _run a speculation or turn check)
                payload = job.payload
                fut = self.transcripts.get(payload["item_id"])
                if fut is not None and not fut.done():
                    fut.set_result("")
                if payload["emit"] and isinstance(err, LanguageUnsupported):
                    self.core.transcription_failed(payload["item_id"], str(err),
                                                   code="unsupported_language")
                elif payload["emit"]:
                    self.core.transcription_failed(payload["item_id"],
                                                   "The audio could not be transcribed.")
            self.conn.flush()

    async def _mcp(self, job: McpListJob | McpCallJob) -> None:
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
        call = job.payload  # not a listing: a call
        try:
            output = await mcp_client.call_tool(call["server"], call["name"], call["arguments"])
        except mcp_client.McpFailure as failure:
            self.core.mcp_call_done(p["item_id"], error=failure.error)
        else:
            self.core.mcp_call_done(p["item_id"], output=output)

    def _speculate(self, payload: SpeculatePayload) -> None:
        """Start transcribing a turn at its first pause (older speculations are dropped by
        :meth:`drop_stale_speculations`)."""
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
        self.speculations[payload["speculation"]] = Speculation(task, cancel, options)

    async def _transcribe(self, payload: TranscribePayload) -> None:
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
        self.conn.flush()

    async def _respond(self, payload: RespondPayload) -> None:
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
        core_reply = to_core_reply(reply)
        text = core_reply.text
        self.core.response_output(rid, core_reply)
        self.conn.flush()
        if text and "audio" in req["output_modalities"]:
            for sentence in split_sentences(text):
                pieces = await self._in_pool(
                    lambda s=sentence: list(self.engines.synthesizer.synthesize(
                        s, voice=req["voice"], speed=req["speed"])))
                pcm = b"".join(p.to_pcm16() for p in pieces)
                if not self.core.response_audio(rid, pcm, sentence):
                    self.conn.flush()
                    return
                self.conn.flush()
                await asyncio.sleep(0)
        self.core.response_finish(rid)
        self.conn.flush()


def _asr_options(payload: TranscribePayload | SpeculatePayload) -> tuple[Any, ...]:
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


def to_core_reply(reply: Any) -> Reply:
    """The responder's reply as the core takes it (see the module docstring for why two types).

    ``reply`` is an engines :class:`~realtime_nb.server.engines.Reply` or any object with its
    attributes (missing ones read as empty): function calls become ``(name, arguments JSON)``,
    MCP calls (those with a ``server_label``) ``(server_label, name, arguments JSON)``, in the
    order given within each kind."""
    all_calls = list(getattr(reply, "function_calls", ()))
    calls = [(c.name, c.arguments_json) for c in all_calls
             if getattr(c, "server_label", None) is None]
    mcp_calls = [(c.server_label, c.name, c.arguments_json) for c in all_calls
                 if getattr(c, "server_label", None) is not None]
    return Reply(text=getattr(reply, "text", "") or "", function_calls=calls,
                 truncated=bool(getattr(reply, "truncated", False)), mcp_calls=mcp_calls)
