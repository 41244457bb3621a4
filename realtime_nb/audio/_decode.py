"""Decoding: containers (PyAV), raw PCM bytes (declared, never guessed) and numpy arrays.

Everything ends as an ``Audio`` (mono int16). Containers are recognised by their first bytes
(WAV/RF64, Ogg, WebM/Matroska, FLAC, MP3, AIFF, MP4/M4A, CAF); bytes without a known header are
refused, never guessed: raw samples must be declared with ``decode_raw`` (or ``raw=``).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import math
import os
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import IO, Any, Union

import av
import numpy as np

from ._errors import AudioError, check_rate
from ._resample import float_to_int16, resample_float, resample_int16
from ._types import Audio

__all__ = ["Source", "decode", "decode_raw", "from_array", "sniff_container"]

#: What ``decode`` and friends accept: an Audio, a numpy array (rate declared separately), a path,
#: bytes of a container file, or a binary file-like object.
Source = Union[Audio, np.ndarray, str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes]]

# Container families by their first bytes -> (name for messages, demuxer to force or None).
_EBML = b"\x1a\x45\xdf\xa3"
_WEBM_CLUSTER = b"\x1f\x43\xb6\x75"
_PROBED_FORMATS = {"mp3", "aac"}  # what an ID3 tag or an MPEG sync word may turn out to be


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


def _no_container_message(data: bytes) -> str:
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


def _read_bytes(source: Any) -> bytes:
    if isinstance(source, bytes):
        return source
    if isinstance(source, (bytearray, memoryview)):
        return memoryview(source).tobytes()
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            return path.read_bytes()
        except IsADirectoryError:
            raise AudioError(f"{str(path)!r} is a directory, not an audio file.") from None
        except OSError as exc:
            hint = ""
            if isinstance(source, str) and len(source) > 200:
                hint = (
                    " A long str is not a path: if it is base64 audio, decode it first "
                    "(base64.b64decode) and pass the bytes."
                )
            reason = "No such audio file" if isinstance(exc, FileNotFoundError) else (
                f"Cannot read the audio file ({exc.strerror or exc})")
            raise AudioError(f"{reason}: {str(source)[:120]!r}.{hint}") from None
    if hasattr(source, "read"):
        data = source.read()
        if isinstance(data, str):
            raise AudioError("The file object returned text: open audio files in binary mode "
                             "('rb').")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise AudioError(f"The file object's read() returned {type(data).__name__}, not "
                             "bytes.")
        return bytes(data)
    if isinstance(source, (list, tuple)):
        raise AudioError(
            "Got a Python list of samples: wrap it as a numpy array with an explicit dtype, "
            "e.g. decode(np.asarray(samples, dtype=np.int16), sample_rate=24000)."
        )
    raise AudioError(
        f"Cannot decode a {type(source).__name__}: pass a path, bytes of an audio file, a binary "
        "file object, a numpy array (with sample_rate) or an Audio."
    )


def decode(
    source: Source,
    sample_rate: int | None = None,
    *,
    raw: Any = None,
    channels: int | None = None,
    to_rate: int | None = None,
    container: str | None = None,
) -> Audio:
    """Decode ``source`` to mono int16 ``Audio``; at ``to_rate`` if given, else its own rate.

    ``source`` may be:
      - a path (``str``/``Path``), bytes-like or a binary file object holding a container file
        (WAV in any sample format, Ogg/Opus, Ogg/Vorbis, WebM/Opus as Chromium's MediaRecorder
        writes it — no duration, maybe a truncated tail —, FLAC, MP3, AIFF, M4A, CAF). A
        truncated file gives what can be decoded; if nothing can, AudioError;
      - raw PCM bytes, only if declared: ``raw="int16"`` (or ``"float32"``, ``"int32"``,
        ``"int24"``, ``"uint8"``, ...), with ``sample_rate`` and ``channels`` (default 1);
      - a numpy array of any common dtype with ``sample_rate`` (see ``from_array``);
      - an ``Audio`` (returned as is, or resampled).

    ``sample_rate`` declares the rate of sources that do not carry one; for a container it is
    optional and must then match the file's rate. Several channels are averaged to mono.
    ``container`` forces a container family ("wav", "ogg", "webm", "flac", "mp3").
    Raises AudioError for anything unusable, with what was wrong and what to do.
    """
    out_rate = None if to_rate is None else check_rate(to_rate, "to_rate")
    if isinstance(source, Audio):
        if sample_rate is not None and check_rate(sample_rate) != source.sample_rate:
            raise AudioError(
                f"This Audio is {source.sample_rate} Hz but sample_rate={sample_rate} was "
                "given: an Audio carries its own rate, leave sample_rate out."
            )
        return source if out_rate is None else source.resample(out_rate)
    if isinstance(source, np.ndarray):
        if raw is not None or channels is not None:
            raise AudioError("raw= and channels= describe bytes; a numpy array's dtype and "
                             "shape already say it.")
        return from_array(source, sample_rate, to_rate=out_rate)
    data = _read_bytes(source)
    if raw is not None:
        return decode_raw(data, sample_rate, raw, 1 if channels is None else channels,
                          to_rate=out_rate)
    if channels is not None:
        raise AudioError("channels= is only for raw PCM bytes (with raw=...); a container "
                         "says its own channel count.")
    return _decode_container(data, sample_rate, out_rate, container)


_FORCED = {
    "wav": ("WAV", "wav"),
    "ogg": ("Ogg", "ogg"),
    "webm": ("WebM/Matroska", "matroska"),
    "matroska": ("WebM/Matroska", "matroska"),
    "mkv": ("WebM/Matroska", "matroska"),
    "flac": ("FLAC", "flac"),
    "mp3": ("MP3", "mp3"),
}


def _decode_container(
    data: bytes, declared_rate: int | None, out_rate: int | None, container: str | None
) -> Audio:
    if not data:
        raise AudioError("No audio: the input is empty (0 bytes).")
    if container is not None:
        key = container.lower().lstrip(".")
        if key not in _FORCED:
            raise AudioError(f"Unknown container {container!r}: use one of {sorted(_FORCED)}.")
        family, demuxer = _FORCED[key]
        sniffed = sniff_container(data[:16])
        if sniffed is not None and sniffed[0] != family:
            raise AudioError(f"container={container!r} was asked for, but the bytes start like "
                             f"{sniffed[0]}.")
        if sniffed is None:
            raise AudioError(f"container={container!r} was asked for, but the bytes do not start "
                             f"with a {family} header. " + _no_container_message(data))
    else:
        sniffed = sniff_container(data[:16])
        if sniffed is None:
            raise AudioError(_no_container_message(data))
        family, demuxer = sniffed

    chunks, native_rate, resampled = _demux_decode(data, family, demuxer, out_rate)
    if declared_rate is not None and check_rate(declared_rate) != native_rate:
        raise AudioError(
            f"The {family} data says {native_rate} Hz but sample_rate={declared_rate} was given; "
            "a container carries its own rate: leave sample_rate out (or fix the file)."
        )
    if resampled is not None and out_rate is not None:
        return Audio(resampled, out_rate)
    return _assemble(chunks, native_rate, out_rate, family)


def _demux_decode(
    data: bytes, family: str, demuxer: str | None, out_rate: int | None
) -> tuple[list[_Chunk], int, np.ndarray | None]:
    """Decode the first audio stream.

    Returns (mono chunks, rate of the first chunk, int16 samples already resampled to
    ``out_rate`` or None); see ``_demux_and_decode_packets``.
    """
    try:
        container = av.open(io.BytesIO(data), mode="r", format=demuxer)
    except av.error.FFmpegError as exc:
        raise AudioError(
            f"Cannot decode these {len(data)} bytes as {family}: {_ffmpeg_reason(exc)}. The file "
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
        segments = _demux_and_decode_packets(container, stream, out_rate)
    chunks: list[_Chunk] = []
    failed_at: str | None = None  # first decode error not (yet) followed by good audio
    for item in itertools.chain.from_iterable(seg.items for seg in segments):
        if isinstance(item, _Chunk):
            if failed_at is not None:
                raise AudioError(
                    f"The {family} data is corrupted in the middle: {failed_at}, yet audio "
                    "follows. Refusing to return audio with a hole; re-record or re-export the "
                    "file."
                )
            chunks.append(item)
        elif failed_at is None:
            failed_at = f"{item} (after {_seconds(chunks):.2f} s)"
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


#: Opus streams at least this long are decoded in parallel segments (seconds).
PARALLEL_MIN_SECONDS = 8.0
#: Pre-roll decoded (and discarded) before each parallel Opus segment. RFC 7845 asks for at least
#: 80 ms for the decoder state to converge; measured at every cut point of Opus files at 32, 64
#: and 128 kb/s, 320 ms still left up to 9.5 16-bit steps of difference, 640 ms up to 3, and
#: 1 s at most 0.09 — so the result equals a sequential decode within one step after rounding.
OPUS_PREROLL_SECONDS = 1.0
#: Audio decoded past the end of a parallel segment, so that its resampling sees what follows
#: (soxr's filters span a few milliseconds).
RESAMPLE_GUARD_SECONDS = 0.1
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _decode_executor() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="realtime_nb-decode")
        return _executor


def _workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class _Segment:
    """What one decoder produced: frames (or error texts) and maybe its resampled int16 part."""

    __slots__ = ("items", "pcm")

    def __init__(self, items: list[_Chunk | str], pcm: np.ndarray | None = None) -> None:
        self.items = items
        self.pcm = pcm


def _demux_and_decode_packets(
    container: Any, stream: av.AudioStream, out_rate: int | None
) -> list[_Segment]:
    """Read every packet of ``stream`` and decode them into segments.

    Opus decoders forget their past within a few tens of milliseconds, so an Opus stream is
    decoded on several threads (FFmpeg releases the GIL while decoding): a leading decoder
    starts on the first packets while the demuxer is still reading; once the stream's length
    is known, a long stream (``PARALLEL_MIN_SECONDS``) is cut and the rest goes to other
    decoders, each starting ``OPUS_PREROLL_SECONDS`` early and dropping that pre-roll's output.
    With ``out_rate``, each segment of a cut stream is also resampled by its own thread, between
    guard bands of decoded audio on both sides (see ``_resample_segment``). Other codecs, and
    machines with one core, decode in this thread, in one pass.
    A truncated tail makes the demuxer fail: the packets read before it are kept.
    """
    ctx = stream.codec_context
    workers = min(_workers(), 4)
    packets: list[av.Packet] = []
    if ctx.name != "opus" or workers < 2 or not ctx.extradata:
        with contextlib.suppress(av.error.FFmpegError):
            for packet in container.demux(stream):
                if packet.size:
                    packets.append(packet)
        return [_decode_segment(ctx, [], packets, [], flush=True, out_rate=None)]
    executor = _decode_executor()
    leader = _Leader(ctx, out_rate)
    futures = [executor.submit(leader.run)]
    try:
        batch: list[av.Packet] = []
        with contextlib.suppress(av.error.FFmpegError):
            for packet in container.demux(stream):
                if packet.size:
                    packets.append(packet)
                    batch.append(packet)
                    if len(batch) == 64:
                        leader.feed(batch)
                        batch = []
        leader.feed(batch)
        seconds = _packets_seconds(stream, packets)
        if seconds < PARALLEL_MIN_SECONDS:
            leader.stop(packets, share=1.0, guard=0)
            return [futures[0].result()]
        parts = min(workers, max(2, int(seconds // (PARALLEL_MIN_SECONDS / 2))))
        roll = max(1, round(len(packets) * OPUS_PREROLL_SECONDS / seconds))
        guard = max(1, round(len(packets) * RESAMPLE_GUARD_SECONDS / seconds))
        cut = leader.stop(packets, share=1 / parts, guard=guard)
        bounds = [cut + (len(packets) - cut) * i // (parts - 1) for i in range(parts)]
        for i in range(parts - 1):
            start, stop = bounds[i], bounds[i + 1]
            seg_ctx = av.CodecContext.create("opus", "r")
            seg_ctx.extradata = ctx.extradata
            last = i == parts - 2
            futures.append(executor.submit(
                _decode_segment, seg_ctx, packets[max(0, start - roll):start],
                packets[start:stop], [] if last else packets[stop:stop + guard],
                flush=last, out_rate=out_rate))
        return [future.result() for future in futures]
    finally:
        # Whatever happened, no decoder may still run once the container closes.
        leader.stop(packets, share=1.0, guard=0)
        wait(futures)


class _Leader:
    """Decodes a stream from its first packet while the demuxer is still reading it."""

    def __init__(self, ctx: Any, out_rate: int | None) -> None:
        self._ctx = ctx
        self._out_rate = out_rate
        self._cond = threading.Condition()
        self._packets: list[av.Packet] = []  # fed by the demuxing thread
        self._taken = 0  # packets handed to the decoder so far
        self._limit: int | None = None  # where to stop; None while the demuxer still reads
        self._post: list[av.Packet] = []
        self._last = True

    def feed(self, batch: list[av.Packet]) -> None:
        with self._cond:
            self._packets.extend(batch)
            self._cond.notify()

    def stop(self, packets: list[av.Packet], *, share: float, guard: int) -> int:
        """Decide where the leading segment ends: after about ``share`` of what is left to
        decode, but never before what it already took. Returns that packet index."""
        with self._cond:
            if self._limit is None:
                left = len(packets) - self._taken
                self._limit = min(len(packets), self._taken + math.ceil(left * share))
                self._last = self._limit == len(packets)
                self._post = [] if self._last else packets[self._limit:self._limit + guard]
                self._cond.notify()
            return self._limit

    def _next_batch(self) -> list[av.Packet]:
        with self._cond:
            while self._limit is None and self._taken >= len(self._packets):
                self._cond.wait()
            end = len(self._packets) if self._limit is None else self._limit
            batch = self._packets[self._taken:min(end, self._taken + 16)]
            self._taken += len(batch)
            return batch

    def run(self) -> _Segment:
        items: list[_Chunk | str] = []
        while batch := self._next_batch():
            _decode_into(self._ctx, batch, items)
        if self._last:
            _decode_into(self._ctx, [None], items)  # flush
            return _Segment(items)  # the only or the final segment: resampled by the caller
        post = _decode_quietly(self._ctx, self._post)
        pcm = None if self._out_rate is None else _resample_segment(
            [], items, post, self._out_rate, last=False)
        return _Segment(items, pcm)


def _decode_segment(
    ctx: Any,
    preroll: list[av.Packet],
    packets: list[av.Packet],
    postroll: list[av.Packet],
    *,
    flush: bool,
    out_rate: int | None,
) -> _Segment:
    pre = _decode_quietly(ctx, preroll)  # warms the decoder up; kept as a resampling guard
    items: list[_Chunk | str] = []
    _decode_into(ctx, [*packets, None] if flush else packets, items)
    if out_rate is None:
        return _Segment(items)
    post = _decode_quietly(ctx, postroll)
    return _Segment(items, _resample_segment(pre, items, post, out_rate, last=flush))


def _decode_into(ctx: Any, packets: list[av.Packet | None], items: list[_Chunk | str]) -> None:
    """Decode ``packets`` (None flushes) onto ``items``: chunks, or a failed packet's error."""
    for packet in packets:
        try:
            frames = ctx.decode(packet)
        except av.error.FFmpegError as exc:
            items.append(_ffmpeg_reason(exc))
            continue
        items.extend(_frame_chunk(f) for f in frames)


def _decode_quietly(ctx: Any, packets: list[av.Packet]) -> list[_Chunk]:
    out: list[_Chunk] = []
    for packet in packets:
        with contextlib.suppress(av.error.FFmpegError):
            out.extend(_frame_chunk(f) for f in ctx.decode(packet))
    return out


def _resample_segment(
    pre: list[_Chunk], items: list[_Chunk | str], post: list[_Chunk], out_rate: int, *,
    last: bool
) -> np.ndarray | None:
    """Resample one segment to int16 at ``out_rate`` exactly as the whole stream would be.

    The resampler is linear and short (a few hundred samples), so resampling
    ``pre-roll + segment + post-roll`` and keeping the segment's part gives the samples a
    resampling of the whole stream gives — provided every cut falls on the resampling grid
    (a multiple of ``in_rate / gcd``). Returns None whenever that cannot be guaranteed (errors,
    odd formats, off-grid cuts, non-finite values): the caller then resamples the whole.
    """
    frames = [c for c in items if isinstance(c, _Chunk)]
    if not frames or len(frames) != len(items):
        return None  # a packet failed: the caller decides what that means
    rate = frames[0].rate
    if any(c.rate != rate or c.data.dtype != np.float32 for c in (*pre, *frames, *post)):
        return None
    g = math.gcd(rate, out_rate)
    step_in, step_out = rate // g, out_rate // g
    n_seg = sum(len(c.data) for c in frames)
    n_guard = sum(len(c.data) for c in pre)
    if not last and n_seg % step_in:
        return None
    skip = n_guard % step_in  # start the guard on the grid
    x = np.concatenate([c.data for c in (*pre, *frames, *post)])[skip:]
    if not np.isfinite(x).all() or _float_peak(x) > _FLOAT_PEAK_MAX:
        return None  # the caller's whole-stream path reports it
    y = resample_float(x, rate, out_rate)
    start = (n_guard - skip) // step_in * step_out
    stop = len(y) if last else start + n_seg // step_in * step_out
    return float_to_int16(y[start:stop])


def _packets_seconds(stream: av.AudioStream, packets: list[av.Packet]) -> float:
    if not packets or stream.time_base is None:
        return 0.0
    durations = [p.duration for p in packets[:50] if p.duration]
    if not durations:
        return 0.0
    return float(np.mean(durations) * len(packets) * stream.time_base)


class _Chunk:
    """Mono samples of one decoded frame, in their decoded dtype, with their rate."""

    __slots__ = ("data", "rate")

    def __init__(self, data: np.ndarray, rate: int) -> None:
        self.data = data
        self.rate = rate


_FRAME_DTYPES = {"u8": np.uint8, "s16": np.int16, "s32": np.int32, "s64": np.int64,
                 "flt": np.float32, "dbl": np.float64}


def _frame_chunk(frame: av.AudioFrame) -> _Chunk:
    fmt = frame.format
    dtype = _FRAME_DTYPES[fmt.packed.name]
    n = frame.samples
    ch = frame.layout.nb_channels
    planes = frame.planes
    if ch == 1:
        data = np.frombuffer(planes[0], dtype=dtype, count=n)
    elif fmt.is_planar:
        data = np.mean([_to_float(np.frombuffer(p, dtype=dtype, count=n)) for p in planes[:ch]],
                       axis=0, dtype=np.float32)
    else:
        inter = np.frombuffer(planes[0], dtype=dtype, count=n * ch).reshape(n, ch)
        data = _to_float(inter).mean(axis=1, dtype=np.float32)
    return _Chunk(data, frame.sample_rate)


def _to_float(x: np.ndarray) -> np.ndarray:
    """Scale any integer/float sample array to float32 in [-1, 1] (by its dtype's full scale)."""
    if x.dtype == np.float32:
        return x
    if x.dtype == np.float64 or x.dtype == np.float16:
        return x.astype(np.float32)
    if x.dtype == np.uint8:
        return (x.astype(np.float32) - 128.0) / np.float32(128.0)
    if x.dtype.kind == "u":
        half = float(2 ** (8 * x.dtype.itemsize - 1))
        return ((x.astype(np.float64) - half) / half).astype(np.float32)
    scale = float(2 ** (8 * x.dtype.itemsize - 1))
    if x.dtype.itemsize >= 4:
        return (x.astype(np.float64) / scale).astype(np.float32)
    return x.astype(np.float32) / np.float32(scale)


_FLOAT_PEAK_MAX = 2.0  # float audio beyond this is not "a little over full scale"


def _float_peak(x: np.ndarray) -> float:
    """Largest magnitude in a float array (no temporary the size of ``x``)."""
    return max(float(x.max()), -float(x.min())) if x.size else 0.0


def _check_float_scale(x: np.ndarray, what: str) -> None:
    """Refuse float samples that are integer-scaled (e.g. int16 values written as float).

    Clipping them to [-1, 1] would turn speech into a full-scale square wave: noise.
    """
    peak = _float_peak(x)
    if peak > _FLOAT_PEAK_MAX:
        where = f"The decoded {what} audio's float samples" if what else "Float samples"
        raise AudioError(
            f"{where} must be in [-1, 1], but these reach {peak:g}: they look "
            "integer-scaled. If they are 16-bit values stored as float, convert them with "
            ".astype(np.int16) (or write the file as 16-bit PCM); otherwise divide by their "
            "full scale first."
        )


def _seconds(chunks: list[_Chunk]) -> float:
    return sum(len(c.data) / c.rate for c in chunks)


def _ffmpeg_reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).split(":")[0] if text else type(exc).__name__


def _segments(chunks: list[_Chunk]) -> Iterator[tuple[int, list[np.ndarray]]]:
    """Group consecutive chunks of the same rate (chained streams may change rate)."""
    rate = chunks[0].rate
    group: list[np.ndarray] = []
    for c in chunks:
        if c.rate != rate:
            yield rate, group
            rate, group = c.rate, []
        group.append(c.data)
    yield rate, group


def _assemble(chunks: list[_Chunk], native_rate: int, out_rate: int | None, what: str) -> Audio:
    target = native_rate if out_rate is None else out_rate
    parts: list[np.ndarray] = []
    for rate, arrays in _segments(chunks):
        if all(a.dtype == np.int16 for a in arrays):
            x16 = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
            parts.append(resample_int16(x16, rate, target))
            continue
        # Decoded frames are ours: float_to_int16 may work in place on them.
        x = np.concatenate([_to_float(a) for a in arrays]) if len(arrays) > 1 else (
            _to_float(arrays[0]))
        if not np.isfinite(x).all():
            raise AudioError(f"The decoded {what} audio contains NaN or infinite samples: the "
                             "file is damaged (or was written from broken float data).")
        if any(a.dtype.kind == "f" for a in arrays):
            _check_float_scale(x, what)
        parts.append(float_to_int16(resample_float(x, rate, target)))
    samples = parts[0] if len(parts) == 1 else np.concatenate(parts)
    return Audio(np.ascontiguousarray(samples, dtype=np.int16), target)


# --------------------------------------------------------------------------- numpy arrays

_MAX_CHANNELS = 32


def from_array(
    samples: np.ndarray, sample_rate: int | None, *, to_rate: int | None = None
) -> Audio:
    """Convert a numpy array of samples recorded at ``sample_rate`` to mono int16 ``Audio``.

    Dtypes: float16/32/64 are taken as full scale [-1, 1] (values a little beyond are clipped;
    a peak above 2 is refused as probably integer-scaled); int8, int16, int32, int64 and the
    unsigned ones (uint8 as in 8-bit WAV, centred at 128) are scaled by their dtype's full
    range. An int32/int64 array whose values all fit in int16 is refused, because its dtype says
    "32-bit" while its values say "16-bit": say which with ``.astype(np.int16)``.
    Shapes: 1-D, or 2-D ``(samples, channels)`` / ``(channels, samples)`` (the short axis is the
    channels one), averaged to mono. NaN or infinite values, bool, complex and object arrays,
    and empty arrays raise AudioError. The result never shares memory with ``samples``.
    """
    return _from_array(samples, sample_rate, to_rate, check_wide_ints=True)


def _from_array(
    samples: np.ndarray,
    sample_rate: int | None,
    to_rate: int | None,
    *,
    check_wide_ints: bool,
    channel_axis: int | None = None,
) -> Audio:
    rate = check_rate(sample_rate)
    out_rate = rate if to_rate is None else check_rate(to_rate, "to_rate")
    arr = np.asarray(samples)
    kind = arr.dtype.kind
    if kind not in "iuf" or arr.dtype.itemsize > 8:
        raise AudioError(
            f"Unsupported sample dtype {arr.dtype}: use int16 (PCM16), float32 in [-1, 1], or "
            "another integer/float dtype."
        )
    if arr.size == 0:
        raise AudioError("No audio: the array is empty.")
    if arr.dtype.byteorder not in ("=", "|"):
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if kind == "f":
        if not np.isfinite(arr).all():
            bad = int((~np.isfinite(arr)).sum())
            raise AudioError(f"The samples contain {bad} NaN or infinite value(s): fix the source "
                             "(e.g. np.nan_to_num) before converting.")
        _check_float_scale(arr, "")
    elif check_wide_ints and arr.dtype.itemsize >= 4:
        bits = 8 * arr.dtype.itemsize - 1
        centred = arr.astype(np.float64) - (2.0**bits if kind == "u" else 0.0)
        peak_int = int(np.abs(centred).max())
        if 0 < peak_int < 2**15:
            level = 20 * np.log10(peak_int / 2.0**bits)
            raise AudioError(
                f"These {arr.dtype} samples all fit in 16 bits (peak {peak_int}): read as "
                f"{arr.dtype} audio they would be {level:.0f} dBFS, near silence. If they are "
                "16-bit samples, pass arr.astype(np.int16); if they really are that quiet, "
                "scale them up first."
            )
    mono = _downmix_shape(arr, channel_axis)
    if mono.dtype == np.int16:
        if out_rate == rate:
            return Audio(np.array(mono, dtype=np.int16, copy=True), rate)
        return Audio(resample_int16(mono, rate, out_rate), out_rate)
    x = _to_float(mono)
    if x is mono or not x.flags.writeable:
        x = x.copy()  # float_to_int16 works in place; never touch the caller's array
    return Audio(float_to_int16(resample_float(x, rate, out_rate)), out_rate)


def _downmix_shape(arr: np.ndarray, channel_axis: int | None = None) -> np.ndarray:
    if arr.ndim == 1:
        return arr
    if arr.ndim != 2:
        raise AudioError(f"Expected a 1-D (mono) or 2-D (multi-channel) array, got shape "
                         f"{arr.shape}.")
    rows, cols = arr.shape
    if channel_axis is not None:
        axis = channel_axis
    elif cols == 1 or (cols <= _MAX_CHANNELS and rows > cols):
        axis = 1  # (samples, channels)
    elif rows == 1 or (rows <= _MAX_CHANNELS and cols > rows):
        axis = 0  # (channels, samples)
    else:
        raise AudioError(
            f"Cannot tell the channel axis of shape {arr.shape}: pass a 1-D mono array, or "
            "(samples, channels) with at most 32 channels."
        )
    if arr.shape[axis] == 1:
        return arr.reshape(-1)
    return _to_float(arr).mean(axis=axis, dtype=np.float32)


# --------------------------------------------------------------------------- raw PCM bytes

_RAW_DTYPES = {
    "int16": "<i2", "s16le": "<i2", "pcm16": "<i2", "s16": "<i2",
    "int16be": ">i2", "s16be": ">i2",
    "float32": "<f4", "f32le": "<f4", "flt": "<f4", "float": "<f4",
    "float32be": ">f4", "f32be": ">f4",
    "float64": "<f8", "f64le": "<f8", "dbl": "<f8",
    "int32": "<i4", "s32le": "<i4", "s32": "<i4",
    "int24": "int24", "s24le": "int24",
    "int8": "i1", "s8": "i1",
    "uint8": "u1", "u8": "u1",
}


def _raw_dtype(dtype: Any) -> str:
    if isinstance(dtype, str) and dtype.lower() in _RAW_DTYPES:
        return _RAW_DTYPES[dtype.lower()]
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.kind not in "iuf" or dt.itemsize > 8:
        raise AudioError(f"Unknown raw sample dtype {dtype!r}: use one of "
                         f"{sorted(set(_RAW_DTYPES))} or a numpy int/float dtype.")
    return dt.str if dt.itemsize > 1 else dt.str[1:]


def decode_raw(
    data: bytes | bytearray | memoryview,
    sample_rate: int | None,
    dtype: Any = "int16",
    channels: int = 1,
    *,
    to_rate: int | None = None,
) -> Audio:
    """Decode headerless PCM bytes whose layout the caller declares (nothing is guessed).

    ``dtype``: ``"int16"`` (PCM16 little-endian, the default), ``"float32"``, ``"float64"``,
    ``"int32"``, ``"int24"`` (3-byte packed), ``"int8"``, ``"uint8"``, big-endian variants
    (``"int16be"``, ``"float32be"``) or any numpy dtype. ``channels`` are interleaved and get
    averaged to mono. The length must be whole frames (``itemsize * channels``).
    Declared ``int16`` data that really holds float32 samples — the commonest mistake with the
    Realtime API — is refused with a message saying so.
    """
    rate = check_rate(sample_rate)
    if isinstance(channels, bool) or not isinstance(channels, int) or not 1 <= channels <= 32:
        raise AudioError(f"channels must be an int in 1..32, got {channels!r}.")
    buf = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    n = len(buf)
    if n == 0:
        raise AudioError("No audio: the raw data is empty (0 bytes).")
    code = _raw_dtype(dtype)
    itemsize = 3 if code == "int24" else np.dtype(code).itemsize
    frame = itemsize * channels
    if n % frame:
        raise AudioError(
            f"{n} bytes is not a whole number of {frame}-byte frames ({channels} channel(s) of "
            f"{itemsize}-byte {dtype}): the data is cut mid-sample, or the dtype/channels are "
            "wrong."
        )
    if code == "int24":
        b = np.frombuffer(buf, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        arr = (b[:, 0] << 8) | (b[:, 1] << 16) | (b[:, 2] << 24)  # sign lands in bit 31
    else:
        arr = np.frombuffer(buf, dtype=code)
        if code == "<i2" and channels == 1:
            from ._diagnose import looks_like_float32

            if looks_like_float32(buf):
                raise AudioError(
                    "These bytes were declared int16 (PCM16) but hold float32 samples (values "
                    "in [-1, 1] with the float bit pattern). Decode them with dtype='float32' "
                    "(or convert: (np.clip(x, -1, 1) * 32767).astype('<i2'))."
                )
    if channels > 1:
        arr = arr.reshape(-1, channels)
    return _from_array(arr, rate, to_rate, check_wide_ints=code != "int24",
                       channel_axis=1 if channels > 1 else None)
