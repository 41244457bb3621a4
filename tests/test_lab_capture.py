"""Getting the recording a sweep replays: microphone takes (either mode), sessions, files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lab_fixtures import LabSpeech, lab_server, lab_speech  # noqa: F401

from realtime_nb import Session, lab
from realtime_nb.audio import PCM, Audio, AudioChunk, AudioError
from realtime_nb.widgets import MicChunk


class FakeMic:
    """What a MicWidget offers the Recorder: on_audio(callback, remove=False)."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[[Any], None]] = []

    def on_audio(self, callback: Callable[[Any], None], remove: bool = False) -> None:
        if remove:
            self.callbacks.remove(callback)
        else:
            self.callbacks.append(callback)

    def send(self, chunk: MicChunk) -> None:
        for cb in list(self.callbacks):
            cb(chunk)


def _chunks(audio: Audio, take: int, chunk_ms: int = 100) -> list[MicChunk]:
    data = audio.to_pcm16()
    step = 48 * chunk_ms
    return [MicChunk(data=data[i:i + step], sample_rate=24000, format=PCM,
                     duration_ms=len(data[i:i + step]) / 48, take=take, seq=n, t_ms=n * chunk_ms)
            for n, i in enumerate(range(0, len(data), step))]


def test_recorder_keeps_each_take(lab_speech: LabSpeech) -> None:  # noqa: F811
    mic = FakeMic()
    rec = lab.Recorder(mic)
    first = lab_speech.clean.slice_ms(0, 1000)
    second = lab_speech.clean.slice_ms(1000, 2500)
    for c in _chunks(first, take=1):
        mic.send(c)
    for c in _chunks(second, take=2):  # e.g. the next push-to-talk press
        mic.send(c)
    assert np.array_equal(rec.audio.samples, second.samples)
    assert np.array_equal(rec.takes[1].samples, first.samples)
    assert np.array_equal(lab.recording_from(rec).samples, second.samples)
    rec.detach()
    assert mic.callbacks == []


def test_recorder_keeps_time_across_a_lost_chunk(lab_speech: LabSpeech) -> None:  # noqa: F811
    rec = lab.Recorder()
    chunks = _chunks(lab_speech.clean.slice_ms(0, 1000), take=3)
    for c in chunks[:4] + chunks[5:]:  # chunk 4 never arrived
        rec.add(c)
    audio = rec.audio
    assert len(audio.samples) == len(lab_speech.clean.slice_ms(0, 1000).samples)
    assert not audio.samples[4 * 2400:5 * 2400].any()


def test_recorder_without_audio_says_so() -> None:
    with pytest.raises(AudioError, match="Nothing recorded"):
        _ = lab.Recorder().audio


def test_recording_from_plain_chunks_and_files(lab_speech: LabSpeech, tmp_path: Path) -> None:  # noqa: F811
    part = lab_speech.clean.slice_ms(0, 700)
    data = part.to_pcm16()
    plain = [AudioChunk(data[:9600], 24000, PCM, 200.0), AudioChunk(data[9600:], 24000, PCM,
                                                                    (len(data) - 9600) / 48)]
    assert np.array_equal(lab.recording_from(plain).samples, part.samples)
    wav = tmp_path / "x.wav"
    wav.write_bytes(part.resample(16000).to_wav())
    from_file = lab.recording_from(wav)
    assert from_file.sample_rate == 24000
    assert abs(len(from_file.samples) - len(part.samples)) <= 2


async def test_recording_from_a_session_is_what_it_appended(
    lab_server: str, lab_speech: LabSpeech  # noqa: F811
) -> None:
    audio = lab_speech.clean.slice_ms(0, 1500)
    async with Session(url=lab_server) as s:
        await s.update(turn_detection=None)
        await s.send_audio(audio)
        got = lab.recording_from(s)
    assert np.array_equal(got.samples, audio.samples)
