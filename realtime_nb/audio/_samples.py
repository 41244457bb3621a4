"""Decoded samples: a frame's mono samples in their own dtype, scaling to float, and assembly.

``Chunk`` is what one decoded frame gives (mono, its decoded dtype, its rate); ``assemble`` turns
a decoder's chunks into int16 ``Audio`` at the wanted rate (runs of one rate each resampled);
``to_float`` and ``check_float_scale`` are the scaling rules numpy arrays follow too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from ._errors import AudioError
from ._resample import float_to_int16, resample_float, resample_int16
from ._types import Audio

if TYPE_CHECKING:
    import av

__all__ = [
    "FLOAT_PEAK_MAX",
    "Chunk",
    "assemble",
    "check_float_scale",
    "chunks_seconds",
    "float_peak",
    "frame_chunk",
    "to_float",
]


class Chunk:
    """Mono samples of one decoded frame, in their decoded dtype, with their rate."""

    __slots__ = ("data", "rate")

    def __init__(self, data: np.ndarray, rate: int) -> None:
        self.data = data
        self.rate = rate


_FRAME_DTYPES: dict[str, type[np.generic]] = {
    "u8": np.uint8, "s16": np.int16, "s32": np.int32, "s64": np.int64, "flt": np.float32,
    "dbl": np.float64}


def frame_chunk(frame: av.AudioFrame) -> Chunk:
    """The frame's samples as mono (channels averaged, as float32) in their decoded dtype."""
    fmt = frame.format
    dtype = _FRAME_DTYPES[fmt.packed.name]
    n = frame.samples
    ch = frame.layout.nb_channels
    planes = frame.planes
    # The three ignores: an AudioPlane is a buffer (PyAV's stubs give it __buffer__), but numpy's
    # stubs take the buffer protocol only for Python 3.12 and later.
    if ch == 1:
        data = np.frombuffer(planes[0], dtype=dtype, count=n)  # type: ignore[call-overload]
    elif fmt.is_planar:
        data = np.mean([to_float(np.frombuffer(p, dtype=dtype, count=n)) for p in planes[:ch]],  # type: ignore[call-overload]
                       axis=0, dtype=np.float32)
    else:
        inter = np.frombuffer(planes[0], dtype=dtype, count=n * ch).reshape(n, ch)  # type: ignore[call-overload]
        data = to_float(inter).mean(axis=1, dtype=np.float32)
    return Chunk(data, frame.sample_rate)


def to_float(x: np.ndarray) -> np.ndarray:
    """Scale any integer/float sample array to float32 in [-1, 1] (by its dtype's full scale)."""
    if x.dtype == np.float32:
        return x
    if x.dtype == np.float64 or x.dtype == np.float16:
        return x.astype(np.float32)
    if x.dtype == np.uint8:
        return (x.astype(np.float32) - 128.0) / np.float32(128.0)
    if x.dtype.kind == "u":
        half = float(2 ** (8 * x.dtype.itemsize - 1))
        return ((x.astype(np.float64) - half) / half).astype(np.float32)
    scale = float(2 ** (8 * x.dtype.itemsize - 1))
    if x.dtype.itemsize >= 4:
        return (x.astype(np.float64) / scale).astype(np.float32)
    return x.astype(np.float32) / np.float32(scale)


FLOAT_PEAK_MAX = 2.0  # float audio beyond this is not "a little over full scale"


def float_peak(x: np.ndarray) -> float:
    """Largest magnitude in a float array (no temporary the size of ``x``)."""
    return max(float(x.max()), -float(x.min())) if x.size else 0.0


def check_float_scale(x: np.ndarray, what: str) -> None:
    """Refuse float samples that are integer-scaled (e.g. int16 values written as float).

    Clipping them to [-1, 1] would turn speech into a full-scale square wave: noise.
    """
    peak = float_peak(x)
    if peak > FLOAT_PEAK_MAX:
        where = f"The decoded {what} audio's float samples" if what else "Float samples"
        raise AudioError(
            f"{where} must be in [-1, 1], but these reach {peak:g}: they look "
            "integer-scaled. If they are 16-bit values stored as float, convert them with "
            ".astype(np.int16) (or write the file as 16-bit PCM); otherwise divide by their "
            "full scale first."
        )


def chunks_seconds(chunks: list[Chunk]) -> float:
    """How long ``chunks`` last, in seconds (each at its own rate)."""
    return sum(len(c.data) / c.rate for c in chunks)


def _rate_runs(chunks: list[Chunk]) -> Iterator[tuple[int, list[np.ndarray]]]:
    """Group consecutive chunks of the same rate (chained streams may change rate)."""
    rate = chunks[0].rate
    group: list[np.ndarray] = []
    for c in chunks:
        if c.rate != rate:
            yield rate, group
            rate, group = c.rate, []
        group.append(c.data)
    yield rate, group


def assemble(chunks: list[Chunk], native_rate: int, out_rate: int | None, what: str) -> Audio:
    """Join decoded chunks into int16 ``Audio`` at ``out_rate`` (or ``native_rate``).

    ``what`` names the source in errors (NaN/infinite or integer-scaled float samples).
    """
    target = native_rate if out_rate is None else out_rate
    parts: list[np.ndarray] = []
    for rate, arrays in _rate_runs(chunks):
        if all(a.dtype == np.int16 for a in arrays):
            x16 = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
            parts.append(resample_int16(x16, rate, target))
            continue
        # Decoded frames are ours: float_to_int16 may work in place on them.
        x = np.concatenate([to_float(a) for a in arrays]) if len(arrays) > 1 else (
            to_float(arrays[0]))
        if not np.isfinite(x).all():
            raise AudioError(f"The decoded {what} audio contains NaN or infinite samples: the "
                             "file is damaged (or was written from broken float data).")
        if any(a.dtype.kind == "f" for a in arrays):
            check_float_scale(x, what)
        parts.append(float_to_int16(resample_float(x, rate, target)))
    samples = parts[0] if len(parts) == 1 else np.concatenate(parts)
    return Audio(np.ascontiguousarray(samples, dtype=np.int16), target)
