"""realtime_nb.audio: the only place audio is decoded, resampled, encoded, chunked and diagnosed.

Audio always travels with its sample rate (``Audio``: mono int16 samples + rate). The Realtime
API wants PCM16 little-endian mono at 24 kHz (``"audio/pcm"``) or G.711 μ-law/A-law at 8 kHz
(``"audio/pcmu"``, ``"audio/pcma"``; beta names and GA format dicts are accepted too).

- ``to_pcm16`` / ``convert`` turn files, container bytes (WebM/Opus from browsers and
  MediaRecorder, Ogg, WAV of any sample format, MP3, FLAC, ...), numpy arrays of any common dtype
  (with their ``sample_rate``) or ``Audio`` into wire bytes; ``decode`` gives an ``Audio``;
  raw PCM bytes must be declared (``decode_raw`` or ``raw=``), never guessed.
- ``chunks`` / ``append_events`` cut wire audio into sample-aligned
  ``input_audio_buffer.append`` events (base64 only there); ``AudioBuffer`` accumulates response
  deltas into an ``Audio`` or a WAV file; ``decode_format`` reads wire bytes back.
- ``diagnose`` says what is wrong with bytes meant as PCM16 (float32 samples, a WAV header,
  silence, clipping, too short to commit, split samples), as ``Finding``s with stable codes.
- ``StreamResampler`` resamples chunk by chunk (soxr) with no seams.
- ``CapturedPCM16`` marks PCM16 bytes realtime_nb's own capture made, which need no float32 check.

Everything unusable raises ``AudioError`` (a ``ValueError``) saying what was wrong and what to
do. Decoding uses PyAV (FFmpeg), resampling soxr, G.711 numpy tables (ITU-T G.191 reference).

>>> from realtime_nb.audio import to_pcm16, append_events
>>> pcm = to_pcm16("question.webm")                      # doctest: +SKIP
>>> events = list(append_events(pcm, chunk_ms=100))      # doctest: +SKIP
"""

from ._arrays import from_array
from ._captured import CapturedPCM16
from ._chunk import MAX_CHUNK_MS, MIN_CHUNK_MS, AudioBuffer, AudioChunk, append_events, chunks
from ._convert import convert, decode_format, encode, to_pcm16
from ._decode import Source, decode
from ._diagnose import COMMIT_MIN_MS, Finding, diagnose, looks_like_float32
from ._errors import AudioError
from ._format import (
    PCM,
    PCMA,
    PCMU,
    bytes_per_ms,
    bytes_per_sample,
    format_rate,
    normalize_format,
)
from ._g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from ._raw import decode_raw
from ._resample import StreamResampler
from ._sniff import sniff_container
from ._types import Audio, dbfs

__all__ = [
    "COMMIT_MIN_MS",
    "MAX_CHUNK_MS",
    "MIN_CHUNK_MS",
    "PCM",
    "PCMA",
    "PCMU",
    "Audio",
    "AudioBuffer",
    "AudioChunk",
    "AudioError",
    "CapturedPCM16",
    "Finding",
    "Source",
    "StreamResampler",
    "alaw_decode",
    "alaw_encode",
    "append_events",
    "bytes_per_ms",
    "bytes_per_sample",
    "chunks",
    "convert",
    "dbfs",
    "decode",
    "decode_format",
    "decode_raw",
    "diagnose",
    "encode",
    "format_rate",
    "from_array",
    "looks_like_float32",
    "normalize_format",
    "sniff_container",
    "to_pcm16",
    "ulaw_decode",
    "ulaw_encode",
]
