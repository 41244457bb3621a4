"""What keeps the local server's turn latency low: speculative transcription that is dropped as
soon as the speaker resumes, Whisper reading a window sized to the turn instead of 30 s, and
replies that never queue behind speech recognition.

The end-to-end figure (speech end -> first ``response.output_audio.delta``) is measured by
``benchmarks/bench_server.py``; these tests pin down the mechanisms, without timing goals except
where a mechanism is about not waiting (and then with a wide margin).
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from typing import Any

import numpy as np
import pytest
from engine_fixtures import SENTENCES, concatenate, espeak_speech, silence
from state_fixtures import FakeVad, tone
from state_fixtures import silence as quiet
from websockets.asyncio.client import connect

from realtime_nb.audio import Audio
from realtime_nb.protocol import SessionCore
from realtime_nb.server import LocalServer, make_segmenter
from realtime_nb.server.engines import Engines, Transcript, TranscriptionCancelled
from realtime_nb.server.engines.asr import (
    FasterWhisperTranscriber,
    transcribe_turn,
    window_frames,
)


def _feed(core: SessionCore, pcm: bytes) -> None:
    core.handle({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()})


def test_the_open_speculation_is_the_latest_while_its_pause_lasts() -> None:
    core = SessionCore(vad_model=FakeVad(), make_segmenter=make_segmenter)
    _feed(core, tone(640) + quiet(64))
    (spec,) = [j for j in core.take_jobs() if j.kind == "speculate"]
    assert core.open_speculation == spec.payload["speculation"]


def test_a_speculation_is_no_longer_open_once_speech_resumes() -> None:
    """The speaker went on: that pause cannot end the turn, its transcription is useless."""
    core = SessionCore(vad_model=FakeVad(), make_segmenter=make_segmenter)
    _feed(core, tone(640) + quiet(64) + tone(320))
    assert [j.kind for j in core.take_jobs()] == ["speculate"]
    assert core.open_speculation is None


def test_the_turn_names_the_speculation_of_its_final_pause_and_none_stays_open() -> None:
    core = SessionCore(vad_model=FakeVad(), make_segmenter=make_segmenter)
    _feed(core, tone(640) + quiet(96) + tone(320) + quiet(400))
    jobs = core.take_jobs()
    specs = [j.payload["speculation"] for j in jobs if j.kind == "speculate"]
    (transcribe,) = [j for j in jobs if j.kind == "transcribe"]
    assert len(specs) == 2 and transcribe.payload["speculation"] == specs[-1]
    assert core.open_speculation is None


def test_clearing_the_buffer_closes_the_open_speculation() -> None:
    core = SessionCore(vad_model=FakeVad(), make_segmenter=make_segmenter)
    _feed(core, tone(640) + quiet(64))
    core.handle({"type": "input_audio_buffer.clear"})
    assert core.open_speculation is None


# ------------------------------------------------------------------ Whisper's window
@pytest.mark.parametrize(("content", "floor", "expected"), [
    (200, 1000, 1000),    # a 2 s turn: the 10 s floor
    (950, 1000, 1100),    # content + 1 s, rounded up to whole seconds
    (1234, 1000, 1400),
    (2950, 1000, 3000),   # never more than Whisper's 30 s
    (200, 3000, 3000),    # floor 30 s = always the full window
])
def test_the_encoder_window_covers_the_content_plus_a_second(
    content: int, floor: int, expected: int
) -> None:
    assert window_frames(content, floor) == expected


@pytest.fixture(scope="module")
def short_clip() -> Audio:
    return espeak_speech(SENTENCES[1])


def _encoder_positions(engine: FasterWhisperTranscriber, clip: Audio) -> int:
    """Encoder output positions for ``clip``, fed the way faster-whisper feeds a segment."""
    from faster_whisper.audio import pad_or_trim

    model = engine._model()
    features = pad_or_trim(model.feature_extractor(clip.resample(16_000).to_float32()))
    return int(model.encode(features).shape[1])


def test_a_short_turn_is_encoded_in_a_fifteen_second_window_by_default(short_clip: Audio) -> None:
    """2-3 s of speech: 15 s of mel frames (750 encoder positions), not Whisper's 30 s (1500);
    ``min_window_s=None`` keeps faster-whisper's own 30 s."""
    assert _encoder_positions(FasterWhisperTranscriber(), short_clip) == 750
    assert _encoder_positions(FasterWhisperTranscriber(min_window_s=10.0), short_clip) == 500
    assert _encoder_positions(FasterWhisperTranscriber(min_window_s=None), short_clip) == 1500


def test_the_windowed_encoder_still_reads_the_whole_turn(short_clip: Audio) -> None:
    """Speech at the end of a 14 s turn is inside the window (content + 1 s = 15 s)."""
    long_turn = concatenate(silence(12.0, short_clip.sample_rate), short_clip)
    text = FasterWhisperTranscriber(min_window_s=10.0, vad_filter=False).transcribe(long_turn).text
    assert "kitchen" in text.lower()


# ------------------------------------------------------------------ cancelling a transcription
def test_a_cancelled_transcription_does_not_start(short_clip: Audio) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(TranscriptionCancelled):
        FasterWhisperTranscriber().transcribe(short_clip, cancel=cancel)


def test_cancelling_stops_a_running_transcription_early() -> None:
    """Set 20 ms into a 25 s transcription, it stops at the next checkpoint (around the encoder,
    before a decoding pass) instead of running to the end."""
    engine = FasterWhisperTranscriber()
    engine.warm_up()
    long_turn = concatenate(*[espeak_speech(s) for s in SENTENCES[:9]])
    cancel = threading.Event()
    timer = threading.Timer(0.02, cancel.set)
    timer.start()
    with pytest.raises(TranscriptionCancelled):
        engine.transcribe(long_turn, cancel=cancel)
    timer.cancel()


def test_the_transcription_thread_forgets_its_cancel_event(short_clip: Audio) -> None:
    """A cancelled call must not leak into the next call on the same thread."""
    engine = FasterWhisperTranscriber()
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(TranscriptionCancelled):
        engine.transcribe(short_clip, cancel=cancel)
    assert "kitchen" in engine.transcribe(short_clip).text.lower()


class _PlainEngine:
    """A user transcriber that knows nothing about cancelling."""

    def transcribe(self, audio: Audio, *, language: str | None = None,
                   prompt: str | None = None) -> Transcript:
        return Transcript.from_text("plain")


def test_cancel_is_passed_only_to_transcribers_that_accept_it(short_clip: Audio) -> None:
    assert transcribe_turn(_PlainEngine(), short_clip, has_speech=True,
                           cancel=threading.Event()).text == "plain"


# ------------------------------------------------------------------ the server
class _Recorder:
    """A slow transcriber (``delay`` s, polling its cancel event) that records every call:
    ``[audio ms, "cancelled" | "finished"]``."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.calls: list[list[Any]] = []

    def transcribe(self, audio: Audio, *, language: str | None = None,
                   prompt: str | None = None,
                   cancel: threading.Event | None = None) -> Transcript:
        call = [audio.duration_ms, "running"]
        self.calls.append(call)
        end = time.monotonic() + self.delay
        while time.monotonic() < end:
            if cancel is not None and cancel.is_set():
                call[1] = "cancelled"
                raise TranscriptionCancelled("cancelled")
            time.sleep(0.005)
        call[1] = "finished"
        return Transcript.from_text(f"heard {round(audio.duration_ms)} ms")


async def _events_until(ws: Any, until: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    async def run() -> None:
        while True:
            ev = json.loads(await ws.recv())
            out.append(ev)
            if ev["type"] == until:
                return

    await asyncio.wait_for(run(), timeout)
    return out


def _trimmed(text: str) -> Audio:
    """``text`` spoken by espeak-ng at 24 kHz, without its leading and trailing quiet."""
    audio = espeak_speech(text).resample(24_000)
    loud = np.flatnonzero(np.abs(audio.samples.astype(np.int32)) > 328)  # -40 dBFS
    return Audio(audio.samples[loud[0]:loud[-1] + 1], audio.sample_rate)


async def test_a_pause_the_speaker_talks_through_has_its_speculation_dropped() -> None:
    """Real Silero VAD, speech paced in real time: a phrase, a 160 ms pause (shorter than the
    200 ms silence window), a phrase, silence. Each inner pause starts a speculative
    transcription that is cancelled (while it runs) when speech resumes; the turn uses the
    speculation of its final pause without running speech recognition again."""
    recorder = _Recorder(delay=0.4)
    turn = concatenate(silence(0.3), _trimmed(SENTENCES[1]), silence(0.16),
                       _trimmed("Thank you."), silence(1.0))
    pcm = turn.to_pcm16()
    chunk = 480 * 2  # 20 ms
    headers = {"Authorization": "Bearer k"}
    async with LocalServer(engines=Engines(transcriber=recorder)) as srv, \
            connect(srv.url, additional_headers=headers) as ws:
        await _events_until(ws, "session.created")
        await ws.send(json.dumps({"type": "session.update", "session": {
            "type": "realtime", "output_modalities": ["text"],
            "audio": {"input": {"transcription": {"model": "whisper-1"}}}}}))
        await _events_until(ws, "session.updated")
        for i in range(0, len(pcm), chunk):
            await ws.send(json.dumps({"type": "input_audio_buffer.append",
                                      "audio": base64.b64encode(pcm[i:i + chunk]).decode()}))
            await asyncio.sleep(0.02)
        events = await _events_until(ws, "response.done")
    assert [e["type"] for e in events].count("input_audio_buffer.speech_stopped") == 1
    (completed,) = [e for e in events
                    if e["type"] == "conversation.item.input_audio_transcription.completed"]
    assert len(recorder.calls) >= 2, "the inner pause was speculated on"
    *stale, (last_ms, last_outcome) = recorder.calls
    assert [outcome for _, outcome in stale] == ["cancelled"] * len(stale)
    assert last_outcome == "finished"
    assert completed["transcript"] == f"heard {round(last_ms)} ms"


async def test_a_reply_does_not_wait_behind_another_sessions_transcriptions() -> None:
    """Session A commits two turns whose transcription takes 3 s each; session B's text reply
    (responder, no ASR) must not queue behind them."""
    recorder = _Recorder(delay=3.0)
    one_second = base64.b64encode(espeak_speech(SENTENCES[0]).resample(24_000)
                                  .to_pcm16()[:48_000]).decode()
    headers = {"Authorization": "Bearer k"}
    manual = {"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "turn_detection": None, "transcription": {"model": "whisper-1"}}}}}
    async with LocalServer(engines=Engines(transcriber=recorder)) as srv, \
            connect(srv.url, additional_headers=headers) as a, \
            connect(srv.url, additional_headers=headers) as b:
        await _events_until(a, "session.created")
        await _events_until(b, "session.created")
        await a.send(json.dumps(manual))
        await _events_until(a, "session.updated")
        for _ in range(2):
            await a.send(json.dumps({"type": "input_audio_buffer.append", "audio": one_second}))
            await a.send(json.dumps({"type": "input_audio_buffer.commit"}))
        await _events_until(a, "conversation.item.done")  # the first commit is in
        await asyncio.sleep(0.2)  # both transcriptions submitted to the engine threads
        t0 = time.monotonic()
        await b.send(json.dumps({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "hello"}]}}))
        await b.send(json.dumps({"type": "response.create",
                                 "response": {"output_modalities": ["text"]}}))
        await _events_until(b, "response.done")
        waited = time.monotonic() - t0
    assert waited < 1.5, f"the reply waited {waited:.1f} s behind speech recognition"
