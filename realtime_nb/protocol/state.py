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
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .buffer import COMMIT_MIN_MS, InputBuffer, bytes_per_ms, commit_empty_message
from .config import default_session, merge_session
from .events import validate_client_event
from .images import check_item_images
from .jobs import Job
from .mcp import allowed, fingerprint, mcp_tools, needs_approval, without_authorization
from .schema import ProtocolError

__all__ = ["LOGPROBS_INCLUDE", "Job", "Reply", "SessionCore", "new_id"]

#: The ``include`` entry that asks for the transcription's token log-probabilities.
LOGPROBS_INCLUDE = "item.input_audio_transcription.logprobs"

_OMIT: Any = object()  # "leave the field out" (as opposed to sending null)

_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def new_id(prefix: str) -> str:
    """A service-looking id such as ``item_Bd8f3kQ2...`` (prefix + 22 random characters)."""
    raw = secrets.token_bytes(22)
    return prefix + "_" + "".join(_ALNUM[b % 62] for b in raw)


@dataclass
class Reply:
    """What the responder produced for a response: text and/or function calls."""

    text: str = ""
    function_calls: list[tuple[str, str]] = field(default_factory=list)  # (name, arguments JSON)
    truncated: bool = False
    #: MCP tool calls: (server_label, tool name, arguments JSON), run by the server after the text.
    mcp_calls: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class _Response:
    id: str
    conversation: bool
    modalities: list[str]
    voice: Any
    out_format: dict[str, Any]
    max_output_tokens: Any
    metadata: dict[str, Any] | None
    output: list[dict[str, Any]] = field(default_factory=list)
    status: str = "in_progress"
    open_item: dict[str, Any] | None = None
    transcript: str = ""
    audio_ms: float = 0.0
    audio_bytes: int = 0
    audio_chunks: list[bytes] = field(default_factory=list)
    pending_calls: list[tuple[str, str]] = field(default_factory=list)
    pending_mcp: list[tuple[str, str, str]] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)
    waiting_call: str | None = None  # an mcp_call item whose job this response waits for
    input_tokens: int = 0
    input_image_tokens: int = 0
    output_text_tokens: int = 0
    output_audio_tokens: int = 0
    incomplete: bool = False


def _tokens(text: str) -> int:
    return max(0, math.ceil(len(text.split()) * 1.33))


def _audio_tokens(ms: float) -> int:
    return math.ceil(ms / 100.0)


class SessionCore:
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
        vad_model: Any = None,
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
        self.items: list[dict[str, Any]] = []
        self._index: dict[str, dict[str, Any]] = {}
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
        self._deferred: dict[str, tuple[Job, bool]] = {}  # responses waiting for MCP work
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
        if self._turn_detection != old_td:
            self.buffer.vad = self._turn_detection is not None
            self._reset_vad()
        self.emit("session.updated", session=self.session_object())
        if "tools" in patch:
            self._sync_mcp(self.config.get("tools"))

    def _on_input_audio_buffer_append(self, ev: dict[str, Any]) -> None:
        try:
            data = base64.b64decode(ev["audio"], validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolError(
                "invalid_value", "Invalid 'audio': expected base64-encoded audio bytes.", "audio"
            ) from None
        if len(data) > 15 * 1024 * 1024:
            raise ProtocolError(
                "audio_too_large", "Audio chunk exceeds the 15 MiB limit for one append.", "audio"
            )
        self.append_audio(data)

    def append_audio(self, data: bytes) -> None:
        """Append raw input-format bytes (what ``input_audio_buffer.append`` carries).

        With :attr:`defer_vad` set, the speech model is not run here: the samples wait in
        :meth:`take_vad_input` for the owner to run many sessions' VAD in one batch and hand the
        probabilities back with :meth:`feed_probabilities`. Any other client event or a tick runs
        the waiting audio through the model first, so event order is never changed.

        With a :attr:`noise_filter`, ``data`` is filtered first (same length; see the class
        docstring): VAD, commits and retrieved items all see the filtered audio.
        """
        if self.noise_filter is not None:
            data = self.noise_filter.process(data)
        self.buffer.append(len(data))
        self._turn_audio += data
        if self._segmenter is not None:
            samples = self._decode_input(data)
            if self._asks_turn_model():
                self._ring.append(samples)
            if self.defer_vad:
                self._vad_pending.append(samples)
            else:
                self.feed_probabilities(self._vad_stream.process(samples))
        elif self.buffer.vad:
            self._trim_idle()

    #: When True, VAD input is queued for batched inference (see :meth:`append_audio`).
    defer_vad: bool = False
    #: When True, end-of-turn questions become ``"turn_check"`` jobs instead of running at once.
    defer_turn: bool = False

    def _asks_turn_model(self) -> bool:
        return (self._turn_model is not None
                and getattr(self._segmenter, "semantic_rule", None) == "model")

    @property
    def semantic_rule(self) -> str | None:
        """How this session's semantic_vad decides: ``"model"`` (the end-of-turn model),
        ``"length-fallback"`` (no model: the utterance-length rule) or ``None`` (not
        semantic_vad)."""
        return getattr(self._segmenter, "semantic_rule", None)

    @property
    def vad_stream(self) -> Any:
        """The speech-probability stream of the current turn-detection settings (or None)."""
        return self._vad_stream

    def take_vad_input(self) -> np.ndarray | None:
        """Samples (int16, 24 kHz) appended since the last call and not yet run through VAD."""
        if not self._vad_pending:
            return None
        pending, self._vad_pending = self._vad_pending, []
        return pending[0] if len(pending) == 1 else np.concatenate(pending)

    def run_pending_vad(self) -> None:
        """Run queued VAD input through this session's own stream (unbatched), answering any
        end-of-turn question it waits on right here, so that everything appended so far has
        been decided."""
        samples = self.take_vad_input()
        if samples is not None and self._vad_stream is not None:
            self.feed_probabilities(self._vad_stream.process(samples))
        while self._held and self._segmenter is not None:
            check = self._segmenter.pending_check
            if check is None:  # pragma: no cover - held frames always wait on a check
                break
            self.turn_decision(check, self._turn_model.predict(self._check_audio(check)))

    def feed_probabilities(self, probs: Any) -> None:
        """Apply speech probabilities for the next frames (from this session's VAD stream).

        Frames that must wait for an end-of-turn answer are held and applied by
        :meth:`turn_decision`."""
        if self._segmenter is None:
            return
        seg = self._segmenter
        if self._held:
            self._held.extend(float(p) for p in probs)
            return
        values = [float(p) for p in probs]
        for k, p in enumerate(values):
            if getattr(seg, "blocked", False):
                self._held = values[k:]
                break
            for event in seg.push(p):
                name = type(event).__name__
                if name == "SpeechStarted":
                    self._speech_started(self._vad_origin_ms + event.audio_start_ms)
                elif name == "SpeechStopped":
                    spec = self._spec_open if event.offset_ms == self._spec_silence else None
                    self._speech_stopped(self._vad_origin_ms + event.audio_end_ms, spec)
                elif name == "TurnCheck":
                    self._turn_check(event)
            if seg.in_speech:
                silence = getattr(seg, "silence_started_ms", None)
                if silence is not None and silence != self._spec_silence:
                    self._speculate(silence)
        self._trim_ring()
        if not self.buffer.speaking:
            self._trim_idle()

    # ------------------------------------------------------------------ end of turn (semantic)
    def _check_audio(self, check: Any) -> np.ndarray:
        """The VAD input samples (int16 24 kHz) a TurnCheck judges."""
        lo = check.audio_start_ms * 24 - self._ring_start
        hi = check.audio_end_ms * 24 - self._ring_start
        if lo < 0:  # pragma: no cover - the ring always keeps TURN_AUDIO_MS before the pause
            raise RuntimeError("end-of-turn audio no longer held")
        ring = np.concatenate(self._ring) if len(self._ring) != 1 else self._ring[0]
        self._ring = [ring]
        return ring[lo:hi].copy()

    def _turn_check(self, check: Any) -> None:
        if self._turn_model is None:  # pragma: no cover - decisions=True needs a model
            raise RuntimeError("the segmenter asks an end-of-turn question but no turn_model")
        audio = self._check_audio(check)
        if self.defer_turn:
            self.jobs.append(Job("turn_check", {"check": check, "audio": audio}))
        else:
            self._segmenter.decide(check, self._turn_model.predict(audio))

    def turn_check_open(self, check: Any) -> bool:
        """Whether ``check`` still waits for its answer (else the work may be dropped)."""
        seg = self._segmenter
        return seg is not None and getattr(seg, "pending_check", None) is check

    def turn_decision(self, check: Any, p_complete: float) -> None:
        """The end-of-turn model's answer to a ``"turn_check"`` job: apply it and the frames
        that waited for it. A stale answer (speech resumed, VAD reset, answered already) is
        ignored."""
        seg = self._segmenter
        if seg is None or not seg.decide(check, p_complete):
            return
        held, self._held = self._held, []
        if held:
            self.feed_probabilities(held)

    def _trim_ring(self) -> None:
        """Keep only the VAD input an end-of-turn question may still need."""
        if not self._ring or self._segmenter is None:
            return
        from realtime_nb.vad.segmenter import TURN_AUDIO_MS

        keep_from = (self._segmenter.now_ms - TURN_AUDIO_MS - 200) * 24
        ring = self._ring
        dropped = 0
        while dropped + 1 < len(ring) and self._ring_start + len(ring[dropped]) <= keep_from:
            self._ring_start += len(ring[dropped])
            dropped += 1
        if dropped:
            del ring[:dropped]

    def _speculate(self, silence_ms: float) -> None:
        """The speaker paused: ask for a transcription of the turn so far, ahead of time.

        If the turn ends with this pause, its transcription job names this speculation and the
        owner may reuse the result (the rest of the turn is silence); if speech resumes, the
        result is simply not used. Only done when a transcript will be wanted.
        """
        self._spec_silence = silence_ms
        self._spec_open = None
        td = self._turn_detection or {}
        wanted = self.config["audio"]["input"].get("transcription") is not None or (
            self.kind == "realtime" and td.get("create_response", True))
        if not wanted:
            return
        self._spec_id += 1
        self._spec_open = self._spec_id
        bpm = self.buffer.bytes_per_ms
        lo = max(0, self.buffer.start_bytes - self._turn_start_bytes)
        # the turn up to the pause (plus one frame), not audio that may already follow it
        hi = round((self._vad_origin_ms + silence_ms + 32.0) * bpm) - self._turn_start_bytes
        audio = bytes(self._turn_audio[lo:max(lo, hi)])
        audio = audio[: len(audio) - len(audio) % (2 if bpm == 48 else 1)]
        tr = self.config["audio"]["input"].get("transcription")
        self.jobs.append(Job("speculate", {"speculation": self._spec_id, "audio": audio,
                                           "format": dict(self._in_format),
                                           "config": copy.deepcopy(tr),
                                           "logprobs": self.wants_logprobs and tr is not None}))

    @property
    def open_speculation(self) -> int | None:
        """The id of the latest ``"speculate"`` job while the pause it was made at still goes on
        (the turn may yet end there, and its transcription job would then name it); ``None``
        once speech resumed, the turn ended or the VAD was reset. The owner may abandon the work
        of every other speculation not named by a transcription job."""
        seg = self._segmenter
        if seg is None or self._spec_open is None or not seg.in_speech:
            return None
        silence = getattr(seg, "silence_started_ms", None)
        return self._spec_open if silence is not None and silence == self._spec_silence else None

    def _on_input_audio_buffer_commit(self, ev: dict[str, Any]) -> None:
        ms = self.buffer.buffered_ms
        if ms < COMMIT_MIN_MS:
            raise ProtocolError("input_audio_buffer_commit_empty", commit_empty_message(ms), None)
        self._commit(None)

    def _on_input_audio_buffer_clear(self, ev: dict[str, Any]) -> None:
        self.buffer.cleared()
        self._turn_audio.clear()
        self._turn_start_bytes = self.buffer.timeline_bytes
        self._pending_item_id = None
        self._reset_vad(keep_timeline=True)
        self.emit("input_audio_buffer.cleared")

    def _on_output_audio_buffer_clear(self, ev: dict[str, Any]) -> None:
        if self.transport == "webrtc":
            self._clear_playout()
            return
        raise ProtocolError(
            "invalid_value",
            "Invalid value: 'output_audio_buffer.clear'. This event is only supported for WebRTC "
            "and SIP sessions.",
            "type",
        )

    def _on_conversation_item_create(self, ev: dict[str, Any]) -> None:
        if self.kind != "realtime":
            raise ProtocolError("invalid_value", "Transcription sessions have no conversation.",
                                "type")
        item = copy.deepcopy(ev["item"])
        if "id" in item and item["id"] in self._index:
            raise ProtocolError(
                "duplicate_item_id", f"Item with id '{item['id']}' already exists.", "item.id"
            )
        approval = None
        if item["type"] == "mcp_approval_response":
            approval = self._check_approval(item)
        if item["type"] == "function_call_output" and not any(
            it.get("type") == "function_call" and it.get("call_id") == item["call_id"]
            for it in self.items
        ):
            raise ProtocolError(
                "invalid_tool_call_id",
                f"Tool call ID '{item['call_id']}' not found in conversation.",
                "item.call_id",
            )
        prev = ev.get("previous_item_id", "<absent>")
        if prev not in ("<absent>", None, "root") and prev not in self._index:
            raise ProtocolError(
                "item_not_found",
                f"Error adding item: the previous item with id '{prev}' does not exist.",
                "previous_item_id",
            )
        item.setdefault("id", new_id("item"))
        images = check_item_images(item, "item")
        if not item["type"].startswith("mcp_"):  # the GA MCP items have neither field
            item["object"] = "realtime.item"
            item["status"] = "completed"
        audio = b""
        for part in item.get("content", []):
            if part.get("type") == "input_audio":
                try:
                    audio += base64.b64decode(part.get("audio") or "", validate=True)
                except (binascii.Error, ValueError):
                    raise ProtocolError("invalid_value", "Invalid base64 audio.",
                                        "item.content.audio") from None
                part["transcript"] = part.get("transcript")
        self._insert(item, None if prev in ("<absent>", None) else prev)
        if audio:
            self.item_audio[item["id"]] = audio
            self.jobs.append(Job("transcribe", self._transcribe_payload(item["id"], audio)))
        if images:
            self.item_image_tokens[item["id"]] = images
        self._item_added_done(item)
        if approval is not None:
            self._answer_approval(approval, item)

    def _on_conversation_item_retrieve(self, ev: dict[str, Any]) -> None:
        item = self._get_item(ev["item_id"], "item_id")
        out = copy.deepcopy(item)
        audio = self.item_audio.get(item["id"])
        if audio is not None:
            for part in out.get("content", []):
                if part.get("type") in ("input_audio", "output_audio"):
                    part["audio"] = base64.b64encode(audio).decode()
        self.emit("conversation.item.retrieved", item=out)

    def _on_conversation_item_truncate(self, ev: dict[str, Any]) -> None:
        item = self._index.get(ev["item_id"])
        if item is None:
            raise ProtocolError(
                "item_truncate_invalid_item_id",
                f"Item with item_id not found: {ev['item_id']}",
                "item_id",
            )
        if item.get("role") != "assistant" or not any(
            p.get("type") == "output_audio" for p in item.get("content", [])
        ):
            raise ProtocolError(
                "item_truncate_invalid_item_id",
                "Only assistant messages with audio can be truncated.",
                "item_id",
            )
        if ev["content_index"] != 0:
            raise ProtocolError("invalid_value", "Invalid 'content_index': must be 0.",
                                "content_index")
        audio = self.item_audio.get(item["id"], b"")
        bpm = bytes_per_ms(self._out_format)
        total_ms = len(audio) / bpm
        end = ev["audio_end_ms"]
        if end > total_ms:
            raise ProtocolError(
                "item_truncate_invalid_audio_end_ms",
                f"Audio content of {total_ms:.0f}ms is already shorter than {end}ms",
                "audio_end_ms",
            )
        self.item_audio[item["id"]] = audio[: int(end * bpm)]
        part = item["content"][0]
        text = part.get("transcript") or ""
        if total_ms > 0 and text:
            words = text.split()
            keep = math.floor(len(words) * end / total_ms)
            part["transcript"] = " ".join(words[:keep])
        self.emit("conversation.item.truncated", item_id=item["id"], content_index=0,
                  audio_end_ms=end)

    def _on_conversation_item_delete(self, ev: dict[str, Any]) -> None:
        item = self._get_item(ev["item_id"], "item_id")
        self.items.remove(item)
        del self._index[item["id"]]
        self.item_audio.pop(item["id"], None)
        self.item_image_tokens.pop(item["id"], None)
        self.emit("conversation.item.deleted", item_id=item["id"])

    def _on_response_create(self, ev: dict[str, Any]) -> None:
        if self.kind != "realtime":
            raise ProtocolError("invalid_value", "Transcription sessions cannot create responses.",
                                "type")
        self.create_response(ev.get("response", {}))

    def _on_response_cancel(self, ev: dict[str, Any]) -> None:
        rid = ev.get("response_id") or self.active_response
        resp = self.responses.get(rid) if rid else None
        if resp is None or resp.status != "in_progress":
            raise ProtocolError(
                "response_cancel_not_active", "Cancellation failed: no active response found", None
            )
        self.cancel_response(resp.id, "client_cancelled")

    # ------------------------------------------------------------------ items
    def _get_item(self, item_id: str, param: str) -> dict[str, Any]:
        item = self._index.get(item_id)
        if item is None:
            raise ProtocolError(
                "item_not_found", f"Item with item_id not found: {item_id}", param
            )
        return item

    def _insert(self, item: dict[str, Any], previous_item_id: str | None) -> None:
        if previous_item_id == "root":
            pos = 0
        elif previous_item_id is None:
            pos = len(self.items)
        else:
            pos = self.items.index(self._index[previous_item_id]) + 1
        self.items.insert(pos, item)
        self._index[item["id"]] = item

    def _previous_id(self, item: dict[str, Any]) -> str | None:
        i = self.items.index(item)
        return self.items[i - 1]["id"] if i > 0 else None

    def _item_added_done(self, item: dict[str, Any]) -> None:
        prev = self._previous_id(item)
        self.emit("conversation.item.added", previous_item_id=prev, item=self._public(item))
        self.emit("conversation.item.done", previous_item_id=prev, item=self._public(item))

    @staticmethod
    def _public(item: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(item)
        for part in out.get("content", []):
            if "audio" in part:
                part["audio"] = None
        return out

    # ------------------------------------------------------------------ input buffer and VAD
    def _reset_vad(self, keep_timeline: bool = False) -> None:
        self._vad_pending = []
        self._held = []
        self._ring, self._ring_start = [], 0
        self._spec_silence = self._spec_open = None  # a new segmenter: no pause speculated on
        td = self._turn_detection
        self._pending_item_id = None
        if td is None or self._vad_model is None or self._make_segmenter is None:
            self._segmenter = None
            self._vad_stream = None
            return
        self._vad_stream = self._vad_model.new_stream()
        self._segmenter = self._make_segmenter(td, self._vad_stream.frame_ms)
        self._vad_origin_ms = self.buffer.timeline_ms
        rate = 24000 if bytes_per_ms(self._in_format) == 48 else 8000
        self._vad_to_24k = None
        if rate != 24000:
            from realtime_nb.audio import StreamResampler

            self._vad_to_24k = StreamResampler(rate, 24000)

    def _decode_input(self, data: bytes) -> np.ndarray:
        fmt = self._in_format.get("type")
        if fmt == "audio/pcm":
            return np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2")
        from realtime_nb.audio import decode_format

        audio = decode_format(data, self._in_format)
        x = self._vad_to_24k.process(audio.samples)
        return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)

    def _trim_idle(self) -> None:
        """Outside speech keep only the prefix-padding window of audio (not counted as buffered)."""
        td = self._turn_detection or {}
        keep_ms = float(td.get("prefix_padding_ms", 300)) + 100.0
        bpm = self.buffer.bytes_per_ms
        keep = int(keep_ms * bpm)
        excess = len(self._turn_audio) - keep
        if excess > 0:
            del self._turn_audio[:excess]
            self._turn_start_bytes += excess
        self.buffer.start_bytes = self.buffer.timeline_bytes

    def _speech_started(self, audio_start_ms: float) -> None:
        self._idle_deadline = None
        start = max(audio_start_ms, self._turn_start_bytes / self.buffer.bytes_per_ms)
        self.buffer.start_bytes = self._turn_start_bytes
        self.buffer.speech_started(start)
        self._speech_start_ms = start
        self._pending_item_id = new_id("item")
        self.emit("input_audio_buffer.speech_started", audio_start_ms=round(audio_start_ms),
                  item_id=self._pending_item_id)
        td = self._turn_detection or {}
        if td.get("interrupt_response", True):
            if self.active_response:
                self.cancel_response(self.active_response, "turn_detected")
            if self._audible:  # the reply still being heard is cut (WebRTC: the server plays it)
                self._clear_playout()

    def _speech_stopped(self, audio_end_ms: float, speculation: int | None = None) -> None:
        item_id = self._pending_item_id or new_id("item")
        self.emit("input_audio_buffer.speech_stopped", audio_end_ms=round(audio_end_ms),
                  item_id=item_id)
        self._commit(audio_end_ms, item_id=item_id, has_speech=True, speculation=speculation)
        td = self._turn_detection or {}
        if self.kind == "realtime" and td.get("create_response", True):
            if self.active_response is None:
                self.create_response({})
            else:
                self.error(ProtocolError(
                    "conversation_already_has_active_response",
                    "Conversation already has an active response in progress: "
                    f"{self.active_response}. Wait until the response is finished before "
                    "creating a new one.", None))

    def _commit(self, end_ms: float | None, item_id: str | None = None,
                has_speech: bool | None = None, speculation: int | None = None) -> None:
        bpm = self.buffer.bytes_per_ms
        start_b = self.buffer.start_bytes
        end_b = self.buffer.timeline_bytes if end_ms is None else min(
            self.buffer.timeline_bytes, round(end_ms * bpm))
        lo = max(0, start_b - self._turn_start_bytes)
        hi = max(lo, end_b - self._turn_start_bytes)
        hi -= (hi - lo) % (2 if bpm == 48 else 1)
        audio = bytes(self._turn_audio[lo:hi])
        del self._turn_audio[:hi]
        self._turn_start_bytes += hi
        self.buffer.committed(end_ms)
        self.buffer.start_bytes = self._turn_start_bytes
        item_id = item_id or self._pending_item_id or new_id("item")
        self._pending_item_id = None
        if self._segmenter is not None and hasattr(self._segmenter, "reset_floor"):
            self._segmenter.reset_floor(self._turn_start_bytes / bpm - self._vad_origin_ms)
        prev = self.items[-1]["id"] if self.items else None
        self.emit("input_audio_buffer.committed", previous_item_id=prev, item_id=item_id)
        if self.kind == "realtime":
            item = {
                "id": item_id, "object": "realtime.item", "type": "message", "status": "completed",
                "role": "user", "content": [{"type": "input_audio", "transcript": None}],
            }
            self._insert(item, None)
            self.item_audio[item_id] = audio
            self._item_added_done(item)
        else:
            self.item_audio[item_id] = audio
            item = {"id": item_id, "object": "realtime.item", "type": "message",
                    "status": "completed", "role": "user",
                    "content": [{"type": "input_audio", "transcript": None}]}
            self._index[item_id] = item
            self._item_added_done_transcription(item, prev)
        payload = self._transcribe_payload(item_id, audio, has_speech)
        payload["speculation"] = speculation
        self.jobs.append(Job("transcribe", payload))

    def _item_added_done_transcription(self, item: dict[str, Any], prev: str | None) -> None:
        self.emit("conversation.item.added", previous_item_id=prev, item=self._public(item))
        self.emit("conversation.item.done", previous_item_id=prev, item=self._public(item))

    @property
    def wants_logprobs(self) -> bool:
        """Whether the session's ``include`` asks for transcription log-probabilities (jobs ask
        the engine for them only when transcription events will carry them, i.e. when
        ``audio.input.transcription`` is on)."""
        return LOGPROBS_INCLUDE in (self.config.get("include") or [])

    def _transcribe_payload(self, item_id: str, audio: bytes,
                            has_speech: bool | None = None) -> dict[str, Any]:
        tr = self.config["audio"]["input"].get("transcription")
        return {"item_id": item_id, "audio": audio, "format": dict(self._in_format),
                "config": copy.deepcopy(tr), "emit": tr is not None, "has_speech": has_speech,
                "logprobs": self.wants_logprobs and tr is not None}

    # ------------------------------------------------------------------ transcription results
    def transcription_delta(self, item_id: str, delta: str, *, logprobs: Any = _OMIT) -> None:
        """Announce one piece of an item's transcript. ``logprobs`` (a list of
        ``{token, logprob, bytes}``, or ``None`` when the engine has none) is sent only when
        given: pass it when the job's payload asked for log-probabilities."""
        extra = {} if logprobs is _OMIT else {"logprobs": logprobs}
        self.emit("conversation.item.input_audio_transcription.delta", item_id=item_id,
                  content_index=0, delta=delta, **extra)

    def transcription_done(self, item_id: str, transcript: str, *, emit: bool = True,
                           logprobs: Any = _OMIT) -> None:
        """Record the transcript of a user audio item (and announce it when ``emit``, with
        ``logprobs`` as in :meth:`transcription_delta`)."""
        item = self._index.get(item_id)
        if item is not None:
            for part in item.get("content", []):
                if part.get("type") == "input_audio":
                    part["transcript"] = transcript
        if emit:
            secs = len(self.item_audio.get(item_id, b"")) / bytes_per_ms(self._in_format) / 1000
            extra = {} if logprobs is _OMIT else {"logprobs": logprobs}
            self.emit("conversation.item.input_audio_transcription.completed", item_id=item_id,
                      content_index=0, transcript=transcript,
                      usage={"type": "duration", "seconds": float(math.ceil(secs))}, **extra)

    def transcription_failed(self, item_id: str, message: str,
                             code: str = "audio_unintelligible") -> None:
        """Announce that an item's transcription failed (``code``: the service's
        ``audio_unintelligible``, or the local server's own ``unsupported_language``)."""
        self.emit("conversation.item.input_audio_transcription.failed", item_id=item_id,
                  content_index=0, error={"type": "transcription_error",
                                          "code": code, "message": message,
                                          "param": None})

    # ------------------------------------------------------------------ responses
    def create_response(self, params: dict[str, Any]) -> str | None:
        """Start a response (``response.create`` or a VAD turn end); returns its id."""
        conversation = params.get("conversation", "auto") != "none"
        if conversation and self.active_response is not None:
            raise ProtocolError(
                "conversation_already_has_active_response",
                "Conversation already has an active response in progress: "
                f"{self.active_response}. Wait until the response is finished before creating a "
                "new one.",
                None,
            )
        inline_images: dict[int, int] = {}  # index in response.input -> image tokens
        for i, it in enumerate(params.get("input") or ()):
            if it.get("type") != "item_reference":
                inline_images[i] = check_item_images(it, f"response.input[{i}]")
        cfg = self.config
        out_cfg = params.get("audio", {}).get("output", {})
        voice = out_cfg.get("voice", cfg["audio"]["output"]["voice"])
        fmt = out_cfg.get("format", cfg["audio"]["output"]["format"])
        tools = params.get("tools", cfg["tools"])
        if "tools" in params:
            self._sync_mcp(tools)
        resp = _Response(
            id=new_id("resp"),
            conversation=conversation,
            modalities=list(params.get("output_modalities", cfg["output_modalities"])),
            voice=voice,
            out_format=fmt,
            max_output_tokens=params.get("max_output_tokens", cfg["max_output_tokens"]),
            metadata=params.get("metadata"),
            tools=copy.deepcopy(tools),
        )
        self.responses[resp.id] = resp
        if conversation:
            self.active_response = resp.id
        if "input" in params:
            context = []
            for i, it in enumerate(params["input"]):
                if it.get("type") == "item_reference":
                    ref = self._get_item(it["id"], "response.input")
                    context.append(copy.deepcopy(ref))
                    resp.input_image_tokens += self.item_image_tokens.get(ref["id"], 0)
                else:
                    context.append(copy.deepcopy(it))
                    resp.input_image_tokens += inline_images.get(i, 0)
        else:
            context = copy.deepcopy(self.items)
            resp.input_image_tokens = sum(self.item_image_tokens.get(it["id"], 0)
                                          for it in context)
        resp.input_tokens = sum(_tokens(json.dumps(_textual(it.get("content", ""))))
                                for it in context)
        self.emit("response.created", response=self._response_object(resp))
        self.emit("rate_limits.updated", rate_limits=[
            {"name": "requests", "limit": 20000, "remaining": 19999, "reset_seconds": 0.003},
            {"name": "tokens", "limit": 10_000_000, "remaining": 9_995_904,
             "reset_seconds": 0.024},
        ])
        request = {
            "instructions": params.get("instructions", cfg["instructions"]),
            "conversation": context,
            "tools": tools,
            "tool_choice": params.get("tool_choice", cfg["tool_choice"]),
            "max_output_tokens": resp.max_output_tokens,
            "output_modalities": resp.modalities,
            "voice": voice if isinstance(voice, str) else "alloy",
            "speed": cfg["audio"]["output"].get("speed", 1.0),
            "pending_item_ids": [it["id"] for it in context
                                 if any(p.get("type") == "input_audio" and p.get("transcript")
                                        is None for p in it.get("content", []))],
        }
        job = Job("respond", {"response_id": resp.id, "request": request})
        self._deferred[resp.id] = (job, "input" not in params)
        self._release_responses()
        return resp.id

    def _response_object(self, resp: _Response, usage: dict[str, Any] | None = None,
                         details: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "id": resp.id,
            "object": "realtime.response",
            "status": resp.status,
            "status_details": details,
            "output": copy.deepcopy(resp.output),
            "conversation_id": self.conversation_id if resp.conversation else None,
            "output_modalities": resp.modalities,
            "max_output_tokens": resp.max_output_tokens,
            "audio": {"output": {"format": resp.out_format, "voice": resp.voice}},
            "usage": usage,
            "metadata": resp.metadata,
        }

    def is_live(self, response_id: str) -> bool:
        """Whether a response is still generating (the owner should stop work when not)."""
        resp = self.responses.get(response_id)
        return resp is not None and resp.status == "in_progress" and not self.closed

    def response_output(self, response_id: str, reply: Reply) -> None:
        """The responder's answer for a response: opens the message item (if any text)."""
        resp = self.responses.get(response_id)
        if resp is None or resp.status != "in_progress":
            return
        resp.pending_calls = list(reply.function_calls)
        resp.pending_mcp = list(reply.mcp_calls)
        resp.incomplete = reply.truncated
        if reply.text or not (reply.function_calls or reply.mcp_calls):
            item = {"id": new_id("item"), "object": "realtime.item", "type": "message",
                    "status": "in_progress", "role": "assistant", "content": []}
            self._open_item(resp, item)
            audio = "audio" in resp.modalities
            part = ({"type": "output_audio", "transcript": ""} if audio
                    else {"type": "output_text", "text": ""})
            self.emit("response.content_part.added", response_id=resp.id, item_id=item["id"],
                      output_index=len(resp.output) - 1, content_index=0, part=_part_event(part))
            item["content"].append(part)
            if not audio:
                for piece in _pieces(reply.text):
                    self.emit("response.output_text.delta", response_id=resp.id,
                              item_id=item["id"], output_index=len(resp.output) - 1,
                              content_index=0, delta=piece)
                    part["text"] += piece
                resp.output_text_tokens += _tokens(reply.text)

    def _open_item(self, resp: _Response, item: dict[str, Any]) -> None:
        resp.output.append(item)
        resp.open_item = item
        self.emit("response.output_item.added", response_id=resp.id,
                  output_index=len(resp.output) - 1, item=copy.deepcopy(item))
        if resp.conversation:
            self._insert(item, None)
            prev = self._previous_id(item)
            self.emit("conversation.item.added", previous_item_id=prev, item=copy.deepcopy(item))

    def response_audio(self, response_id: str, pcm16_24k: bytes, text: str) -> bool:
        """Stream one synthesized piece (PCM16 24 kHz) with the words it speaks.

        Returns False when the response is no longer live (cancelled): stop synthesizing.
        """
        resp = self.responses.get(response_id)
        if resp is None or resp.status != "in_progress" or resp.open_item is None:
            return False
        item = resp.open_item
        idx = len(resp.output) - 1
        part = item["content"][0]
        if text:
            delta = text if not part["transcript"] else " " + text
            part["transcript"] += delta
            self.emit("response.output_audio_transcript.delta", response_id=resp.id,
                      item_id=item["id"], output_index=idx, content_index=0, delta=delta)
            resp.output_text_tokens += _tokens(text)
        data = self._encode_output(pcm16_24k, resp.out_format)
        if self.transport == "webrtc":  # the audio goes on the media track, not in events
            if pcm16_24k:
                self._queue_playout(resp.id, pcm16_24k)
        else:
            step = max(1, int(bytes_per_ms(resp.out_format) * 200))  # ~200 ms per delta
            for i in range(0, len(data), step):
                self.emit("response.output_audio.delta", response_id=resp.id,
                          item_id=item["id"], output_index=idx, content_index=0,
                          delta=base64.b64encode(data[i:i + step]).decode())
        resp.audio_chunks.append(data)
        resp.audio_bytes += len(data)
        resp.audio_ms += len(data) / bytes_per_ms(resp.out_format)
        if data:
            self.assistant_audio_present = True
        return True

    # ------------------------------------------------------------------ WebRTC output buffer
    @property
    def playing(self) -> str | None:
        """The response whose audio the output buffer is playing (WebRTC), or None."""
        return self._audible[0] if self._audible else None

    def _queue_playout(self, response_id: str, pcm16_24k: bytes) -> None:
        self.playout.append(("audio", response_id, pcm16_24k))
        if response_id not in self._audible:
            self._audible.append(response_id)
            if len(self._audible) == 1:
                self.emit("output_audio_buffer.started", response_id=response_id)

    def take_playout(self) -> list[tuple[str, str, bytes]]:
        """Take the queued output-buffer work (see :attr:`playout`)."""
        out, self.playout = self.playout, []
        return out

    def playout_idle(self, response_id: str) -> None:
        """The owner's track has played every queued sample of ``response_id``. Once that
        response is finished this is the end of its audio: ``output_audio_buffer.stopped``
        (while it is still generating it is only a gap, and nothing is emitted)."""
        if response_id not in self._audible:
            return
        resp = self.responses.get(response_id)
        if resp is not None and resp.status == "in_progress":
            return
        was_head = self._audible[0] == response_id
        self._audible.remove(response_id)
        self.emit("output_audio_buffer.stopped", response_id=response_id)
        if was_head and self._audible:
            self.emit("output_audio_buffer.started", response_id=self._audible[0])

    def _clear_playout(self) -> None:
        rid = self.playing or self.active_response
        self._audible.clear()
        self.playout.append(("clear", rid or "", b""))
        self.emit("output_audio_buffer.cleared", response_id=rid)

    @staticmethod
    def _encode_output(pcm16_24k: bytes, fmt: dict[str, Any]) -> bytes:
        if fmt.get("type", "audio/pcm") == "audio/pcm":
            return pcm16_24k
        from realtime_nb.audio import Audio, convert

        return convert(Audio.from_pcm16(pcm16_24k, 24000), format=fmt)

    def _close_open_item(self, resp: _Response, status: str) -> None:
        item = resp.open_item
        if item is None:
            return
        idx = len(resp.output) - 1
        if item["type"] == "message" and item["content"]:
            part = item["content"][0]
            if part["type"] == "output_audio":
                self.emit("response.output_audio.done", response_id=resp.id, item_id=item["id"],
                          output_index=idx, content_index=0)
                self.emit("response.output_audio_transcript.done", response_id=resp.id,
                          item_id=item["id"], output_index=idx, content_index=0,
                          transcript=part["transcript"])
                self.item_audio[item["id"]] = b"".join(resp.audio_chunks)
            else:
                self.emit("response.output_text.done", response_id=resp.id, item_id=item["id"],
                          output_index=idx, content_index=0, text=part["text"])
            self.emit("response.content_part.done", response_id=resp.id, item_id=item["id"],
                      output_index=idx, content_index=0, part=_part_event(part))
        if not item["type"].startswith("mcp_"):
            item["status"] = status
        self.emit("response.output_item.done", response_id=resp.id, output_index=idx,
                  item=copy.deepcopy(item))
        if resp.conversation:
            self.emit("conversation.item.done", previous_item_id=self._previous_id(item),
                      item=copy.deepcopy(item))
        resp.open_item = None

    def response_finish(self, response_id: str) -> None:
        """The responder and synthesizer are done: emit function calls, then ``response.done``."""
        resp = self.responses.get(response_id)
        if resp is None or resp.status != "in_progress":
            return
        self._close_open_item(resp, "incomplete" if resp.incomplete else "completed")
        for name, args in resp.pending_calls:
            item = {"id": new_id("item"), "object": "realtime.item", "type": "function_call",
                    "status": "in_progress", "name": name, "call_id": new_id("call"),
                    "arguments": ""}
            self._open_item(resp, item)
            idx = len(resp.output) - 1
            for piece in _pieces(args, 24):
                self.emit("response.function_call_arguments.delta", response_id=resp.id,
                          item_id=item["id"], output_index=idx, call_id=item["call_id"],
                          delta=piece)
            item["arguments"] = args
            resp.output_text_tokens += _tokens(args)
            self.emit("response.function_call_arguments.done", response_id=resp.id,
                      item_id=item["id"], output_index=idx, call_id=item["call_id"], name=name,
                      arguments=args)
            self._close_open_item(resp, "completed")
        resp.pending_calls = []
        if self._advance_mcp(resp):
            return  # an MCP call is running; mcp_call_done goes on
        self._complete(resp)

    def _complete(self, resp: _Response) -> None:
        resp.output_audio_tokens = _audio_tokens(resp.audio_ms)
        if resp.incomplete:
            self._finish(resp, "incomplete", {"type": "incomplete", "reason": "max_output_tokens"})
        else:
            self._finish(resp, "completed", None)

    def response_failed(self, response_id: str, message: str) -> None:
        """The engines failed: close the response with status ``failed``."""
        resp = self.responses.get(response_id)
        if resp is None or resp.status != "in_progress":
            return
        self._deferred.pop(response_id, None)
        self._close_open_item(resp, "incomplete")
        self._finish(resp, "failed", {"type": "failed", "error": {
            "type": "server_error", "code": "server_error", "message": message}})

    def cancel_response(self, response_id: str, reason: str) -> None:
        resp = self.responses[response_id]
        self._deferred.pop(response_id, None)
        resp.waiting_call = None
        self._close_open_item(resp, "incomplete")
        resp.output_audio_tokens = _audio_tokens(resp.audio_ms)
        self._finish(resp, "cancelled", {"type": "cancelled", "reason": reason})

    def _finish(self, resp: _Response, status: str, details: dict[str, Any] | None) -> None:
        resp.status = status
        if self.active_response == resp.id:
            self.active_response = None
        out_tokens = resp.output_text_tokens + resp.output_audio_tokens
        in_tokens = resp.input_tokens + resp.input_image_tokens
        usage = {
            "total_tokens": in_tokens + out_tokens,
            "input_tokens": in_tokens,
            "output_tokens": out_tokens,
            "input_token_details": {"cached_tokens": 0, "text_tokens": resp.input_tokens,
                                    "audio_tokens": 0,
                                    "image_tokens": resp.input_image_tokens,
                                    "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0,
                                                              "image_tokens": 0}},
            "output_token_details": {"text_tokens": resp.output_text_tokens,
                                     "audio_tokens": resp.output_audio_tokens},
        }
        self.emit("response.done", response=self._response_object(resp, usage, details))
        td = self._turn_detection
        if resp.conversation and td and td.get("type") == "server_vad" and td.get(
                "idle_timeout_ms"):
            self._idle_deadline = self.clock() + resp.audio_ms / 1000 + td["idle_timeout_ms"] / 1000

    # ------------------------------------------------------------------ MCP tools
    # The order of events follows what the official clients show of the service (UNCONFIRMED
    # beyond that; see the README's MCP section): listing items are conversation items made
    # outside any response; a call's arguments stream inside the response, the call runs before
    # the response ends, and the model does not answer from its output until the next
    # response.create. A call that needs approval ends its response after the
    # mcp_approval_request item; an approving mcp_approval_response runs it right away.
    def _sync_mcp(self, tools: Any) -> None:
        """List the tools of every ``mcp`` tool that is new, now reached differently, or whose
        last listing failed (sending the same config again retries)."""
        for tool in mcp_tools(tools):
            label = tool["server_label"]
            fp = fingerprint(tool)
            known = self.mcp_servers.get(label)
            if known is not None and known["fp"] == fp and known["status"] != "failed":
                known["tool"] = copy.deepcopy(tool)  # require_approval etc. apply at once
                continue
            item = {"id": new_id("item"), "type": "mcp_list_tools", "server_label": label,
                    "tools": []}
            self.mcp_servers[label] = {"tool": copy.deepcopy(tool), "fp": fp,
                                       "item_id": item["id"], "status": "in_progress",
                                       "tools": []}
            self._insert(item, None)
            self.emit("conversation.item.added", previous_item_id=self._previous_id(item),
                      item=copy.deepcopy(item))
            self.emit("mcp_list_tools.in_progress", item_id=item["id"])
            self.jobs.append(Job("mcp_list", {"item_id": item["id"],
                                              "server": copy.deepcopy(tool)}))

    def mcp_list_done(self, item_id: str, tools: list[dict[str, Any]] | None = None,
                      error: str | None = None) -> None:
        """Report an ``"mcp_list"`` job: the server's ``tools`` (``mcp_list_tools`` entries), or
        ``error``, a message saying why listing failed (it must not contain credentials).

        Emits ``mcp_list_tools.completed`` (the item's ``tools`` filled, ``allowed_tools``
        applied) or ``mcp_list_tools.failed`` followed by an ``error`` event carrying the
        message (code ``mcp_list_tools_failed``: UNCONFIRMED, the service's wording for this is
        not documented), then ``conversation.item.done``; responses waiting for it start.
        """
        server = next((s for s in self.mcp_servers.values() if s["item_id"] == item_id), None)
        item = self._index.get(item_id)
        if server is not None:
            server["status"] = "completed" if error is None else "failed"
            server["tools"] = allowed(server["tool"], tools or []) if error is None else []
            if item is not None:
                item["tools"] = copy.deepcopy(server["tools"])
        if error is None:
            self.emit("mcp_list_tools.completed", item_id=item_id)
        else:
            self.emit("mcp_list_tools.failed", item_id=item_id)
            self.emit("error", error={"type": "invalid_request_error",
                                      "code": "mcp_list_tools_failed", "message": error,
                                      "param": None, "event_id": None})
        if item is not None:
            self.emit("conversation.item.done", previous_item_id=self._previous_id(item),
                      item=copy.deepcopy(item))
        self._release_responses()

    def _mcp_busy(self, resp: _Response) -> bool:
        if self._running_calls:
            return True
        return any(self.mcp_servers.get(t["server_label"], {}).get("status") == "in_progress"
                   for t in mcp_tools(resp.tools))

    def _release_responses(self) -> None:
        """Start the responders of responses no longer waiting for MCP listings or calls."""
        for rid, (job, fresh) in list(self._deferred.items()):
            resp = self.responses.get(rid)
            if resp is None or resp.status != "in_progress":
                del self._deferred[rid]
                continue
            if self._mcp_busy(resp):
                continue
            del self._deferred[rid]
            request = job.payload["request"]
            if fresh:  # the conversation as it is now (with what the MCP work added)
                context = copy.deepcopy(self.items)
                request["conversation"] = context
                request["pending_item_ids"] = [
                    it["id"] for it in context if any(
                        p.get("type") == "input_audio" and p.get("transcript") is None
                        for p in it.get("content", []))]
            request["tools"] = self._expand_tools(resp.tools)
            self.jobs.append(job)

    def _expand_tools(self, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Function tools as given; each ``mcp`` tool replaced by its listed, allowed tools as
        ``{"type": "mcp", "server_label", "name", "description", "input_schema",
        "annotations"}`` (none when its listing failed)."""
        out: list[dict[str, Any]] = []
        for tool in tools:
            if tool.get("type") != "mcp":
                out.append(copy.deepcopy(tool))
                continue
            server = self.mcp_servers.get(tool["server_label"])
            if server is None or server["status"] != "completed":
                continue
            for listed in allowed(tool, server["tools"]):
                out.append({"type": "mcp", "server_label": tool["server_label"],
                            "name": listed["name"], "description": listed.get("description"),
                            "input_schema": copy.deepcopy(listed.get("input_schema")),
                            "annotations": copy.deepcopy(listed.get("annotations"))})
        return out

    def _advance_mcp(self, resp: _Response) -> bool:
        """Emit the response's next MCP calls; True when one is running (wait for its job)."""
        while resp.pending_mcp:
            label, name, args = resp.pending_mcp.pop(0)
            tool = next((t for t in mcp_tools(resp.tools) if t["server_label"] == label), None)
            server = self.mcp_servers.get(label) or {}
            listed = next((t for t in server.get("tools", []) if t["name"] == name),
                          {"name": name})
            ask = tool is not None and needs_approval(tool, listed)
            item: dict[str, Any] = {"id": new_id("item"), "type": "mcp_call",
                                    "server_label": label, "name": name, "arguments": "",
                                    "approval_request_id": new_id("item") if ask else None,
                                    "output": None, "error": None}
            self._open_item(resp, item)
            idx = len(resp.output) - 1
            for piece in _pieces(args, 24):
                self.emit("response.mcp_call_arguments.delta", response_id=resp.id,
                          item_id=item["id"], output_index=idx, delta=piece)
            item["arguments"] = args
            resp.output_text_tokens += _tokens(args)
            self.emit("response.mcp_call_arguments.done", response_id=resp.id,
                      item_id=item["id"], output_index=idx, arguments=args)
            if tool is None:
                item["error"] = {"type": "tool_execution_error",
                                 "message": f"MCP server '{label}' is not among the tools."}
                self.emit("response.mcp_call.failed", item_id=item["id"], output_index=idx)
                self._close_open_item(resp, "completed")
                continue
            if ask:
                self._close_open_item(resp, "completed")
                request = {"id": item["approval_request_id"], "type": "mcp_approval_request",
                           "server_label": label, "name": name, "arguments": args}
                self._open_item(resp, request)
                self._close_open_item(resp, "completed")
                self._approvals[request["id"]] = {"item": item, "output_index": idx,
                                                  "server": copy.deepcopy(tool)}
                continue
            self.emit("response.mcp_call.in_progress", item_id=item["id"], output_index=idx)
            resp.waiting_call = item["id"]
            self._run_call(item, idx, tool, resp.id)
            return True
        return False

    def _run_call(self, item: dict[str, Any], idx: int, tool: dict[str, Any],
                  response_id: str | None) -> None:
        self._running_calls[item["id"]] = {"item": item, "output_index": idx,
                                           "response_id": response_id}
        self.jobs.append(Job("mcp_call", {"item_id": item["id"], "server": copy.deepcopy(tool),
                                          "name": item["name"],
                                          "arguments": item["arguments"]}))

    def mcp_call_done(self, item_id: str, output: str | None = None,
                      error: dict[str, Any] | None = None) -> None:
        """Report an ``"mcp_call"`` job: the tool's ``output`` text, or ``error`` (the item's
        error object: ``protocol_error`` / ``tool_execution_error`` / ``http_error``).

        Emits ``response.mcp_call.completed`` or ``.failed``; a call inside a response then
        closes its item and the response goes on. An approved call (run outside any response)
        is followed by ``conversation.item.done`` with the filled item (UNCONFIRMED: how the
        service shows an approved call's output is not documented).
        """
        run = self._running_calls.pop(item_id, None)
        if run is None:
            return
        item, idx = run["item"], run["output_index"]
        if error is None:
            item["output"] = output
        else:
            item["error"] = error
        resp = self.responses.get(run["response_id"] or "")
        self.emit("response.mcp_call.completed" if error is None else "response.mcp_call.failed",
                  item_id=item_id, output_index=idx)
        if resp is not None and resp.waiting_call == item_id and resp.status == "in_progress":
            resp.waiting_call = None
            self._close_open_item(resp, "completed")
            if not self._advance_mcp(resp):
                self._complete(resp)
        elif item_id in self._index:
            self.emit("conversation.item.done", previous_item_id=self._previous_id(item),
                      item=copy.deepcopy(item))
        self._release_responses()

    def _check_approval(self, item: dict[str, Any]) -> dict[str, Any] | None:
        """Refuse an ``mcp_approval_response`` naming no approval request, or one already
        answered (codes and wording UNCONFIRMED); returns the call it approves, if any."""
        rid = item["approval_request_id"]
        request = self._index.get(rid)
        if request is None or request.get("type") != "mcp_approval_request":
            raise ProtocolError(
                "item_not_found",
                f"Approval request with id '{rid}' not found in conversation.",
                "item.approval_request_id",
            )
        if any(it.get("type") == "mcp_approval_response" and it.get("approval_request_id") == rid
               for it in self.items):
            raise ProtocolError(
                "invalid_value",
                f"Approval request '{rid}' has already been answered.",
                "item.approval_request_id",
            )
        return self._approvals.pop(rid, None)

    def _answer_approval(self, pending: dict[str, Any], answer: dict[str, Any]) -> None:
        if not answer.get("approve"):
            return  # denied: the call never runs; the model sees the answer next response
        item, idx = pending["item"], pending["output_index"]
        self.emit("response.mcp_call.in_progress", item_id=item["id"], output_index=idx)
        self._run_call(item, idx, pending["server"], None)

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


def _textual(content: Any) -> Any:
    """Content parts without their image data (images are counted as image tokens)."""
    if not isinstance(content, list):
        return content
    return [{k: v for k, v in p.items() if k != "image_url"} if isinstance(p, dict)
            and p.get("type") == "input_image" else p for p in content]


def _part_event(part: dict[str, Any]) -> dict[str, Any]:
    """Content parts in ``response.content_part.*`` events are typed ``audio`` / ``text``.

    (Items carry ``output_audio`` / ``output_text``; the part events keep the short names, as the
    GA schema and the official SDK's types declare them.)
    """
    out = dict(part)
    out["type"] = {"output_audio": "audio", "output_text": "text"}.get(part["type"], part["type"])
    return out


def _pieces(text: str, size: int = 0) -> list[str]:
    """Split text into word deltas (or fixed-size pieces when ``size``), keeping all characters."""
    if not text:
        return []
    if size:
        return [text[i:i + size] for i in range(0, len(text), size)]
    out: list[str] = []
    word = ""
    for ch in text:
        word += ch
        if ch == " ":
            out.append(word)
            word = ""
    if word:
        out.append(word)
    return out
