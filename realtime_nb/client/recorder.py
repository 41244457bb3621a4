"""The flight recorder: a session written to a folder as it happens, so a dead kernel loses
nothing but the last moment.

A :class:`FlightRecorder` listens to an :class:`~realtime_nb.client.eventlog.EventLog` and hands
each new entry to a writer thread (the event loop only appends to a queue: a few microseconds per
event). The thread writes, into the session folder:

* ``events.jsonl`` — a header line, then every logged event in order, each written and flushed
  to the operating system as it comes (a process killed with SIGKILL loses at most what the
  thread had not reached: well under a second). Audio payloads are not inlined: a locator line
  ``{"audio": ref, "file": ..., "offset": ..., "nbytes": ...}`` precedes the first event that
  references them.
* ``input.wav`` / ``output.wav`` — the audio sent (``input_audio_buffer.append``) and received
  (``response.output_audio.delta``), as streaming WAV files (PCM16 24 kHz mono; G.711 sessions
  get ``input.pcmu.wav`` and so on). The header's sizes are patched every second and on close,
  and the readers here trust the file's length, not the header, so a cut-short file reads back
  whole; ``other.audio`` holds any other audio payload (item audio), raw.
* ``config.jsonl`` — each effective session config as ``session.created`` / ``session.updated``
  reported it, with its time.
* ``meta.json`` — when it started, the backend and model, the session ids seen, and whether it
  was closed cleanly. Never a key or a header: credentials are not part of the log, and the
  URL is stored without its query.

Read a folder back with :meth:`EventLog.from_folder` (or :func:`read_recording`); it feeds
``replay()``, ``lab.explain()`` and the timeline like a live log. :func:`recordings` lists
folders, :func:`remove_recordings` deletes old ones. Folders live under
:func:`default_root` unless told otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import secrets
import shutil
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from .eventlog import AUDIO_FIELDS, FORMAT_NAME, LoggedEvent, restore_entry

if TYPE_CHECKING:
    from .eventlog import EventLog

__all__ = [
    "FlightRecorder",
    "Recording",
    "default_root",
    "read_recording",
    "recordings",
    "remove_recordings",
]

RECORDING_FORMAT = "realtime_nb.recording"
#: How often the writer thread patches the WAV headers' sizes (seconds).
HEADER_EVERY_S = 1.0
_FOLDER = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")
#: Wire format type -> (WAV format tag, bits per sample, sample rate, file suffix).
_WAV = {"audio/pcm": (1, 16, 24_000, ""), "audio/pcmu": (7, 8, 8_000, ".pcmu"),
        "audio/pcma": (6, 8, 8_000, ".pcma")}


def default_root() -> Path:
    """Where session folders go: ``$REALTIME_NB_RECORD_DIR``, else
    ``$XDG_DATA_HOME/realtime_nb/sessions`` (``~/.local/share/realtime_nb/sessions``)."""
    env = os.environ.get("REALTIME_NB_RECORD_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "realtime_nb" / "sessions"


def recording_enabled_by_default() -> bool:
    """False when ``$REALTIME_NB_RECORD`` is ``0``, ``off``, ``false`` or ``no``."""
    return os.environ.get("REALTIME_NB_RECORD", "1").strip().lower() not in (
        "0", "off", "false", "no")


def _wire_type(fmt: Any) -> str:
    kind = fmt.get("type") if isinstance(fmt, dict) else fmt
    return kind if kind in _WAV else "audio/pcm"


class _RawStream:
    """A file of raw audio bytes written as they arrive (``other.audio``: formats without WAV)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.f: BinaryIO = path.open("wb")
        self.data_start = 0
        self.size = 0

    def write(self, data: bytes) -> int:
        """Append ``data``; return its offset from the start of the audio data."""
        offset = self.size
        self.f.write(data)
        self.size += len(data)
        return offset

    def patch(self) -> None:
        """Make what was written readable by others (nothing to do for raw bytes)."""

    def close(self) -> None:
        self.patch()
        self.f.close()


class _WavStream(_RawStream):
    """A WAV file written as audio arrives; sizes patched by :meth:`patch`."""

    def __init__(self, path: Path, wire_type: str) -> None:
        super().__init__(path)
        tag, bits, rate, _ = _WAV[wire_type]
        block = bits // 8
        fmt = struct.pack("<HHIIHH", tag, 1, rate, rate * block, block, bits)
        if tag != 1:
            fmt += b"\0\0"  # cbSize: non-PCM formats carry it
        self.header = (b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + b"fmt "
                       + struct.pack("<I", len(fmt)) + fmt + b"data"
                       + struct.pack("<I", 0xFFFFFFFF))
        self.f.write(self.header)
        self.data_start = len(self.header)
        self.patched = -1

    def patch(self) -> None:
        if self.patched == self.size:
            return
        end = self.f.tell()
        self.f.seek(4)
        self.f.write(struct.pack("<I", min(0xFFFFFFFF, len(self.header) - 8 + self.size)))
        self.f.seek(len(self.header) - 4)
        self.f.write(struct.pack("<I", min(0xFFFFFFFF, self.size)))
        self.f.seek(end)
        self.patched = self.size


class FlightRecorder:
    """Writes ``log`` to ``folder`` as it grows (see the module docstring).

    ``formats()`` returns the session's current ``(input format, output format)`` wire dicts
    (asked on the event loop, as each audio event is logged). ``meta``: extra JSON-safe facts
    for ``meta.json`` (backend name, URL without query, model). Entries already in the log are
    written first. :meth:`close` flushes, patches the WAV headers and marks the folder closed;
    it blocks until the thread has written everything (call it from a worker thread in async
    code: ``await asyncio.to_thread(recorder.close)``).
    """

    def __init__(self, log: EventLog, folder: str | os.PathLike[str], *,
                 formats: Callable[[], tuple[Any, Any]] | None = None,
                 meta: dict[str, Any] | None = None) -> None:
        self.log = log
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._formats = formats or (lambda: ("audio/pcm", "audio/pcm"))
        self._queue: queue.SimpleQueue[tuple[LoggedEvent, str | None] | None] = (
            queue.SimpleQueue())
        self._streams: dict[str, _RawStream] = {}
        self._written: set[int] = set()
        self._located: list[tuple[int, str, int]] = []  # written, not yet flushed
        self.events_written = 0
        self.audio_bytes_written = 0
        self.error: BaseException | None = None
        self.closed = False
        self._meta = {"format": RECORDING_FORMAT, "version": 1,
                      "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                      "closed_at": None, "session_ids": [], **(meta or {})}
        self._write_meta()
        self._events = (self.folder / "events.jsonl").open("w", encoding="utf-8")
        head = json.dumps({"format": FORMAT_NAME, "version": 1, "recording": True}) + "\n"
        self._events.write(head)
        self._events_pos = len(head)  # bytes: every line is ASCII (json.dumps escapes)
        self._events_path = str(self.folder / "events.jsonl")
        self._located_events: list[tuple[int, int]] = []
        self._config = (self.folder / "config.jsonl").open("w", encoding="utf-8")
        self._done = threading.Event()
        self._idle = threading.Event()
        self._thread = threading.Thread(target=self._run, name="realtime_nb-recorder",
                                        daemon=True)
        for entry in list(log.entries):
            self._queue.put((entry, self._stream_for(entry)))
        log.listeners.append(self._on_entry)
        self._thread.start()

    # ------------------------------------------------------------------ event loop side
    def _on_entry(self, entry: LoggedEvent) -> None:
        self._idle.clear()
        self._queue.put((entry, self._stream_for(entry) if entry.audio else None))

    def _stream_for(self, entry: LoggedEvent) -> str | None:
        if not entry.audio:
            return None
        key = AUDIO_FIELDS.get(entry.type)
        if key is None:
            return "other.audio"
        inp, out = self._formats()
        if entry.direction == "client":
            return "input" + _WAV[_wire_type(inp)][3] + ".wav"
        return "output" + _WAV[_wire_type(out)][3] + ".wav"

    # ------------------------------------------------------------------ writer thread
    def _run(self) -> None:
        last_patch = time.monotonic()
        try:
            while True:
                try:
                    item = self._queue.get(timeout=HEADER_EVERY_S)
                except queue.Empty:
                    item = False  # type: ignore[assignment]
                stop = item is None
                if item:
                    self._write(*item)
                while not stop:  # drain what else is waiting, then flush once
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stop = True
                        break
                    self._write(*more)
                self._flush()
                now = time.monotonic()
                if stop or now - last_patch >= HEADER_EVERY_S:
                    for s in self._streams.values():
                        s.patch()
                        s.f.flush()
                    last_patch = now
                if self._queue.empty():
                    self._idle.set()
                if stop:
                    break
        except BaseException as exc:  # a full disk must not take the session down
            self.error = exc
            self._idle.set()
        finally:
            self._done.set()

    def _write(self, entry: LoggedEvent, stream: str | None) -> None:
        for ref in entry.audio:
            if ref in self._written:
                continue
            self._written.add(ref)
            name = stream or "other.audio"
            out = self._streams.get(name)
            if out is None:
                path = self.folder / name
                out = self._streams[name] = (
                    _RawStream(path) if name == "other.audio"
                    else _WavStream(path, _type_of_file(name)))
            data = self.log.audio.peek(ref)
            offset = out.write(data)
            self.audio_bytes_written += len(data)
            self._located.append((ref, str(out.path), out.data_start + offset))
            self._line(json.dumps({"audio": ref, "file": name, "offset": offset,
                                   "nbytes": len(data)}) + "\n")
        self._located_events.append((entry.seq, self._events_pos))
        self._line(json.dumps(entry.to_dict(), default=str) + "\n")
        self.events_written += 1
        if entry.type in ("session.created", "session.updated", "transcription_session.created",
                          "transcription_session.updated") and entry.direction == "server":
            session = entry.event.get("session")
            self._config.write(json.dumps({"t": round(entry.t, 6), "type": entry.type,
                                           "session": session}, default=str) + "\n")
            sid = session.get("id") if isinstance(session, dict) else None
            if isinstance(sid, str) and sid not in self._meta["session_ids"]:
                self._meta["session_ids"].append(sid)
                self._write_meta()

    def _line(self, text: str) -> None:
        self._events.write(text)
        self._events_pos += len(text)

    def _flush(self) -> None:
        for s in self._streams.values():
            s.f.flush()  # audio first: an event line never names bytes not yet written
        self._events.flush()
        self._config.flush()
        located, self._located = self._located, []
        audio = self.log.audio
        for ref, path, offset in located:  # now readable from the file: may leave memory
            audio.locate(ref, path, offset)
        lines, self._located_events = self._located_events, []
        for seq, offset in lines:
            if seq < len(self.log.entries) and self.log.entries[seq].seq == seq:
                self.log.locate_entry(seq, self._events_path, offset)

    def _write_meta(self) -> None:
        tmp = self.folder / "meta.json.tmp"
        tmp.write_text(json.dumps(self._meta, indent=1, default=str), encoding="utf-8")
        os.replace(tmp, self.folder / "meta.json")

    # ------------------------------------------------------------------ control
    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything logged so far is written (True) or ``timeout`` passes."""
        return self._idle.wait(timeout) if not self._done.is_set() else True

    def close(self, timeout: float = 10.0) -> None:
        """Write what is left, patch the headers, mark the folder closed (idempotent)."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(ValueError):
            self.log.listeners.remove(self._on_entry)
        self._queue.put(None)
        self._done.wait(timeout)
        for s in self._streams.values():
            with contextlib.suppress(Exception):
                s.close()
        for f in (self._events, self._config):
            with contextlib.suppress(Exception):
                f.close()
        self._meta["closed_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        self._meta["events"] = self.events_written
        self._meta["audio_bytes"] = self.audio_bytes_written
        with contextlib.suppress(OSError):
            self._write_meta()

    def __repr__(self) -> str:
        return (f"<FlightRecorder {self.folder} {self.events_written} events, "
                f"{self.audio_bytes_written} audio bytes{' closed' if self.closed else ''}>")


def _type_of_file(name: str) -> str:
    for wire, (_, _, _, suffix) in _WAV.items():
        if suffix and suffix in name:
            return wire
    return "audio/pcm"


def new_folder(root: str | os.PathLike[str] | None = None) -> Path:
    """A new, empty session folder under ``root`` (default :func:`default_root`), named by
    local start time plus a random suffix: ``20261202-164005-3fa9c1``."""
    base = Path(root) if root is not None else default_root()
    base.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        base.chmod(0o700)  # recordings are the user's voice: not for other accounts
    while True:
        path = base / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        try:
            path.mkdir(mode=0o700)
            return path
        except FileExistsError:
            continue


# ---------------------------------------------------------------------- reading back
def _data_start(f: BinaryIO) -> int:
    """Byte offset of a WAV file's data chunk (the file's length is trusted, not the header)."""
    head = f.read(12)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise ValueError("not a WAV file")
    pos = 12
    while True:
        f.seek(pos)
        chunk = f.read(8)
        if len(chunk) < 8:
            raise ValueError("no data chunk")
        cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if cid == b"data":
            return pos + 8
        pos += 8 + size + (size & 1)


def read_recording(folder: str | os.PathLike[str], cls: type[EventLog] | None = None
                   ) -> EventLog:
    """The :class:`EventLog` a recorder wrote to ``folder`` (audio included).

    A folder cut short (the process was killed) reads up to its last complete line; audio the
    killed process had not written yet is left out of the events that named it (their ``audio``
    tuple is shortened). ``log.recovered`` says what was found: events, audio bytes, whether the
    folder was closed cleanly, and any damage skipped.
    """
    from .eventlog import EventLog

    folder = Path(folder)
    path = folder / "events.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{folder} is not a realtime_nb session folder "
                                "(no events.jsonl)")
    log = (cls or EventLog)()
    files: dict[str, tuple[BinaryIO, int]] = {}
    remap: dict[int, int] = {}
    skipped = 0
    try:
        with path.open("rb") as f:
            lines = f.read().split(b"\n")
        for n, raw in enumerate(lines):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
            except ValueError:
                skipped += 1  # a line cut by the kill (only the last one can be)
                continue
            if n == 0 and rec.get("format") == FORMAT_NAME:
                continue
            if "audio" in rec and "file" in rec:
                name = rec["file"]
                if name not in files:
                    fp = (folder / name).open("rb")
                    files[name] = (fp, 0 if name == "other.audio" else _data_start(fp))
                fp, start = files[name]
                fp.seek(start + int(rec["offset"]))
                data = fp.read(int(rec["nbytes"]))
                if len(data) == int(rec["nbytes"]):
                    remap[int(rec["audio"])] = log.audio.put(data)
                continue
            log.entries.append(restore_entry(rec, len(log.entries), remap))
    finally:
        for fp, _ in files.values():
            fp.close()
    meta = _read_meta(folder)
    log.recovered = {"events": len(log.entries), "audio_bytes": log.audio.nbytes,
                     "closed": bool(meta.get("closed_at")), "damaged_lines": skipped,
                     "folder": str(folder)}
    return log


def _read_meta(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


@dataclass(frozen=True)
class Recording:
    """One session folder: ``path``, ``started_at`` (UTC), ``session_ids``, ``closed``
    (False: the process died or the session is still running), ``size_bytes``."""

    path: Path
    started_at: datetime | None
    session_ids: tuple[str, ...]
    closed: bool
    size_bytes: int

    def read(self) -> EventLog:
        return read_recording(self.path)

    def remove(self) -> None:
        shutil.rmtree(self.path)


def recordings(root: str | os.PathLike[str] | None = None) -> list[Recording]:
    """Session folders under ``root`` (default :func:`default_root`), oldest first."""
    base = Path(root) if root is not None else default_root()
    out: list[Recording] = []
    if not base.is_dir():
        return out
    for path in sorted(p for p in base.iterdir() if p.is_dir() and _FOLDER.match(p.name)):
        meta = _read_meta(path)
        if meta.get("format") != RECORDING_FORMAT:
            continue
        started = meta.get("started_at")
        size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
        out.append(Recording(path, datetime.fromisoformat(started) if started else None,
                             tuple(meta.get("session_ids") or ()), bool(meta.get("closed_at")),
                             size))
    return out


def remove_recordings(root: str | os.PathLike[str] | None = None, *,
                      older_than_days: float | None = None, keep_last: int | None = None
                      ) -> list[Path]:
    """Delete session folders under ``root``: those started more than ``older_than_days``
    ago, and/or all but the ``keep_last`` newest. With neither, nothing is removed (pass
    ``older_than_days=0`` to remove everything). Returns the removed paths."""
    found = recordings(root)
    doomed: list[Recording] = []
    if older_than_days is not None:
        cutoff = datetime.now(UTC) - timedelta(days=older_than_days)
        doomed += [r for r in found if r.started_at is not None and r.started_at <= cutoff]
    if keep_last is not None:
        doomed += found[:max(0, len(found) - keep_last)]
    removed = []
    for r in {r.path: r for r in doomed}.values():
        r.remove()
        removed.append(r.path)
    return sorted(removed)
