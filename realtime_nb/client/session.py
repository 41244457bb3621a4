"""``Session``: one Realtime conversation from the kernel, the object a notebook user holds.

::

    from realtime_nb import Session

    async with Session(backend="local") as s:          # or "openai", or url="wss://..."
        await s.update(instructions="Answer in one sentence.")
        reply = await s.say("What is the capital of France?")
        print(reply.text)
        await s.send_audio("question.wav")               # any audio; converted, checked, chunked
        await s.send_image("photo.jpg", text="What is this?", respond=True)   # a picture
        await s.wait_for("response.done")
        s.items, s.input_buffer_ms, s.usage, s.events   # the mirror and the log, always current

What the caller must know:

* Everything runs on the event loop that called :meth:`Session.connect` (the kernel's loop in
  Jupyter, ``asyncio.run`` in scripts). The receive loop is a background task: nothing blocks, and
  the mirror (``items``, ``input_buffer_ms``, ``speaking``, transcripts, ``usage``, ...) updates
  as events arrive. Use one Session from one loop only.
* Methods named after the client events (:meth:`update`, :meth:`append`, :meth:`commit`,
  :meth:`clear`, :meth:`create_item`, :meth:`truncate`, :meth:`delete_item`,
  :meth:`create_response`, :meth:`cancel_response`) validate the event exactly as the service
  does and refuse it locally — with the service's code and message plus a ``hint`` — before it
  reaches the wire. Each returns the event it sent, or with ``wait=True`` the server's reply; a
  server ``error`` answering it is raised as :class:`RealtimeError`. :meth:`send` sends any raw
  client event (validated unless ``validate=False``).
* Every event sent by the Session carries an ``event_id`` (added when missing; not with
  ``send(..., validate=False)``), so that the server's errors can be matched to what caused them.
* While the socket is down (before :meth:`connect`, after a drop) events are queued (bounded by
  ``send_queue_bytes``) and sent, in order, after the next (re)connect.
* Errors: one type, :class:`RealtimeError` (``code``, ``message``, ``param``, ``fatal``,
  ``source``, ``hint``, ``event_id``). Awaited helpers raise it; ``session.last_error`` and
  ``session.on("error", callback)`` carry it as well (callbacks get the error event with the
  exception under the key ``"realtime_error"``).
* The API key never appears in reprs, logs, errors or exported traces.

Where the Session's parts live (one class, built from one mixin per room; each room's module
says what it holds):

* this module — the constructor and its options, the mirror shortcuts (``items``, ``usage``,
  ...), :meth:`Session.update` and the response methods (:meth:`Session.create_response`,
  :meth:`Session.cancel_response`, :meth:`Session.say`);
* :mod:`._conversation` — ``create_item``, ``send_image``, ``retrieve_item``, ``truncate``,
  ``delete_item``;
* :mod:`._connection` — connect, reconnect, close, dialing (proxies, WebRTC sideband,
  transcription URL), attaching a socket, connection loss and automatic reconnect;
* :mod:`._receiving` — the frame fast path: frame in → log, mirror, matched waiters; server
  errors as :class:`RealtimeError`;
* :mod:`._waiting` — ``on`` / ``off`` callbacks and ``wait_for`` waiters;
* :mod:`._sending` — event ids, local validation, the bounded send queue, logging what was sent;
* :mod:`._input_audio` — ``append``, ``commit`` (the local empty-buffer check), ``clear``,
  ``send_audio`` and audio preparation;
* :mod:`._renewing` — renewal before the service's session limit (the plan: :mod:`.renew`);
* :mod:`._tool_use` — ``use_tools`` and MCP approvals.

Displaying a Session in a notebook (its panel) is wired by ``realtime_nb/__init__.py``, which
attaches ``Session._repr_mimebundle_`` so that this layer never imports widgets.
"""

# Typing the rooms. Each room uses state that ``Session.__init__`` creates and methods that
# another room (or this module) defines (``self.mirror``, ``self._send_event``,
# ``self._record_error``, ...). They are declared once, in ``._parts.SessionParts``, an abstract
# class that every room derives from *only for the type checker*: ``if TYPE_CHECKING: from
# ._parts import SessionParts`` / ``else: SessionParts = object``, so at run time the classes,
# the Session's MRO and its attributes are what they were. This is how
# ``realtime_nb.protocol.state`` types SessionCore's parts (its comment says why not
# per-room annotations, a ``typing.Protocol`` or ``self: Session`` annotations).
# ``._parts.MirrorParts`` does the same for the Mirror's conversation half
# (``._conversation_mirror``). A room that starts using something another room defines adds
# it to SessionParts.

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import ClientConnection

from realtime_nb.protocol import OUTPUT_AUDIO_CLEAR_REFUSED
from realtime_nb.protocol.config import AUDIO_SETTING_PATHS

from ._connection import _Connection
from ._conversation import _Conversation
from ._input_audio import AudioSent, _InputAudio
from ._receiving import _Receiving
from ._renewing import _Renewing
from ._sending import _copy_json, _Sending, _wire
from ._tool_use import _ToolUse
from ._waiting import Callback, _Waiter, _Waiting
from .backend import Backend, register_secret_headers, resolve_backend
from .errors import (
    RealtimeError,
)
from .eventlog import EventLog
from .hints import hint_for
from .mirror import Items, Mirror, ResponseState
from .renew import RenewPolicy

if TYPE_CHECKING:
    from .tools import Tools

__all__ = ["AudioSent", "ReconnectPolicy", "RenewPolicy", "Session"]

logger = logging.getLogger("realtime_nb.client")


@dataclass
class ReconnectPolicy:
    """Automatic reconnection with exponential backoff (``Session(reconnect=ReconnectPolicy())``).

    After an unexpected disconnect (dropped socket, server restart, ``session_expired`` when
    ``on_expiry``) the session waits ``initial_delay * factor**attempt`` seconds (at most
    ``max_delay``, ± ``jitter`` fraction) and reconnects, up to ``max_attempts`` times. Fatal
    errors other than expiry (bad key, no quota, invalid model) are not retried.
    """

    max_attempts: int = 5
    initial_delay: float = 0.5
    max_delay: float = 8.0
    factor: float = 2.0
    jitter: float = 0.1
    on_expiry: bool = True

    def delay(self, attempt: int) -> float:
        """Seconds to wait before reconnect attempt number ``attempt`` (0-based)."""
        base = min(self.max_delay, self.initial_delay * self.factor ** attempt)
        return max(0.0, base * (1 + random.uniform(-self.jitter, self.jitter)))


class Session(_Connection, _Renewing, _Receiving, _Sending, _Waiting, _InputAudio,
              _Conversation, _ToolUse):
    """A Realtime session from the kernel (see the module docstring for the rules).

    Displaying a Session in a notebook shows its panel: that ``_repr_mimebundle_`` is attached
    by ``realtime_nb/__init__.py`` (not here), so that the client layer never imports widgets.

    Args:
        backend: ``"local"`` (embedded offline server), ``"openai"``, or None (OpenAI when an API
            key is available, else local).
        url: any compatible server (``ws://`` / ``wss://``), instead of ``backend``.
        api_key: the key (default: ``OPENAI_API_KEY`` for OpenAI). Never shown anywhere.
        model: the model, fixed at connect (``?model=`` in the URL).
        headers: extra handshake headers (e.g. Azure's ``{"api-key": ...}``); treated as secrets.
        intent: ``"transcription"`` to open a transcription session (``?intent=transcription``).
        reconnect: a :class:`ReconnectPolicy` for automatic reconnection (or ``auto_reconnect=True``
            for the default policy). Off by default: drops are then reported and
            :meth:`reconnect` is up to you.
        send_queue_bytes: bound of the queue of events waiting for a connection.
        connect_timeout: seconds to open the socket and receive ``session.created``.
        transport: ``"websocket"`` (default: the kernel's socket carries events and audio) or
            ``"webrtc"``: a WebRTC call carries the audio — placed by the browser (the panel's
            :class:`~realtime_nb.widgets.WebRTCCall`, which posts its SDP offer with an
            ephemeral client secret minted here) or by the kernel
            (:class:`~realtime_nb.client.webrtc.KernelCall`) — and this Session is the call's
            *sideband*: :meth:`connect` with the call's ``call_id`` opens
            ``wss://…/v1/realtime?call_id=…`` with the long-lived key, so the mirror, the
            event log, tools and every method work as on the WebSocket path (the server sends
            ``output_audio_buffer.*`` instead of ``response.output_audio.delta``). While not
            connected it can be switched (``session.transport = "websocket"``).
        settle_s: in turn-detection mode, how long the server must have been quiet before
            :meth:`commit` trusts the mirror (its VAD may still be digesting audio just sent).
        record: the flight recorder (:mod:`realtime_nb.client.recorder`). On by default: from
            the first :meth:`connect`, every event and all audio are written to a new folder
            under :func:`~realtime_nb.client.recorder.default_root` as they happen, so a dead
            kernel loses at most the last moment (``EventLog.from_folder`` reads it back).
            ``False`` (or ``$REALTIME_NB_RECORD=0``) turns it off; a path puts the folder
            under that directory instead. The folder is :attr:`recording_folder`.
        audio_memory_mb: while recording, how much audio the event log keeps in memory; the
            oldest audio beyond it is read back from the recorder's files when needed (players,
            exports, ``item_audio``), so an hour-long session does not hold an hour of audio in
            the kernel. ``None``: keep everything in memory. Without recording, everything stays.
        events_in_memory: while recording, how many logged events keep their view in memory;
            older ones are read back from the recorder's ``events.jsonl`` when asked for
            (``entry.event``), so the log of an hour stays small. ``None``: keep all.
        renew: outlive the service's 60-minute session limit: ``True`` (the default
            :class:`~realtime_nb.client.renew.RenewPolicy`) or a ``RenewPolicy``. Shortly
            before ``expires_at`` (and on an unexpected ``session_expired``) a new server
            session is opened with your config and the conversation carried over as text,
            within a documented limit; the log, mirror, timeline and transcript go on across
            the seam (marker ``realtime_nb.renewed``). See :mod:`realtime_nb.client.renew` and
            :meth:`renew`. Off by default: ``session_expired`` then ends the session as before.
    """

    def __init__(
        self,
        backend: str | None = None,
        url: str | None = None,
        api_key: str | None = None,
        model: str = "gpt-realtime",
        *,
        headers: Mapping[str, str] | None = None,
        intent: str | None = None,
        reconnect: ReconnectPolicy | None = None,
        auto_reconnect: bool = False,
        send_queue_bytes: int = 8 * 1024 * 1024,
        connect_timeout: float = 20.0,
        settle_s: float = 0.4,
        transport: str = "websocket",
        record: bool | str | os.PathLike[str] | None = None,
        audio_memory_mb: float | None = 64.0,
        events_in_memory: int | None = 20_000,
        renew: bool | RenewPolicy = False,
    ) -> None:
        self._backend: Backend = resolve_backend(backend, url, api_key, model, headers=headers)
        self._transport = _check_transport(transport, intent)
        #: The WebRTC call this Session is the sideband of (``transport="webrtc"``), once known.
        self.call_id: str | None = None
        if headers:
            register_secret_headers(set(headers))
        if intent is not None and intent not in ("realtime", "transcription"):
            raise ValueError("intent must be 'realtime' or 'transcription'")
        self.intent = intent
        self.model = model
        self.policy: ReconnectPolicy | None = reconnect or (ReconnectPolicy() if auto_reconnect
                                                            else None)
        self.send_queue_bytes = send_queue_bytes
        self.connect_timeout = connect_timeout
        self.settle_s = settle_s
        self.events = EventLog()
        from .recorder import recording_enabled_by_default

        if record is None:
            record = recording_enabled_by_default()
        self._record_root: Path | None = (
            None if record is False else None if record is True else Path(record))
        self._record = record is not False
        #: The flight recorder writing this session's folder (from the first connect).
        self.recorder: Any = None
        self.audio_memory_mb = audio_memory_mb
        self.events_in_memory = events_in_memory
        self.mirror = Mirror()
        self.last_error: RealtimeError | None = None
        self.warnings: list[Any] = []
        self.callback_errors: list[BaseException] = []
        self._state = "new"
        self._ws: ClientConnection | None = None
        self._gen = 0
        self._recv_task: asyncio.Task[None] | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._waiters: list[_Waiter] = []
        self._callbacks: dict[str, list[Callback]] = {}
        self._queue: deque[tuple[dict[str, Any], str, bytes | None]] = deque()
        self._tools: Tools | None = None
        self._queue_bytes = 0
        self._flushing = False
        self._tag = secrets.token_hex(3)
        self._n = 0
        self._user_patch: dict[str, Any] = {}
        self._pending_updates: deque[tuple[str | None, dict[str, Any]]] = deque()
        self._fatal: RealtimeError | None = None
        self._last_server_t = 0.0
        self._last_append_t = 0.0
        self._reconnects = 0
        if renew and self._transport == "webrtc":
            raise ValueError("renew= is for WebSocket sessions: a WebRTC call is the session")
        #: How the server session is renewed before it expires (None: it is not).
        self.renew_policy: RenewPolicy | None = (
            renew if isinstance(renew, RenewPolicy) else RenewPolicy() if renew else None)
        self._renew_timer: asyncio.TimerHandle | None = None
        self._renew_task: asyncio.Task[None] | None = None
        self._renew_now: asyncio.Event | None = None
        self._old_dead = False
        self._renew_again: str | None = None
        self._renew_switched = False  # the renewal under way has left the old socket

    # ------------------------------------------------------------------ presentation
    @property
    def state(self) -> str:
        """One of new, connecting, connected, renewing, reconnecting, disconnected, closed
        (``renewing``: between two server sessions of a renewal; sends are queued)."""
        return self._state

    @property
    def backend(self) -> str:
        """``"local"``, ``"openai"`` or ``"url"``."""
        return self._backend.name

    @property
    def url(self) -> str:
        """The server URL (credential-looking query values masked)."""
        return self._backend.display_url

    @property
    def transport(self) -> str:
        """``"websocket"`` or ``"webrtc"`` (see the class docstring). Settable while the
        session is not connected (the panel's fallback from WebRTC to the WebSocket)."""
        return self._transport

    @transport.setter
    def transport(self, value: str) -> None:
        value = _check_transport(value, self.intent)
        if value == self._transport:
            return
        if self._state in ("connected", "connecting", "reconnecting"):
            raise RealtimeError(
                "transport_in_use", f"The session is {self._state} over {self._transport}: "
                "close it before switching the transport.", source="client", fatal=False)
        self._transport = value
        self.call_id = None

    def __repr__(self) -> str:
        sid = self.mirror.session_id
        extra = f" session={sid!r}" if sid else ""
        if self._transport != "websocket":
            extra += f" transport={self._transport!r}"
            if self.call_id:
                extra += f" call={self.call_id!r}"
        return (f"<Session backend={self.backend!r} url={self.url!r} state={self._state!r}"
                f"{extra} items={len(self.mirror.items)} "
                f"buffer={self.mirror.input_buffer_ms:.0f}ms>")

    # ------------------------------------------------------------------ mirror shortcuts
    @property
    def config(self) -> dict[str, Any] | None:
        """The effective session config as the server last echoed it (``session.updated``)."""
        return self.mirror.config

    @property
    def items(self) -> Items:
        """Conversation items in order, keyed by id (:class:`~.mirror.ItemState`)."""
        return self.mirror.items

    @property
    def input_buffer_ms(self) -> float:
        """Milliseconds of audio in the server's input buffer (what a commit would take now)."""
        return self.mirror.input_buffer_ms

    @property
    def speaking(self) -> bool:
        """Whether the server's VAD is inside a speech turn."""
        return self.mirror.speaking

    @property
    def transcripts(self) -> dict[str, str]:
        """Item id -> transcript (user speech, assistant speech) or text, in order."""
        return self.mirror.transcripts()

    @property
    def responses(self) -> dict[str, ResponseState]:
        return self.mirror.responses

    @property
    def active_response(self) -> ResponseState | None:
        """The response currently writing to the conversation, if any."""
        return self.mirror.active_response

    @property
    def usage(self) -> dict[str, Any]:
        """Token usage summed over every ``response.done``."""
        return self.mirror.usage

    @property
    def rate_limits(self) -> dict[str, dict[str, Any]]:
        """Latest ``rate_limits.updated`` entries by name (``requests``, ``tokens``)."""
        return self.mirror.rate_limits

    @property
    def user_config(self) -> dict[str, Any]:
        """The session settings you changed with :meth:`update` (re-sent after a reconnect)."""
        return _copy_json(self._user_patch)

    def item_audio(self, item_id: str, *, untruncated: bool = False) -> Any:
        """The audio of an item (user recording as committed, or assistant audio) as an Audio.

        An assistant item cut by ``conversation.item.truncate`` (barge-in) gives the part that
        was played and that the server kept; ``untruncated=True`` everything received.
        """
        return self.mirror.item(item_id).audio(untruncated=untruncated)

    # ------------------------------------------------------------------ session.update
    async def update(
        self,
        config: Any = None,
        /,
        *,
        wait: bool = True,
        timeout: float | None = 15.0,
        **fields: Any,
    ) -> dict[str, Any]:
        """Change session settings (``session.update``); returns ``session.updated`` by default.

        ``config`` is a :class:`~realtime_nb.protocol.SessionConfig`, a plain dict of session
        fields, or a whole ``session.update`` event. Keywords are shortcuts:
        ``instructions=``, ``output_modalities=``, ``tools=``, ... go to the session's top level,
        and ``turn_detection=``, ``transcription=``, ``noise_reduction=``, ``input_format=``,
        ``output_format=``, ``voice=``, ``speed=`` to their place under ``session.audio``.
        ``session.type`` is filled in for you. A rejected update (one bad field rejects it all,
        the old config stays) raises RealtimeError — locally when the validator sees it,
        otherwise from the server with ``wait=True``. Settings that were accepted are re-sent
        after a reconnect. Before :meth:`connect` the update is queued and returned as sent.
        """
        ev = self._update_event(config, fields)
        return await self._send_event(ev, wait, timeout)

    def _update_event(self, config: Any, fields: Mapping[str, Any]) -> dict[str, Any]:
        data = _wire(config) if config is not None else {}
        if not isinstance(data, dict):
            raise TypeError("update() takes a SessionConfig, a dict or keywords, got "
                            f"{type(config).__name__}")
        if data.get("type") == "session.update":
            ev = _copy_json(data)
            session = ev.get("session")
            if isinstance(session, dict):
                session.setdefault("type", self._kind())
        else:
            ev = {"type": "session.update", "session": _copy_json(data)}
        session = ev.setdefault("session", {})
        if isinstance(session, dict):
            for key, value in fields.items():
                value = _wire(value)
                path = AUDIO_SETTING_PATHS.get(key)  # shortcuts below session.audio
                if path is None:
                    session[key] = value
                    continue
                node = session
                for part in path[:-1]:
                    node = node.setdefault(part, {})
                node[path[-1]] = value
            session.setdefault("type", self._kind())
        return ev


    # ------------------------------------------------------------------ responses
    async def create_response(
        self,
        response: Any = None,
        /,
        *,
        wait: bool = False,
        timeout: float | None = 30.0,
        **params: Any,
    ) -> dict[str, Any]:
        """Ask for a response (``response.create``); keywords are response parameters.

        ``response`` is a :class:`~realtime_nb.protocol.ResponseParams` or dict (e.g.
        ``output_modalities=["text"]``, ``instructions=...``, ``conversation="none"``).
        With ``wait`` returns ``response.created`` (use :meth:`say` or
        ``wait_for("response.done")`` for the end).
        """
        body = _wire(response) if response is not None else {}
        if not isinstance(body, dict):
            raise TypeError("create_response() takes ResponseParams, a dict or keywords")
        body = {**_copy_json(body), **{k: _wire(v) for k, v in params.items()}}
        ev: dict[str, Any] = {"type": "response.create"}
        if body:
            ev["response"] = body
        return await self._send_event(ev, wait, timeout)

    async def cancel_response(self, response_id: str | None = None, *, wait: bool = False,
                              timeout: float | None = 15.0) -> dict[str, Any]:
        """Cancel the active (or the given) response (``response.cancel``).

        When nothing is generating the server answers ``response_cancel_not_active`` (benign:
        the response had finished — truncate instead).
        """
        ev: dict[str, Any] = {"type": "response.cancel"}
        if response_id is not None:
            ev["response_id"] = response_id
        rid = response_id or self.mirror.active_response_id
        return await self._send_event(
            ev, wait, timeout,
            reply=lambda e: e.get("type") == "response.done"
            and (rid is None or (e.get("response") or {}).get("id") == rid))

    async def clear_output_audio(self, *, wait: bool = False, timeout: float | None = 15.0
                                 ) -> dict[str, Any]:
        """Cut the response audio the server is playing on a WebRTC call
        (``output_audio_buffer.clear``). The server answers ``output_audio_buffer.cleared``
        (with ``wait``, that event is returned) and truncates the item to what was heard.

        Clearing does not stop generation: cancel a response still in progress with
        :meth:`cancel_response` (the panel's Interrupt does both). Only a ``transport="webrtc"``
        session has a server-side output buffer. On a WebSocket the audio arrives as deltas
        that this client plays, and the service refuses the event; so this raises RealtimeError
        ``invalid_value`` at once, with the service's message and a hint (stop the player and
        send :meth:`truncate`), and sends nothing.
        """
        ev: dict[str, Any] = {"type": "output_audio_buffer.clear", "event_id": self._next_id()}
        if self._transport != "webrtc":
            message = OUTPUT_AUDIO_CLEAR_REFUSED
            self._refuse(ev, RealtimeError(
                "invalid_value", message, param="type", source="client", fatal=False,
                type="invalid_request_error", event_id=ev["event_id"],
                hint=hint_for("invalid_value", "type", message, ev)))
        return await self._send_event(ev, wait, timeout)

    # ------------------------------------------------------------------ helpers

    async def say(self, text: str, *, wait: bool = True, timeout: float | None = 120.0,
                  **response: Any) -> ResponseState:
        """A text turn: add ``text`` as a user message, create a response, await its end.

        Keywords are response parameters (e.g. ``output_modalities=["text"]``). Returns the
        :class:`~.mirror.ResponseState` (``.text``, ``.audio()``, ``.usage``, ``.status``);
        with ``wait=False`` returns as soon as the response was created. Raises RealtimeError
        if the item or the response is refused (e.g. a response is already active).
        """
        tag = self._next_id()
        item_ev = await self.create_item(text=text)
        metadata = dict(response.pop("metadata", None) or {})
        metadata["realtime_nb"] = tag
        resp_ev: dict[str, Any] = {"type": "response.create", "event_id": tag,
                                   "response": {**{k: _wire(v) for k, v in response.items()},
                                                "metadata": metadata}}
        created = await self._send_event(
            resp_ev, True, timeout,
            reply=lambda e: e.get("type") == "response.created"
            and ((e.get("response") or {}).get("metadata") or {}).get("realtime_nb") == tag,
            error_for=(item_ev["event_id"],))
        if created.get("type") != "response.created":
            raise RealtimeError("not_connected", "say() needs a connected session: the events "
                                "were queued.", source="client", fatal=False,
                                hint="await session.connect() first.")
        rid = created["response"]["id"]
        rs = self.mirror.responses[rid]
        if wait and not rs.done:
            await self.wait_for(
                lambda e: (e.get("type") == "response.done"
                           and (e.get("response") or {}).get("id") == rid)
                or (e.get("type") == "realtime_nb.renewed"
                    and rid in (e.get("cut_responses") or ())), timeout)
        return self.mirror.responses[rid]


def _check_transport(transport: str, intent: str | None) -> str:
    if transport not in ("websocket", "webrtc"):
        raise ValueError(f"transport must be 'websocket' or 'webrtc', got {transport!r}")
    if transport == "webrtc" and intent == "transcription":
        raise ValueError("WebRTC calls are realtime sessions: transcription sessions use the "
                         "WebSocket (transport='websocket')")
    return transport


