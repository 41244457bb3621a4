"""Decoding container bytes (WAV, Ogg, WebM, FLAC, MP3, ...) with PyAV (FFmpeg).

``decode_container`` picks the demuxer (sniffed or forced), decodes the first audio stream
(``_parallel``), refuses audio with a hole in the middle, and assembles the rest (``_samples``).
A truncated file gives what can be decoded; if nothing can, AudioError.
"""

from __future__ import annotations

import io
import itertools

import av
import numpy as np

from ._errors import AudioError, check_rate
from ._parallel import decode_packets, ffmpeg_reason
from ._samples import Chunk, assemble, chunks_seconds
from ._sniff import FORCED_CONTAINERS, no_container_message, sniff_container
from ._types import Audio

__all__ = ["decode_container"]

_PROBED_FORMATS = {"mp3", "aac"}  # what an ID3 tag or an MPEG sync word may turn out to be


def decode_container(
    data: bytes, declared_rate: int | None, out_rate: int | None, container: str | None
) -> Audio:
    """Decode container bytes to mono int16 ``Audio`` at ``out_rate`` (or the file's own rate).

    ``container`` forces a family (a ``FORCED_CONTAINERS`` key) that the bytes must then start
    like; ``declared_rate``, if given, must equal the file's rate. Raises AudioError for empty,
    unknown, damaged or holed data, and for integer-scaled or non-finite float samples.
    """
    if not data:
        raise AudioError("No audio: the input is empty (0 bytes).")
    demuxer: str | None  # the FFmpeg demuxer to force (None: let FFmpeg probe)
    if container is not None:
        key = container.lower().lstrip(".")
        if key not in FORCED_CONTAINERS:
            raise AudioError(
                f"Unknown container {container!r}: use one of {sorted(FORCED_CONTAINERS)}."
            )
        family, demuxer = FORCED_CONTAINERS[key]
        sniffed = sniff_container(data[:16])
        if sniffed is not None and sniffed[0] != family:
            raise AudioError(f"container={container!r} was asked for, but the bytes start like "
                             f"{sniffed[0]}.")
        if sniffed is None:
            raise AudioError(f"container={container!r} was asked for, but the bytes do not start "
                             f"with a {family} header. " + no_container_message(data))
    else:
        sniffed = sniff_container(data[:16])
        if sniffed is None:
            raise AudioError(no_container_message(data))
        family, demuxer = sniffed

    chunks, native_rate, resampled = _demux_decode(data, family, demuxer, out_rate)
    if declared_rate is not None and check_rate(declared_rate) != native_rate:
        raise AudioError(
            f"The {family} data says {native_rate} Hz but sample_rate={declared_rate} was given; "
            "a container carries its own rate: leave sample_rate out (or fix the file)."
        )
    if resampled is not None and out_rate is not None:
        return Audio(resampled, out_rate)
    return assemble(chunks, native_rate, out_rate, family)


def _demux_decode(
    data: bytes, family: str, demuxer: str | None, out_rate: int | None
) -> tuple[list[Chunk], int, np.ndarray | None]:
    """Decode the first audio stream.

    Returns (mono chunks, rate of the first chunk, int16 samples already resampled to
    ``out_rate`` or None); see ``decode_packets``.
    """
    try:
        container = av.open(io.BytesIO(data), mode="r", format=demuxer)
    except av.error.FFmpegError as exc:
        raise AudioError(
            f"Cannot decode these {len(data)} bytes as {family}: {ffmpeg_reason(exc)}. The file "
            "is damaged or cut short before any audio (only the start of a recording, or a "
            "download that stopped early?)."
        ) from None
    with container:
        if family == "MP3" and container.format.name not in _PROBED_FORMATS:
            raise AudioError(f"Bytes starting like MP3 turned out to be {container.format.name!r}, "
                             "which is not an audio format this module decodes.")
        if not container.streams.audio:
            raise AudioError(f"The {family} data has no audio stream (only "
                             f"{[s.type for s in container.streams]}).")
        stream = container.streams.audio[0]
        segments = decode_packets(container, stream, out_rate)
    chunks: list[Chunk] = []
    failed_at: str | None = None  # first decode error not (yet) followed by good audio
    for item in itertools.chain.from_iterable(seg.items for seg in segments):
        if isinstance(item, Chunk):
            if failed_at is not None:
                raise AudioError(
                    f"The {family} data is corrupted in the middle: {failed_at}, yet audio "
                    "follows. Refusing to return audio with a hole; re-record or re-export the "
                    "file."
                )
            chunks.append(item)
        elif failed_at is None:
            failed_at = f"{item} (after {chunks_seconds(chunks):.2f} s)"
    if not chunks or not any(len(c.data) for c in chunks):
        raise AudioError(
            f"The {family} data holds no decodable audio"
            + (f" ({failed_at})" if failed_at else "")
            + ": it is empty, damaged, or cut short before the first complete audio frame."
        )
    pcm = [seg.pcm for seg in segments]
    if failed_at is None and len(pcm) > 1 and all(p is not None for p in pcm):
        return chunks, chunks[0].rate, np.concatenate(pcm)  # type: ignore[arg-type]
    return chunks, chunks[0].rate, None
