"""Exact, model-free stand-ins for driving :class:`~realtime_nb.protocol.SessionCore` in tests.

``FakeVad`` calls a 32 ms frame speech (1.0) when its mean magnitude exceeds 1000 and silence
(0.0) otherwise, so VAD timings in a test follow from the audio to the frame; ``tone`` and
``silence`` make such audio.
"""

from __future__ import annotations

import numpy as np
from audio_fixtures import tone_pcm16

FRAME = 768  # 32 ms at 24 kHz


class _Stream:
    """1.0 for a loud 32 ms frame, 0.0 for a quiet one: exact VAD timings."""

    frame_ms = 32.0

    def __init__(self) -> None:
        self.rest = np.zeros(0, np.int16)

    def process(self, samples: np.ndarray) -> np.ndarray:
        x = np.concatenate([self.rest, samples])
        n = len(x) // FRAME
        self.rest = x[n * FRAME:]
        frames = x[: n * FRAME].reshape(n, FRAME).astype(np.float32)
        return (np.abs(frames).mean(axis=1) > 1000).astype(np.float32)


class FakeVad:
    """A VAD model whose streams are :class:`_Stream`."""

    def new_stream(self, sample_rate: int = 24000) -> _Stream:
        return _Stream()


def tone(ms: int) -> bytes:
    """``ms`` of a 440 Hz tone as PCM16 24 kHz (loud: speech to :class:`FakeVad`)."""
    return tone_pcm16(440, ms, 24_000, amp=10_000 / 32768)


def silence(ms: int) -> bytes:
    """``ms`` of digital silence as PCM16 24 kHz."""
    return b"\0\0" * (ms * 24)
