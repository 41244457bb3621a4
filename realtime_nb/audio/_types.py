"""``Audio``: mono PCM16 samples that always travel with their sample rate."""

from __future__ import annotations

import io
import math
import wave
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ._errors import AudioError, check_rate
from ._resample import resample_int16

if TYPE_CHECKING:
    from ._decode import Source

__all__ = ["Audio", "dbfs"]


def dbfs(linear: float) -> float:
    """Convert a linear level (1.0 = full scale) to dBFS; 0 gives ``-inf``."""
    return 20.0 * math.log10(linear) if linear > 0 else -math.inf


@dataclass(frozen=True, eq=False, repr=False)
class Audio:
    """Mono PCM16 samples that always carry their sample rate.

    ``samples`` is a 1-D ``int16`` numpy array (treat it as read-only: Audio objects are shared);
    ``sample_rate`` is in Hz. Build one with ``Audio.from_pcm16`` (raw wire bytes),
    ``Audio.decode`` (files, containers, numpy arrays of any dtype) or ``Audio.silence``.
    ``len(audio)`` is the number of samples. Levels (``rms``, ``peak``) are linear, 1.0 = full
    scale (32768), with ``*_dbfs`` twins.
    """

    samples: np.ndarray
    sample_rate: int

    def __post_init__(self) -> None:
        s = self.samples
        if not isinstance(s, np.ndarray) or s.dtype != np.int16 or s.ndim != 1:
            got = f"{s.dtype} array of shape {s.shape}" if isinstance(s, np.ndarray) else type(s)
            raise AudioError(
                f"Audio.samples must be a 1-D int16 array (mono PCM16), got {got}; "
                "use Audio.decode(array, sample_rate) to convert other dtypes or shapes."
            )
        object.__setattr__(self, "sample_rate", check_rate(self.sample_rate))

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_pcm16(cls, data: bytes | bytearray | memoryview, sample_rate: int = 24_000) -> Audio:
        """Wrap raw PCM16 little-endian mono bytes (no header) recorded at ``sample_rate``.

        Nothing is checked beyond the length (use ``diagnose`` for float32-as-PCM16 and friends).
        """
        n = memoryview(data).nbytes
        if n % 2:
            raise AudioError(
                f"PCM16 data has an odd number of bytes ({n}): a sample was split; "
                "append whole 2-byte samples (or keep the odd byte for the next chunk)."
            )
        return cls(np.frombuffer(data, dtype="<i2").astype(np.int16), sample_rate)

    @classmethod
    def silence(cls, duration_ms: float, sample_rate: int = 24_000) -> Audio:
        """``duration_ms`` of digital silence (rounded to whole samples)."""
        rate = check_rate(sample_rate)
        if not duration_ms >= 0:
            raise AudioError(f"duration_ms must be >= 0, got {duration_ms!r}.")
        return cls(np.zeros(round(duration_ms * rate / 1000), dtype=np.int16), rate)

    @classmethod
    def decode(cls, source: Source, sample_rate: int | None = None, **options: Any) -> Audio:
        """Decode anything ``realtime_nb.audio.decode`` accepts, keeping the source's own rate.

        ``sample_rate`` is the rate of a source that cannot carry one (numpy arrays, raw bytes);
        ``options`` are passed on (``raw=``, ``channels=``, ``to_rate=``).
        """
        from ._decode import decode

        return decode(source, sample_rate, **options)

    @classmethod
    def from_wav(cls, data: bytes | bytearray | memoryview) -> Audio:
        """Decode WAV bytes of any common sample format (downmixed to mono, own rate kept)."""
        from ._decode import decode

        return decode(bytes(data), container="wav")

    @classmethod
    def concat(cls, parts: Iterable[Audio], sample_rate: int | None = None) -> Audio:
        """Join ``parts`` in order; they must share one rate (give ``sample_rate`` if empty)."""
        items = list(parts)
        if not items:
            if sample_rate is None:
                raise AudioError("Audio.concat of nothing needs sample_rate= to know the rate.")
            return cls(np.zeros(0, dtype=np.int16), sample_rate)
        rate = items[0].sample_rate if sample_rate is None else check_rate(sample_rate)
        rates = sorted({a.sample_rate for a in items})
        if rates != [rate]:
            raise AudioError(
                f"Audio.concat needs one sample rate, got {rates} Hz (wanted {rate}); "
                "call .resample(rate) on the odd ones first."
            )
        return cls(np.concatenate([a.samples for a in items]), rate)

    # ----------------------------------------------------------------- properties
    def __len__(self) -> int:
        return int(self.samples.shape[0])

    def __repr__(self) -> str:
        return f"Audio({self.duration_ms:.1f} ms, {self.sample_rate} Hz, {len(self)} samples)"

    @property
    def duration_ms(self) -> float:
        """Duration in milliseconds (samples / rate)."""
        return len(self.samples) * 1000.0 / self.sample_rate

    @property
    def peak(self) -> float:
        """Largest absolute sample, linear: 1.0 is full scale (|-32768|), 0.0 for silence."""
        if not len(self.samples):
            return 0.0
        return float(np.abs(self.samples.astype(np.int32)).max()) / 32768.0

    @property
    def rms(self) -> float:
        """Root mean square level, linear (a full-scale sine is about 0.707)."""
        if not len(self.samples):
            return 0.0
        x = self.samples.astype(np.float64)
        return float(np.sqrt(np.dot(x, x) / len(x))) / 32768.0

    @property
    def peak_dbfs(self) -> float:
        """Peak level in dBFS (0 = full scale, ``-inf`` for digital silence)."""
        return dbfs(self.peak)

    @property
    def rms_dbfs(self) -> float:
        """RMS level in dBFS (a full-scale sine is about -3 dBFS; ``-inf`` for silence)."""
        return dbfs(self.rms)

    # ----------------------------------------------------------------- conversion
    def to_pcm16(self) -> bytes:
        """Raw PCM16 little-endian bytes at this object's own rate (resample first if needed)."""
        return self.samples.astype("<i2", copy=False).tobytes()

    def to_float32(self) -> np.ndarray:
        """Samples as float32 in [-1, 1): ``int16 / 32768`` (exactly invertible)."""
        return self.samples.astype(np.float32) / np.float32(32768.0)

    def resample(self, sample_rate: int) -> Audio:
        """Return this audio at ``sample_rate`` (soxr, high quality); ``self`` if already there."""
        rate = check_rate(sample_rate)
        if rate == self.sample_rate:
            return self
        return Audio(resample_int16(self.samples, self.sample_rate, rate), rate)

    def slice_ms(self, start_ms: float = 0.0, end_ms: float | None = None) -> Audio:
        """The part from ``start_ms`` to ``end_ms`` (default: the end), in whole samples.

        Bounds are rounded to the nearest sample and clipped to the audio; negative bounds or
        ``end_ms < start_ms`` raise AudioError.
        """
        if not start_ms >= 0 or (end_ms is not None and not end_ms >= start_ms):
            raise AudioError(
                f"slice_ms needs 0 <= start_ms <= end_ms, got start_ms={start_ms!r}, "
                f"end_ms={end_ms!r}."
            )
        n = len(self)
        start = min(round(start_ms * self.sample_rate / 1000), n)
        end = n if end_ms is None else min(round(end_ms * self.sample_rate / 1000), n)
        return Audio(self.samples[start:end], self.sample_rate)

    def to_wav(self) -> bytes:
        """A complete 16-bit PCM mono WAV file (bytes) at this object's rate, for players."""
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(self.sample_rate)
            w.writeframes(self.to_pcm16())
        return buf.getvalue()
