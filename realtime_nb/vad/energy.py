"""EnergyVAD: a loudness-based stand-in for Silero when onnxruntime is unavailable.

It only tells silence from sound: music, noise, typing and breathing all count as "speech" once
they are loud enough. Use it to keep the local server working, never to judge VAD settings.

The probability of a frame is its RMS level in dBFS mapped linearly onto ``[0, 1]``: at or below
``silence_dbfs`` it is 0, at or above ``sound_dbfs`` it is 1; the default threshold 0.5 therefore
sits halfway, at -45 dBFS. Frames are ``frame_ms`` long on the input's own sample rate (no
resampling); at rates where a frame is not a whole number of samples, frame boundaries are
rounded down sample positions of the exact ``i * frame_ms`` grid, so the timeline never drifts.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["EnergyStream", "EnergyVAD"]


class EnergyStream:
    """Incremental loudness probabilities for one stream (see :class:`SpeechStream`)."""

    def __init__(self, model: EnergyVAD, sample_rate: int) -> None:
        if not isinstance(sample_rate, int) or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive int, got {sample_rate!r}")
        self._model = model
        self.sample_rate = sample_rate
        self.frame_ms: float = float(model.frame_ms)
        self.reset()

    @property
    def frames_done(self) -> int:
        return self._frames_done

    def reset(self) -> None:
        self._pending = np.zeros(0, dtype=np.int16)
        self._consumed = 0  # samples already turned into frames
        self._frames_done = 0
        self._finished = False

    def _boundary(self, frame: int) -> int:
        """Sample index where frame ``frame`` starts."""
        return frame * self._model.frame_ms * self.sample_rate // 1000

    def process(self, samples: np.ndarray) -> np.ndarray:
        if self._finished:
            raise RuntimeError("This stream was flushed; call reset() before feeding more audio.")
        if not isinstance(samples, np.ndarray) or samples.dtype != np.int16 or samples.ndim != 1:
            raise TypeError("SpeechStream.process() takes a 1-D int16 numpy array (mono PCM16).")
        if len(samples):
            self._pending = np.concatenate([self._pending, samples])
        available = self._consumed + len(self._pending)
        edges = [self._boundary(self._frames_done)]
        while (nxt := self._boundary(self._frames_done + len(edges))) <= available:
            edges.append(nxt)
        n = len(edges) - 1
        if n == 0:
            return np.zeros(0, dtype=np.float32)
        starts = np.asarray(edges[:-1], dtype=np.int64) - self._consumed
        ends = np.asarray(edges[1:], dtype=np.int64) - self._consumed
        x = self._pending.astype(np.int64)
        sq = np.concatenate([[0], np.cumsum(x * x)])  # exact integers: chunking cannot matter
        mean_sq = (sq[ends] - sq[starts]) / (ends - starts)
        probs = self._model.probability(mean_sq)
        used = int(ends[-1])
        self._pending = self._pending[used:].copy()
        self._consumed += used
        self._frames_done += n
        return probs

    def flush(self) -> np.ndarray:
        """No look-ahead to release: returns an empty array and closes the stream."""
        self._finished = True
        return np.zeros(0, dtype=np.float32)


class EnergyVAD:
    """Loudness "VAD" implementing :class:`SpeechModel` — tells silence from sound only.

    ``silence_dbfs`` → probability 0, ``sound_dbfs`` → probability 1, linear in between.
    ``frame_ms`` is a whole number of milliseconds (32 by default, like Silero, so the same
    segmenter settings mean the same timing).
    """

    name = "energy"

    def __init__(
        self, silence_dbfs: float = -60.0, sound_dbfs: float = -30.0, frame_ms: int = 32
    ) -> None:
        if not (math.isfinite(silence_dbfs) and math.isfinite(sound_dbfs)):
            raise ValueError("silence_dbfs and sound_dbfs must be finite numbers.")
        if not silence_dbfs < sound_dbfs <= 0:
            raise ValueError("Need silence_dbfs < sound_dbfs <= 0 dBFS.")
        if not isinstance(frame_ms, int) or isinstance(frame_ms, bool) or frame_ms <= 0:
            raise ValueError(f"frame_ms must be a positive whole number of ms, got {frame_ms!r}")
        self.silence_dbfs = float(silence_dbfs)
        self.sound_dbfs = float(sound_dbfs)
        self.frame_ms = frame_ms

    def new_stream(self, sample_rate: int = 24_000) -> EnergyStream:
        return EnergyStream(self, sample_rate)

    def probability(self, mean_square: np.ndarray) -> np.ndarray:
        """Map mean squared int16 amplitude per frame to a probability (``float32``)."""
        with np.errstate(divide="ignore"):
            dbfs = 10.0 * np.log10(np.asarray(mean_square, dtype=np.float64) / 32768.0**2)
        scaled = (dbfs - self.silence_dbfs) / (self.sound_dbfs - self.silence_dbfs)
        return np.clip(scaled, 0.0, 1.0).astype(np.float32)
