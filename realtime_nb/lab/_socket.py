"""Replaying a recording against a real Realtime server, one fresh session per setting.

Each job opens a :class:`~realtime_nb.Session`, sends ``session.update`` with the setting's
``turn_detection`` (``create_response``/``interrupt_response`` false, transcription off, so the
server does VAD only), appends the audio in 100 ms chunks — as fast as possible, or paced at
real time — and collects ``speech_started`` / ``speech_stopped`` / ``committed``.

Jobs are plain picklable objects run by :func:`run_socket_job` (``asyncio.run`` inside), so any
``concurrent.futures`` executor can run them; a thread pool is the default (they mostly wait).
An OpenAI job resolves its API key inside the worker (``OPENAI_API_KEY``): the key is never part
of a job.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from realtime_nb.vad import TurnDetectionSettings

from ._records import Turn
from ._settings import turn_detection_wire

__all__ = ["LocalServerThread", "SocketJob", "run_socket_job"]

_STARTED = "input_audio_buffer.speech_started"
_STOPPED = "input_audio_buffer.speech_stopped"
_COMMITTED = "input_audio_buffer.committed"


@dataclass(frozen=True)
class SocketJob:
    """One setting against one server. ``url`` None with ``openai`` means the OpenAI backend."""

    settings: TurnDetectionSettings
    pcm: bytes
    end_ms: int
    url: str | None = None
    openai: bool = False
    realtime_model: str = "gpt-realtime"
    realtime: bool = False
    chunk_ms: int = 100
    settle_s: float = 1.0
    max_settle_s: float = 10.0
    timeout_s: float = 30.0  # for connecting and each session.update


def run_socket_job(job: SocketJob) -> list[Turn]:
    """Run one job to completion in a fresh event loop (call it from a worker thread/process)."""
    return asyncio.run(_run(job))


async def _run(job: SocketJob) -> list[Turn]:
    from realtime_nb.client import Session

    session = (Session(backend="openai", model=job.realtime_model) if job.openai and not job.url
               else Session(url=job.url))
    await session.connect(timeout=job.timeout_s)
    try:
        wire = turn_detection_wire(job.settings, create_response=False, interrupt_response=False)
        await session.update(turn_detection=wire, transcription=None, timeout=job.timeout_s)
        step = 48 * job.chunk_ms
        t0 = time.monotonic()  # audio time 0
        for off in range(0, len(job.pcm), step):
            chunk = job.pcm[off:off + step]
            if job.realtime:  # like a microphone: a chunk is sent once its audio has happened
                delay = t0 + (off + len(chunk)) / 48_000 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await session.append(chunk, force=True)
        if job.realtime:
            await _settle(session, t0 + len(job.pcm) / 48_000, job.settle_s, job.max_settle_s)
        else:
            # Any client event other than an append makes the local server finish the VAD of
            # everything appended before it, so session.updated comes after the last VAD event.
            await session.update(timeout=job.timeout_s)
        return _turns(session, job, t0 - session.events.t0)
    finally:
        with contextlib.suppress(Exception):
            await session.close()


async def _settle(session: Any, audio_end: float, quiet_s: float, max_s: float) -> None:
    """After real-time streaming: wait until the server has been quiet for ``quiet_s``."""
    deadline = max(time.monotonic(), audio_end) + max_s
    log = session.events
    while time.monotonic() < deadline:
        last = next((e.t for e in reversed(log.entries) if e.direction == "server"), 0.0)
        now = time.monotonic() - log.t0
        if now - max(last, audio_end - log.t0) >= quiet_s:
            return
        await asyncio.sleep(0.05)


def _turns(session: Any, job: SocketJob, origin: float) -> list[Turn]:
    """Turns from the session's log; ``origin`` is audio time 0 on the log's clock (s)."""
    log = session.events
    open_turns: dict[str, dict[str, Any]] = {}
    order: list[dict[str, Any]] = []
    turn: dict[str, Any] | None
    errors = []
    for e in log.entries:
        if e.direction != "server":
            continue
        ev = e.event
        at = (e.t - origin) * 1000.0 if job.realtime else None
        if e.type == "error":
            errors.append(ev.get("error") or {})
        elif e.type == _STARTED:
            turn = {"start": int(ev["audio_start_ms"]), "item": ev.get("item_id"),
                    "started_at": at}
            open_turns[str(ev.get("item_id"))] = turn
            order.append(turn)
        elif e.type == _STOPPED:
            turn = open_turns.get(str(ev.get("item_id"))) or (order[-1] if order else None)
            if turn is not None:
                turn["end"] = int(ev["audio_end_ms"])
                turn["stopped_at"] = at
        elif e.type == _COMMITTED:
            turn = open_turns.pop(str(ev.get("item_id")), None)
            if turn is not None:
                turn["committed_at"] = at
    if errors:
        from realtime_nb.client import RealtimeError

        err = errors[0]
        raise RealtimeError(err.get("code") or "server_error",
                            f"The server reported an error during the replay: "
                            f"{err.get('message')}", param=err.get("param"), source="server",
                            fatal=False)
    out = []
    for t in order:
        closed = "end" in t
        committed = t.get("committed_at")
        if closed and not job.realtime:
            committed = float(t["end"])  # the local server commits at speech_stopped, at once
        out.append(Turn(
            start_ms=t["start"], end_ms=t["end"] if closed else job.end_ms, closed=closed,
            started_at_ms=t.get("started_at"), stopped_at_ms=t.get("stopped_at"),
            committed_at_ms=committed if closed else None, item_id=t.get("item")))
    return out


class LocalServerThread:
    """A private local server on its own thread and event loop (for the length of a sweep).

    It does VAD only for the lab (nothing is warmed up: no ASR/TTS model is loaded unless a
    session asks for it). ``speech_model`` replaces the server's default Silero model,
    ``turn_model`` its end-of-turn model (``False``: none, the semantic_vad length-rule fallback).
    The thread is the server's own :class:`~realtime_nb.server.thread.ServerThread`.
    """

    def __init__(self, speech_model: Any = None, *, turn_model: Any = None) -> None:
        self.speech_model = speech_model
        self.turn_model = turn_model
        self.server: Any = None
        self._thread: Any = None

    @property
    def url(self) -> str:
        assert self.server is not None, "start() the server first"
        return str(self.server.url)

    def start(self) -> LocalServerThread:
        from realtime_nb.server import LocalServer
        from realtime_nb.server.engines import Engines
        from realtime_nb.server.thread import ServerThread

        engines = Engines.default()
        engines.vad = self.speech_model
        engines.turn = self.turn_model
        self.server = LocalServer(engines=engines, workers=1)
        self._thread = ServerThread(self.server, name="realtime_nb-lab-server")
        self._thread.start(warm_up=False)
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()
        self._thread = None

    def __enter__(self) -> LocalServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
