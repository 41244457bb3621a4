"""What the kernel knows of each conversation item and response: the Mirror's records.

* :class:`ItemState` — one item as the server last showed it, with its recording (user audio as
  committed, assistant audio as received), transcripts, text, pictures (decoded on demand) and
  MCP fields.
* :class:`ResponseState` — one response: status, output items, usage.
* :class:`Items` — the conversation in order, keyed by id (``session.items``).
* :class:`TranscriptSegment` — one diarization segment.

The :class:`~realtime_nb.client.mirror.Mirror` creates and updates them from the events; callers
read them (``session.items[id]``, ``session.responses``). All four are importable from
:mod:`realtime_nb.client.mirror` too (the same objects).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from realtime_nb.audio import bytes_per_sample
from realtime_nb.protocol import bytes_per_ms
from realtime_nb.protocol.item_order import ItemOrder

from .eventlog import StoredAudio, raw_bytes

__all__ = ["ItemState", "Items", "ResponseState", "TranscriptSegment"]

_PCM = {"type": "audio/pcm", "rate": 24000}


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
    approval request (``"expired"`` when its server session ended before it was answered).

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
        width = bytes_per_sample(self.audio_format)
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
    """Conversation items in conversation order, keyed by id (``items[id]``, ``list(items)``).

    The order follows each item's ``previous_item_id`` by the rule the server's state machine
    applies (:class:`realtime_nb.protocol.item_order.ItemOrder`)."""

    def __init__(self) -> None:
        self._items: ItemOrder[ItemState] = ItemOrder()

    def __getitem__(self, key: str) -> ItemState:
        return self._items.by_id[key]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._items.ids))

    def __len__(self) -> int:
        return len(self._items.ids)

    def __contains__(self, key: object) -> bool:
        return key in self._items.by_id

    def list(self) -> builtins.list[ItemState]:
        """The items in order."""
        return list(self._items.values)

    @property
    def last(self) -> ItemState | None:
        values = self._items.values
        return values[-1] if values else None

    def insert(self, item: ItemState, previous_item_id: str | None, session_id: str | None
               ) -> None:
        """Place ``item`` after ``previous_item_id`` (None: first item of its session)."""
        values = self._items.values
        start = 0
        if previous_item_id is None and item.id not in self._items.by_id:
            start = next((i for i, it in enumerate(values) if it.session_id == session_id),
                         len(values))
        self._items.insert(item.id, item, previous_item_id, start)

    def remove(self, item_id: str) -> ItemState | None:
        return self._items.remove(item_id)

    def __repr__(self) -> str:
        return "Items([" + ", ".join(repr(i) for i in self.list()) + "])"
