"""semantic_vad with the end-of-turn model (Smart Turn v3.2): features, model, segmenter rules,
live-vs-offline agreement, the server through a real socket, and the lab.

Speech is made here with espeak-ng (deterministic). The two recordings differ only in what is
said before the same 1.2 s pause: a complete question ("What time is it?") or a trailing-off
request ("I would like to order, um"), each followed by more speech. server_vad — and the
length-rule fallback — split both at the pause; semantic_vad with the model ends the question
fast and keeps the unfinished turn open across the pause.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import espeak_wav

from realtime_nb import lab
from realtime_nb.audio import Audio, decode
from realtime_nb.protocol import SessionCore
from realtime_nb.server import LocalServer, make_segmenter
from realtime_nb.server.engines import Engines
from realtime_nb.vad import (
    ASK_MS,
    Segmenter,
    SemanticVadSettings,
    ServerVadSettings,
    SileroVAD,
    SmartTurn,
    SpeechStopped,
    TurnCheck,
    TurnDecisions,
    segment,
    segment_stepwise,
    speech_probabilities,
    turn,
)

RATE = 24_000
F = 32.0
PAUSE_S = 1.2

pytestmark = pytest.mark.skipif(not turn.turn_model_available(),
                                reason="the smartturn extra (pipecat-ai) is not installed")


def _espeak(text: str, directory: Path) -> np.ndarray:
    samples = decode(espeak_wav(directory / "phrase.wav", text), to_rate=RATE).samples
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > 328)
    return samples[loud[0]:loud[-1] + 1]


def _recording(first: str, second: str, directory: Path) -> np.ndarray:
    """0.5 s, ``first``, a 1.2 s pause, ``second``, 4.5 s — over -70 dBFS noise."""
    rng = np.random.default_rng(0)
    parts = [np.zeros(RATE // 2), _espeak(first, directory), np.zeros(int(PAUSE_S * RATE)),
             _espeak(second, directory), np.zeros(int(4.5 * RATE))]
    x = np.concatenate([p.astype(np.float64) for p in parts])
    x += rng.normal(0.0, 10.0, len(x))
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


@pytest.fixture(scope="module")
def model() -> SmartTurn:
    return SmartTurn()


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    d = tmp_path_factory.mktemp("turn")
    return {"complete": _recording("What time is it?", "Thanks a lot.", d),
            "trailing": _recording("I would like to order, um", "a large pizza.", d)}


@pytest.fixture(scope="module")
def probs(recordings: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: speech_probabilities(Audio(x, RATE)) for k, x in recordings.items()}


def _turns(segments: list) -> list[tuple[int, int]]:
    return [(s.start_ms, s.end_ms) for s in segments]


# -- features and model ---------------------------------------------------------------------
def test_features_equal_pipecats_whisper_features() -> None:
    from pipecat.audio.turn.smart_turn._whisper_features import (
        compute_whisper_log_mel_features,
    )

    rng = np.random.default_rng(1)
    for n in (8_000, 64_000, 128_000, 150_000):
        x = (rng.standard_normal(n) * 0.1).astype(np.float32)
        window = x[-128_000:] if n >= 128_000 else np.pad(x, (128_000 - n, 0))
        ours = turn.log_mel_features(x)
        assert ours.shape == (80, 800) and ours.dtype == np.float32
        np.testing.assert_allclose(ours, compute_whisper_log_mel_features(window), atol=1e-6)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pipecat's importlib.resources.path
def test_probability_equals_pipecats_analyzer_on_speech(model: SmartTurn,
                                                        recordings: dict[str, np.ndarray]) -> None:
    from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3

    theirs = LocalSmartTurnAnalyzerV3()
    theirs.set_sample_rate(16_000)
    for x in recordings.values():
        x16 = Audio(x[:RATE * 2], RATE).resample(16_000).samples
        ref = theirs._predict_endpoint(x16.astype(np.float32) / 32768.0)["probability"]
        assert model.predict(x16, sample_rate=16_000) == pytest.approx(ref, abs=1e-5)


def test_batched_answers_are_bit_identical(model: SmartTurn,
                                           recordings: dict[str, np.ndarray]) -> None:
    x = recordings["trailing"]
    spans = [x[:RATE], x[:2 * RATE], x[RATE // 2:3 * RATE]]
    assert model.predict_many(spans, batch_size=3) == [model.predict(s) for s in spans]


def test_model_file_is_found_without_importing_pipecat() -> None:
    code = ("import sys; from realtime_nb.vad.turn import SmartTurn; m = SmartTurn(); "
            "print(m.model_path.name, 'pipecat' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["smart-turn-v3.2-cpu.onnx", "False"]


def test_the_model_hears_complete_versus_trailing_off(model: SmartTurn,
                                                      recordings: dict[str, np.ndarray],
                                                      probs: dict[str, np.ndarray]) -> None:
    """Judged at the first pause (the audio the segmenter asks about)."""
    answers = {}
    for name, x in recordings.items():
        decide = TurnDecisions(model, x)
        segment(probs[name], F, SemanticVadSettings("high"), decide=decide)
        answers[name] = decide.answers[min(decide.answers, key=lambda k: k[1])]
    assert answers["complete"] > 0.5 > answers["trailing"]


# -- segmenter rules (no model: answers given by hand) ------------------------------------------
def test_wait_follows_the_probability_and_eagerness() -> None:
    for e, top, conf in (("low", 8000, 0.7), ("medium", 4000, 0.5), ("auto", 4000, 0.5),
                         ("high", 2000, 0.3)):
        s = SemanticVadSettings(e)
        assert s.wait_ms(1.0) == s.wait_ms(conf) == top / 8
        assert s.wait_ms(0.0) == top
    for p in np.linspace(0, 1, 21):
        waits = [SemanticVadSettings(e).wait_ms(p) for e in ("high", "medium", "low")]
        assert waits == sorted(waits) and waits[0] < waits[2]
    with pytest.raises(ValueError):
        SemanticVadSettings().wait_ms(float("nan"))


def _speech_then_pause(pause_frames: int) -> list[float]:
    return [0.0] * 5 + [0.9] * 30 + [0.1] * pause_frames + [0.9] * 10 + [0.1] * 200


def test_segmenter_asks_once_per_pause_and_blocks_until_answered() -> None:
    seg = Segmenter(SemanticVadSettings("high"), F, decisions=True)
    assert seg.semantic_rule == "model"
    events = []
    probs = _speech_then_pause(100)
    i = 0
    while not any(isinstance(e, TurnCheck) for e in events):
        events += seg.push(probs[i])
        i += 1
    check = next(e for e in events if isinstance(e, TurnCheck))
    ask = round(ASK_MS / F)
    assert i == 35 + ask  # asked once the pause is ASK_MS old
    assert (check.audio_start_ms, check.audio_end_ms) == (0, 35 * 32)  # onset 160 - 300 → 0
    while not seg.blocked:
        assert seg.push(probs[i]) == []
        i += 1
    assert seg.now_ms == check.due_ms - 32
    with pytest.raises(RuntimeError):
        seg.push(0.1)
    assert seg.decide(check, 0.9)
    assert not seg.decide(check, 0.1)  # answered already: ignored
    stopped = seg.push(probs[i])
    assert stopped == [SpeechStopped(check.due_ms, 35 * 32)]  # complete: ends after base wait


def test_speech_resuming_makes_the_question_stale() -> None:
    seg = Segmenter(SemanticVadSettings("auto"), F, decisions=True)
    checks = [e for p in [0.9] * 20 + [0.1] * 3 for e in seg.push(p) if isinstance(e, TurnCheck)]
    assert len(checks) == 1 and seg.pending_check is checks[0]
    seg.push(0.9)
    assert seg.pending_check is None
    assert not seg.decide(checks[0], 1.0)


def test_without_a_model_semantic_vad_says_it_uses_the_length_rule() -> None:
    seg = Segmenter(SemanticVadSettings("auto"), F)
    assert seg.semantic_rule == "length-fallback"
    assert not any(isinstance(e, TurnCheck) for p in _speech_then_pause(50) for e in seg.push(p))
    assert Segmenter(ServerVadSettings(), F, decisions=True).semantic_rule is None


def test_offline_segment_equals_stepwise_with_answers() -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        lengths = rng.integers(1, 120, size=20)
        levels = rng.choice([0.05, 0.4, 0.95], size=20)
        probs = np.repeat(levels, lengths)

        def decide(a: int, b: int) -> float:
            return ((a * 7 + b * 13) % 101) / 100

        for e in ("low", "medium", "high"):
            s = SemanticVadSettings(e)
            assert segment(probs, F, s, decide=decide) == segment_stepwise(probs, F, s,
                                                                           decide=decide)


# -- behaviour on speech --------------------------------------------------------------------
def test_semantic_ends_the_question_and_holds_the_trailing_off(
        model: SmartTurn, recordings: dict[str, np.ndarray],
        probs: dict[str, np.ndarray]) -> None:
    server = {k: segment(p, F, ServerVadSettings(silence_duration_ms=500))
              for k, p in probs.items()}
    fallback = {k: segment(p, F, SemanticVadSettings("high")) for k, p in probs.items()}
    # server_vad and the fallback cannot tell them apart: both split at the pause
    assert len(server["complete"]) == len(server["trailing"]) == 2
    assert len(fallback["complete"]) == len(fallback["trailing"]) == 2
    for eagerness in ("high", "auto"):
        s = SemanticVadSettings(eagerness)
        complete = segment(probs["complete"], F, s,
                           decide=TurnDecisions(model, recordings["complete"]))
        trailing = segment(probs["trailing"], F, s,
                           decide=TurnDecisions(model, recordings["trailing"]))
        assert len(complete) == 2  # ended at the pause, after the short base wait
        assert complete[0].end_ms - complete[0].offset_ms == pytest.approx(s.base_wait_ms, abs=32)
        assert len(trailing) == 1  # kept open across the pause: one turn with the continuation
        assert trailing[0].closed and trailing[0].end_ms > server["trailing"][1].offset_ms


# -- live (SessionCore, chunked, answers late) versus offline -----------------------------------
def _live_turns(x: np.ndarray, settings: SemanticVadSettings, model: SmartTurn, *,
                defer: bool, seed: int) -> tuple[list[tuple[int, int]], int]:
    core = SessionCore(vad_model=SileroVAD(),
                       make_segmenter=functools.partial(make_segmenter, decisions=True),
                       turn_model=model)
    core.handle({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "transcription": None, "turn_detection": {
            "type": "semantic_vad", "eagerness": settings.eagerness, "create_response": False}}}}})
    assert core.semantic_rule == "model"
    core.defer_turn = defer
    rng = np.random.default_rng(seed)
    pcm = x.astype("<i2").tobytes()
    jobs: list = []
    answered = 0
    pos = 0
    while pos < len(pcm):
        n = int(rng.integers(1, 300)) * 48
        core.append_audio(pcm[pos:pos + n])
        pos += n
        jobs += [j for j in core.take_jobs() if j.kind == "turn_check"]
        if jobs and rng.random() < 0.3:  # answer some time later, maybe after newer audio
            job = jobs.pop(0)
            core.turn_decision(job.payload["check"], model.predict(job.payload["audio"]))
            answered += 1
    for job in jobs:
        core.turn_decision(job.payload["check"], model.predict(job.payload["audio"]))
    core.run_pending_vad()
    starts, turns = [], []
    for ev in core.drain():
        if ev["type"] == "input_audio_buffer.speech_started":
            starts.append(ev["audio_start_ms"])
        elif ev["type"] == "input_audio_buffer.speech_stopped":
            turns.append((starts[len(turns)], ev["audio_end_ms"]))
    return turns, answered


@pytest.mark.parametrize("defer", [False, True])
def test_live_core_agrees_with_offline_to_the_millisecond(
        model: SmartTurn, recordings: dict[str, np.ndarray], probs: dict[str, np.ndarray],
        defer: bool) -> None:
    for name, x in recordings.items():
        for k, eagerness in enumerate(("high", "auto")):
            s = SemanticVadSettings(eagerness)
            offline = [t for t in segment(probs[name], F, s, decide=TurnDecisions(model, x))
                       if t.closed]
            live, answered = _live_turns(x, s, model, defer=defer, seed=k)
            assert live == _turns(offline), (name, eagerness)
            assert (answered > 0) == defer


# -- the server through a real socket ---------------------------------------------------------
async def _socket_turns(url: str, pcm: bytes, eagerness: str) -> list[dict]:
    from websockets.asyncio.client import connect

    async with connect(url + "?model=gpt-realtime",
                       additional_headers={"Authorization": "Bearer x"}) as ws:
        assert json.loads(await ws.recv())["type"] == "session.created"
        await ws.send(json.dumps({"type": "session.update", "session": {
            "type": "realtime", "audio": {"input": {"transcription": None, "turn_detection": {
                "type": "semantic_vad", "eagerness": eagerness, "create_response": False}}}}}))
        import base64

        for off in range(0, len(pcm), 4800):  # 100 ms appends, as fast as possible
            await ws.send(json.dumps({"type": "input_audio_buffer.append",
                                      "audio": base64.b64encode(pcm[off:off + 4800]).decode()}))
        await ws.send(json.dumps({"type": "session.update", "session": {"type": "realtime"}}))
        events = []
        updated = 0
        while updated < 2:
            ev = json.loads(await asyncio.wait_for(ws.recv(), 30))
            updated += ev["type"] == "session.updated"
            events.append(ev)
        return [e for e in events if e["type"].startswith("input_audio_buffer.speech_")]


@pytest.mark.parametrize("workers", [1, 2])
async def test_server_semantic_vad_through_a_socket(
        model: SmartTurn, recordings: dict[str, np.ndarray],
        probs: dict[str, np.ndarray], workers: int) -> None:
    async with LocalServer(engines=Engines.light(), turn_workers=workers) as server:
        assert server.semantic_vad == "smart-turn-v3.2"
        results = await asyncio.gather(*(
            _socket_turns(server.url, x.astype("<i2").tobytes(), "high")
            for x in recordings.values()))
    for (name, x), events in zip(recordings.items(), results, strict=True):
        offline = segment(probs[name], F, SemanticVadSettings("high"),
                          decide=TurnDecisions(model, x))
        stops = [e["audio_end_ms"] for e in events if e["type"].endswith("speech_stopped")]
        assert stops == [t.end_ms for t in offline if t.closed], name
    assert len([e for e in results[1] if e["type"].endswith("speech_stopped")]) == 1


async def test_server_without_the_model_says_it_falls_back(monkeypatch, caplog) -> None:
    monkeypatch.setattr(turn, "_CARRIER", ("no_such_package_xyz", "m.onnx"))
    monkeypatch.setattr(turn, "_default", None)
    monkeypatch.setattr(turn, "_default_error", None)
    with caplog.at_level(logging.WARNING, logger="realtime_nb.vad.turn"):
        async with LocalServer(engines=Engines.light()) as server:
            assert server.turn_model is None
            assert server.semantic_vad.startswith("length-rule fallback:")
    assert any("falling back to the utterance-length rule" in r.message for r in caplog.records)
    assert LocalServer(engines=Engines(turn=False)).semantic_vad.startswith("length-rule")


# -- the lab ------------------------------------------------------------------------------------
def test_lab_compares_semantic_and_server_vad_on_one_recording(
        recordings: dict[str, np.ndarray]) -> None:
    grid = [{"eagerness": ["low", "medium", "high"]}, {"silence_duration_ms": [200, 500]}]
    result = lab.sweep(Audio(recordings["trailing"], RATE), grid=grid, progress=False)
    assert result.semantic_vad == "smart-turn-v3.2"
    by = {lab.settings_label(r.settings): r for r in result}
    assert by["semantic · high"].n_turns == 1  # the unfinished turn is held across the pause
    assert by["thr 0.5 · pad 300 · sil 500"].n_turns == 2
    # the fallback is still there on request, and says so
    with pytest.warns(UserWarning, match="length-rule fallback"):
        fb = lab.sweep(Audio(recordings["trailing"], RATE), grid={"eagerness": ["high"]},
                       turn_model=False, progress=False)
    assert fb.semantic_vad.startswith("length-rule fallback") and fb[0].n_turns == 2
