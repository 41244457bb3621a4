"""Diagnosis of PCM16 bytes before they are sent: the mistakes users actually make.

``diagnose`` returns ``Finding``s with stable codes (tests, UIs and the client key on them):

=====================  ========  ==================================================================
code                   severity  meaning
=====================  ========  ==================================================================
``empty``              error     no bytes at all
``odd_length``         error     not a whole number of 2-byte samples (a sample was split)
``container_header``   error     the bytes are a file (WAV, Ogg, WebM, ...), not raw PCM16
``float32_as_pcm16``   error     the bytes are float32 samples, not int16 ones
``too_short``          warning   under 100 ms: the API refuses to commit less
``silent``             warning   peak below -60 dBFS (or all zeros)
``clipping``           warning   runs of samples stuck at full scale
=====================  ========  ==================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ._errors import check_rate
from ._sniff import sniff_container
from ._types import Audio, dbfs

__all__ = ["COMMIT_MIN_MS", "Finding", "Severity", "diagnose", "looks_like_float32"]

Severity = Literal["error", "warning", "info"]

#: The Realtime API refuses to commit an input buffer holding less than this (milliseconds).
COMMIT_MIN_MS = 100.0
#: Peak level (dBFS) under which audio is reported as silent.
SILENT_DBFS = -60.0
#: Consecutive full-scale samples that count as a clipped stretch.
CLIP_RUN = 3

_FLOAT_MIN_FLOATS = 16  # below this many float32 values there is too little to tell
_FLOAT_MAX_FLOATS = 1 << 18  # look at no more than this many (evenly spaced)
_ROUGH = 2048  # median jump of the low halves above this: mantissa bits, not a waveform
_TRACK = 1024  # |low - high| (or |low + high|) below this: the halves follow each other


@dataclass(frozen=True)
class Finding:
    """One thing wrong (or worth knowing) about some audio.

    ``code`` is stable (see the module docstring), ``message`` is plain language saying what is
    wrong and what to do, ``severity`` is ``"error"`` (will not work), ``"warning"`` (probably not
    what you want) or ``"info"``.
    """

    code: str
    message: str
    severity: Severity = "warning"


def looks_like_float32(data: bytes | bytearray | memoryview) -> bool:
    """True if bytes meant as PCM16 are really little-endian float32 samples.

    Read as float32, float audio gives finite values of at most 1 in magnitude, nearly all of
    them either exactly zero or of a plausible size (>= 1e-9; a few smaller ones are allowed).
    Read as int16, the high halves of those floats then sit in two narrow bands (the float
    exponent), and the low halves (the last mantissa bits) are all zero (floats made from
    16-bit or coarser integers), or jump about from one float to the next; or the floats change
    sign; or at least the low halves bear no relation to the high halves beside them.
    Real PCM16 fails this: quiet audio reads as NaNs and denormals, loud audio leaves the bands,
    and audio whose every other sample stays inside a band for long is nearly constant (or
    alternates at Nyquist), so its low halves move smoothly and follow the high halves (or their
    negatives) on one side of zero; or it is a tone near a quarter of the rate, whose every other
    sample flips sign while jumping in size — which float audio never does.
    Limits, measured on millions of generated signals: a (nearly) constant float signal is
    missed about one time in sixteen; PCM16 can read as float only if it is a pure tone at an
    exact simple fraction of the rate (fs/4, fs/6, fs/8, ...) at a particular level and phase
    *plus* a DC offset above 0.4 % of full scale, or a tone above 0.45 of the rate (beyond any
    recording's anti-aliasing filter) plus a DC offset.
    Needs at least 64 bytes; shorter input returns False.
    """
    buf = data if isinstance(data, bytes) else memoryview(data).cast("B")
    n = len(buf) // 4
    if n < _FLOAT_MIN_FLOATS:
        return False
    step = max(1, n // _FLOAT_MAX_FLOATS)
    f = np.frombuffer(buf, dtype="<f4", count=n)[::step]
    words = np.frombuffer(buf, dtype="<i2", count=2 * n).reshape(n, 2)[::step]
    with np.errstate(invalid="ignore"):
        mag = np.abs(f)
        sized = (mag >= 1e-9) & (mag <= 1.0)  # NaN compares False
    zero = f == 0
    tiny = (mag < 1e-9) & ~zero  # synthetic zero crossings (sin(k*pi) = 1e-16)
    if int(tiny.sum()) > max(1, len(f) // 8):
        # More than one in eight: only if each sits between neighbours of audible size
        # (>= 1e-5) and opposite sign, as a tone at fs/8 or faster crosses zero on a sample
        # every few samples (quiet PCM16 read as floats gives runs of tiny values instead).
        # A computed sin(k*pi) is off by k times the float64 rounding step: 1e-20 .. 1e-9 of
        # the level around it.
        inner = np.flatnonzero(tiny[1:-1]) + 1
        with np.errstate(invalid="ignore", over="ignore"):  # NaN neighbours never qualify
            level = np.minimum(mag[inner - 1], mag[inner + 1])
            crossing = ((level >= 1e-5) & sized[inner - 1] & sized[inner + 1]
                        & (np.signbit(f[inner - 1]) != np.signbit(f[inner + 1]))
                        & (mag[inner] > 1e-20 * level) & (mag[inner] < 1e-9 * level))
        if not crossing.all():
            return False
    if int(sized.sum()) < 8:
        return False
    if (~(zero | sized | tiny)).mean() > 0.02:
        return False
    low = words[sized, 0].astype(np.int32)
    high = words[sized, 1].astype(np.int32)
    if (low == 0).mean() >= 0.9:
        return True  # floats made from integers of 16 bits or fewer
    negative = high < 0
    exponent = (high >> 7) & 0xFF
    if np.all(negative[1:] != negative[:-1]) and np.median(np.abs(np.diff(exponent))) >= 2:
        # Floats flipping sign at every sample while jumping in size are no audio: this is a
        # PCM16 tone near a quarter of the rate whose every other sample sits in a band.
        return False
    if np.median(np.abs(np.diff(low))) > _ROUGH:
        return True  # mantissa bits, not a waveform
    if 0.1 <= negative.mean() <= 0.9:
        return True  # float signs mix; PCM16 staying inside a band stays on one side
    tracking = (np.abs(low - high) < _TRACK) | (np.abs(low + high) < _TRACK)
    return bool(tracking.mean() < 0.5)


def diagnose(pcm16: bytes | bytearray | memoryview | Audio, sample_rate: int = 24_000
             ) -> list[Finding]:
    """Check PCM16 little-endian mono bytes (or an ``Audio``) for the usual mistakes.

    Returns findings in order of importance; an empty list means nothing suspicious. When the
    bytes are not PCM16 at all (a file, float32 samples), level findings are left out: they
    would describe noise. ``sample_rate`` only matters for the duration (``too_short``).
    """
    if isinstance(pcm16, Audio):
        rate = pcm16.sample_rate
        buf: bytes | memoryview = pcm16.to_pcm16()
    else:
        rate = check_rate(sample_rate)
        buf = pcm16 if isinstance(pcm16, bytes) else memoryview(pcm16).cast("B")
    n = len(buf)
    if n == 0:
        return [Finding("empty", "There is no audio (0 bytes).", "error")]
    findings: list[Finding] = []
    if n % 2:
        findings.append(Finding(
            "odd_length",
            f"{n} bytes is an odd length: PCM16 samples are 2 bytes, so a sample was split "
            "(the last byte is ignored here). Send whole samples; if chunks are cut at arbitrary "
            "byte offsets, carry the odd byte over to the next chunk.",
            "error",
        ))
    sniffed = sniff_container(bytes(buf[:16]))
    if sniffed is not None:
        findings.append(Finding(
            "container_header",
            f"These bytes are a {sniffed[0]} file, not raw PCM16: its header and compressed data "
            "would be heard as noise. Convert it first: realtime_nb.audio.to_pcm16(data).",
            "error",
        ))
        return findings
    if looks_like_float32(buf):
        findings.append(Finding(
            "float32_as_pcm16",
            "These bytes are float32 samples (values in [-1, 1]), not PCM16: sent as they are "
            "they play as loud noise and give garbage transcripts. Convert them: "
            "realtime_nb.audio.to_pcm16(np.frombuffer(data, '<f4'), sample_rate=...).",
            "error",
        ))
        return findings
    audio = Audio(np.frombuffer(buf, dtype="<i2", count=n // 2).astype(np.int16), rate)
    if audio.duration_ms < COMMIT_MIN_MS:
        findings.append(Finding(
            "too_short",
            f"Only {audio.duration_ms:.1f} ms of audio: the Realtime API refuses to commit less "
            f"than {COMMIT_MIN_MS:.0f} ms (input_audio_buffer_commit_empty). Record longer or "
            "append more before committing.",
            "warning",
        ))
    peak = audio.peak
    if peak == 0:
        findings.append(Finding(
            "silent",
            "Every sample is zero (digital silence): the microphone is muted, not delivering "
            "yet, or the wrong device was picked.",
            "warning",
        ))
    elif dbfs(peak) < SILENT_DBFS:
        findings.append(Finding(
            "silent",
            f"The audio is practically silent (peak {dbfs(peak):.0f} dBFS): voice activity "
            "detection will not trigger. Check the microphone, its gain, or that the right "
            "input is selected.",
            "warning",
        ))
    clipped = _clipped_samples(audio.samples)
    if clipped:
        findings.append(Finding(
            "clipping",
            f"{clipped} samples ({100 * clipped / len(audio):.2f} %) sit at full scale in runs "
            f"of {CLIP_RUN} or more: the input is clipping (distorted). Lower the gain, or turn "
            "off automatic gain control.",
            "warning",
        ))
    return findings


def _clipped_samples(x: np.ndarray) -> int:
    """Number of samples in runs of at least CLIP_RUN consecutive full-scale samples."""
    rail = (x >= 32767) | (x <= -32767)
    if int(rail.sum()) < CLIP_RUN:
        return 0
    edges = np.diff(np.concatenate(([0], rail.view(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    lengths = ends - starts
    return int(lengths[lengths >= CLIP_RUN].sum())
