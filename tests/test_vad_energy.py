"""EnergyVAD, the loudness fallback: its dBFS → probability mapping, a drift-free frame grid at
any sample rate, and chunking-independent streaming (same contract as Silero)."""

from __future__ import annotations

import numpy as np
import pytest
from audio_fixtures import stream_in_chunks, to_int16, tone
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime_nb.audio import Audio
from realtime_nb.vad import (
    EnergyVAD,
    Segment,
    ServerVadSettings,
    SpeechModel,
    SpeechStream,
    segment,
    speech_probabilities,
)


def _tone(ms: int, rate: int, dbfs: float) -> np.ndarray:
    """A 440 Hz sine whose RMS is ``dbfs``."""
    return to_int16(tone(440, ms, rate, amp=10 ** (dbfs / 20) * np.sqrt(2)))


def test_energy_vad_implements_the_speech_model_protocol() -> None:
    model = EnergyVAD()
    assert isinstance(model, SpeechModel)
    assert isinstance(model.new_stream(), SpeechStream)
    assert model.new_stream(44_100).frame_ms == 32.0


@pytest.mark.parametrize(("dbfs", "expected"), [(-90, 0.0), (-60, 0.0), (-45, 0.5), (-30, 1.0)])
def test_probability_is_loudness_mapped_linearly(dbfs: float, expected: float) -> None:
    probs = speech_probabilities(Audio(_tone(320, 24_000, dbfs), 24_000), EnergyVAD())
    assert probs == pytest.approx(np.full(10, expected), abs=0.01)


def test_digital_silence_has_probability_zero() -> None:
    probs = speech_probabilities(Audio(np.zeros(24_000, np.int16), 24_000), EnergyVAD())
    assert np.all(probs == 0.0)


def test_frame_grid_does_not_drift_at_44100_hz() -> None:
    """32 ms is 1411.2 samples at 44.1 kHz: frames follow the exact grid, 10 s → 312 frames."""
    probs = speech_probabilities(Audio(np.zeros(441_000, np.int16), 44_100), EnergyVAD())
    assert len(probs) == 312


def test_tone_burst_is_found_where_it_is() -> None:
    rate = 24_000
    audio = np.concatenate(
        [np.zeros(rate, np.int16), _tone(800, rate, -20), np.zeros(rate, np.int16)]
    )
    probs = speech_probabilities(Audio(audio, rate), EnergyVAD())
    assert segment(probs, 32.0, ServerVadSettings()) == [
        Segment(start_ms=992 - 300, end_ms=1824 + 224, onset_ms=992, offset_ms=1824)
    ]


@settings(max_examples=40, deadline=None)
@given(
    rate=st.sampled_from([8_000, 16_000, 22_050, 24_000, 44_100, 48_000]),
    chunks=st.lists(st.integers(0, 5000), min_size=1, max_size=30),
    seed=st.integers(0, 2**16),
)
def test_streaming_in_any_chunks_equals_the_whole_recording(
    rate: int, chunks: list[int], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    samples = (rng.standard_normal(rate * 2) * rng.uniform(10, 8000)).astype(np.int16)
    model = EnergyVAD()
    expected = speech_probabilities(Audio(samples, rate), model)
    streamed = stream_in_chunks(model.new_stream(rate), samples, chunks)
    assert np.array_equal(streamed, expected)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"silence_dbfs": -30.0, "sound_dbfs": -60.0},
        {"sound_dbfs": 3.0},
        {"frame_ms": 0},
        {"frame_ms": 32.5},
        {"silence_dbfs": float("nan")},
    ],
)
def test_invalid_parameters_are_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        EnergyVAD(**kwargs)
