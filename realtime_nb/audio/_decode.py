"""``decode``: any audio source to mono int16 ``Audio``, dispatched by what the source is.

Everything ends as an ``Audio`` (mono int16). The rooms behind it, one module each:
``_sniff`` (containers recognised by their first bytes: WAV/RF64, Ogg, WebM/Matroska, FLAC, MP3,
AIFF, MP4/M4A, CAF; unknown bytes refused, never guessed), ``_container`` (PyAV decoding),
``_parallel`` (long Opus streams decoded in parallel segments), ``_samples`` (decoded frames to
int16 at the wanted rate), ``_arrays`` (numpy arrays) and ``_raw`` (declared raw PCM bytes).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any, Union

import numpy as np

from ._arrays import from_array
from ._container import decode_container
from ._errors import AudioError, check_rate
from ._raw import decode_raw
from ._types import Audio

__all__ = ["Source", "decode"]

#: What ``decode`` and friends accept: an Audio, a numpy array (rate declared separately), a path,
#: bytes of a container file, or a binary file-like object.
Source = Union[Audio, np.ndarray, str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes]]


def _read_bytes(source: Any) -> bytes:
    if isinstance(source, bytes):
        return source
    if isinstance(source, (bytearray, memoryview)):
        return memoryview(source).tobytes()
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            return path.read_bytes()
        except IsADirectoryError:
            raise AudioError(f"{str(path)!r} is a directory, not an audio file.") from None
        except OSError as exc:
            hint = ""
            if isinstance(source, str) and len(source) > 200:
                hint = (
                    " A long str is not a path: if it is base64 audio, decode it first "
                    "(base64.b64decode) and pass the bytes."
                )
            reason = "No such audio file" if isinstance(exc, FileNotFoundError) else (
                f"Cannot read the audio file ({exc.strerror or exc})")
            raise AudioError(f"{reason}: {str(source)[:120]!r}.{hint}") from None
    if hasattr(source, "read"):
        data = source.read()
        if isinstance(data, str):
            raise AudioError("The file object returned text: open audio files in binary mode "
                             "('rb').")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise AudioError(f"The file object's read() returned {type(data).__name__}, not "
                             "bytes.")
        return bytes(data)
    if isinstance(source, (list, tuple)):
        raise AudioError(
            "Got a Python list of samples: wrap it as a numpy array with an explicit dtype, "
            "e.g. decode(np.asarray(samples, dtype=np.int16), sample_rate=24000)."
        )
    raise AudioError(
        f"Cannot decode a {type(source).__name__}: pass a path, bytes of an audio file, a binary "
        "file object, a numpy array (with sample_rate) or an Audio."
    )


def decode(
    source: Source,
    sample_rate: int | None = None,
    *,
    raw: Any = None,
    channels: int | None = None,
    to_rate: int | None = None,
    container: str | None = None,
) -> Audio:
    """Decode ``source`` to mono int16 ``Audio``; at ``to_rate`` if given, else its own rate.

    ``source`` may be:
      - a path (``str``/``Path``), bytes-like or a binary file object holding a container file
        (WAV in any sample format, Ogg/Opus, Ogg/Vorbis, WebM/Opus as Chromium's MediaRecorder
        writes it — no duration, maybe a truncated tail —, FLAC, MP3, AIFF, M4A, CAF). A
        truncated file gives what can be decoded; if nothing can, AudioError;
      - raw PCM bytes, only if declared: ``raw="int16"`` (or ``"float32"``, ``"int32"``,
        ``"int24"``, ``"uint8"``, ...), with ``sample_rate`` and ``channels`` (default 1);
      - a numpy array of any common dtype with ``sample_rate`` (see ``from_array``);
      - an ``Audio`` (returned as is, or resampled).

    ``sample_rate`` declares the rate of sources that do not carry one; for a container it is
    optional and must then match the file's rate. Several channels are averaged to mono.
    ``container`` forces a container family ("wav", "ogg", "webm", "flac", "mp3").
    Raises AudioError for anything unusable, with what was wrong and what to do.
    """
    out_rate = None if to_rate is None else check_rate(to_rate, "to_rate")
    if isinstance(source, Audio):
        if sample_rate is not None and check_rate(sample_rate) != source.sample_rate:
            raise AudioError(
                f"This Audio is {source.sample_rate} Hz but sample_rate={sample_rate} was "
                "given: an Audio carries its own rate, leave sample_rate out."
            )
        return source if out_rate is None else source.resample(out_rate)
    if isinstance(source, np.ndarray):
        if raw is not None or channels is not None:
            raise AudioError("raw= and channels= describe bytes; a numpy array's dtype and "
                             "shape already say it.")
        return from_array(source, sample_rate, to_rate=out_rate)
    data = _read_bytes(source)
    if raw is not None:
        return decode_raw(data, sample_rate, raw, 1 if channels is None else channels,
                          to_rate=out_rate)
    if channels is not None:
        raise AudioError("channels= is only for raw PCM bytes (with raw=...); a container "
                         "says its own channel count.")
    return decode_container(data, sample_rate, out_rate, container)
