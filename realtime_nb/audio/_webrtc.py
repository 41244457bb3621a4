"""Audio on WebRTC tracks: Opus's 48 kHz, in 20 ms frames, paced at real time.

Shared by every peer realtime_nb runs — the kernel's call (:class:`~realtime_nb.client.webrtc.
KernelCall`), the local server's side of a call (:mod:`realtime_nb.server.webrtc`) and the
tests' caller — so that each builds, encodes, paces and reads frames alike. PyAV (``av``) is a
core dependency; aiortc, which consumes these frames, is the ``webrtc`` extra.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from typing import Any

import numpy as np

__all__ = ["FRAME", "RATE", "FramePacer", "frame_of", "mono_float", "opus_encoder"]

#: Opus's native rate, the rate of every outgoing track (Hz).
RATE = 48_000
#: Samples in one 20 ms frame at ``RATE``.
FRAME = 960
#: A track this far behind its clock (the event loop stalled) restarts the clock rather than
#: sending the missed frames in a burst (seconds).
STALL_S = 0.2


class FramePacer:
    """The clock of an outgoing track: ``await next_pts()`` before producing each frame.

    The first call returns 0 at once; each later one returns the next frame's ``pts`` (in
    samples at ``RATE``) once its time has come, so frames leave at real-time pace as a
    microphone's would, whatever the consumer's pulling rhythm.
    """

    def __init__(self) -> None:
        self._start: float | None = None
        self.pts = 0

    async def next_pts(self) -> int:
        now = time.monotonic()
        if self._start is None:
            self._start = now
            return self.pts
        self.pts += FRAME
        wait = self._start + self.pts / RATE - now
        if wait > 0:
            await asyncio.sleep(wait)
        elif wait < -STALL_S:
            self._start = now - self.pts / RATE
        return self.pts


def frame_of(samples: np.ndarray, pts: int, *, stereo: bool = False) -> Any:
    """An ``av.AudioFrame`` of mono int16 ``samples`` at ``RATE``, stamped ``pts``.

    ``stereo=True`` gives the same samples on both channels (packed ``s16`` stereo): use it for
    a track that aiortc encodes. aiortc's Opus encoder first converts every frame to stereo, and
    FFmpeg upmixes mono at the centre level (−3 dB), so a mono frame would reach the other side
    at 0.71 of its level; a stereo frame passes unchanged. Our own encoder
    (:func:`opus_encoder`) takes the mono frame as it is.
    """
    from av import AudioFrame

    if stereo:
        out = AudioFrame.from_ndarray(np.repeat(samples, 2).reshape(1, -1), format="s16",
                                      layout="stereo")
    else:
        out = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    out.sample_rate = RATE
    out.pts = pts
    out.time_base = fractions.Fraction(1, RATE)
    return out


def opus_encoder() -> Any:
    """A libopus encoder (``av.CodecContext``) for mono int16 frames at ``RATE``: 48 kb/s,
    tuned for voice."""
    from av import CodecContext

    codec = CodecContext.create("libopus", "w")
    codec.bit_rate = 48_000
    codec.format = "s16"
    codec.layout = "mono"
    codec.sample_rate = RATE
    codec.time_base = fractions.Fraction(1, RATE)
    codec.options = {"application": "voip"}
    return codec


def mono_float(frame: Any) -> np.ndarray:
    """A received (decoded) 16-bit frame as mono float32 samples in [-1, 1), channels
    averaged; ValueError for any other sample format."""
    if frame.format.name not in ("s16", "s16p"):
        raise ValueError(f"unexpected decoded audio format {frame.format.name}")
    pcm = frame.to_ndarray()
    channels = len(frame.layout.channels)
    samples = pcm.reshape(-1, channels) if frame.format.is_packed else pcm.T
    if channels == 1:
        return samples.reshape(-1).astype(np.float32) / 32768.0
    return samples.astype(np.float32).mean(axis=1) / 32768.0
