"""Shared fixtures: speech made with espeak-ng, and a local server on a free loopback port.

Also registers the fixtures of ``audio_fixtures.py`` (espeak-ng speech in every container,
Chromium's MediaRecorder recording) for every test module, and the warmed-up Whisper
transcriber shared by the ASR and TTS tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from realtime_nb.server.engines.asr import FasterWhisperTranscriber

pytest_plugins = ["audio_fixtures"]

# Sessions record to a folder by default (the flight recorder): the suite's go to a scratch
# directory, not the user's ~/.local/share (subprocesses and notebook kernels inherit it).
os.environ.setdefault("REALTIME_NB_RECORD_DIR", tempfile.mkdtemp(prefix="realtime_nb-test-rec-"))

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


@pytest.fixture(scope="session")
def whisper() -> FasterWhisperTranscriber:
    """faster-whisper tiny.en, loaded and warmed up once for the session."""
    from realtime_nb.server.engines.asr import FasterWhisperTranscriber

    engine = FasterWhisperTranscriber()
    engine.warm_up()
    return engine
