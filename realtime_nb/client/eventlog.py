"""The event log: every client and server event of a session, in order, audio kept aside.

Each entry (:class:`LoggedEvent`) has a sequence number, a monotonic timestamp (seconds since the
log started), a direction (``"client"``, ``"server"``, or ``"local"`` for the log's own markers
such as ``realtime_nb.disconnected`` / ``realtime_nb.reconnected``), the event type and a *view*
of the event in which audio payloads are replaced by short references such as
``"<audio 4800 bytes #17>"``. The bytes themselves live in :attr:`EventLog.audio`
(:class:`AudioStore`), so printing or exporting a session never dumps megabytes of base64.

Client events refused before sending are logged too, with ``refused`` set to the
:class:`~realtime_nb.client.errors.RealtimeError` that stopped them; they never reached the wire.

Views are shared with the session's callbacks: treat them as read-only.

Export and import: :meth:`EventLog.to_jsonl` / :meth:`EventLog.from_jsonl` (audio included by
default, as separate lines); :meth:`EventLog.from_folder` reads a flight recorder's folder;
:meth:`EventLog.replay` dispatches the events again in order, either
instantly or with their original spacing.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import inspect
import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast, overload

from realtime_nb.protocol.mcp import redact_tools

from .errors import RealtimeError

# Events whose session/response may carry MCP tools (with an authorization token).
_TOOL_EVENTS = frozenset({"session.update", "response.create", "session.created",
                          "session.updated", "transcription_session.update"})

__all__ = [
    "AUDIO_FIELDS",
    "AudioStore",
    "B64Audio",
    "EventLog",
    "LoggedEvent",
    "StoredAudio",
    "audio_ref",
    "raw_bytes",
]

#: Where audio payloads sit in events: event type -> top-level field.
AUDIO_FIELDS: dict[str, str] = {
    "input_audio_buffer.append": "audio",
    "response.output_audio.delta": "delta",
    "response.audio.delta": "delta",
}
_ITEM_AUDIO_EVENTS = ("conversation.item.create", "conversation.item.retrieved")
_REF = re.compile(r"^<audio (\d+) bytes #(\d+)>$")
FORMAT_NAME = "realtime_nb.eventlog"


def audio_ref(nbytes: int, ref: int) -> str:
    """The placeholder an audio payload is replaced with in views: ``<audio N bytes #ref>``."""
    return f"<audio {nbytes} bytes #{ref}>"


class B64Audio:
    """Audio still in its base64 wire form, decoded on first use (then cached by the holder).

    Receiving does not pay for decoding (about 3 µs per kB here): deltas are decoded when
    someone asks for the audio — a player, ``ItemState.audio()``, an export.
    """

    __slots__ = ("data", "nbytes")

    def __init__(self, data: bytes) -> None:
        self.data = data
        n = len(data)
        pad = 2 if data.endswith(b"==") else 1 if data.endswith(b"=") else 0
        self.nbytes = n // 4 * 3 - pad if n % 4 == 0 else n * 3 // 4

    def decode(self) -> bytes:
        try:
            return binascii.a2b_base64(self.data)
        except binascii.Error:
            try:
                return binascii.a2b_base64(self.data + b"=" * (-len(self.data) % 4))
            except binascii.Error:
                return b""

    def __len__(self) -> int:
        return self.nbytes


class StoredAudio:
    """Bytes ``[lo, hi)`` of payload ``ref`` of an :class:`AudioStore`, read from the store when
    used. The mirror's items hold these instead of the bytes, so audio the store has spilled
    to the flight recorder's files leaves memory for good."""

    __slots__ = ("hi", "lo", "ref", "store")

    def __init__(self, store: AudioStore, ref: int, lo: int = 0, hi: int | None = None) -> None:
        self.store = store
        self.ref = ref
        self.lo = lo
        self.hi = store.size(ref) if hi is None else hi

    def __len__(self) -> int:
        return self.hi - self.lo

    def slice(self, lo: int, hi: int) -> StoredAudio:
        """A sub-range, ``lo``/``hi`` relative to this one (clamped)."""
        n = len(self)
        lo, hi = max(0, min(lo, n)), max(0, min(hi, n))
        return StoredAudio(self.store, self.ref, self.lo + lo, self.lo + max(lo, hi))

    def decode(self) -> bytes:
        data = self.store.get(self.ref)
        return data if self.lo == 0 and self.hi >= len(data) else data[self.lo:self.hi]


def raw_bytes(chunk: bytes | B64Audio | StoredAudio) -> bytes:
    """The raw bytes of a stored chunk (decoding it if it is still base64)."""
    return chunk.decode() if isinstance(chunk, B64Audio | StoredAudio) else chunk


class AudioStore:
    """Audio payloads of a log, by reference number (raw bytes; base64 decoded on first use).

    With ``ram_limit`` (bytes; set by a recording Session) the oldest payloads already written
    to the flight recorder's files (:meth:`locate`) are dropped from memory whenever the
    payloads in memory exceed it, and read back from those files when asked for.
    """

    __slots__ = ("_chunks", "_cursor", "_disk", "_sizes", "nbytes", "ram_bytes", "ram_limit",
                 "spilled")

    def __init__(self, ram_limit: int | None = None) -> None:
        self._chunks: list[bytes | B64Audio | None] = []
        self._sizes: list[int] = []
        self._disk: dict[int, tuple[str, int]] = {}
        self._cursor = 0
        self.nbytes = 0  # every payload ever stored
        self.ram_bytes = 0  # the payloads held in memory
        self.spilled = 0  # payloads dropped from memory (on disk)
        self.ram_limit = ram_limit

    def put(self, data: bytes | B64Audio) -> int:
        """Store ``data`` (raw bytes, or a :class:`B64Audio`); returns its reference number."""
        self._chunks.append(data)
        n = len(data)
        self._sizes.append(n)
        self.nbytes += n
        self.ram_bytes += n
        if self.ram_limit is not None and self.ram_bytes > self.ram_limit:
            self._spill()
        return len(self._chunks) - 1

    def locate(self, ref: int, path: str, offset: int) -> None:
        """Payload ``ref`` is in file ``path`` at byte ``offset`` (flushed): it may leave memory.
        (Called by the flight recorder's writer thread.)"""
        self._disk[ref] = (path, offset)

    def _spill(self) -> None:
        assert self.ram_limit is not None
        target = self.ram_limit * 3 // 4
        chunks, disk = self._chunks, self._disk
        while self.ram_bytes > target and self._cursor < len(chunks):
            ref = self._cursor
            if ref not in disk:
                break  # not written yet: keep it until the recorder has
            if chunks[ref] is not None:
                chunks[ref] = None
                self.ram_bytes -= self._sizes[ref]
                self.spilled += 1
            self._cursor += 1

    def _read(self, ref: int) -> bytes:
        path, offset = self._disk[ref]
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(self._sizes[ref])

    def get(self, ref: int) -> bytes:
        """The raw bytes of payload ``ref``."""
        chunk = self._chunks[ref]
        if chunk is None:
            return self._read(ref)
        if isinstance(chunk, B64Audio):
            chunk = self._chunks[ref] = chunk.decode()
        return chunk

    def peek(self, ref: int) -> bytes:
        """The raw bytes of payload ``ref`` without caching a decode (safe from another thread:
        the flight recorder's writer uses it)."""
        chunk = self._chunks[ref]
        return self._read(ref) if chunk is None else raw_bytes(chunk)

    def size(self, ref: int) -> int:
        """Raw byte count of payload ``ref`` (without decoding it)."""
        return self._sizes[ref]

    def __len__(self) -> int:
        return len(self._chunks)

    def __repr__(self) -> str:
        return (f"AudioStore({len(self._chunks)} payloads, {self.nbytes} bytes, "
                f"{self.ram_bytes} in memory)")


class LoggedEvent:
    """One logged event. ``event`` is the audio-free view (read-only); see :class:`EventLog`.

    In a long recording session the views of old entries leave memory (see
    :attr:`EventLog.event_limit`); ``event`` then reads the entry back from the recorder's
    ``events.jsonl`` when asked for it.
    """

    __slots__ = ("_event", "_loc", "audio", "direction", "note", "refused", "seq", "t", "type")

    def __init__(
        self,
        seq: int,
        t: float,
        direction: str,
        type: str,
        event: dict[str, Any],
        audio: tuple[int, ...] = (),
        refused: RealtimeError | None = None,
        note: str | None = None,
    ) -> None:
        self.seq = seq
        self.t = t
        self.direction = direction
        self.type = type
        self._event: dict[str, Any] | None = event
        self._loc: tuple[str, int] | None = None
        self.audio = audio
        self.refused = refused
        self.note = note

    @property
    def event(self) -> dict[str, Any]:
        ev = self._event
        if ev is None:
            assert self._loc is not None
            path, offset = self._loc
            with open(path, "rb") as f:
                f.seek(offset)
                ev = json.loads(f.readline())["event"]
        return ev

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (as written by :meth:`EventLog.to_jsonl`)."""
        out: dict[str, Any] = {"seq": self.seq, "t": round(self.t, 6),
                               "direction": self.direction, "event": self.event}
        if self.audio:
            out["audio"] = list(self.audio)
        if self.refused is not None:
            out["refused"] = self.refused.to_dict()
        if self.note:
            out["note"] = self.note
        return out

    def __repr__(self) -> str:
        mark = " REFUSED" if self.refused is not None else ""
        note = f" ({self.note})" if self.note else ""
        return f"<{self.seq} {self.t:8.3f}s {self.direction:6} {self.type}{mark}{note}>"


class EventLog(Sequence[LoggedEvent]):
    """All events of a session in order (see the module docstring). A read-only sequence.

    ``listeners``: callables given each new :class:`LoggedEvent` as it is logged (UIs).
    """

    def __init__(self) -> None:
        self.entries: list[LoggedEvent] = []
        self.audio = AudioStore()
        self.t0 = time.monotonic()
        self.listeners: list[Callable[[LoggedEvent], Any]] = []
        #: Keep at most this many entries' views in memory (None: all). Set by a recording
        #: Session; only entries the flight recorder has written (:meth:`locate_entry`) leave.
        self.event_limit: int | None = None
        self._ev_cursor = 0
        #: Set by :meth:`from_folder`: what was found in the folder (events, audio bytes,
        #: closed cleanly or not, damaged lines skipped).
        self.recovered: dict[str, Any] | None = None

    # ------------------------------------------------------------------ sequence protocol
    @overload
    def __getitem__(self, i: int) -> LoggedEvent: ...
    @overload
    def __getitem__(self, i: slice) -> list[LoggedEvent]: ...
    def __getitem__(self, i: int | slice) -> LoggedEvent | list[LoggedEvent]:
        return self.entries[i]

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[LoggedEvent]:
        return iter(self.entries)

    def __repr__(self) -> str:
        n_client = sum(1 for e in self.entries if e.direction == "client")
        return (f"<EventLog {len(self.entries)} events ({n_client} client), "
                f"{self.audio.nbytes} audio bytes>")

    # ------------------------------------------------------------------ adding
    def add(
        self,
        direction: str,
        event: dict[str, Any],
        audio: tuple[int, ...] = (),
        refused: RealtimeError | None = None,
        note: str | None = None,
        t: float | None = None,
    ) -> LoggedEvent:
        """Log an already audio-free ``event`` view (used by the Session's hot paths)."""
        entry = LoggedEvent(
            len(self.entries),
            (time.monotonic() if t is None else t) - self.t0,
            direction, event.get("type", "?"), event, audio, refused, note,
        )
        self.entries.append(entry)
        if self.listeners:
            for listener in list(self.listeners):
                listener(entry)
        if self.event_limit is not None and len(self.entries) - self._ev_cursor > (
                self.event_limit):
            self._evict()
        return entry

    def locate_entry(self, seq: int, path: str, offset: int) -> None:
        """Entry ``seq`` is line ``offset`` of ``path`` (flushed): its view may leave memory.
        (Called by the flight recorder's writer thread.)"""
        self.entries[seq]._loc = (path, offset)

    def _evict(self) -> None:
        assert self.event_limit is not None
        target = len(self.entries) - self.event_limit * 3 // 4
        entries = self.entries
        while self._ev_cursor < target:
            entry = entries[self._ev_cursor]
            if entry._loc is None:
                break  # not written yet
            entry._event = None
            self._ev_cursor += 1

    def add_event(
        self,
        direction: str,
        event: dict[str, Any],
        *,
        refused: RealtimeError | None = None,
        note: str | None = None,
    ) -> LoggedEvent:
        """Log any event: audio payloads are moved to the store and replaced by references.

        ``event`` itself is not modified (a view is made when it carries audio).
        """
        view, refs = self.elide(event)
        return self.add(direction, view, refs, refused, note)

    def marker(self, type: str, **fields: Any) -> LoggedEvent:
        """Log a ``local`` marker event (``realtime_nb.connected``, ``...reconnected`` ...)."""
        return self.add("local", {"type": type, **fields})

    def elide(self, event: dict[str, Any]) -> tuple[dict[str, Any], tuple[int, ...]]:
        """Return ``(view, refs)``: ``event`` with its audio moved to the store, and any MCP
        tool's ``authorization`` token replaced by ``***`` (logs and recordings never hold it)."""
        etype = event.get("type")
        if etype in _TOOL_EVENTS:
            event = redact_tools(event)
        key = AUDIO_FIELDS.get(etype) if isinstance(etype, str) else None
        if key is not None:
            payload = event.get(key)
            if isinstance(payload, str) and not _REF.match(payload):
                data = _b64(payload)
                ref = self.audio.put(data)
                view = dict(event)
                view[key] = audio_ref(len(data), ref)
                return view, (ref,)
            return event, ()
        if etype in _ITEM_AUDIO_EVENTS:
            item = event.get("item")
            content = item.get("content") if isinstance(item, dict) else None
            if isinstance(content, list) and any(
                isinstance(p, dict) and isinstance(p.get("audio"), str) and p["audio"]
                and not _REF.match(p["audio"]) for p in content
            ):
                refs: list[int] = []
                parts = []
                for p in content:
                    if isinstance(p, dict) and isinstance(p.get("audio"), str) and p["audio"] \
                            and not _REF.match(p["audio"]):
                        data = _b64(p["audio"])
                        ref = self.audio.put(data)
                        refs.append(ref)
                        p = {**p, "audio": audio_ref(len(data), ref)}
                    parts.append(p)
                # a list of content is found only in an item that is a dict
                return {**event, "item": {**cast(dict, item), "content": parts}}, tuple(refs)
        return event, ()

    # ------------------------------------------------------------------ reading
    def of_type(self, *types: str) -> list[LoggedEvent]:
        """Entries whose type is one of ``types``."""
        return [e for e in self.entries if e.type in types]

    def client(self) -> list[LoggedEvent]:
        return [e for e in self.entries if e.direction == "client"]

    def server(self) -> list[LoggedEvent]:
        return [e for e in self.entries if e.direction == "server"]

    def refused(self) -> list[LoggedEvent]:
        """Client events refused locally (never sent)."""
        return [e for e in self.entries if e.refused is not None]

    def audio_of(self, entry: LoggedEvent) -> bytes:
        """The audio bytes an entry carried (all its payloads joined), or ``b""``."""
        return b"".join(self.audio.get(r) for r in entry.audio)

    def full(self, entry: LoggedEvent) -> dict[str, Any]:
        """The event as it went over the wire: references replaced by base64 audio again."""
        if not entry.audio:
            return entry.event
        ev = entry.event
        key = AUDIO_FIELDS.get(entry.type)
        if key is not None:
            return {**ev, key: base64.b64encode(self.audio.get(entry.audio[0])).decode("ascii")}
        item = ev.get("item")
        if isinstance(item, dict) and isinstance(item.get("content"), list):
            parts = []
            for p in item["content"]:
                m = _REF.match(p.get("audio") or "") if isinstance(p, dict) else None
                if m:
                    p = {**p, "audio": base64.b64encode(self.audio.get(int(m.group(2))))
                         .decode("ascii")}
                parts.append(p)
            return {**ev, "item": {**item, "content": parts}}
        return ev

    # ------------------------------------------------------------------ export / import
    def to_jsonl(self, path: str | Path, *, audio: bool = True) -> Path:
        """Write the log as JSON lines: a header line, then events in order.

        With ``audio`` (default) each audio payload is written once, as a line
        ``{"audio": ref, "b64": ...}`` just before the first event that references it, so
        :meth:`from_jsonl` restores everything; without it only the references remain.
        Credentials are never part of a log. Returns the path.
        """
        path = Path(path)
        written: set[int] = set()
        with path.open("w", encoding="utf-8") as f:
            f.write(json.dumps({"format": FORMAT_NAME, "version": 1,
                                "events": len(self.entries),
                                "audio_bytes": self.audio.nbytes if audio else 0}) + "\n")
            for e in self.entries:
                if audio:
                    for r in e.audio:
                        if r not in written:
                            written.add(r)
                            f.write(json.dumps({"audio": r, "b64": base64.b64encode(
                                self.audio.get(r)).decode("ascii")}) + "\n")
                f.write(json.dumps(e.to_dict(), default=str) + "\n")
        return path

    @classmethod
    def from_jsonl(cls, path: str | Path) -> EventLog:
        """Read a log written by :meth:`to_jsonl` (audio restored when it was exported)."""
        log = cls()
        remap: dict[int, int] = {}
        with Path(path).open(encoding="utf-8") as f:
            for n, line in enumerate(f):
                if not line.strip():
                    continue
                rec = json.loads(line)
                if n == 0 and rec.get("format") == FORMAT_NAME:
                    continue
                if "audio" in rec and "b64" in rec:
                    remap[int(rec["audio"])] = log.audio.put(base64.b64decode(rec["b64"]))
                    continue
                log.entries.append(restore_entry(rec, len(log.entries), remap))
        return log

    @classmethod
    def from_folder(cls, path: str | Path) -> EventLog:
        """Read a session folder written by the flight recorder (see
        :mod:`realtime_nb.client.recorder`), also one cut short by a killed kernel."""
        from .recorder import read_recording

        return read_recording(path, cls)

    @classmethod
    def load(cls, path: str | Path) -> EventLog:
        """A saved log: a flight recorder's folder (:meth:`from_folder`) or a JSONL trace
        (:meth:`from_jsonl`)."""
        return cls.from_folder(path) if Path(path).is_dir() else cls.from_jsonl(path)

    async def replay(
        self,
        callback: Callable[[LoggedEvent], Any],
        speed: float | None = None,
        *,
        directions: tuple[str, ...] = ("client", "server", "local"),
    ) -> int:
        """Call ``callback(entry)`` for each entry in order; returns how many were dispatched.

        ``speed=None`` dispatches instantly; ``speed=1.0`` keeps the original spacing, ``2.0``
        plays twice as fast. ``callback`` may be a coroutine function (it is awaited). Use
        :meth:`full` in the callback to get an event with its audio. Cancel-safe.
        """
        count = 0
        start = time.monotonic()
        first: float | None = None
        for entry in list(self.entries):
            if entry.direction not in directions:
                continue
            if speed is not None and speed > 0:
                if first is None:
                    first = entry.t
                due = start + (entry.t - first) / speed
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            result = callback(entry)
            if inspect.isawaitable(result):
                await result
            count += 1
        return count


def _b64(payload: str) -> bytes:
    try:
        return base64.b64decode(payload)
    except (ValueError, TypeError):
        return payload.encode("utf-8", "replace")


def restore_entry(rec: dict[str, Any], index: int, remap: dict[int, int]) -> LoggedEvent:
    """The log entry of one exported event record (a JSONL line or a recorder's index line).

    ``remap`` maps the audio ids of the export to the ids the audio got in the new log's store;
    references to audio that was not restored are dropped.
    """
    refs = tuple(remap[r] for r in rec.get("audio", ()) if r in remap)
    event = rec["event"]
    if refs and tuple(rec.get("audio", ())) != refs:
        event = _rewrite_refs(event, dict(zip(rec["audio"], refs, strict=False)))
    refused = rec.get("refused")
    return LoggedEvent(index, float(rec["t"]), rec["direction"], event.get("type", "?"), event,
                       refs, RealtimeError.from_dict(refused) if refused else None,
                       rec.get("note"))


def _rewrite_refs(event: dict[str, Any], mapping: dict[int, int]) -> dict[str, Any]:
    def fix(v: Any) -> Any:
        if isinstance(v, str):
            m = _REF.match(v)
            if m and int(m.group(2)) in mapping:
                return audio_ref(int(m.group(1)), mapping[int(m.group(2))])
            return v
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fix(x) for x in v]
        return v

    return fix(event)
