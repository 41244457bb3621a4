"""Shared fixtures for tests/test_lab_*.py: espeak-ng speech of known structure, a private local
server, and helpers to build traces with real sessions.

The recording (24 kHz): 700 ms of silence, phrase A ("Hello there. What is the weather like in
Paris today?" — one utterance with a short pause after "there."), 1500 ms of silence, phrase B
("Please turn on the kitchen lights."), 600 ms of silence. ``SPANS`` are where the two phrases were
placed (espeak's own output, ms); the clean recording is the reference.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from realtime_nb.audio import Audio, decode

PHRASE_A = "Hello there. What is the weather like in Paris today?"
PHRASE_B = "Please turn on the kitchen lights."
RATE = 24_000


@dataclass(frozen=True)
class LabSpeech:
    clean: Audio
    noisy: Audio
    spans: tuple[tuple[int, int], tuple[int, int]]  # placement of phrase A and phrase B (ms)


def espeak(text: str, directory: Path) -> Audio:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("the lab tests need Debian espeak-ng (apt-get install espeak-ng)")
    path = directory / "phrase.wav"
    subprocess.run([exe, "-w", str(path), text], check=True, capture_output=True)
    return decode(path, to_rate=RATE)


def build_speech(directory: Path) -> LabSpeech:
    a, b = espeak(PHRASE_A, directory), espeak(PHRASE_B, directory)
    parts = [Audio.silence(700, RATE), a, Audio.silence(1500, RATE), b, Audio.silence(600, RATE)]
    clean = Audio.concat(parts, RATE)
    a_start = 700
    a_end = a_start + round(a.duration_ms)
    b_start = a_end + 1500
    b_end = b_start + round(b.duration_ms)
    rng = np.random.default_rng(7)
    noise = rng.normal(0.0, 150.0, len(clean.samples))  # about -47 dBFS of white noise
    noisy = Audio(np.clip(np.round(clean.samples + noise), -32768, 32767).astype(np.int16), RATE)
    return LabSpeech(clean, noisy, ((a_start, a_end), (b_start, b_end)))


@pytest.fixture(scope="session")
def lab_speech(tmp_path_factory: pytest.TempPathFactory) -> LabSpeech:
    return build_speech(tmp_path_factory.mktemp("lab_speech"))


@pytest.fixture(scope="module")
def lab_server() -> Iterator[str]:
    """URL of a private local server (own thread and loop), shared by a test module."""
    from realtime_nb.lab._socket import LocalServerThread

    server = LocalServerThread().start()
    try:
        yield server.url
    finally:
        server.stop()
