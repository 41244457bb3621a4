"""numpy arrays of samples to mono int16 ``Audio``: dtype scaling, sanity checks, downmixing."""

from __future__ import annotations

import numpy as np

from ._errors import AudioError, check_rate
from ._resample import float_to_int16, resample_float, resample_int16
from ._samples import check_float_scale, to_float
from ._types import Audio

__all__ = ["array_to_audio", "from_array"]

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
    return array_to_audio(samples, sample_rate, to_rate, check_wide_ints=True)


def array_to_audio(
    samples: np.ndarray,
    sample_rate: int | None,
    to_rate: int | None,
    *,
    check_wide_ints: bool,
    channel_axis: int | None = None,
) -> Audio:
    """``from_array``'s rules, for callers that know more about the samples' layout.

    ``check_wide_ints=False`` accepts int32 values that fit in 16 bits (``decode_raw``'s int24
    data, already shifted into int32); ``channel_axis`` says which axis of a 2-D array holds
    the channels instead of letting the shape decide.
    """
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
        check_float_scale(arr, "")
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
    x = to_float(mono)
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
    return to_float(arr).mean(axis=axis, dtype=np.float32)
