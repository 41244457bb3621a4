"""Headerless PCM bytes, decoded only as the caller declares them (nothing is guessed)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._arrays import array_to_audio
from ._errors import AudioError, check_rate
from ._types import Audio

__all__ = ["decode_raw"]

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
    return array_to_audio(arr, rate, to_rate, check_wide_ints=code != "int24",
                       channel_axis=1 if channels > 1 else None)
