"""The kernel-side mirror of what the server holds: buffer, VAD state, items, responses, usage.

:class:`Mirror` is fed every client event the Session sends (:meth:`Mirror.client_event`, or the
fast :meth:`Mirror.client_append` for audio) and every server event it receives
(:meth:`Mirror.server_event`). It never does I/O. It applies the very buffer rules the server
applies (:class:`realtime_nb.protocol.InputBuffer`): appended audio counts at send time; VAD
speech start/stop, commits (manual or VAD auto-commits) and clears count when the server announces
them. So ``input_buffer_ms`` is what a commit sent now would find, once the server has caught up
with the audio already sent.

It also keeps the recordings: the audio appended between two commits becomes the committed user
item's audio (``ItemState.audio()``), response audio deltas accumulate per assistant item, and
transcripts accumulate per item (input transcription for user audio, output audio transcript or
output text for assistant items). The pictures of user items (``input_image`` parts) are kept as
the very data URL strings the Session sent and the event log holds — an echo of the same image
from the server is replaced by that string, so a picture is held once; if the server's item
comes back without its ``image_url`` the one sent is filled in — and ``ItemState.images``
decodes them when asked. Items and recordings survive a reconnect (``ItemState.session_id``
tells which server session an item belongs to). After a renewal (``Session(renew=True)``) the
items carried into the new server session keep their state, recording and first ``session_id``;
``ItemState.carried_into`` lists the sessions they were re-created in.

The item and response records (:class:`ItemState`, :class:`ResponseState`, :class:`Items`) are in
:mod:`realtime_nb.client.items`, and the handlers of the conversation's events (items,
transcripts, responses, MCP, usage) in :mod:`realtime_nb.client._conversation_mirror`; this
module holds the Mirror itself: its state, the client side, the session's lifecycle and the
input buffer with its recordings. All names stay importable from here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from realtime_nb.protocol import InputBuffer, bytes_per_ms

from ._conversation_mirror import ConversationMirror
from .eventlog import StoredAudio
from .items import _PCM, Items, ItemState, ResponseState, TranscriptSegment

__all__ = ["ItemState", "Items", "Mirror", "ResponseState", "TranscriptSegment"]

# In VAD mode audio outside speech is not buffered; keep this much of it (ms) as recording
# context, because speech_started (with its prefix padding) may arrive after more audio was sent.
_IDLE_KEEP_MS = 10_000

# Session markers after which the server holds nothing live (see Mirror.connection_lost).
_LOST = {"realtime_nb.disconnected": "disconnected", "realtime_nb.closed": "closed"}
#: The renewal seam marker (see :meth:`Mirror.renewed`).
RENEWED = "realtime_nb.renewed"


class Mirror(ConversationMirror):
    """State mirror (see the module docstring). All methods are synchronous and cheap."""

    def __init__(self) -> None:
        self.session: dict[str, Any] | None = None
        self.buffer = InputBuffer()
        self.items = Items()
        self.all_items: dict[str, ItemState] = {}
        self.responses: dict[str, ResponseState] = {}
        self.active_response_id: str | None = None
        self.usage: dict[str, Any] = {}
        self.transcription_usage: dict[str, Any] = {}
        self.rate_limits: dict[str, dict[str, Any]] = {}
        self.last_speech_started: dict[str, Any] | None = None
        self.last_speech_stopped: dict[str, Any] | None = None
        self.last_commit: dict[str, Any] | None = None
        self.last_buffer_op: str | None = None  # "commit" | "clear"
        self.floor_bytes = 0  # timeline position where the last commit/clear ended
        self._pending_ops: list[tuple[str, str | None, int]] = []  # (kind, event_id, position)
        self._pending_updates: list[tuple[str | None, bool, bool]] = []  # (id, td set, old vad)
        self._bounds: deque[int] = deque(maxlen=256)  # timeline positions where appends began
        self._vad_item: dict[str, Any] | None = None  # the turn the VAD is about to commit
        # Appended audio not yet committed: (timeline position, the very bytes the event log
        # stores, or a StoredAudio handle on them) — item recordings are views into them, so
        # audio is held once.
        self._rec: deque[tuple[int, bytes | StoredAudio]] = deque()
        self._created_audio: dict[str, tuple[bytes, dict[str, Any]]] = {}
        # The data URLs of the input_image parts of the items this client created, in order.
        self._created_images: dict[str, list[str]] = {}
        self._carrying: set[str] = set()  # item ids being re-created in a renewed session
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            "session.created": self._on_session,
            "session.updated": self._on_session,
            "input_audio_buffer.speech_started": self._on_speech_started,
            "input_audio_buffer.speech_stopped": self._on_speech_stopped,
            "input_audio_buffer.timeout_triggered": self._on_timeout_triggered,
            "input_audio_buffer.committed": self._on_committed,
            "input_audio_buffer.cleared": self._on_cleared,
            "conversation.item.added": self._on_item_added,
            "conversation.item.created": self._on_item_added,
            "conversation.item.done": self._on_item_done,
            "conversation.item.retrieved": self._on_item_done,
            "conversation.item.deleted": self._on_item_deleted,
            "conversation.item.truncated": self._on_item_truncated,
            "conversation.item.input_audio_transcription.delta": self._on_input_tr_delta,
            "conversation.item.input_audio_transcription.completed": self._on_input_tr_done,
            "conversation.item.input_audio_transcription.failed": self._on_input_tr_failed,
            "conversation.item.input_audio_transcription.segment": self._on_input_tr_segment,
            "response.created": self._on_response_created,
            "response.output_item.added": self._on_output_item,
            "response.output_item.done": self._on_output_item,
            "response.content_part.added": self._on_content_part,
            "response.output_audio_transcript.delta": self._on_transcript_delta,
            "response.output_audio_transcript.done": self._on_transcript_done,
            "response.output_text.delta": self._on_text_delta,
            "response.output_text.done": self._on_text_done,
            "response.function_call_arguments.delta": self._on_args_delta,
            "response.function_call_arguments.done": self._on_args_done,
            "mcp_list_tools.in_progress": self._on_mcp_state,
            "mcp_list_tools.completed": self._on_mcp_state,
            "mcp_list_tools.failed": self._on_mcp_state,
            "response.mcp_call_arguments.delta": self._on_args_delta,
            "response.mcp_call_arguments.done": self._on_args_done,
            "response.mcp_call.in_progress": self._on_mcp_state,
            "response.mcp_call.completed": self._on_mcp_state,
            "response.mcp_call.failed": self._on_mcp_state,
            "response.done": self._on_response_done,
            "rate_limits.updated": self._on_rate_limits,
            "error": self._on_error,
        }

    @classmethod
    def from_log(cls, log: Any) -> Mirror:
        """Rebuild the state from an :class:`~.eventlog.EventLog` (e.g. an imported trace).

        Client events that were refused locally are skipped; a reconnect in the log starts a new
        server session, as it did live.
        """
        mirror = cls()
        for entry in log:
            ev = entry.event
            if entry.direction == "client" and entry.refused is None:
                if entry.type == "input_audio_buffer.append":
                    mirror.client_append(log.audio_of(entry))
                elif entry.type == "conversation.item.create" and entry.audio:
                    item = ev.get("item") or {}
                    mirror.client_event({"type": entry.type, "item": {
                        "id": item.get("id"),
                        "content": [{"audio": log.audio.get(r)} for r in entry.audio] + [
                            p for p in item.get("content") or ()
                            if isinstance(p, dict) and p.get("type") == "input_image"]}})
                else:
                    mirror.client_event(ev)
            elif entry.direction == "local" and entry.type in _LOST:
                mirror.connection_lost(_LOST[entry.type])
            elif entry.direction == "local" and entry.type == RENEWED:
                mirror.renewed(ev.get("carried") or ())
            elif entry.direction == "server":
                if entry.type == "response.output_audio.delta" and entry.audio:
                    mirror.audio_delta(ev, log.audio.get(entry.audio[0]))
                else:
                    mirror.server_event(ev)
        return mirror

    # ------------------------------------------------------------------ derived state
    @property
    def config(self) -> dict[str, Any] | None:
        """The effective session config as the server last echoed it (None before connect)."""
        return self.session

    @property
    def session_id(self) -> str | None:
        return self.session.get("id") if self.session else None

    @property
    def turn_detection(self) -> dict[str, Any] | None:
        try:
            return self.session["audio"]["input"]["turn_detection"]  # type: ignore[index]
        except (TypeError, KeyError):
            return None

    @property
    def input_format(self) -> dict[str, Any]:
        return self._audio_format("input")

    @property
    def output_format(self) -> dict[str, Any]:
        return self._audio_format("output")

    def _audio_format(self, side: str) -> dict[str, Any]:
        """``session.audio.<side>.format`` as last echoed (PCM16 24 kHz until then)."""
        try:
            fmt = self.session["audio"][side]["format"]  # type: ignore[index]
        except (TypeError, KeyError):
            return dict(_PCM)
        return fmt if isinstance(fmt, dict) else dict(_PCM)

    @property
    def input_buffer_ms(self) -> float:
        return self.buffer.buffered_ms

    @property
    def appended_since_ms(self) -> float:
        """Audio appended since the last commit or clear (whatever VAD made of it)."""
        return max(0, self.buffer.timeline_bytes - self.floor_bytes) / self.buffer.bytes_per_ms

    @property
    def speaking(self) -> bool:
        return self.buffer.speaking

    @property
    def active_response(self) -> ResponseState | None:
        rid = self.active_response_id
        return self.responses.get(rid) if rid else None

    def transcripts(self) -> dict[str, str]:
        """Item id -> what was said or written, in conversation order."""
        return {i.id: i.content_text for i in self.items.list()}

    def item(self, item_id: str) -> ItemState:
        """Any item seen (also deleted or out-of-band ones), created on first mention."""
        it = self.all_items.get(item_id)
        if it is None:
            it = self.all_items[item_id] = ItemState(item_id, session_id=self.session_id)
        return it

    # ------------------------------------------------------------------ client side
    def client_append(self, data: bytes | StoredAudio) -> None:
        """Audio bytes (session input format) just sent in ``input_audio_buffer.append`` (or a
        :class:`StoredAudio` handle on them in the event log)."""
        buf = self.buffer
        self._bounds.append(buf.timeline_bytes)
        buf.append(len(data))
        rec = self._rec
        rec.append((buf.timeline_bytes - len(data), data))
        if buf.vad and not buf.speaking:
            # The server keeps idle audio only as a rolling window, not as buffered audio.
            buf.drop_idle()
            keep_from = buf.timeline_bytes - _IDLE_KEEP_MS * buf.bytes_per_ms
            while rec and rec[0][0] + len(rec[0][1]) < keep_from:
                rec.popleft()

    def client_event(self, event: dict[str, Any]) -> None:
        """Any other client event just sent (commit/clear positions, created item audio)."""
        etype = event.get("type")
        if etype == "input_audio_buffer.commit":
            self._pending_ops.append(("commit", event.get("event_id"),
                                      self.buffer.timeline_bytes))
        elif etype == "input_audio_buffer.clear":
            self._pending_ops.append(("clear", event.get("event_id"),
                                      self.buffer.timeline_bytes))
        elif etype == "conversation.item.create":
            item = event.get("item")
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                audio = b"".join(
                    p["audio"] for p in item.get("content") or ()
                    if isinstance(p, dict) and isinstance(p.get("audio"), bytes | bytearray)
                )
                if audio:
                    self._created_audio[item["id"]] = (bytes(audio), self.input_format)
                urls = [p["image_url"] for p in item.get("content") or ()
                        if isinstance(p, dict) and p.get("type") == "input_image"
                        and isinstance(p.get("image_url"), str)]
                if urls:
                    self._created_images[item["id"]] = urls
        elif etype == "session.update":
            # The server applies an update before the audio that follows it, so a change of
            # turn detection must count from here, not from the (later) session.updated echo.
            session = event.get("session")
            inp = ((session.get("audio") or {}).get("input") or {}) if isinstance(
                session, dict) else {}
            td_set = isinstance(inp, dict) and "turn_detection" in inp
            prev = self.buffer.vad
            if td_set:
                self.buffer.vad = inp["turn_detection"] is not None
            self._pending_updates.append((event.get("event_id"), td_set, prev))

    def client_error(self, event_id: str | None) -> None:
        """The server refused the client event ``event_id`` (undo what it predicted)."""
        if event_id is None:
            return
        self._pending_ops = [op for op in self._pending_ops if op[1] != event_id]
        for i, (eid, td_set, prev) in enumerate(self._pending_updates):
            if eid == event_id:
                del self._pending_updates[i]
                if td_set:
                    self.buffer.vad = prev
                break

    # ------------------------------------------------------------------ server side
    def server_event(self, event: dict[str, Any]) -> None:
        """Apply one (audio-free) server event. Unknown types are ignored."""
        handler = self._handlers.get(event.get("type"))  # type: ignore[arg-type]
        if handler is not None:
            handler(event)

    def new_session(self) -> None:
        """A new server session begins (reconnect): the buffer and its timeline start over."""
        self.buffer = InputBuffer(self.buffer.bytes_per_ms)
        self.floor_bytes = 0
        self._pending_ops.clear()
        self._pending_updates.clear()
        self._bounds.clear()
        self._vad_item = None
        self._rec.clear()
        self.connection_lost()

    def renewed(self, carried: Any = ()) -> None:
        """A renewal seam (the ``realtime_nb.renewed`` marker): the old server session is left
        (a response still streaming ends ``incomplete``, reason ``"renewed"``), and the items
        ``carried`` (ids) are about to be re-created in the next one: their
        ``conversation.item.added`` then marks them ``carried_into`` that session instead of
        replacing what the mirror knows (recording, transcript, original content)."""
        self.connection_lost("renewed")
        self._carrying = {i for i in carried if isinstance(i, str)}

    def connection_lost(self, reason: str = "disconnected") -> None:
        """The socket is gone (dropped or closed): nothing the server held is live any more.

        A response that was still streaming ends ``incomplete`` with ``reason`` (so nothing
        waits on it or shows it as playing), VAD no longer reports speech, and an MCP approval
        request still pending becomes ``"expired"`` (no longer in ``pending_approvals``). Items
        and transcripts stay: they are the record of what happened.
        """
        self.active_response_id = None
        self.buffer.speaking = False
        self._vad_item = None
        for it in self.all_items.values():
            if it.type == "mcp_approval_request" and it.mcp_state == "pending":
                it.mcp_state = "expired"  # its server session is gone: nobody can answer it
        for resp in self.responses.values():
            if resp.status == "in_progress":
                resp.status = "incomplete"
                resp.status_details = {"type": "incomplete", "reason": reason}

    def _on_session(self, ev: dict[str, Any]) -> None:
        session = ev.get("session")
        if not isinstance(session, dict):
            return
        new_id = session.get("id")
        if self.session is not None and new_id != self.session.get("id"):
            self.new_session()
        self.session = session
        try:
            bpm = bytes_per_ms(self.input_format)
        except ValueError:
            bpm = 48
        if bpm != self.buffer.bytes_per_ms:
            self.buffer.set_format(bpm)
            self._rec.clear()
            self.floor_bytes = self.buffer.timeline_bytes
            self.buffer.cleared()
        if ev.get("type") == "session.updated" and self._pending_updates:
            self._pending_updates.pop(0)
        if not any(td for _eid, td, _prev in self._pending_updates):
            # Same as the server: only the flag flips; the next append trims idle audio.
            self.buffer.vad = self.turn_detection is not None

    def _on_speech_started(self, ev: dict[str, Any]) -> None:
        self.last_speech_started = ev
        start_ms = float(ev.get("audio_start_ms") or 0)
        self.buffer.speech_started(start_ms, self.floor_bytes)
        self._vad_item = {"item_id": ev.get("item_id"), "audio_start_ms": start_ms}

    def _on_speech_stopped(self, ev: dict[str, Any]) -> None:
        self.last_speech_stopped = ev
        self.buffer.speech_stopped(float(ev.get("audio_end_ms") or 0))
        vi = self._vad_item if self._vad_item is not None else {}
        self._vad_item = {**vi, "item_id": ev.get("item_id"),
                          "audio_end_ms": ev.get("audio_end_ms") or 0}

    def _on_timeout_triggered(self, ev: dict[str, Any]) -> None:
        start = float(ev.get("audio_start_ms") or 0)
        # the server commits the idle audio as a turn: buffered from its start, as speech is
        self.buffer.speech_started(start, self.floor_bytes)
        self._vad_item = {"item_id": ev.get("item_id"), "audio_start_ms": start,
                          "audio_end_ms": ev.get("audio_end_ms") or 0}

    def _on_committed(self, ev: dict[str, Any]) -> None:
        item_id = ev.get("item_id")
        buf = self.buffer
        bpm = buf.bytes_per_ms
        vi = self._vad_item
        if vi is not None and vi.get("item_id") == item_id and "audio_end_ms" in vi:
            by = "vad"
            end_ms = vi["audio_end_ms"]
            end_b = min(buf.timeline_bytes, round(end_ms * bpm))
            self._vad_item = None
        else:
            by = "client"
            op = next((o for o in self._pending_ops if o[0] == "commit"), None)
            if op is not None:
                self._pending_ops.remove(op)
                end_b = op[2]
            else:
                end_b = buf.timeline_bytes
            end_ms = end_b / bpm
            if vi is not None and vi.get("item_id") == item_id:
                self._vad_item = None
        if by == "vad" and vi is not None and "audio_start_ms" not in vi:
            # A turn whose start was cut by a manual commit: the server's buffer then starts
            # where the append during which the VAD stopped began.
            start_b = max([self.floor_bytes, *(b for b in self._bounds if b < end_b)])
            start_b = min(start_b, end_b)
        elif by == "vad" or buf.speaking or not buf.vad:
            start_b = min(buf.start_bytes, end_b)
        else:
            start_b = end_b
        audio = self._take_recording(start_b, end_b)
        buf.committed(end_b / bpm)
        buf.drop_idle()
        self.floor_bytes = end_b
        self.last_buffer_op = "commit"
        self.last_commit = {"item_id": item_id, "by": by, "end_ms": end_b / bpm,
                            "start_ms": start_b / bpm,
                            "audio_end_ms": vi.get("audio_end_ms") if by == "vad" and vi else None,
                            "previous_item_id": ev.get("previous_item_id")}
        if isinstance(item_id, str):
            it = self.item(item_id)
            it.audio_chunks = audio
            it.audio_format = dict(self.input_format)
            it.audio_start_ms = start_b / bpm
            it.audio_end_ms = end_b / bpm
            it.role = it.role or "user"
            it.type = it.type or "message"

    def _take_recording(self, start_b: int, end_b: int) -> list[Any]:
        """Views of the appended audio between two timeline positions; drop what precedes
        ``end_b``."""
        out: list[Any] = []
        rec = self._rec
        for pos, chunk in rec:
            stop = pos + len(chunk)
            if stop <= start_b:
                continue
            if pos >= end_b:
                break
            lo, hi = max(0, start_b - pos), min(len(chunk), end_b - pos)
            out.append(chunk.slice(lo, hi) if isinstance(chunk, StoredAudio)
                       else memoryview(chunk)[lo:hi])
        while rec and rec[0][0] + len(rec[0][1]) <= end_b:
            rec.popleft()
        return out

    def _on_cleared(self, ev: dict[str, Any]) -> None:
        op = next((o for o in self._pending_ops if o[0] == "clear"), None)
        if op is not None:
            self._pending_ops.remove(op)
            pos = op[2]
        else:
            pos = self.buffer.timeline_bytes
        self.buffer.cleared(pos)
        self._vad_item = None
        self.floor_bytes = pos
        self.last_buffer_op = "clear"
        self._take_recording(pos, pos)

    def _on_error(self, ev: dict[str, Any]) -> None:
        body = ev.get("error")
        if isinstance(body, dict) and isinstance(body.get("event_id"), str):
            self.client_error(body["event_id"])
