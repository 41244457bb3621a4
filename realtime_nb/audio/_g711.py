"""ITU-T G.711 μ-law and A-law, as numpy lookup tables (audioop is gone from Python 3.13).

Encoding follows the ITU-T reference software (G.191 STL ``g711.c``, ``ulaw_compress`` and
``alaw_compress``), which reads 16-bit two's-complement input and takes negative values through
their one's complement. Decoding gives the standard's reconstruction levels (the middle of each
quantisation interval), scaled to 16 bits: μ-law ±32124 at most, A-law ±32256.

The tables are built once at import with vectorised integer arithmetic (segment = position of
the leading one bit, mantissa = the next four bits). The tests check every one of the 65 536
inputs and 256 codes against a sample-by-sample transcription of the standard's algorithm.
"""

from __future__ import annotations

import numpy as np

__all__ = ["alaw_decode", "alaw_encode", "ulaw_decode", "ulaw_encode"]


def _bit_length(values: np.ndarray) -> np.ndarray:
    """``int.bit_length`` for a non-negative integer array (0 -> 0)."""
    return np.frexp(values.astype(np.float64))[1].astype(np.int32)


def _all_int16() -> np.ndarray:
    """All int16 values, in the order of their uint16 bit patterns (0, 1, ..., -1), as int32."""
    return np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16).astype(np.int32)


def _build_ulaw_encode() -> np.ndarray:
    x = _all_int16()
    # 14-bit magnitude (one's complement for negatives), biased by 33, clipped to 13 bits.
    mag = np.minimum(np.where(x < 0, (~x) >> 2, x >> 2) + 33, 0x1FFF)
    segment = _bit_length(mag >> 6)  # 0..7: the magnitude lies in [32 << segment, 64 << segment)
    mantissa = (mag >> (segment + 1)) & 0xF
    code = 0x7F - ((segment << 4) | mantissa)  # μ-law transmits the bits inverted
    code = np.where(x >= 0, code | 0x80, code)
    return code.astype(np.uint8)


def _build_alaw_encode() -> np.ndarray:
    x = _all_int16()
    mag = np.where(x < 0, (~x) >> 4, x >> 4)  # 12-bit magnitude, 0..2047
    segment = np.maximum(_bit_length(mag) - 4, 0)  # 0..7
    mantissa = (mag >> np.maximum(segment - 1, 0)) & 0xF
    code = (segment << 4) | mantissa
    code = np.where(x >= 0, code | 0x80, code) ^ 0x55  # A-law toggles the even bits
    return code.astype(np.uint8)


def _build_ulaw_decode() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    segment = (u >> 4) & 0x7
    level = (((u & 0xF) << 3) + 0x84) << segment  # 0x84 = bias 33, times 4
    return np.where(u & 0x80, 0x84 - level, level - 0x84).astype(np.int16)


def _build_alaw_decode() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    segment = (a >> 4) & 0x7
    level = ((a & 0xF) << 4) + np.where(segment == 0, 8, 0x108)
    level = np.where(segment > 1, level << np.maximum(segment - 1, 0), level)
    return np.where(a & 0x80, level, -level).astype(np.int16)


_ULAW_ENC = _build_ulaw_encode()
_ALAW_ENC = _build_alaw_encode()
_ULAW_DEC = _build_ulaw_decode()
_ALAW_DEC = _build_alaw_decode()
for _table in (_ULAW_ENC, _ALAW_ENC, _ULAW_DEC, _ALAW_DEC):
    _table.flags.writeable = False


def _as_int16(samples: np.ndarray) -> np.ndarray:
    arr = np.asarray(samples)
    if arr.dtype != np.int16:
        raise TypeError(f"G.711 encodes int16 samples, got {arr.dtype}")
    return arr.reshape(-1)


def ulaw_encode(samples: np.ndarray) -> bytes:
    """Encode int16 samples to G.711 μ-law bytes (one byte per sample)."""
    return _ULAW_ENC[_as_int16(samples).view(np.uint16)].tobytes()


def alaw_encode(samples: np.ndarray) -> bytes:
    """Encode int16 samples to G.711 A-law bytes (one byte per sample)."""
    return _ALAW_ENC[_as_int16(samples).view(np.uint16)].tobytes()


def ulaw_decode(data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """Decode G.711 μ-law bytes to int16 samples (16-bit scale, at most ±32124)."""
    return _ULAW_DEC[np.frombuffer(data, dtype=np.uint8)]


def alaw_decode(data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """Decode G.711 A-law bytes to int16 samples (16-bit scale, at most ±32256)."""
    return _ALAW_DEC[np.frombuffer(data, dtype=np.uint8)]
