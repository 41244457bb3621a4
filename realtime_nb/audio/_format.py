"""Names of the Realtime API's audio formats (GA wire types, beta names, GA format objects)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._errors import AudioError

__all__ = [
    "PCM",
    "PCMA",
    "PCMU",
    "FormatLike",
    "bytes_per_ms",
    "bytes_per_sample",
    "format_rate",
    "normalize_format",
]

#: GA wire type of PCM16 little-endian mono at 24 kHz (beta name ``"pcm16"``).
PCM = "audio/pcm"
#: GA wire type of G.711 μ-law at 8 kHz (beta name ``"g711_ulaw"``).
PCMU = "audio/pcmu"
#: GA wire type of G.711 A-law at 8 kHz (beta name ``"g711_alaw"``).
PCMA = "audio/pcma"

_ALIASES = {
    PCM: PCM,
    "pcm16": PCM,
    PCMU: PCMU,
    "g711_ulaw": PCMU,
    PCMA: PCMA,
    "g711_alaw": PCMA,
}
_RATE = {PCM: 24_000, PCMU: 8_000, PCMA: 8_000}
_SAMPLE_BYTES = {PCM: 2, PCMU: 1, PCMA: 1}

#: A format as callers may name it: a wire string, a GA dict such as
#: ``{"type": "audio/pcm", "rate": 24000}``, or any object with ``.type`` (and maybe ``.rate``).
FormatLike = str | Mapping[str, Any] | Any


def normalize_format(fmt: FormatLike) -> str:
    """Return the GA wire type (``"audio/pcm"``, ``"audio/pcmu"`` or ``"audio/pcma"``) of ``fmt``.

    Accepts the GA strings, the beta names (``"pcm16"``, ``"g711_ulaw"``, ``"g711_alaw"``), GA
    format dicts and objects with a ``type`` attribute. A ``rate`` other than the format's own
    (24000 for PCM, 8000 for G.711) is refused, as the GA service refuses it.
    """
    kind: object  # the format's type: a str for a known one (checked below)
    if isinstance(fmt, str):
        kind, rate = fmt, None
    elif isinstance(fmt, Mapping):
        kind, rate = fmt.get("type"), fmt.get("rate")
    elif hasattr(fmt, "type"):
        kind, rate = fmt.type, getattr(fmt, "rate", None)
    else:
        raise AudioError(f"Unknown audio format {fmt!r}: {_valid()}.")
    name = _ALIASES.get(kind.strip().lower()) if isinstance(kind, str) else None
    if name is None:
        raise AudioError(f"Unknown audio format {kind!r}: {_valid()}.")
    if rate is not None and rate != _RATE[name]:
        raise AudioError(
            f"Format {name} is always {_RATE[name]} Hz, got rate={rate!r}: the Realtime API "
            "accepts no other rate; resample instead (realtime_nb.audio.convert does it)."
        )
    return name


def format_rate(fmt: FormatLike) -> int:
    """Sample rate of a format in Hz: 24000 for PCM16, 8000 for G.711 μ-law/A-law."""
    return _RATE[normalize_format(fmt)]


def bytes_per_sample(fmt: FormatLike) -> int:
    """Bytes per (mono) sample: 2 for PCM16, 1 for G.711."""
    return _SAMPLE_BYTES[normalize_format(fmt)]


def bytes_per_ms(fmt: FormatLike) -> int:
    """Bytes per millisecond: 48 for PCM16 at 24 kHz, 8 for G.711 at 8 kHz."""
    name = normalize_format(fmt)
    return _RATE[name] // 1000 * _SAMPLE_BYTES[name]


def _valid() -> str:
    return (
        'use "audio/pcm" (PCM16 24 kHz), "audio/pcmu" (G.711 μ-law 8 kHz) or "audio/pcma" '
        '(G.711 A-law 8 kHz); beta names "pcm16", "g711_ulaw", "g711_alaw" also work'
    )
