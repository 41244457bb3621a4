"""Does appended PCM16 audio look like it was recorded at another rate than 24 kHz?

Two independent cues, each with its evidence:

* **Pacing** (live capture): a microphone delivers audio in real time, so if the bytes appended
  per wall-clock second are steadily ``r / 24000`` times what 24 kHz audio would give, for a
  common rate ``r`` (44.1 kHz: 1.84x; 16 kHz: 0.67x), the source runs at ``r``. Needs at least
  :data:`PACING_MIN_APPENDS` appends over :data:`PACING_MIN_S` seconds; uploads sent faster than
  real time are recognised as such and say nothing.
* **Voice** (any audio): audio played at the wrong rate changes pitch and formants by the same
  factor. Too-high-rate audio read as 24 kHz (44.1/48 kHz, the usual rates of browsers, sound
  cards and WAV files) sounds about half as high: a median pitch below 75 Hz together with a
  spectrum darker than that pitch implies, or a far too dark spectrum for a higher voice.
  Too-low-rate audio (8 kHz) sounds very high. This is a heuristic tuned on synthetic voices,
  deliberately conservative (a normal deep or muffled voice must not trip it): it can miss
  wrong rates, and says "likely".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["COMMON_RATES", "RateFinding", "pacing_rate", "voice_rate"]

COMMON_RATES = (8000, 11025, 16000, 22050, 32000, 44100, 48000)
PACING_MIN_APPENDS = 20
PACING_MIN_S = 2.0
_PACING_TOL = 0.04
_MAX_ANALYSED_S = 30.0


@dataclass(frozen=True)
class RateFinding:
    """``direction`` is ``"high"`` (source rate above 24 kHz: plays slow and low) or ``"low"``;
    ``rate`` the likely source rate when known; ``detail`` the measured evidence in words."""

    direction: str
    rate: int | None
    detail: str


def pacing_rate(appends: Sequence[tuple[float, int]]) -> RateFinding | None:
    """``appends``: ``(t_seconds, nbytes)`` of PCM16 24 kHz appends in order.

    Looks at the longest steady stretch at the end of the stream (the live part).
    """
    if len(appends) < PACING_MIN_APPENDS:
        return None
    t = np.array([a[0] for a in appends], dtype=np.float64)
    ms = np.cumsum([a[1] / 48.0 for a in appends])
    # audio delivered between the first and the last append (the first chunk's audio was
    # captured before it was sent)
    span = t[-1] - t[0]
    if span < PACING_MIN_S:
        return None
    ratio = (ms[-1] - ms[0]) / (span * 1000.0)
    half = len(t) // 2
    first = (ms[half] - ms[0]) / max((t[half] - t[0]) * 1000.0, 1e-9)
    second = (ms[-1] - ms[half]) / max((t[-1] - t[half]) * 1000.0, 1e-9)
    if abs(first - second) > 0.1 * ratio:
        return None  # not a steady stream (bursts, an upload)
    if abs(ratio - 1.0) <= _PACING_TOL:
        return None  # real time at 24 kHz: fine
    for rate in COMMON_RATES:
        if abs(ratio - rate / 24000) <= _PACING_TOL * rate / 24000:
            return RateFinding(
                "high" if rate > 24000 else "low", rate,
                f"{ms[-1] - ms[0]:.0f} ms of audio (counted as 24 kHz) arrived over "
                f"{span:.2f} s of wall-clock time in {len(appends)} steady appends: "
                f"{ratio:.2f}x real time, which is what a {rate} Hz source gives")
    return None


def _voice_features(samples: np.ndarray, rate: int = 24000) -> tuple[float, float, int] | None:
    x = samples[: int(_MAX_ANALYSED_S * rate)].astype(np.float64) / 32768.0
    n, hop = 2048, 1024
    m = (len(x) - n) // hop + 1
    if m < 10:
        return None
    frames = x[np.arange(n)[None, :] + hop * np.arange(m)[:, None]]
    frames = frames - frames.mean(axis=1, keepdims=True)
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    loud = (rms >= 0.3 * np.percentile(rms, 95)) & (rms > 10 ** (-50 / 20))
    f = frames[loud]
    if len(f) < 10:
        return None
    spec = np.fft.rfft(f, 2 * n, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :n]
    ac = ac / (n - np.arange(n))[None, :]  # unbiased: long lags are not penalised
    ac = ac / np.maximum(ac[:, :1], 1e-20)
    lo, hi = int(rate / 500), int(rate / 45)
    seg = ac[:, lo:hi]
    f0s: list[float] = []
    for row in seg:
        peak = float(row.max())
        if peak < 0.5:
            continue
        # the shortest lag with a local maximum nearly as high (avoids sub-harmonics)
        cand = np.flatnonzero(row >= 0.9 * peak)
        best = int(np.argmax(row))
        for c in cand.tolist():
            left = row[c - 1] if c > 0 else -np.inf
            right = row[c + 1] if c + 1 < len(row) else -np.inf
            if row[c] >= left and row[c] >= right:
                best = c
                break
        f0s.append(rate / (best + lo))
    pre = f[:, 1:] - 0.97 * f[:, :-1]
    power = np.mean(np.abs(np.fft.rfft(pre * np.hanning(pre.shape[1]), axis=1)) ** 2, axis=0)
    freqs = np.fft.rfftfreq(pre.shape[1], 1 / rate)
    centroid = float(np.sum(power * freqs) / max(float(np.sum(power)), 1e-30))
    if len(f0s) < 10:
        return None
    return float(np.median(f0s)), centroid, len(f0s)


def voice_rate(samples: np.ndarray) -> RateFinding | None:
    """The voice cue on 24 kHz int16 ``samples`` (see the module docstring); None if fine or
    if there is too little voiced audio to tell."""
    feats = _voice_features(samples)
    if feats is None:
        return None
    f0, centroid, voiced = feats
    # Formants (the centroid) grow only slowly with a speaker's pitch; a rate error scales both.
    expected = 2700.0 * (f0 / 110.0) ** 0.3
    ratio = centroid / expected
    said = (f"median pitch {f0:.0f} Hz over {voiced} voiced frames (adult speech is usually "
            f"85-255 Hz), spectral centroid {centroid:.0f} Hz ({ratio:.2f} of what that pitch "
            "implies)")
    if (f0 < 75 and ratio < 0.8) or (f0 < 140 and ratio < 0.65):
        return RateFinding("high", None, "the voice sounds slowed down and low: " + said)
    if f0 > 260 and ratio > 1.35:
        return RateFinding("low", None, "the voice sounds sped up and high: " + said)
    return None

