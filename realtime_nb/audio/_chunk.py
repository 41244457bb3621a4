"""Chunking for ``input_audio_buffer.append`` and accumulation of response audio deltas.

Base64 appears only here, at the wire boundary: chunks hold bytes until ``to_base64``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ._convert import decode_format, encode
from ._diagnose import looks_like_float32
from ._errors import AudioError
from ._format import PCM, FormatLike, bytes_per_sample, format_rate, normalize_format
from ._sniff import sniff_container
from ._types import Audio

__all__ = [
    "MAX_CHUNK_MS",
    "MIN_CHUNK_MS",
    "AudioBuffer",
    "AudioChunk",
    "append_events",
    "chunks",
]

#: Smallest chunk accepted (ms). Smaller chunks only multiply events and base64 overhead.
MIN_CHUNK_MS = 10
#: Largest chunk accepted (ms): 10 s of PCM16 is 480 kB, 640 kB as base64 — far below the
#: Realtime API's 15 MiB event limit.
MAX_CHUNK_MS = 10_000


@dataclass(frozen=True)
class AudioChunk:
    """One piece of wire audio: raw ``data`` bytes in ``format`` at ``sample_rate``."""

    data: bytes
    sample_rate: int
    format: str
    duration_ms: float

    def to_base64(self) -> str:
        """The chunk as the base64 text the wire carries."""
        return base64.b64encode(self.data).decode("ascii")

    def to_event(self) -> dict[str, Any]:
        """The ``input_audio_buffer.append`` client event carrying this chunk."""
        return {"type": "input_audio_buffer.append", "audio": self.to_base64()}


def chunks(
    data: bytes | bytearray | memoryview | Audio,
    format: FormatLike = PCM,
    chunk_ms: float = 100,
    *,
    check: bool = True,
) -> Iterator[AudioChunk]:
    """Split audio into sample-aligned chunks of ``chunk_ms`` (the last one may be shorter).

    ``data`` is either an ``Audio`` (encoded to ``format``, resampled as needed) or bytes
    already in ``format`` (for ``"audio/pcm"``: PCM16 LE mono 24 kHz). ``chunk_ms`` must be in
    10..10000 ms and is rounded to whole samples. With ``check`` (default), bytes that are a
    container file or float32 samples are refused instead of being chunked into noise.
    Validation happens at the call, before the first chunk is produced.
    """
    name = normalize_format(format)
    rate = format_rate(name)
    width = bytes_per_sample(name)
    if isinstance(chunk_ms, bool) or not isinstance(chunk_ms, (int, float)) or not (
        MIN_CHUNK_MS <= chunk_ms <= MAX_CHUNK_MS
    ):
        raise AudioError(
            f"chunk_ms must be between {MIN_CHUNK_MS} and {MAX_CHUNK_MS} ms, got {chunk_ms!r} "
            "(20-100 ms keeps server VAD responsive)."
        )
    if isinstance(data, Audio):
        payload = encode(data, name)
    elif isinstance(data, (bytes, bytearray, memoryview)):
        payload = bytes(data)
        if len(payload) % width:
            raise AudioError(
                f"{len(payload)} bytes of {name} is not a whole number of {width}-byte samples: "
                "a sample was split; keep the odd byte for the next chunk."
            )
        if check:
            _refuse_garbage(payload, name)
    else:
        raise AudioError(
            f"chunks() takes an Audio or wire bytes, got {type(data).__name__}; convert other "
            "sources first (realtime_nb.audio.decode or to_pcm16)."
        )
    if not payload:
        raise AudioError("No audio to chunk (0 bytes).")
    step = max(1, round(chunk_ms * rate / 1000)) * width
    return _iter_chunks(payload, step, rate, name, width)


def _iter_chunks(payload: bytes, step: int, rate: int, name: str, width: int
                 ) -> Iterator[AudioChunk]:
    view = memoryview(payload)
    for start in range(0, len(payload), step):
        piece = view[start:start + step].tobytes()
        yield AudioChunk(piece, rate, name, len(piece) / width * 1000.0 / rate)


def _refuse_garbage(payload: bytes, name: str) -> None:
    sniffed = sniff_container(payload[:16])
    if sniffed is not None:
        raise AudioError(
            f"These bytes are a {sniffed[0]} file, not raw {name} audio: convert them first "
            f"(realtime_nb.audio.convert(data, format={name!r}))."
        )
    if name == PCM and looks_like_float32(payload):
        raise AudioError(
            "These bytes are float32 samples, not PCM16: they would be heard as noise. Convert "
            "them first: realtime_nb.audio.to_pcm16(np.frombuffer(data, '<f4'), sample_rate=...)."
        )


def append_events(
    data: bytes | bytearray | memoryview | Audio,
    format: FormatLike = PCM,
    chunk_ms: float = 100,
) -> Iterator[dict[str, Any]]:
    """``{"type": "input_audio_buffer.append", "audio": <base64>}`` events for ``data``.

    Same arguments and checks as ``chunks``; each event carries one chunk.
    """
    return (c.to_event() for c in chunks(data, format, chunk_ms))


class AudioBuffer:
    """Accumulates response audio deltas (in arrival order) for one output stream.

    ``add_base64(event["delta"])`` for ``response.output_audio.delta`` (beta:
    ``response.audio.delta``), or ``add(raw_bytes)``; read ``.audio`` (an Audio at the format's
    rate), ``.to_wav()`` for players, ``.duration_ms``. A sample split across two deltas is
    completed by the next one; until then it is not part of ``.audio``.
    """

    def __init__(self, format: FormatLike = PCM) -> None:
        self.format = normalize_format(format)
        self.sample_rate = format_rate(self.format)
        self._width = bytes_per_sample(self.format)
        self._data = bytearray()

    def add(self, data: bytes | bytearray | memoryview) -> int:
        """Append wire bytes; returns how many were added."""
        self._data += data
        return memoryview(data).nbytes

    def add_base64(self, delta: str | bytes) -> int:
        """Append a base64 delta as found in the event; returns the number of bytes decoded."""
        try:
            raw = base64.b64decode(delta, validate=True)
        except (binascii.Error, ValueError, TypeError) as exc:
            raise AudioError(f"The audio delta is not valid base64 ({exc}).") from None
        return self.add(raw)

    def clear(self) -> None:
        """Forget everything accumulated (e.g. on a new response)."""
        self._data.clear()

    @property
    def nbytes(self) -> int:
        """Bytes accumulated so far (including a dangling half sample, if any)."""
        return len(self._data)

    def __len__(self) -> int:
        """Whole samples accumulated so far."""
        return len(self._data) // self._width

    @property
    def duration_ms(self) -> float:
        """Duration of the whole samples accumulated so far."""
        return len(self) * 1000.0 / self.sample_rate

    @property
    def audio(self) -> Audio:
        """Everything so far as an Audio at the format's rate (24 kHz PCM, 8 kHz G.711)."""
        whole = len(self) * self._width
        return decode_format(bytes(self._data[:whole]), self.format)

    def to_wav(self) -> bytes:
        """Everything so far as a 16-bit PCM WAV file (bytes), e.g. for ``ipywidgets.Audio``."""
        return self.audio.to_wav()

    def __repr__(self) -> str:
        return f"AudioBuffer({self.format}, {self.duration_ms:.0f} ms)"
