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
"""

from __future__ import annotations

import builtins
import copy
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from realtime_nb.protocol import InputBuffer, bytes_per_ms

from .eventlog import B64Audio, StoredAudio, raw_bytes

__all__ = ["ItemState", "Items", "Mirror", "ResponseState", "TranscriptSegment"]

_PCM = {"type": "audio/pcm", "rate": 24000}
# In VAD mode audio outside speech is not buffered; keep this much of it (ms) as recording
# context, because speech_started (with its prefix padding) may arrive after more audio was sent.
_IDLE_KEEP_MS = 10_000


@dataclass(frozen=True)
class TranscriptSegment:
    """One ``conversation.item.input_audio_transcription.segment`` (diarization): who spoke
    ``text`` from ``start`` to ``end`` seconds into the item's audio."""

    id: str
    speaker: str
    start: float
    end: float
    text: str


@dataclass(eq=False)
class ItemState:
    """One conversation item as the kernel knows it.

    ``item`` is the server's latest view of it (audio-free). ``transcript`` is the input
    transcription of a user audio item, or the transcript of an assistant's spoken answer;
    ``text`` is the text of text parts (user ``input_text``, assistant ``output_text``).
    ``audio()`` gives the recording (user audio as committed, assistant audio as received);
    ``truncated_ms`` is set when the item was truncated (the audio is kept whole).

    MCP items (``type`` ``mcp_list_tools`` / ``mcp_call`` / ``mcp_approval_request`` /
    ``mcp_approval_response``) fill ``server_label``, ``name``, ``arguments``, ``tools`` (the
    listing), ``output`` / ``error`` (a call's result), ``approval_request_id``, ``approve`` and
    ``reason``; ``mcp_state`` follows their progress: ``"in_progress"`` / ``"completed"`` /
    ``"failed"`` for listings and calls, ``"pending"`` / ``"approved"`` / ``"denied"`` for an
    approval request.

    ``segments`` are the diarization segments of a user audio item, in arrival order (only
    diarizing transcription models send them); ``transcript_logprobs`` the token
    log-probabilities of its completed transcription (``None`` unless the session's ``include``
    asked for them).
    """

    id: str
    type: str | None = None
    role: str | None = None
    status: str | None = None
    item: dict[str, Any] = field(default_factory=dict)
    transcript: str = ""
    transcript_done: bool = False
    transcription_error: dict[str, Any] | None = None
    segments: list[TranscriptSegment] = field(default_factory=list)
    transcript_logprobs: list[dict[str, Any]] | None = None
    text: str = ""
    arguments: str = ""
    name: str | None = None
    call_id: str | None = None
    response_id: str | None = None
    session_id: str | None = None
    in_conversation: bool = False
    deleted: bool = False
    audio_format: dict[str, Any] = field(default_factory=lambda: dict(_PCM))
    audio_chunks: list[Any] = field(default_factory=list, repr=False)  # bytes/views/B64Audio
    audio_start_ms: float | None = None
    audio_end_ms: float | None = None
    truncated_ms: int | None = None
    #: Server sessions this item was re-created in by a renewal (as text; see
    #: :mod:`realtime_nb.client.renew`); ``session_id`` stays the session it was born in.
    carried_into: list[str] = field(default_factory=list)
    server_label: str | None = None
    mcp_state: str | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    output: str | None = None
    error: dict[str, Any] | None = None
    approval_request_id: str | None = None
    approve: bool | None = None
    reason: str | None = None
    _decoded: Any = field(default=None, repr=False)  # (image URLs, InputImages, thumbnails)

    @property
    def image_urls(self) -> list[str]:
        """The data URLs of the item's ``input_image`` parts, in order (no copies)."""
        return [p["image_url"] for p in (self.item.get("content") or ())
                if isinstance(p, dict) and p.get("type") == "input_image"
                and isinstance(p.get("image_url"), str)]

    @property
    def images(self) -> list[Any]:
        """The item's pictures as :class:`~realtime_nb.protocol.images.InputImage` (bytes,
        MIME type, size, detail), decoded on first use and kept until they change. Parts that
        are not PNG/JPEG data URLs are left out."""
        return self._image_cache()[1]

    def thumbnail(self, max_side: int = 96) -> str | None:
        """A small JPEG data URL of the item's first picture (for the transcript), made once;
        None when the item has no picture."""
        _urls, images, thumbs = self._image_cache()
        if not images:
            return None
        if max_side not in thumbs:
            thumbs[max_side] = _thumbnail(images[0], max_side)
        return thumbs[max_side]

    def _image_cache(self) -> tuple[list[str], list[Any], dict[int, str]]:
        urls = self.image_urls
        cached = self._decoded
        if cached is not None and len(cached[0]) == len(urls) and all(
                a is b or a == b for a, b in zip(cached[0], urls, strict=True)):
            return cached
        from realtime_nb.protocol.images import decode_image_url
        from realtime_nb.protocol.schema import ProtocolError

        images = []
        for url, part in zip(urls, [p for p in self.item.get("content") or ()
                                    if isinstance(p, dict) and p.get("type") == "input_image"
                                    and isinstance(p.get("image_url"), str)], strict=True):
            try:
                images.append(decode_image_url(url, detail=part.get("detail", "auto"),
                                               item_id=self.id))
            except ProtocolError:
                continue
        self._decoded = (urls, images, {})
        return self._decoded

    @property
    def audio_bytes(self) -> bytes:
        """The item's audio in its wire format (``audio_format``), joined."""
        chunks = self.audio_chunks
        if any(isinstance(c, StoredAudio) for c in chunks):
            # held by the event log's store (maybe on disk by now): joined, never kept here
            return b"".join(raw_bytes(c) for c in chunks)
        if len(chunks) > 1 or (chunks and not isinstance(chunks[0], bytes)):
            chunks[:] = [b"".join(raw_bytes(c) for c in chunks)]
        return chunks[0] if chunks else b""

    @property
    def duration_ms(self) -> float:
        n = sum(len(c) for c in self.audio_chunks)
        return n / bytes_per_ms(self.audio_format)

    def kept_bytes(self, untruncated: bool = False) -> bytes:
        """The audio the item holds on the server: cut at ``truncated_ms`` after a
        ``conversation.item.truncate`` (what the user heard), unless ``untruncated``
        (everything received; :attr:`audio_bytes`)."""
        data = self.audio_bytes
        width = 2 if bytes_per_ms(self.audio_format) == 48 else 1
        end = len(data) // width * width
        if self.truncated_ms is not None and not untruncated:
            end = min(end, int(self.truncated_ms * bytes_per_ms(self.audio_format)))
        return data[:end]

    def audio(self, *, untruncated: bool = False) -> Any:
        """The audio as a :class:`realtime_nb.audio.Audio` (None when there is none).

        After a truncate (barge-in) this is the part that was played and that the server kept;
        ``untruncated=True`` gives everything that was received.
        """
        data = self.kept_bytes(untruncated)
        if not data:
            return None
        from realtime_nb.audio import decode_format

        return decode_format(data, self.audio_format)

    def audio_buffer(self, *, untruncated: bool = False) -> Any:
        """The audio as a :class:`realtime_nb.audio.AudioBuffer` (``.audio``, ``.to_wav()``);
        truncation as in :meth:`audio`."""
        from realtime_nb.audio import AudioBuffer

        buf = AudioBuffer(self.audio_format)
        buf.add(self.kept_bytes(untruncated))
        return buf

    @property
    def content_text(self) -> str:
        """What was said or written: transcript for audio, text otherwise."""
        return self.transcript or self.text

    def __repr__(self) -> str:
        what = self.content_text
        what = what if len(what) <= 60 else what[:57] + "..."
        audio = f" audio={self.duration_ms:.0f}ms" if self.audio_chunks else ""
        return (f"<Item {self.id} {self.role or self.type} {self.status}{audio} "
                f"{what!r}>")


def _share_images(item: dict[str, Any], sent: list[str]) -> dict[str, Any]:
    """``item`` (from the server) holding the client's own image strings: an echoed
    ``image_url`` equal to the one sent is replaced by it in place (one copy held, and the
    event log's view of the event shares it); an ``input_image`` part without one gets it in a
    copy of the item (the logged event stays as received)."""
    content = item.get("content")
    if not isinstance(content, list):
        return item
    k = 0
    copied = False
    for i, part in enumerate(content):
        if not (isinstance(part, dict) and part.get("type") == "input_image"):
            continue
        if k >= len(sent):
            break
        url = part.get("image_url")
        if isinstance(url, str):
            if url is not sent[k] and url == sent[k]:
                part["image_url"] = sent[k]
        else:
            if not copied:
                item = {**item, "content": list(content)}
                content = item["content"]
                copied = True
            content[i] = {**part, "image_url": sent[k]}
        k += 1
    return item


def _thumbnail(image: Any, max_side: int) -> str:
    """A JPEG data URL of ``image`` (an InputImage) fitting ``max_side`` × ``max_side``."""
    import base64
    import io

    from PIL import Image

    img = image.to_pil()
    img.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    if img.mode != "RGB":
        rgba = img.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        img = flat
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


@dataclass(eq=False)
class ResponseState:
    """One response: status, output items, usage (from ``response.created`` / ``response.done``)."""

    id: str
    status: str = "in_progress"
    status_details: dict[str, Any] | None = None
    conversation_id: str | None = None
    metadata: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None
    output: list[ItemState] = field(default_factory=list)
    response: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def done(self) -> bool:
        return self.status != "in_progress"

    @property
    def text(self) -> str:
        """The assistant's words: transcripts of audio output, or output text."""
        return "".join(it.content_text for it in self.output if it.type == "message")

    def audio(self, *, untruncated: bool = False) -> Any:
        """The response's audio (all its message items joined) as an Audio, or None;
        truncation as in :meth:`ItemState.audio`."""
        data = b"".join(it.kept_bytes(untruncated) for it in self.output)
        if not data:
            return None
        from realtime_nb.audio import decode_format

        return decode_format(data, self.output[0].audio_format)

    def __repr__(self) -> str:
        return f"<Response {self.id} {self.status} {self.text[:60]!r}>"


class Items(Mapping[str, ItemState]):
    """Conversation items in conversation order, keyed by id (``items[id]``, ``list(items)``)."""

    def __init__(self) -> None:
        self._map: dict[str, ItemState] = {}
        self._order: builtins.list[str] = []

    def __getitem__(self, key: str) -> ItemState:
        return self._map[key]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._order))

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, key: object) -> bool:
        return key in self._map

    def list(self) -> builtins.list[ItemState]:
        """The items in order."""
        return [self._map[i] for i in self._order]

    @property
    def last(self) -> ItemState | None:
        return self._map[self._order[-1]] if self._order else None

    def insert(self, item: ItemState, previous_item_id: str | None, session_id: str | None
               ) -> None:
        """Place ``item`` after ``previous_item_id`` (None: first item of its session)."""
        if item.id in self._map:
            return
        if previous_item_id is not None and previous_item_id in self._map:
            pos = self._order.index(previous_item_id) + 1
        elif previous_item_id is None:
            pos = next((i for i, k in enumerate(self._order)
                        if self._map[k].session_id == session_id), len(self._order))
        else:
            pos = len(self._order)
        self._order.insert(pos, item.id)
        self._map[item.id] = item

    def remove(self, item_id: str) -> ItemState | None:
        item = self._map.pop(item_id, None)
        if item is not None:
            self._order.remove(item_id)
        return item

    def __repr__(self) -> str:
        return "Items([" + ", ".join(repr(i) for i in self.list()) + "])"


# Session markers after which the server holds nothing live (see Mirror.connection_lost).
_LOST = {"realtime_nb.disconnected": "disconnected", "realtime_nb.closed": "closed"}
#: The renewal seam marker (see :meth:`Mirror.renewed`).
RENEWED = "realtime_nb.renewed"


def _add_usage(total: dict[str, Any], usage: Mapping[str, Any]) -> None:
    for k, v in usage.items():
        if isinstance(v, bool):
            continue
        if isinstance(v, int | float):
            total[k] = total.get(k, 0) + v
        elif isinstance(v, Mapping):
            sub = total.setdefault(k, {})
            if isinstance(sub, dict):
                _add_usage(sub, v)


class Mirror:
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
        # stores) — item recordings are views into them, so audio is held once.
        self._rec: deque[tuple[int, bytes]] = deque()
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
        try:
            fmt = self.session["audio"]["input"]["format"]  # type: ignore[index]
        except (TypeError, KeyError):
            return dict(_PCM)
        return fmt if isinstance(fmt, dict) else dict(_PCM)

    @property
    def output_format(self) -> dict[str, Any]:
        try:
            fmt = self.session["audio"]["output"]["format"]  # type: ignore[index]
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
        buf.timeline_bytes += len(data)
        rec = self._rec
        rec.append((buf.timeline_bytes - len(data), data))
        if buf.vad and not buf.speaking:
            # The server keeps idle audio only as a rolling window, not as buffered audio.
            buf.start_bytes = buf.timeline_bytes
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

    def audio_delta(self, event: dict[str, Any], data: bytes | B64Audio | StoredAudio) -> None:
        """``response.output_audio.delta`` with its audio (raw, or still base64: hot path)."""
        item_id = event.get("item_id")
        it = self.all_items.get(item_id) if item_id else None  # type: ignore[arg-type]
        if it is None:
            if not isinstance(item_id, str):
                return
            it = self.item(item_id)
            it.response_id = event.get("response_id")
        it.audio_chunks.append(data)

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
        waits on it or shows it as playing), and VAD no longer reports speech. Items and
        transcripts stay: they are the record of what happened.
        """
        self.active_response_id = None
        self.buffer.speaking = False
        self._vad_item = None
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
        self.buffer.start_bytes = self.floor_bytes
        self.buffer.speech_started(start_ms)
        self._vad_item = {"item_id": ev.get("item_id"), "audio_start_ms": start_ms}

    def _on_speech_stopped(self, ev: dict[str, Any]) -> None:
        self.last_speech_stopped = ev
        self.buffer.speech_stopped(float(ev.get("audio_end_ms") or 0))
        vi = self._vad_item if self._vad_item is not None else {}
        self._vad_item = {**vi, "item_id": ev.get("item_id"),
                          "audio_end_ms": ev.get("audio_end_ms") or 0}

    def _on_timeout_triggered(self, ev: dict[str, Any]) -> None:
        start = float(ev.get("audio_start_ms") or 0)
        self.buffer.start_bytes = max(self.floor_bytes, round(start * self.buffer.bytes_per_ms))
        self.buffer.speaking = True
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
        buf.start_bytes = max(buf.start_bytes, end_b) if not buf.vad else buf.timeline_bytes
        buf.speaking = False
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
        self.buffer.start_bytes = max(self.buffer.start_bytes, pos)
        if self.buffer.vad:
            self.buffer.start_bytes = self.buffer.timeline_bytes
        self.buffer.speaking = False
        self._vad_item = None
        self.floor_bytes = pos
        self.last_buffer_op = "clear"
        self._take_recording(pos, pos)

    def _set_item(self, it: ItemState, item: dict[str, Any]) -> None:
        sent = self._created_images.get(it.id)
        if sent is not None:
            item = _share_images(item, sent)
        it.item = item
        it.type = item.get("type", it.type)
        it.role = item.get("role", it.role)
        it.status = item.get("status", it.status)
        if it.type == "function_call":
            it.name = item.get("name", it.name)
            it.call_id = item.get("call_id", it.call_id)
            if item.get("arguments"):
                it.arguments = item["arguments"]
        elif isinstance(it.type, str) and it.type.startswith("mcp_"):
            self._set_mcp(it, item)
        for part in item.get("content") or ():
            if not isinstance(part, dict):
                continue
            ptype = part.get("type")
            if ptype in ("input_text", "output_text", "text") and part.get("text"):
                if it.role != "assistant" or not it.text:
                    it.text = part["text"]
            elif part.get("transcript") and (
                ptype in ("output_audio", "audio")
                or (ptype == "input_audio" and not it.transcript)
            ):
                it.transcript = part["transcript"]

    def _set_mcp(self, it: ItemState, item: dict[str, Any]) -> None:
        it.server_label = item.get("server_label", it.server_label)
        it.name = item.get("name", it.name)
        if item.get("arguments"):
            it.arguments = item["arguments"]
        if it.type == "mcp_list_tools" and isinstance(item.get("tools"), list):
            it.tools = copy.deepcopy(item["tools"])
        elif it.type == "mcp_call":
            it.approval_request_id = item.get("approval_request_id") or it.approval_request_id
            if item.get("output") is not None:
                it.output, it.mcp_state = item["output"], "completed"
            if item.get("error"):
                it.error, it.mcp_state = item["error"], "failed"
        elif it.type == "mcp_approval_request":
            it.mcp_state = it.mcp_state or "pending"
        elif it.type == "mcp_approval_response":
            it.approval_request_id = item.get("approval_request_id", it.approval_request_id)
            it.approve = item.get("approve", it.approve)
            it.reason = item.get("reason", it.reason)
            request = self.all_items.get(it.approval_request_id or "")
            if request is not None and it.approve is not None:
                request.mcp_state = "approved" if it.approve else "denied"
                request.approve, request.reason = it.approve, it.reason

    def _on_mcp_state(self, ev: dict[str, Any]) -> None:
        item_id = ev.get("item_id")
        if isinstance(item_id, str):
            self.item(item_id).mcp_state = str(ev["type"]).rsplit(".", 1)[1]

    def pending_approvals(self) -> builtins.list[ItemState]:
        """``mcp_approval_request`` items not answered yet, oldest first."""
        return [it for it in self.all_items.values()
                if it.type == "mcp_approval_request" and it.mcp_state == "pending"]

    def _on_item_added(self, ev: dict[str, Any]) -> None:
        item = ev.get("item")
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            return
        it = self.item(item["id"])
        if it.id in self._carrying:
            self._carrying.discard(it.id)
            it.in_conversation = True
            if self.session_id is not None:
                it.carried_into.append(self.session_id)
            self.items.insert(it, ev.get("previous_item_id"), self.session_id)
            return
        self._set_item(it, item)
        it.in_conversation = True
        it.session_id = self.session_id
        created = self._created_audio.pop(it.id, None)
        if created is not None:
            it.audio_chunks = [created[0]]
            it.audio_format = created[1]
        self.items.insert(it, ev.get("previous_item_id"), self.session_id)

    def _on_item_done(self, ev: dict[str, Any]) -> None:
        item = ev.get("item")
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            return
        it = self.item(item["id"])
        if it.carried_into and it.carried_into[-1] == self.session_id and (
                ev.get("type") == "conversation.item.done"):
            return  # the text copy of an item the mirror knows in full
        self._set_item(it, item)

    def _on_item_deleted(self, ev: dict[str, Any]) -> None:
        item_id = ev.get("item_id")
        if isinstance(item_id, str):
            self.items.remove(item_id)
            if item_id in self.all_items:
                self.all_items[item_id].deleted = True
                self.all_items[item_id].in_conversation = False

    def _on_item_truncated(self, ev: dict[str, Any]) -> None:
        item_id = ev.get("item_id")
        if isinstance(item_id, str):
            self.item(item_id).truncated_ms = ev.get("audio_end_ms")

    def _on_input_tr_delta(self, ev: dict[str, Any]) -> None:
        it = self.item(ev["item_id"])
        if it.transcript_done:
            return
        it.transcript += ev.get("delta") or ""

    def _on_input_tr_done(self, ev: dict[str, Any]) -> None:
        it = self.item(ev["item_id"])
        it.transcript = ev.get("transcript") or ""
        it.transcript_done = True
        if isinstance(ev.get("usage"), Mapping):
            _add_usage(self.transcription_usage, ev["usage"])
        if isinstance(ev.get("logprobs"), list):
            it.transcript_logprobs = list(ev["logprobs"])

    def _on_input_tr_segment(self, ev: dict[str, Any]) -> None:
        it = self.item(ev["item_id"])
        seg = TranscriptSegment(str(ev.get("id", "")), str(ev.get("speaker", "")),
                                float(ev.get("start") or 0.0), float(ev.get("end") or 0.0),
                                str(ev.get("text", "")))
        it.segments = [s for s in it.segments if not seg.id or s.id != seg.id] + [seg]

    def _on_input_tr_failed(self, ev: dict[str, Any]) -> None:
        it = self.item(ev["item_id"])
        it.transcription_error = ev.get("error")
        it.transcript_done = True

    def _on_response_created(self, ev: dict[str, Any]) -> None:
        resp = ev.get("response") or {}
        rid = resp.get("id")
        if not isinstance(rid, str):
            return
        rs = self.responses.get(rid)
        if rs is None:
            rs = self.responses[rid] = ResponseState(rid)
        rs.status = resp.get("status", "in_progress")
        rs.conversation_id = resp.get("conversation_id")
        rs.metadata = resp.get("metadata")
        rs.response = resp
        if rs.conversation_id is not None or "conversation_id" not in resp:
            self.active_response_id = rid

    def _response(self, rid: Any) -> ResponseState | None:
        if not isinstance(rid, str):
            return None
        rs = self.responses.get(rid)
        if rs is None:
            rs = self.responses[rid] = ResponseState(rid)
        return rs

    def _on_output_item(self, ev: dict[str, Any]) -> None:
        item = ev.get("item")
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            return
        it = self.item(item["id"])
        self._set_item(it, item)
        it.response_id = ev.get("response_id", it.response_id)
        rs = self._response(ev.get("response_id"))
        if rs is not None and it not in rs.output:
            rs.output.append(it)
            fmt = ((rs.response.get("audio") or {}).get("output") or {}).get("format")
            it.audio_format = fmt if isinstance(fmt, dict) else dict(self.output_format)

    def _on_content_part(self, ev: dict[str, Any]) -> None:
        item_id = ev.get("item_id")
        if isinstance(item_id, str):
            it = self.item(item_id)
            it.response_id = ev.get("response_id", it.response_id)

    def _on_transcript_delta(self, ev: dict[str, Any]) -> None:
        self.item(ev["item_id"]).transcript += ev.get("delta") or ""

    def _on_transcript_done(self, ev: dict[str, Any]) -> None:
        it = self.item(ev["item_id"])
        if isinstance(ev.get("transcript"), str):
            it.transcript = ev["transcript"]
        it.transcript_done = True

    def _on_text_delta(self, ev: dict[str, Any]) -> None:
        self.item(ev["item_id"]).text += ev.get("delta") or ""

    def _on_text_done(self, ev: dict[str, Any]) -> None:
        if isinstance(ev.get("text"), str):
            self.item(ev["item_id"]).text = ev["text"]

    def _on_args_delta(self, ev: dict[str, Any]) -> None:
        self.item(ev["item_id"]).arguments += ev.get("delta") or ""

    def _on_args_done(self, ev: dict[str, Any]) -> None:
        it = self.item(ev["item_id"])
        if isinstance(ev.get("arguments"), str):
            it.arguments = ev["arguments"]
        it.name = ev.get("name", it.name)
        it.call_id = ev.get("call_id", it.call_id)

    def _on_response_done(self, ev: dict[str, Any]) -> None:
        resp = ev.get("response") or {}
        rs = self._response(resp.get("id"))
        if rs is None:
            return
        rs.status = resp.get("status", "completed")
        rs.status_details = resp.get("status_details")
        rs.usage = resp.get("usage")
        rs.metadata = resp.get("metadata", rs.metadata)
        if "conversation_id" in resp:
            rs.conversation_id = resp.get("conversation_id")
        rs.response = resp
        for out in resp.get("output") or ():
            if isinstance(out, dict) and isinstance(out.get("id"), str):
                it = self.item(out["id"])
                self._set_item(it, out)
                if it not in rs.output:
                    rs.output.append(it)
        if isinstance(rs.usage, Mapping):
            _add_usage(self.usage, rs.usage)
        if self.active_response_id == rs.id:
            self.active_response_id = None

    def _on_error(self, ev: dict[str, Any]) -> None:
        body = ev.get("error")
        if isinstance(body, dict) and isinstance(body.get("event_id"), str):
            self.client_error(body["event_id"])

    def _on_rate_limits(self, ev: dict[str, Any]) -> None:
        for rl in ev.get("rate_limits") or ():
            if isinstance(rl, dict) and isinstance(rl.get("name"), str):
                self.rate_limits[rl["name"]] = copy.copy(rl)
