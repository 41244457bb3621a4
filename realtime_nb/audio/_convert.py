"""Conversion to and from the Realtime API's wire formats (PCM16 24 kHz, G.711 at 8 kHz)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._decode import Source, decode
from ._errors import AudioError
from ._format import PCM, PCMA, PCMU, FormatLike, format_rate, normalize_format
from ._g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from ._types import Audio

__all__ = ["convert", "decode_format", "encode", "to_pcm16"]


def encode(audio: Audio, format: FormatLike = PCM) -> bytes:
    """Encode ``audio`` for the wire: resampled to the format's rate, then PCM16 LE or G.711."""
    name = normalize_format(format)
    a = audio.resample(format_rate(name))
    if name == PCM:
        return a.to_pcm16()
    if name == PCMU:
        return ulaw_encode(a.samples)
    return alaw_encode(a.samples)


def convert(
    source: Source,
    sample_rate: int | None = None,
    format: FormatLike = PCM,
    *,
    raw: Any = None,
    channels: int | None = None,
) -> bytes:
    """Decode ``source`` and return the bytes a session with input ``format`` expects.

    ``format``: ``"audio/pcm"`` (PCM16 LE mono 24 kHz, the default), ``"audio/pcmu"`` /
    ``"audio/pcma"`` (G.711 μ-law / A-law, 8 kHz), beta names or GA format dicts.
    ``source`` is anything ``decode`` takes: a path, container bytes, a file object, a numpy
    array (``sample_rate`` required) or an Audio. Raw PCM bytes are refused unless declared with
    ``raw="int16"`` (or another dtype) plus ``sample_rate`` (and ``channels``).
    """
    name = normalize_format(format)
    audio = decode(source, sample_rate, raw=raw, channels=channels, to_rate=format_rate(name))
    return encode(audio, name)


def to_pcm16(
    source: Source,
    sample_rate: int | None = None,
    *,
    raw: Any = None,
    channels: int | None = None,
) -> bytes:
    """PCM16 little-endian mono 24 kHz bytes (what ``input_audio_buffer.append`` wants).

    From a path, container bytes (WAV, Ogg, WebM/Opus, FLAC, MP3, ...), a file object, an Audio,
    or a numpy array of any common dtype — then ``sample_rate`` is required. Raw bytes without a
    container are refused unless declared (``raw="int16"``/``"float32"``/..., ``sample_rate``).
    Raises AudioError for anything unusable.
    """
    return convert(source, sample_rate, PCM, raw=raw, channels=channels)


def decode_format(data: bytes | bytearray | memoryview, format: FormatLike = PCM
                  ) -> Audio:
    """Turn wire bytes of ``format`` (e.g. accumulated response audio) into an ``Audio``.

    PCM16 gives 24 kHz audio, G.711 gives 8 kHz audio (resample for playback if needed).
    """
    name = normalize_format(format)
    if name == PCM:
        return Audio.from_pcm16(data, format_rate(name))
    codes = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    if name == PCMU:
        return Audio(ulaw_decode(codes), format_rate(name))
    if name == PCMA:
        return Audio(alaw_decode(codes), format_rate(name))
    raise AudioError(f"Unhandled format {name}")  # pragma: no cover - normalize_format guards
