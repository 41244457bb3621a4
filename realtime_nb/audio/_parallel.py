"""Decoding a stream's packets: in one pass, or long Opus streams in parallel segments.

``decode_packets`` reads every packet of an audio stream and returns ``Segment``s of decoded
chunks (or a failed packet's error text). Only Opus on a machine with two or more cores takes
the parallel path; the constants below say when and how it cuts, and ``_resample_segment`` why
the segments' resampled parts equal a resampling of the whole stream.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

import av
import numpy as np

from ._resample import float_to_int16, resample_float
from ._samples import FLOAT_PEAK_MAX, Chunk, float_peak, frame_chunk

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "OPUS_PREROLL_SECONDS",
    "PARALLEL_MIN_SECONDS",
    "RESAMPLE_GUARD_SECONDS",
    "Segment",
    "decode_packets",
    "ffmpeg_reason",
]

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


class Segment:
    """What one decoder produced: frames (or error texts) and maybe its resampled int16 part."""

    __slots__ = ("items", "pcm")

    def __init__(self, items: list[Chunk | str], pcm: np.ndarray | None = None) -> None:
        self.items = items
        self.pcm = pcm


def decode_packets(
    container: Any, stream: av.AudioStream, out_rate: int | None
) -> list[Segment]:
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

    def run(self) -> Segment:
        items: list[Chunk | str] = []
        while batch := self._next_batch():
            _decode_into(self._ctx, batch, items)
        if self._last:
            _decode_into(self._ctx, [None], items)  # flush
            return Segment(items)  # the only or the final segment: resampled by the caller
        post = _decode_quietly(self._ctx, self._post)
        pcm = None if self._out_rate is None else _resample_segment(
            [], items, post, self._out_rate, last=False)
        return Segment(items, pcm)


def _decode_segment(
    ctx: Any,
    preroll: list[av.Packet],
    packets: list[av.Packet],
    postroll: list[av.Packet],
    *,
    flush: bool,
    out_rate: int | None,
) -> Segment:
    pre = _decode_quietly(ctx, preroll)  # warms the decoder up; kept as a resampling guard
    items: list[Chunk | str] = []
    _decode_into(ctx, [*packets, None] if flush else packets, items)
    if out_rate is None:
        return Segment(items)
    post = _decode_quietly(ctx, postroll)
    return Segment(items, _resample_segment(pre, items, post, out_rate, last=flush))


def _decode_into(ctx: Any, packets: Sequence[av.Packet | None], items: list[Chunk | str]
                 ) -> None:
    """Decode ``packets`` (None flushes) onto ``items``: chunks, or a failed packet's error."""
    for packet in packets:
        try:
            frames = ctx.decode(packet)
        except av.error.FFmpegError as exc:
            items.append(ffmpeg_reason(exc))
            continue
        items.extend(frame_chunk(f) for f in frames)


def _decode_quietly(ctx: Any, packets: list[av.Packet]) -> list[Chunk]:
    out: list[Chunk] = []
    for packet in packets:
        with contextlib.suppress(av.error.FFmpegError):
            out.extend(frame_chunk(f) for f in ctx.decode(packet))
    return out


def _resample_segment(
    pre: list[Chunk], items: list[Chunk | str], post: list[Chunk], out_rate: int, *,
    last: bool
) -> np.ndarray | None:
    """Resample one segment to int16 at ``out_rate`` exactly as the whole stream would be.

    The resampler is linear and short (a few hundred samples), so resampling
    ``pre-roll + segment + post-roll`` and keeping the segment's part gives the samples a
    resampling of the whole stream gives — provided every cut falls on the resampling grid
    (a multiple of ``in_rate / gcd``). Returns None whenever that cannot be guaranteed (errors,
    odd formats, off-grid cuts, non-finite values): the caller then resamples the whole.
    """
    frames = [c for c in items if isinstance(c, Chunk)]
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
    if not np.isfinite(x).all() or float_peak(x) > FLOAT_PEAK_MAX:
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
    # ignored: numpy's stubs lack floating * Fraction; Fraction.__rmul__ makes it a float
    return float(np.mean(durations) * len(packets) * stream.time_base)  # type: ignore[operator]


def ffmpeg_reason(exc: Exception) -> str:
    """The short reason of an FFmpeg error ("Invalid data found when processing input")."""
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).split(":")[0] if text else type(exc).__name__
