"""The I/O-free Realtime session state machine: client events in, server events out.

:class:`SessionCore` holds everything the service holds for one session — the effective config, the
input buffer (with its VAD), the conversation items, the active responses — and answers each client
event with the service's server events (GA names; dialects are translated at the edges). It never
touches a socket, a thread or a clock of its own:

* ``handle(event)`` validates and applies one client event; the server events to send are appended
  to ``outbox`` (drain it with :meth:`drain`).
* Work that takes time (speech recognition, the responder, speech synthesis, listing and calling
  MCP tools) is *requested* by appending a :class:`Job` to ``jobs``; the owner runs it wherever
  it likes and reports back with :meth:`transcription_done`, :meth:`response_output` /
  :meth:`response_audio` / :meth:`response_finish`, :meth:`mcp_list_done` /
  :meth:`mcp_call_done`.
* Time comes from the ``clock`` callable given at construction; call :meth:`tick` at
  :meth:`next_deadline` for idle timeouts, semantic-VAD waits and session expiry.

The same class drives the local server, the scripted protocol tests and the VAD lab's socket-free
replays.

Where each part of it lives (SessionCore is assembled from them; each is one responsibility, not
used alone):

* this module — the session: construction, config, ``session.update``, the outbox, the event
  dispatch (:meth:`SessionCore.handle` calls ``_on_<event type>`` of whichever part owns it) and
  the timers (session expiry, idle timeout);
* :mod:`._turns` — the input buffer and its VAD, turns, commits and clears, transcription;
* :mod:`._conversation` — conversation items (create, retrieve, truncate, delete);
* :mod:`._responses` — responses, their output items, audio, usage;
* :mod:`._playout` — the WebRTC output audio buffer;
* :mod:`._mcp_flow` — MCP listings, calls and approvals;
* :mod:`.jobs` — :class:`Job` and its payloads; :mod:`._ids` — :func:`new_id` (both
  re-exported here).
"""

# Typing the parts. Each mixin above uses members that this module or another part creates
# (``self.config``, ``self.emit``, ``self._insert``, ...). They are declared once, in
# ``._parts.SessionParts``, an abstract class that every mixin derives from *only for the type
# checker*: ``if TYPE_CHECKING: from ._parts import SessionParts`` / ``else: SessionParts =
# object``, so at run time the classes, their MRO and their attributes are what they were. Why
# this way rather than:
# * class-level annotations in each mixin: ``emit``, ``config``, ``jobs``... would be declared
#   in five places, and methods cannot be declared by an annotation (each class body would need
#   its own ``if TYPE_CHECKING:`` stubs);
# * a ``typing.Protocol`` as that base: mypy takes ``self.x = ...`` in a subclass as defining a
#   protocol attribute declared without a value anew, so each mixin's own assignments
#   (``self._held = []``, ``self._spec_silence = None``) would infer narrower types of their own
#   instead of being checked against the one declaration; an ABC keeps one type per attribute;
# * ``self: SessionCore`` on every method: some ninety annotations, and mypy refuses a self type
#   that is a subclass of the method's class.
# A part that starts using something another part defines adds it to SessionParts.

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ._conversation import ConversationItems
from ._ids import new_id
from ._mcp_flow import McpFlow
from ._playout import OutputBuffer
from ._responses import ResponseFlow, _Response
from ._turns import LOGPROBS_INCLUDE, InputTurns
from .buffer import InputBuffer, bytes_per_ms
from .config import default_session, merge_session
from .events import validate_client_event
from .item_order import ItemOrder
from .jobs import Job, RespondJob
from .mcp import without_authorization
from .schema import ProtocolError

if TYPE_CHECKING:
    from realtime_nb.vad.speech import SpeechModel

__all__ = ["LOGPROBS_INCLUDE", "Job", "Reply", "SessionCore", "new_id"]


@dataclass
class Reply:
    """What the responder produced for a response: text and/or function calls."""

    text: str = ""
    function_calls: list[tuple[str, str]] = field(default_factory=list)  # (name, arguments JSON)
    truncated: bool = False
    #: MCP tool calls: (server_label, tool name, arguments JSON), run by the server after the text.
    mcp_calls: list[tuple[str, str, str]] = field(default_factory=list)


class SessionCore(InputTurns, ConversationItems, ResponseFlow, OutputBuffer, McpFlow):
    """One Realtime session's state and rules (see the module docstring).

    ``vad_model`` must provide ``new_stream()`` returning an object with ``process(int16 24 kHz
    samples) -> probabilities`` and ``frame_ms``; ``make_segmenter(turn_detection_dict, frame_ms)``
    builds the segmenter for the current turn-detection settings. Both come from
    :mod:`realtime_nb.vad` by default.

    ``turn_model`` (e.g. :class:`realtime_nb.vad.turn.SmartTurn`, with ``predict(int16 24 kHz
    samples) -> probability``) answers semantic_vad's end-of-turn questions when the segmenter
    asks them (a segmenter built with ``decisions=True``). By default it is run right away; with
    :attr:`defer_turn` each question becomes a ``"turn_check"`` :class:`Job` for the owner to
    batch (answer with :meth:`turn_decision`).

    ``noise_filter(noise_reduction, input_format) -> filter or None`` builds the input noise filter
    whenever the session's ``audio.input.noise_reduction`` or input format changes (``None``
    config: off); the filter's ``process(bytes) -> bytes`` (same length) runs on every appended
    chunk before VAD and before the audio is kept for commits, so committed items and
    ``conversation.item.retrieve`` carry the filtered audio, as the service's do. Without a
    factory (the default) ``noise_reduction`` is accepted and echoed but nothing is filtered;
    :attr:`noise_filter` says which.
    """

    def __init__(
        self,
        *,
        kind: str = "realtime",
        model: str = "gpt-realtime",
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        vad_model: SpeechModel | None = None,
        make_segmenter: Callable[[dict[str, Any], float], Any] | None = None,
        turn_model: Any = None,
        max_duration_s: float = 3600.0,
        session_defaults: dict[str, Any] | None = None,
        transport: str = "websocket",
        noise_filter: Callable[[dict[str, Any] | None, dict[str, Any]], Any] | None = None,
    ) -> None:
        if transport not in ("websocket", "webrtc"):
            raise ValueError("transport must be 'websocket' or 'webrtc'")
        self.kind = kind
        #: ``"webrtc"``: media travels on RTP tracks, not in events. Response audio is queued in
        #: :attr:`playout` for the owner's outgoing track (no ``response.output_audio.delta``),
        #: ``output_audio_buffer.started/stopped/cleared`` are emitted and
        #: ``output_audio_buffer.clear`` is accepted.
        self.transport = transport
        #: Response audio for the outgoing track, in order: ``("audio", response_id, pcm16 24 kHz)``
        #: or ``("clear", response_id, b"")`` (drop everything queued before). See
        #: :meth:`take_playout` and :meth:`playout_idle`.
        self.playout: list[tuple[str, str, bytes]] = []
        self._audible: list[str] = []  # responses with audio in the output buffer, in order
        self.clock = clock
        self.created_at = clock()
        self.max_duration_s = max_duration_s
        self.id = new_id("sess")
        self.conversation_id = new_id("conv")
        self.config = default_session(kind)
        if kind == "realtime":
            self.config["model"] = model
        if session_defaults:
            self.config = merge_session(self.config, session_defaults)
        self.expires_at = int(wall_clock() + max_duration_s)
        self.outbox: list[dict[str, Any]] = []
        self.jobs: list[Job] = []
        #: The conversation's items in order and by id (``items``, ``_index``).
        self.conversation: ItemOrder[dict[str, Any]] = ItemOrder()
        self.item_audio: dict[str, bytes] = {}
        #: Approximate image tokens of each item holding ``input_image`` parts (see
        #: :func:`~realtime_nb.protocol.images.image_tokens`), counted when it is added.
        self.item_image_tokens: dict[str, int] = {}
        self.responses: dict[str, _Response] = {}
        self.active_response: str | None = None
        self.assistant_audio_present = False
        self.closed = False
        self.close_code: int | None = None
        self._vad_model = vad_model
        self._make_segmenter = make_segmenter
        self._turn_model = turn_model
        self._held: list[float] = []  # probabilities waiting for an end-of-turn answer
        self._ring: list[np.ndarray] = []  # VAD input (int16 24 kHz) kept for end-of-turn checks
        self._ring_start = 0  # VAD-timeline sample index of the first sample in _ring
        self._vad_stream: Any = None
        self._vad_pending: list[np.ndarray] = []
        self._spec_silence: float | None = None  # silence start (segmenter ms) speculated on
        self._spec_id = 0
        self._spec_open: int | None = None  # id of the speculate job for _spec_silence, if any
        self._segmenter: Any = None
        self._vad_to_24k: Any = None
        self._pending_item_id: str | None = None
        self._speech_start_ms: float = 0.0
        self._turn_audio = bytearray()  # audio of the current buffer, input format
        self._turn_start_bytes = 0
        self._idle_deadline: float | None = None
        #: MCP servers by ``server_label``: ``tool`` (the config), ``fp`` (its fingerprint),
        #: ``item_id`` (its ``mcp_list_tools`` item), ``status`` (in_progress / completed /
        #: failed) and ``tools`` (listed and allowed).
        self.mcp_servers: dict[str, dict[str, Any]] = {}
        self._approvals: dict[str, dict[str, Any]] = {}  # approval request id -> call to run
        self._running_calls: dict[str, dict[str, Any]] = {}  # approved calls being run
        self._deferred: dict[str, tuple[RespondJob, bool]] = {}  # responses waiting for MCP work
        self.buffer = InputBuffer(bytes_per_ms(self._in_format))
        self.buffer.vad = self._turn_detection is not None
        self._make_noise_filter = noise_filter
        #: the input noise filter in use (``None``: appended audio is kept as it came)
        self.noise_filter: Any = None
        self._reset_noise_filter()
        self._reset_vad()

    # ------------------------------------------------------------------ config helpers
    @property
    def _in_format(self) -> dict[str, Any]:
        return self.config["audio"]["input"]["format"]

    @property
    def _out_format(self) -> dict[str, Any]:
        return self.config.get("audio", {}).get("output", {}).get("format", {"type": "audio/pcm"})

    @property
    def _turn_detection(self) -> dict[str, Any] | None:
        return self.config["audio"]["input"]["turn_detection"]

    @property
    def _noise_reduction(self) -> dict[str, Any] | None:
        return self.config["audio"]["input"].get("noise_reduction")

    def _reset_noise_filter(self) -> None:
        """A fresh filter for the current noise_reduction and input format (or none)."""
        nr = self._noise_reduction
        make = self._make_noise_filter
        self.noise_filter = make(nr, dict(self._in_format)) if (nr and make) else None

    def session_object(self) -> dict[str, Any]:
        """The full session object as ``session.created`` / ``session.updated`` carry it."""
        obj = {"object": "realtime.session" if self.kind == "realtime"
               else "realtime.transcription_session", "id": self.id,
               "expires_at": self.expires_at}
        cfg = copy.deepcopy(self.config)
        if "tools" in cfg:
            cfg["tools"] = without_authorization(cfg["tools"])
        return {"type": cfg.pop("type"), **obj, **cfg}

    # ------------------------------------------------------------------ output helpers
    def emit(self, etype: str, **fields: Any) -> dict[str, Any]:
        ev = {"type": etype, "event_id": new_id("event"), **fields}
        self.outbox.append(ev)
        return ev

    def error(self, err: ProtocolError, event_id: str | None = None) -> None:
        self.emit("error", error=err.to_wire(event_id))

    def drain(self) -> list[dict[str, Any]]:
        """Take the server events produced so far (in order)."""
        out, self.outbox = self.outbox, []
        return out

    def take_jobs(self) -> list[Job]:
        out, self.jobs = self.jobs, []
        return out

    def start(self) -> None:
        """Emit ``session.created`` (call once, right after the connection opens); a session
        that starts with ``mcp`` tools (a client secret's or a call's config) lists them."""
        self.emit("session.created", session=self.session_object())
        if self.kind == "realtime":
            self._sync_mcp(self.config.get("tools"))

    # ------------------------------------------------------------------ client events
    def handle(self, event: Any) -> None:
        """Validate and apply one client event (a parsed JSON object)."""
        if self.closed:
            return
        event_id = event.get("event_id") if isinstance(event, dict) else None
        if not isinstance(event_id, str):
            event_id = None
        try:
            validate_client_event(event)
            if (self._vad_pending or self._held) and event["type"] != "input_audio_buffer.append":
                self.run_pending_vad()
            getattr(self, "_on_" + event["type"].replace(".", "_"))(event)
        except ProtocolError as err:
            self.error(err, event_id)

    def _on_session_update(self, ev: dict[str, Any]) -> None:
        patch = ev["session"]
        if patch.get("type") != self.kind:
            raise ProtocolError(
                "invalid_value",
                f"Invalid value: '{patch.get('type')}'. Value must be '{self.kind}'.",
                "session.type",
            )
        if "model" in patch and patch["model"] != self.config.get("model"):
            raise ProtocolError(
                "invalid_value", "Cannot change the model of a session once it is created.",
                "session.model",
            )
        new_voice = patch.get("audio", {}).get("output", {}).get("voice")
        if (new_voice is not None and self.assistant_audio_present
                and new_voice != self.config["audio"]["output"]["voice"]):
            raise ProtocolError(
                "cannot_update_voice",
                "Cannot update a conversation's voice if assistant audio is present.",
                None,
            )
        if "tracing" in patch and self.config.get("tracing") not in (None, patch["tracing"]):
            raise ProtocolError(
                "invalid_value", "Tracing cannot be modified once it is enabled.", "session.tracing"
            )
        old_td = self._turn_detection
        old_fmt = self._in_format
        old_nr = self._noise_reduction
        self.config = merge_session(self.config, patch)
        if self._noise_reduction != old_nr or self._in_format != old_fmt:
            self._reset_noise_filter()
        if self._in_format != old_fmt:
            self.buffer.set_format(bytes_per_ms(self._in_format))
            self._turn_audio.clear()
            self._turn_start_bytes = self.buffer.timeline_bytes
            self.buffer.cleared()
        if self._turn_detection != old_td or self._in_format != old_fmt:
            # a new input format needs a new VAD path too (G.711 is resampled for the VAD)
            self.buffer.vad = self._turn_detection is not None
            self._reset_vad()
        self.emit("session.updated", session=self.session_object())
        if "tools" in patch:
            self._sync_mcp(self.config.get("tools"))

    # ------------------------------------------------------------------ time
    def next_deadline(self) -> float | None:
        """The clock time at which :meth:`tick` must next be called (None: no timer pending)."""
        deadlines = [self.created_at + self.max_duration_s]
        if self._idle_deadline is not None:
            deadlines.append(self._idle_deadline)
        return min(deadlines)

    def tick(self) -> None:
        """Fire what is due: session expiry, idle timeout."""
        if self.closed:
            return
        self.run_pending_vad()
        now = self.clock()
        if now >= self.created_at + self.max_duration_s:
            minutes = self.max_duration_s / 60
            shown = f"{minutes:.0f}" if minutes >= 1 else f"{minutes:.2f}"
            self.emit("error", error={"type": "invalid_request_error", "code": "session_expired",
                                      "message": f"Your session hit the maximum duration of "
                                                 f"{shown} minutes.",
                                      "param": None, "event_id": None})
            self.closed = True
            self.close_code = 1001
            return
        if self._idle_deadline is not None and now >= self._idle_deadline:
            self._idle_deadline = None
            if self.active_response is None and not self.buffer.speaking:
                end = self.buffer.timeline_ms
                start = self._turn_start_bytes / self.buffer.bytes_per_ms
                item_id = new_id("item")
                self.emit("input_audio_buffer.timeout_triggered", audio_start_ms=int(start),
                          audio_end_ms=int(end), item_id=item_id)
                self.buffer.start_bytes = self._turn_start_bytes
                self._commit(None, item_id=item_id, has_speech=False)
                self.create_response({})
