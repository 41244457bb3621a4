"""Shared audio fixtures and helpers for tests/test_audio_*.py.

tests/conftest.py registers this module as a plugin, so its fixtures reach every test module
by name; import only the plain helpers (``tone``, ``tone_pcm16``, ``to_int16``, ...). ``tone``
is the one tone generator of the tests: the other fixture modules build theirs on it.

Everything is made by the tests themselves, once per session: espeak-ng speech (Debian
``espeak-ng -w``), tones and noise with numpy, and container files encoded with PyAV (WAV in
every sample format, FLAC, MP3, Ogg/Opus, WebM/Opus, AIFF, M4A). The one committed fixture is
``tests/data/chromium_mediarecorder.webm``, recorded by real Chromium's MediaRecorder with
``scripts/make_webm_fixture.py``; ``chromium_mediarecorder.chunks.json`` lists its chunk sizes.
"""

from __future__ import annotations

import io
import itertools
import json
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from realtime_nb.audio import Audio

DATA = Path(__file__).parent / "data"
CHROMIUM_WEBM = DATA / "chromium_mediarecorder.webm"
CHROMIUM_META = DATA / "chromium_mediarecorder.chunks.json"

SPEECH_TEXT = "Realtime audio in a notebook should just work, at any sample rate."


def tone(freq: float, ms: float, rate: int, amp: float = 0.5, phase: float = 0.0) -> np.ndarray:
    """A float64 sine of ``ms`` milliseconds at ``rate``, amplitude ``amp`` (full scale = 1)."""
    t = np.arange(round(ms * rate / 1000)) / rate
    return amp * np.sin(2 * np.pi * freq * t + phase)


def tone_pcm16(freq: float, ms: float, rate: int = 24_000, amp: float = 0.5) -> bytes:
    """``tone`` as PCM16 little-endian mono bytes (scaled by ``to_int16``)."""
    return to_int16(tone(freq, ms, rate, amp)).astype("<i2").tobytes()


def noise(ms: float, rate: int, amp: float = 0.3, seed: int = 0) -> np.ndarray:
    """Gaussian white noise (float64), clipped to [-1, 1]."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(0.0, amp, round(ms * rate / 1000)), -1.0, 1.0)


def to_int16(x: np.ndarray) -> np.ndarray:
    """Float in [-1, 1] to int16 the way this module does it (x * 32768, rounded, clipped)."""
    return np.clip(np.rint(np.asarray(x) * 32768.0), -32768, 32767).astype(np.int16)


_NUMPY_OF_FORMAT = {"s16": np.int16, "s32": np.int32, "flt": np.float32, "dbl": np.float64,
                    "u8": np.uint8}


def encode_file(
    x: np.ndarray, rate: int, container: str, codec: str, sample_format: str, **options: object
) -> bytes:
    """Encode float samples ``x`` (1-D mono, or ``(channels, n)``) into a container with PyAV.

    ``sample_format`` is the encoder's input format (``"s16"``, ``"s32"``, ``"flt"``, ``"fltp"``,
    ``"dbl"``, ``"u8"``); integer formats get ``x`` scaled to their full range.
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    channels = x.shape[0]
    layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")
    fmt = av.AudioFormat(sample_format)
    dtype = _NUMPY_OF_FORMAT[fmt.packed.name]
    if dtype is np.int16:
        y = to_int16(x)
    elif dtype is np.int32:
        y = np.clip(np.rint(x * 2.0**31), -(2**31), 2**31 - 1).astype(np.int32)
    elif dtype is np.uint8:
        y = np.clip(np.rint(x * 128 + 128), 0, 255).astype(np.uint8)
    else:
        y = x.astype(dtype)
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        for key, value in options.items():
            setattr(stream.codec_context, key, value)
        for i in range(0, y.shape[1], 1024):
            part = y[:, i:i + 1024]
            arr = part if fmt.is_planar else part.T.reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr), format=sample_format,
                                               layout=layout)
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def stream_in_chunks(stream: Any, x: np.ndarray, sizes: Iterable[int]) -> np.ndarray:
    """Feed ``x`` to ``stream.process`` in pieces of ``sizes``, then the rest, then ``flush()``.

    ``stream`` is any chunked processor with ``process(array) -> array`` and ``flush() -> array``
    (``StreamResampler``, a VAD ``SpeechStream``); returns every output joined in order. A size
    of 0 feeds an empty piece.
    """
    parts, i = [], 0
    for size in sizes:
        parts.append(stream.process(x[i:i + size]))
        i += size
    parts.append(stream.process(x[i:]))
    parts.append(stream.flush())
    return np.concatenate(parts)


def correlation(a: np.ndarray, b: np.ndarray, min_overlap: int = 1000) -> float:
    """Normalised correlation of ``a`` and ``b`` at the lag where they line up best.

    The lag is found by FFT cross-correlation over every shift with at least ``min_overlap``
    samples in common; the result is the correlation coefficient over that overlap (1.0 for
    identical signals, about 0 for unrelated ones).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    size = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    xc = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)
    lags = np.concatenate([np.arange(0, len(a)), np.arange(-(len(b) - 1), 0)])
    values = np.concatenate([xc[: len(a)], xc[size - (len(b) - 1):]])
    overlap = np.minimum(len(a) - np.maximum(lags, 0), len(b) + np.minimum(lags, 0))
    values[overlap < min_overlap] = 0.0
    lag = int(lags[int(np.argmax(values))])
    x = a[max(lag, 0):]
    y = b[max(-lag, 0):]
    n = min(len(x), len(y))
    x, y = x[:n] - x[:n].mean(), y[:n] - y[:n].mean()
    denom = float(np.linalg.norm(x) * np.linalg.norm(y))
    return float(np.dot(x, y) / denom) if denom else 0.0


@pytest.fixture(scope="session")
def spoken_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """espeak-ng speech as the WAV file espeak-ng writes (22.05 kHz mono PCM16)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.fail("espeak-ng is not installed (Debian package espeak-ng; ./dev installs it)")
    path = tmp_path_factory.mktemp("spoken") / "spoken.wav"
    subprocess.run([exe, "-w", str(path), SPEECH_TEXT], check=True)
    return path


@pytest.fixture(scope="session")
def spoken(spoken_wav: Path) -> Audio:
    """The espeak-ng speech, decoded (22.05 kHz)."""
    return Audio.decode(spoken_wav)


@pytest.fixture(scope="session")
def spoken_24k(spoken: Audio) -> Audio:
    """The espeak-ng speech at 24 kHz (the Realtime API's rate)."""
    return spoken.resample(24_000)


@pytest.fixture(scope="session")
def spoken_files(spoken: Audio) -> dict[str, bytes]:
    """The speech encoded in every container this module must decode, keyed by a short name.

    Lossless variants hold exactly ``spoken.samples`` (at 22.05 kHz); Opus ones are at 48 kHz.
    """
    x = spoken.to_float32().astype(np.float64)
    x48 = spoken.resample(48_000).to_float32().astype(np.float64)
    stereo = np.vstack([x, x])
    rate = spoken.sample_rate
    return {
        "wav_s16": encode_file(x, rate, "wav", "pcm_s16le", "s16"),
        "wav_s16_stereo": encode_file(stereo, rate, "wav", "pcm_s16le", "s16"),
        "wav_s24": encode_file(x, rate, "wav", "pcm_s24le", "s32"),
        "wav_s32": encode_file(x, rate, "wav", "pcm_s32le", "s32"),
        "wav_f32": encode_file(x, rate, "wav", "pcm_f32le", "flt"),
        "wav_f64": encode_file(x, rate, "wav", "pcm_f64le", "dbl"),
        "wav_u8": encode_file(x, rate, "wav", "pcm_u8", "u8"),
        "flac": encode_file(x, rate, "flac", "flac", "s16"),
        "aiff": encode_file(x, rate, "aiff", "pcm_s16be", "s16"),
        "mp3": encode_file(x, rate, "mp3", "libmp3lame", "fltp", bit_rate=96_000),
        "m4a": encode_file(x, rate, "ipod", "aac", "fltp", bit_rate=96_000),
        "ogg_opus": encode_file(x48, 48_000, "ogg", "libopus", "flt", bit_rate=64_000),
        "ogg_vorbis_stereo": encode_file(stereo, rate, "ogg", "vorbis", "fltp",
                                         options={"strict": "experimental"}),
        "webm_opus": encode_file(x48, 48_000, "webm", "libopus", "flt", bit_rate=64_000),
        "webm_opus_stereo": encode_file(np.vstack([x48, x48]), 48_000, "webm", "libopus", "flt",
                                        bit_rate=96_000),
    }


@pytest.fixture(scope="session")
def long_opus_files(spoken: Audio) -> dict[str, bytes]:
    """About 11 s of speech as WebM/Opus and Ogg/Opus: long enough for parallel decoding."""
    x48 = Audio.concat([spoken] * 3).resample(48_000).to_float32().astype(np.float64)
    return {
        "webm": encode_file(x48, 48_000, "webm", "libopus", "flt", bit_rate=128_000),
        "ogg": encode_file(x48, 48_000, "ogg", "libopus", "flt", bit_rate=64_000),
    }


@pytest.fixture(scope="session")
def chromium_webm() -> bytes:
    """The committed recording by real Chromium's MediaRecorder (WebM/Opus, 48 kHz, mono)."""
    return CHROMIUM_WEBM.read_bytes()


@pytest.fixture(scope="session")
def chromium_chunks(chromium_webm: bytes) -> list[bytes]:
    """The recording cut back into the ``dataavailable`` chunks MediaRecorder delivered."""
    sizes = json.loads(CHROMIUM_META.read_text())["chunk_sizes"]
    assert sum(sizes) == len(chromium_webm)
    offsets = np.cumsum([0, *sizes])
    return [chromium_webm[a:b] for a, b in itertools.pairwise(offsets)]
