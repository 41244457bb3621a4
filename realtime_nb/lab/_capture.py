"""Getting the one recording a sweep replays: from a microphone take, a session, or a file.

* :class:`Recorder` — attach it to a :class:`~realtime_nb.widgets.MicWidget`; every take
  (hands-free Start/Stop, or one push-to-talk press) is kept as an ``Audio``.
* :func:`recording_from` — anything else: an ``Audio``, a file path, container bytes, a numpy
  array (with ``sample_rate``), a list of mic / wire chunks, a :class:`Recorder`, or a session /
  event log (the audio the client appended, i.e. the session's input timeline).

Everything comes back as 24 kHz PCM16, the rate the Realtime API and the local server work at.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from realtime_nb.audio import Audio, AudioChunk, AudioError, decode, decode_format

__all__ = ["RATE", "Recorder", "recording_from"]

#: The rate every recording is brought to (the Realtime API's PCM16 rate).
RATE = 24_000


def _chunks_audio(chunks: Sequence[Any]) -> Audio:
    """Join wire/mic chunks in order. MicChunks are placed by take and sequence number, and a
    missing chunk becomes silence so that the timeline keeps its length."""
    if not chunks:
        return Audio.silence(0, RATE)
    if all(hasattr(c, "seq") and hasattr(c, "take") for c in chunks):
        take = max(int(c.take) for c in chunks)
        mine = sorted((c for c in chunks if int(c.take) == take), key=lambda c: int(c.seq))
        parts: list[Audio] = []
        expected = 0
        for c in mine:
            audio = decode_format(c.data, c.format).resample(RATE)
            if int(c.seq) > expected and parts:  # lost chunks: keep time with silence
                parts.append(Audio.silence(parts[-1].duration_ms * (int(c.seq) - expected), RATE))
            parts.append(audio)
            expected = int(c.seq) + 1
        return Audio.concat(parts, RATE)
    return Audio.concat([decode_format(c.data, c.format).resample(RATE) for c in chunks], RATE)


def _log_audio(log: Any) -> Audio:
    """The audio a session's client appended, in order (PCM16 at 24 kHz, or G.711)."""
    fmt: Any = {"type": "audio/pcm", "rate": 24000}
    parts: list[Audio] = []
    pending = bytearray()

    def flush() -> None:
        if pending:
            parts.append(decode_format(bytes(pending), fmt).resample(RATE))
            pending.clear()

    for entry in log:
        if entry.direction == "server" and entry.type in ("session.created", "session.updated"):
            session = entry.event.get("session") or {}
            new = ((session.get("audio") or {}).get("input") or {}).get("format")
            if isinstance(new, dict) and new != fmt:
                flush()
                fmt = new
        elif (entry.direction == "client" and entry.type == "input_audio_buffer.append"
              and entry.refused is None):
            pending += log.audio_of(entry)
    flush()
    if not parts:
        raise AudioError("This session's log holds no appended audio (was it exported with "
                         "audio=False?).")
    return Audio.concat(parts, RATE)


def recording_from(source: Any, sample_rate: int | None = None) -> Audio:
    """The recording in ``source`` as 24 kHz ``Audio`` (see the module docstring for sources).

    ``sample_rate`` declares the rate of sources that carry none (numpy arrays, raw PCM16 bytes
    need ``decode``'s ``raw=`` — pass an ``Audio`` instead).
    """
    from realtime_nb.client import EventLog

    if isinstance(source, Recorder):
        return source.audio
    if isinstance(source, EventLog):
        return _log_audio(source)
    events = getattr(source, "events", None)
    if isinstance(events, EventLog):
        return _log_audio(events)
    if isinstance(source, AudioChunk):
        return _chunks_audio([source])
    if (isinstance(source, Sequence) and not isinstance(source, str | bytes | bytearray)
            and source and all(isinstance(c, AudioChunk) for c in source)):
        return _chunks_audio(list(source))
    if isinstance(source, Audio):
        return source.resample(RATE)
    return decode(source, sample_rate, to_rate=RATE)


class Recorder:
    """Keeps the takes of a :class:`~realtime_nb.widgets.MicWidget` (either mode).

    ::

        mic = MicWidget(mode="push-to-talk")
        rec = Recorder(mic)
        mic                      # hold the button and speak ...
        result = lab.sweep(rec.audio)

    A take is everything between one start and its stop (a hands-free session, or one press of
    push-to-talk). Chunks arrive on the kernel's main thread; :attr:`audio` is the last take.
    """

    def __init__(self, mic: Any = None, *, keep: int = 10) -> None:
        self._chunks: dict[int, list[Any]] = {}
        self._lock = threading.Lock()
        self.keep = keep
        self.mic: Any = None
        if mic is not None:
            self.attach(mic)

    def attach(self, mic: Any) -> None:
        """Start keeping ``mic``'s chunks (anything with ``on_audio(callback)``)."""
        if self.mic is not None:
            self.detach()
        mic.on_audio(self.add)
        self.mic = mic

    def detach(self) -> None:
        """Stop listening to the microphone (takes already kept stay)."""
        if self.mic is not None:
            self.mic.on_audio(self.add, remove=True)
            self.mic = None

    def add(self, chunk: Any) -> None:
        """Keep one chunk (the MicWidget callback; also usable to feed chunks yourself)."""
        take = int(getattr(chunk, "take", 0))
        with self._lock:
            self._chunks.setdefault(take, []).append(chunk)
            while len(self._chunks) > self.keep:
                del self._chunks[min(self._chunks)]

    def clear(self) -> None:
        """Forget every take."""
        with self._lock:
            self._chunks.clear()

    @property
    def takes(self) -> dict[int, Audio]:
        """Every kept take, by take number, as 24 kHz Audio."""
        with self._lock:
            items = {k: list(v) for k, v in self._chunks.items()}
        return {k: _chunks_audio(v) for k, v in sorted(items.items())}

    @property
    def audio(self) -> Audio:
        """The last take (raises when nothing was recorded yet)."""
        with self._lock:
            if not self._chunks:
                raise AudioError("Nothing recorded yet: start the microphone and speak first.")
            last = list(self._chunks[max(self._chunks)])
        return _chunks_audio(last)

    def __repr__(self) -> str:
        with self._lock:
            n = {k: len(v) for k, v in self._chunks.items()}
        return f"<Recorder takes={n}>"

