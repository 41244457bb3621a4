"""Speech fixtures for the engine tests, made with the Debian ``espeak-ng`` command.

The command-line espeak-ng (Debian package) is deliberately a different build from the in-process
library the synthesizer uses, so ASR tests do not depend on the code under test in tts.py.
Test files wrap these helpers in session-scoped fixtures.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from realtime_nb.audio import Audio, decode

#: Ten everyday sentences (88 words), the ASR test and benchmark material.
SENTENCES: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog.",
    "Please turn on the lights in the kitchen.",
    "What is the weather like in Paris today?",
    "I would like to book a table for two people.",
    "The meeting has been moved to Thursday afternoon.",
    "Can you remind me to call my mother tomorrow morning?",
    "She sells sea shells by the sea shore.",
    "Our train leaves the station at half past nine.",
    "Remember to water the plants before you go on holiday.",
    "The library closes early on Sundays during the summer.",
)

#: A reply of about five seconds of speech, in three sentences.
FIVE_SECOND_REPLY = (
    "The weather in Paris is sunny today. "
    "It will stay warm and dry until the evening. "
    "Would you like to know anything else?"
)


def espeak_cli() -> str:
    """Path of the Debian espeak-ng command (raises if it is not installed)."""
    found = shutil.which("espeak-ng")
    if found is None:
        raise RuntimeError("Needs the Debian espeak-ng command: apt-get install espeak-ng")
    return found


def espeak_speech(text: str, *, voice: str = "en-us", words_per_minute: int = 165) -> Audio:
    """``text`` spoken by the espeak-ng command (22.05 kHz), via ``espeak-ng -w file.wav``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        subprocess.run(
            [espeak_cli(), "-v", voice, "-s", str(words_per_minute), "-w", str(out), text],
            check=True,
            capture_output=True,
        )
        return decode(out)


def silence(seconds: float, sample_rate: int = 24_000) -> Audio:
    """Digital silence."""
    return Audio(np.zeros(round(seconds * sample_rate), dtype=np.int16), sample_rate)


def white_noise(
    seconds: float, *, rms: float = 0.1, sample_rate: int = 24_000, seed: int = 0
) -> Audio:
    """Gaussian white noise with the given RMS (full scale = 1.0), reproducible by ``seed``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, rms, round(seconds * sample_rate)).clip(-1.0, 1.0)
    return Audio((x * 32767).astype(np.int16), sample_rate)


def concatenate(*parts: Audio) -> Audio:
    """Join audio pieces; every piece must have the same sample rate."""
    rates = {p.sample_rate for p in parts}
    if len(rates) != 1:
        raise ValueError(f"mixed sample rates {sorted(rates)}")
    return Audio(np.concatenate([p.samples for p in parts]), rates.pop())


def median_f0(audio: Audio) -> float:
    """Median fundamental frequency (Hz) of the voiced 40 ms frames, by autocorrelation (60-400 Hz).

    Crude but enough to tell voices apart by pitch; returns 0.0 if no frame is voiced.
    """
    x = audio.to_float32()
    rate = audio.sample_rate
    frame = int(0.04 * rate)
    lo, hi = int(rate / 400), int(rate / 60)
    found: list[float] = []
    for start in range(0, len(x) - frame, frame // 2):
        chunk = x[start : start + frame]
        if np.sqrt(np.mean(chunk**2)) < 0.02:
            continue
        chunk = chunk - chunk.mean()
        ac = np.correlate(chunk, chunk, "full")[frame - 1 :]
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.4 * ac[0]:
            found.append(rate / lag)
    return float(np.median(found)) if found else 0.0


def spectral_centroid(audio: Audio) -> float:
    """Magnitude-weighted mean frequency (Hz) of the whole clip: a rough brightness measure."""
    x = audio.to_float32()
    spectrum = np.abs(np.fft.rfft(x))
    freqs = np.fft.rfftfreq(len(x), 1 / audio.sample_rate)
    return float((spectrum * freqs).sum() / spectrum.sum())
