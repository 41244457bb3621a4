"""realtime_nb.audio: the only place audio is decoded, resampled, encoded, chunked and diagnosed.

(Initial minimal version: ``Audio`` and ``StreamResampler``; the full contract is built in issue #2.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr

__all__ = ["Audio", "AudioError", "StreamResampler"]


class AudioError(ValueError):
    """Raised for anything that is not usable audio; the message says what was wrong and what to do."""


@dataclass(frozen=True, eq=False)
class Audio:
    """Mono PCM16 samples that always carry their sample rate.

    ``samples`` is a 1-D ``int16`` numpy array; ``sample_rate`` is in Hz.
    """

    samples: np.ndarray
    sample_rate: int

    def __post_init__(self) -> None:
        if self.samples.dtype != np.int16 or self.samples.ndim != 1:
            raise AudioError("Audio.samples must be a 1-D int16 array (mono PCM16).")
        if not 1000 <= int(self.sample_rate) <= 384_000:
            raise AudioError(f"Absurd sample rate {self.sample_rate!r} Hz.")

    @classmethod
    def from_pcm16(cls, data: bytes, sample_rate: int = 24_000) -> Audio:
        """Wrap raw PCM16 little-endian mono bytes."""
        if len(data) % 2:
            raise AudioError("PCM16 data has an odd number of bytes.")
        return cls(np.frombuffer(data, dtype="<i2").astype(np.int16), sample_rate)

    @property
    def duration_ms(self) -> float:
        return len(self.samples) * 1000.0 / self.sample_rate

    def to_pcm16(self) -> bytes:
        """Raw PCM16 little-endian bytes at this object's own rate."""
        return self.samples.astype("<i2").tobytes()

    def to_float32(self) -> np.ndarray:
        return self.samples.astype(np.float32) / 32768.0

    def resample(self, sample_rate: int) -> Audio:
        """Return this audio at ``sample_rate`` (soxr, high quality)."""
        if sample_rate == self.sample_rate:
            return self
        out = soxr.resample(self.samples, self.sample_rate, sample_rate, quality="HQ")
        return Audio(np.asarray(out, dtype=np.int16), sample_rate)


class StreamResampler:
    """Stateful resampler for audio that arrives in chunks (never resample chunks independently).

    ``process(int16 or float32 array) -> float32 array`` at ``out_rate``; call ``flush()`` at the end.
    """

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._rs = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality="HQ")

    def process(self, samples: np.ndarray) -> np.ndarray:
        x = samples.astype(np.float32) / 32768.0 if samples.dtype == np.int16 else samples
        return self._rs.resample_chunk(np.ascontiguousarray(x, dtype=np.float32), last=False)

    def flush(self) -> np.ndarray:
        return self._rs.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
