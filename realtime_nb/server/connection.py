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

Test seams (the scripted test server, :mod:`realtime_nb.server.scripted`, is built on them; a
server without them behaves exactly as before): the server's ``connection_hooks``
(:class:`ConnectionHooks`, ``None`` by default) may delay or withhold ``session.created``, queue
frames right after it, and see (and swallow) each parsed client event; an engines bundle whose
``vad`` is ``False`` gives sessions no VAD at all (``server_vad`` then never detects speech; by
default an unset ``vad`` means the shared Silero model).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from realtime_nb.protocol import ProtocolError, SessionCore
from realtime_nb.protocol.beta import BetaTranslator
from realtime_nb.server.admission import ConnInfo
from realtime_nb.server.jobs import JobRunner
from realtime_nb.vad import make_segmenter

if TYPE_CHECKING:
    from realtime_nb.server.app import LocalServer

__all__ = ["Connection", "ConnectionHooks", "SocketPeer"]

logger = logging.getLogger(__name__)


#: Unsent server events per session before the server stops reading that client's events.
_MAX_QUEUED = 4096


class SocketPeer:
    """A session's peer over one WebSocket (the other peer is a WebRTC :class:`.webrtc.Call`):
    iterate for client messages; ``send``, ``close``, ``abort``; ``play`` is never needed
    (WebSocket sessions carry their audio in events)."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws

    def __aiter__(self) -> Any:
        return self.ws.__aiter__()

    async def send(self, text: str | bytes) -> None:
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


class ConnectionHooks:
    """Seams in a :class:`Connection`'s life, for a test server that injects faults. Subclass
    and override; each default does what a connection does without hooks. A server passes its
    hooks as ``LocalServer(connection_hooks=...)``; every connection of that server calls them.
    """

    async def opening(self, conn: Connection) -> bool:
        """Before ``session.created``: may wait (a slow server); return False to send none
        (the core is then never started)."""
        return True

    def after_created(self, conn: Connection) -> list[str | bytes]:
        """Frames sent as they are right after ``session.created`` (recorded traces)."""
        return []

    async def client_event(self, conn: Connection, event: Any) -> bool:
        """Each parsed client event before the core sees it (before beta translation); may
        wait; return True to swallow it (the core never sees it)."""
        return False


_UNPARSED = object()  # _parse's answer for a frame that is not a JSON text event


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
        chosen = getattr(engines, "vad", None)
        if chosen is False:  # the engines want no VAD (see the module docstring)
            vad_model = None
        else:
            vad_model = chosen if chosen is not None else default_speech_model()
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
        self.beta = BetaTranslator() if info.beta else None
        #: frames to send (JSON text; a hook's recorded frames as they are, bytes too); None: stop
        self.queue: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self.space = asyncio.Event()  # set when the send queue is short again
        self.sender_gone = False  # the peer is gone: never wait for queue space again
        self.tasks: set[asyncio.Task[Any]] = set()
        self.wake = asyncio.Event()
        self.jobs = JobRunner(self)
        self.hooks: ConnectionHooks | None = getattr(server, "connection_hooks", None)

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
            playing = self.core.playing
            if playing is not None and self.peer.idle(playing):
                self.playout_idle(playing)
        for job in self.core.take_jobs():
            self.jobs.start(job)
        self.jobs.drop_stale_speculations()
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

    def spawn(self, coro: Any) -> None:
        """Run ``coro`` as one of this session's tasks (cancelled when the session ends)."""
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def run(self) -> None:
        hooks = self.hooks
        if hooks is None or await hooks.opening(self):
            self.core.start()
            if self.beta is not None and self.info.kind == "realtime":
                self.core.emit("conversation.created", conversation={
                    "id": self.core.conversation_id, "object": "realtime.conversation"})
            self.flush()
        if hooks is not None:
            for frame in hooks.after_created(self):
                self.queue.put_nowait(frame)
        sender = asyncio.ensure_future(self._sender())
        timer = asyncio.ensure_future(self._timer())
        try:
            async for message in self.peer:
                if hooks is None:
                    self._receive(message)
                else:
                    event = self._parse(message)
                    if event is not _UNPARSED:
                        if await hooks.client_event(self, event):
                            continue
                        self._handle(event)
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
            self.jobs.abandon_speculations()
            self.queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sender, 5)

    def _receive(self, message: str | bytes) -> None:
        event = self._parse(message)
        if event is not _UNPARSED:
            self._handle(event)

    def _parse(self, message: str | bytes) -> Any:
        """The client event in ``message``, or ``_UNPARSED`` after telling the core why not."""
        if isinstance(message, bytes):
            self.core.error(ProtocolError(
                "invalid_event", "Binary frames are not supported: send JSON text frames.", None))
            return _UNPARSED
        try:
            return json.loads(message)
        except (ValueError, RecursionError) as err:
            reason = "it is nested too deeply" if isinstance(err, RecursionError) else str(err)
            self.core.error(ProtocolError(
                "invalid_json", f"The server could not parse the event as JSON: {reason}.", None))
            return _UNPARSED

    def _handle(self, event: Any) -> None:
        """Hand one parsed client event to the core (beta events translated first); a bad
        event becomes the service's ``error``, never the end of the session."""
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
        await drive_timers(self.core, self.wake, self.flush)


async def drive_timers(core: SessionCore, wake: asyncio.Event,
                       flush: Callable[[], Awaitable[None] | None]) -> None:
    """Run a session core's timers until it closes: sleep until ``core.next_deadline()``
    (forever when it has none), call ``core.tick()`` and ``flush()`` (awaited when it returns
    an awaitable). Setting ``wake`` makes it read the deadline again at once: the caller sets it
    after every change that can move the deadline (each flush). The one timer loop of the
    local server's connections (the fake test server, :mod:`realtime_nb.server.scripted`, is a
    local server too)."""
    while not core.closed:
        deadline = core.next_deadline()
        wake.clear()
        delay = None if deadline is None else max(0.0, deadline - time.monotonic())
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(wake.wait(), delay)
            continue
        core.tick()
        done = flush()
        if done is not None:
            await done


def _noise_factory(engines: Any) -> Any:
    """The engines' noise filter factory (any object without one: the default)."""
    get = getattr(engines, "noise_filter_factory", None)
    if callable(get):
        return get()
    from .engines.denoise import default_noise_filter

    return default_noise_filter
