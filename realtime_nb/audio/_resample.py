"""Resampling with soxr: whole arrays, and a stateful stream resampler for chunked audio."""

from __future__ import annotations

import numpy as np
import soxr

from ._errors import AudioError, check_rate

__all__ = ["QUALITY", "StreamResampler", "float_to_int16", "resample_float", "resample_int16"]

#: soxr quality used everywhere: "HQ" (about 130 dB stop-band here, and thousands of times real
#: time). Measured against "VHQ" it changes nothing audible in 16-bit output and is faster.
QUALITY = "HQ"


def resample_int16(samples: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """Resample a 1-D int16 array; the result is rounded to the nearest int16 and clipped.

    Goes through float32 rather than soxr's int16 output, which adds TPDF dither (digital
    silence would come out as +-1 noise).
    """
    if in_rate == out_rate or samples.size == 0:
        return samples
    x = samples.astype(np.float32)
    x *= np.float32(1 / 32768)
    return float_to_int16(soxr.resample(x, in_rate, out_rate, quality=QUALITY))


def resample_float(samples: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """Resample a 1-D float32 array (values nominally in [-1, 1]); returns float32."""
    if in_rate == out_rate or samples.size == 0:
        return samples
    return soxr.resample(np.ascontiguousarray(samples, np.float32), in_rate, out_rate,
                         quality=QUALITY)


def float_to_int16(samples: np.ndarray) -> np.ndarray:
    """Scale float samples in [-1, 1] to int16 (x * 32768, rounded to nearest, clipped).

    The inverse of ``int16 / 32768`` exactly, so PCM16 -> float -> PCM16 is lossless.
    The input array may be overwritten (pass a copy if you still need it).
    """
    x = samples if samples.dtype == np.float32 else samples.astype(np.float32)
    if not x.flags.writeable:
        x = x.copy()
    np.multiply(x, 32768.0, out=x)
    np.clip(x, -32768.0, 32767.0, out=x)
    np.rint(x, out=x)
    return x.astype(np.int16)


class StreamResampler:
    """Stateful resampler for audio that arrives in chunks (never resample chunks independently).

    ``process(int16 or float32 1-D array) -> float32 array`` at ``out_rate`` (int16 input is
    scaled by 1/32768); call ``flush()`` once at the end to get the tail the filter still holds.
    Output lengths vary per chunk (the filter delays a little), but the total over all
    ``process`` calls plus ``flush`` is ``round(total_in * out_rate / in_rate)`` within a sample.
    """

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate = check_rate(in_rate, "in_rate")
        self.out_rate = check_rate(out_rate, "out_rate")
        self._rs = (
            None
            if self.in_rate == self.out_rate
            else soxr.ResampleStream(self.in_rate, self.out_rate, 1, dtype="float32",
                                     quality=QUALITY)
        )

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Resample the next chunk; returns what is ready so far (float32, maybe empty)."""
        arr = np.asarray(samples)
        if arr.ndim != 1:
            raise AudioError(f"StreamResampler takes 1-D mono chunks, got shape {arr.shape}.")
        if arr.dtype == np.int16:
            x = arr.astype(np.float32) / np.float32(32768.0)
        elif arr.dtype in (np.float32, np.float64):
            x = np.ascontiguousarray(arr, dtype=np.float32)
        else:
            raise AudioError(
                f"StreamResampler takes int16 or float32 chunks, got {arr.dtype}; "
                "convert with realtime_nb.audio.decode(array, sample_rate) first."
            )
        if self._rs is None:
            return x.copy() if x is arr else x
        return self._rs.resample_chunk(x, last=False)

    def flush(self) -> np.ndarray:
        """Return the remaining output; the resampler must not be used afterwards."""
        if self._rs is None:
            return np.zeros(0, dtype=np.float32)
        return self._rs.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
