"""Recognising a container by its first bytes, and saying why unknown bytes cannot be decoded.

Bytes without a known header are refused, never guessed: raw samples must be declared
(``decode_raw`` or ``raw=``). ``no_container_message`` tells a later chunk of a MediaRecorder
recording or of an Ogg stream from raw samples, so the error says what to do.
"""

from __future__ import annotations

import re

__all__ = ["FORCED_CONTAINERS", "no_container_message", "sniff_container"]

# Container families by their first bytes -> (name for messages, demuxer to force or None).
_EBML = b"\x1a\x45\xdf\xa3"
_WEBM_CLUSTER = b"\x1f\x43\xb6\x75"

#: ``decode(container=...)`` names -> (family as ``sniff_container`` names it, demuxer to force).
FORCED_CONTAINERS = {
    "wav": ("WAV", "wav"),
    "ogg": ("Ogg", "ogg"),
    "webm": ("WebM/Matroska", "matroska"),
    "matroska": ("WebM/Matroska", "matroska"),
    "mkv": ("WebM/Matroska", "matroska"),
    "flac": ("FLAC", "flac"),
    "mp3": ("MP3", "mp3"),
}


def sniff_container(head: bytes) -> tuple[str, str | None] | None:
    """Name the container ``head`` (the first bytes of a file) starts with, or ``None``.

    Returns ``(family, demuxer)``: ``demuxer`` is the FFmpeg demuxer to force, or ``None`` when
    FFmpeg must probe (MP3/AAC behind an ID3 tag or an MPEG sync word).
    """
    if len(head) >= 12 and head[:4] in (b"RIFF", b"RIFX", b"RF64", b"BW64") and head[8:12] == (
        b"WAVE"
    ):
        return "WAV", "wav"
    if head.startswith(b"OggS"):
        return "Ogg", "ogg"
    if head.startswith(_EBML):
        return "WebM/Matroska", "matroska"
    if head.startswith(b"fLaC"):
        return "FLAC", "flac"
    if len(head) >= 12 and head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "AIFF", "aiff"
    if len(head) >= 8 and head[4:8] == b"ftyp":
        return "MP4/M4A", "mov"
    if head.startswith(b"caff"):
        return "CAF", "caf"
    if head.startswith(b"ID3"):
        return "MP3", None
    if len(head) >= 4 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06:
        return "MP3", None  # MPEG audio frame sync (layer bits set; ADTS AAC also matches)
    return None


def no_container_message(data: bytes) -> str:
    head = data[:4096]
    if _WEBM_CLUSTER in head or (b"OpusHead" not in head and _looks_like_webm_blocks(head)):
        hint = (
            "They look like a later chunk of a WebM/MediaRecorder recording: such a chunk has no "
            "header and cannot be decoded alone. Keep the recorder's first chunk and decode the "
            "chunks concatenated in order (b''.join(chunks))."
        )
    elif b"OggS" in head:
        hint = (
            "They contain Ogg pages but do not start with one: a later piece of an Ogg stream "
            "cannot be decoded without its first pages; concatenate from the start."
        )
    else:
        hint = (
            "If they are raw samples, declare them: decode_raw(data, sample_rate=24000, "
            "dtype='int16') (or dtype='float32', channels=2, ...). Raw PCM is never guessed."
        )
    return (
        f"Cannot decode {len(data)} bytes: they do not start with a known container header "
        f"(WAV, Ogg, WebM/Matroska, FLAC, MP3, AIFF, MP4, CAF). {hint}"
    )


# A Matroska SimpleBlock: ID 0xA3, a 1-4 byte size, track 1 (0x81), a 2-byte timecode, flags
# (0x80 keyframe or 0x00).
_SIMPLE_BLOCK = re.compile(
    rb"\xa3(?:[\x80-\xff]|[\x40-\x7f].|[\x20-\x3f]..|[\x10-\x1f]...)\x81..[\x00\x80]", re.DOTALL
)


def _looks_like_webm_blocks(head: bytes) -> bool:
    """True if ``head`` holds several Matroska SimpleBlocks: a chunk from inside a cluster."""
    return len(_SIMPLE_BLOCK.findall(head)) >= 2
