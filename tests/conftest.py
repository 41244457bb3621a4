"""Shared fixtures: speech made with espeak-ng, and a local server on a free loopback port."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SPEECH_TEXT = "Hello there. What is the weather like in Paris today?"


def espeak_wav(path: Path, text: str) -> Path:
    """Synthesize ``text`` with Debian's espeak-ng into a WAV file (22.05 kHz mono)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is required for the speech fixtures: run ./dev setup "
                           "(apt-get install espeak-ng)")
    subprocess.run([exe, "-w", str(path), text], check=True, capture_output=True)
    return path


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return espeak_wav(tmp_path_factory.mktemp("speech") / "speech.wav", SPEECH_TEXT)


@pytest.fixture(scope="session")
def speech_pcm(speech_wav: Path) -> bytes:
    """The speech fixture as PCM16 LE mono 24 kHz bytes."""
    from realtime_nb.audio import to_pcm16

    return to_pcm16(speech_wav)
