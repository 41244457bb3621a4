"""Turn-detection semantics of realtime_nb.vad's segmenter, on crafted probability sequences.

Pins down: prefix padding and its floor, the silence window (rounded up to whole frames, end time
including it), hysteresis, end-of-audio reporting, the semantic_vad emulation, settings
validation, and that the offline ``segment`` equals the live ``Segmenter`` frame for frame.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime_nb.vad import (
    Segment,
    Segmenter,
    SemanticVadSettings,
    ServerVadSettings,
    SpeechStarted,
    SpeechStopped,
    neg_threshold,
    segment,
    segment_stepwise,
    settings_from_wire,
)

F = 32.0  # Silero frame length


def probs(*runs: tuple[float, int]) -> list[float]:
    """Build a probability sequence from (value, frame count) runs."""
    out: list[float] = []
    for value, count in runs:
        out.extend([value] * count)
    return out


def test_settings_defaults_are_the_services_real_defaults() -> None:
    s = ServerVadSettings()
    assert (s.threshold, s.prefix_padding_ms, s.silence_duration_ms) == (0.5, 300, 200)
    sem = SemanticVadSettings()
    assert sem.eagerness == "auto"
    assert (sem.threshold, sem.prefix_padding_ms, sem.max_wait_ms) == (0.5, 300, 4000)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"threshold": 1.5}, ValueError),
        ({"threshold": -0.1}, ValueError),
        ({"threshold": math.nan}, ValueError),
        ({"threshold": True}, TypeError),
        ({"threshold": "0.5"}, TypeError),
        ({"prefix_padding_ms": -1}, ValueError),
        ({"prefix_padding_ms": 300.0}, TypeError),
        ({"silence_duration_ms": -5}, ValueError),
        ({"silence_duration_ms": None}, TypeError),
    ],
)
def test_server_vad_settings_reject_invalid_values(kwargs: dict, error: type) -> None:
    with pytest.raises(error):
        ServerVadSettings(**kwargs)


def test_semantic_vad_settings_reject_unknown_eagerness() -> None:
    with pytest.raises(ValueError, match="eagerness"):
        SemanticVadSettings(eagerness="eager")  # type: ignore[arg-type]


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        ServerVadSettings().threshold = 0.9  # type: ignore[misc]


def test_wire_turn_detection_maps_to_settings_with_service_defaults() -> None:
    assert settings_from_wire(None) is None
    assert settings_from_wire({"type": "server_vad"}) == ServerVadSettings()
    assert settings_from_wire(
        {"type": "server_vad", "threshold": 0.7, "silence_duration_ms": 500, "create_response": 1}
    ) == ServerVadSettings(threshold=0.7, silence_duration_ms=500)
    assert settings_from_wire({"type": "semantic_vad", "eagerness": "high"}) == (
        SemanticVadSettings(eagerness="high")
    )
    with pytest.raises(ValueError):
        settings_from_wire({"type": "none"})


def test_fractional_floor_is_rounded_up() -> None:
    seg = Segmenter(ServerVadSettings(), F)
    seg.push_many([0.0] * 40)
    seg.reset_floor(1199.5)
    assert seg.push(1.0) == [SpeechStarted(audio_start_ms=1200, onset_ms=1280)]


def test_speech_start_reports_onset_minus_prefix_padding() -> None:
    seg = Segmenter(ServerVadSettings(), F)
    events = seg.push_many(probs((0.0, 20), (0.9, 1)))
    assert events == [SpeechStarted(audio_start_ms=640 - 300, onset_ms=640)]


def test_speech_started_is_emitted_on_the_first_frame_at_threshold() -> None:
    """A probability exactly equal to the threshold counts (``>=``), one frame is enough."""
    seg = Segmenter(ServerVadSettings(threshold=0.5), F)
    assert seg.push_many([0.49999, 0.2]) == []
    assert seg.push(0.5) == [SpeechStarted(audio_start_ms=0, onset_ms=64)]
    assert seg.in_speech


def test_audio_start_is_clamped_to_the_start_of_the_session() -> None:
    seg = Segmenter(ServerVadSettings(prefix_padding_ms=300), F)
    events = seg.push_many(probs((0.0, 3), (1.0, 1)))
    assert events == [SpeechStarted(audio_start_ms=0, onset_ms=96)]


def test_audio_start_never_precedes_the_previous_turns_end() -> None:
    """Two turns 96 ms apart: the second one's padding would reach into the first turn."""
    seq = probs((0.0, 10), (1.0, 10), (0.0, 7), (0.0, 3), (1.0, 5), (0.0, 7))
    segs = segment_stepwise(seq, F, ServerVadSettings())
    first_end = (20 + 7) * 32
    assert segs[0].end_ms == first_end
    assert segs[1].onset_ms == 30 * 32
    assert segs[1].start_ms == first_end  # not onset - 300 = 660


def test_reset_floor_keeps_audio_start_inside_the_current_buffer() -> None:
    seg = Segmenter(ServerVadSettings(prefix_padding_ms=300), F)
    seg.push_many([0.0] * 40)  # 1280 ms
    seg.reset_floor(1200)  # the state machine committed: the buffer starts at 1200 ms
    assert seg.push(1.0) == [SpeechStarted(audio_start_ms=1200, onset_ms=1280)]


def test_silence_window_is_rounded_up_to_whole_frames() -> None:
    """200 ms of silence at 32 ms frames needs 7 silent frames (224 ms); the stop comes on the
    7th silent frame, and audio_end_ms is the end of that frame."""
    seg = Segmenter(ServerVadSettings(silence_duration_ms=200), F)
    seg.push_many(probs((0.0, 5), (1.0, 10)))  # speech frames 5..14
    assert seg.push_many([0.0] * 6) == []
    assert seg.push(0.0) == [SpeechStopped(audio_end_ms=(15 + 7) * 32, offset_ms=15 * 32)]
    assert not seg.in_speech


def test_silence_window_that_is_a_whole_number_of_frames_is_exact() -> None:
    seg = Segmenter(ServerVadSettings(silence_duration_ms=64), F)
    seg.push_many(probs((1.0, 4)))
    assert seg.push(0.0) == []
    assert seg.push(0.0) == [SpeechStopped(audio_end_ms=4 * 32 + 64, offset_ms=4 * 32)]


def test_zero_silence_duration_stops_on_the_first_silent_frame() -> None:
    seg = Segmenter(ServerVadSettings(silence_duration_ms=0), F)
    seg.push_many(probs((1.0, 3)))
    assert seg.push(0.0) == [SpeechStopped(audio_end_ms=128, offset_ms=96)]


def test_audio_end_includes_the_trailing_silence_window() -> None:
    segs = segment(probs((0.0, 10), (1.0, 20), (0.0, 40)), F, ServerVadSettings())
    assert segs == [Segment(start_ms=20, end_ms=(30 + 7) * 32, onset_ms=320, offset_ms=960)]


def test_hysteresis_keeps_speech_going_between_the_two_thresholds() -> None:
    """Inside speech, 0.4 (between 0.35 and 0.5) is not silence and resets a silence run."""
    assert neg_threshold(0.5) == pytest.approx(0.35)
    seq = probs((1.0, 5), (0.0, 6), (0.4, 1), (0.0, 6), (0.4, 30))
    assert segment(seq, F, ServerVadSettings()) == [
        Segment(start_ms=0, end_ms=len(seq) * 32, onset_ms=0, offset_ms=len(seq) * 32, closed=False)
    ]


def test_probability_between_the_thresholds_does_not_start_speech() -> None:
    assert segment(probs((0.45, 100)), F, ServerVadSettings()) == []


def test_hysteresis_zero_makes_anything_below_threshold_silent() -> None:
    seq = probs((1.0, 5), (0.49, 7))
    assert segment(seq, F, ServerVadSettings(), hysteresis=0.0)[0].closed
    assert not segment(seq, F, ServerVadSettings())[0].closed


def test_open_segment_at_end_of_audio_is_reported_not_closed() -> None:
    seq = probs((0.0, 10), (1.0, 10), (0.0, 3))
    expected = Segment(start_ms=20, end_ms=1000, onset_ms=320, offset_ms=640, closed=False)
    assert segment(seq, F, ServerVadSettings(), end_ms=1000) == [expected]
    seg = Segmenter(ServerVadSettings(), F)
    seg.push_many(seq)
    assert seg.flush(1000) == expected
    assert not seg.in_speech


def test_open_segment_still_speaking_ends_at_end_of_audio() -> None:
    seq = probs((1.0, 10))
    assert segment(seq, F) == [Segment(0, 320, 0, 320, closed=False)]


def test_flush_refuses_an_end_before_the_last_frame() -> None:
    seg = Segmenter(ServerVadSettings(), F)
    seg.push_many([1.0] * 10)
    with pytest.raises(ValueError):
        seg.flush(100)


def test_flush_without_open_speech_returns_none() -> None:
    seg = Segmenter(ServerVadSettings(), F)
    seg.push_many([0.0] * 10)
    assert seg.flush() is None


def test_start_frame_puts_events_on_the_session_timeline() -> None:
    seg = Segmenter(ServerVadSettings(), F, start_frame=100)
    assert seg.now_ms == 3200
    assert seg.push(1.0) == [SpeechStarted(audio_start_ms=3200, onset_ms=3200)]


def test_update_settings_keeps_the_timeline_and_applies_to_the_next_frames() -> None:
    seg = Segmenter(ServerVadSettings(silence_duration_ms=500), F)
    seg.push_many(probs((1.0, 10), (0.0, 3)))
    seg.update_settings(ServerVadSettings(silence_duration_ms=100))  # 4 frames
    assert seg.push(0.0) == [SpeechStopped(audio_end_ms=14 * 32, offset_ms=10 * 32)]


def test_semantic_high_eagerness_ends_turns_sooner_than_low() -> None:
    seq = probs((0.0, 10), (1.0, 40), (0.0, 400))
    ends = {
        e: segment(seq, F, SemanticVadSettings(eagerness=e))[0].end_ms
        for e in ("low", "medium", "high", "auto")
    }
    assert ends["high"] < ends["medium"] < ends["low"]
    assert ends["auto"] == ends["medium"]


def test_semantic_short_utterances_wait_longer_than_long_ones() -> None:
    short = segment(probs((1.0, 5), (0.0, 400)), F, SemanticVadSettings())[0]
    long = segment(probs((1.0, 60), (0.0, 400)), F, SemanticVadSettings())[0]
    assert short.end_ms - short.offset_ms > long.end_ms - long.offset_ms


@pytest.mark.parametrize(
    ("eagerness", "max_wait"), [("low", 8000), ("medium", 4000), ("high", 2000)]
)
def test_semantic_wait_is_capped_by_the_max_wait(eagerness: str, max_wait: int) -> None:
    """A one-frame blip is the least complete utterance: it waits the max wait, no longer
    (plus the rounding to whole frames)."""
    seg = segment(probs((1.0, 1), (0.0, 400)), F, SemanticVadSettings(eagerness=eagerness))[0]
    silence = seg.end_ms - seg.offset_ms
    assert max_wait * 0.9 < silence <= max_wait + F


def test_semantic_vad_uses_fixed_threshold_and_padding() -> None:
    seq = probs((0.0, 20), (0.5, 1), (0.0, 400))
    [seg] = segment(seq, F, SemanticVadSettings())
    assert (seg.onset_ms, seg.start_ms) == (640, 340)


def test_non_integer_frame_lengths_round_times_to_milliseconds() -> None:
    seq = probs((0.0, 3), (1.0, 3), (0.0, 30))
    [seg] = segment(seq, 10.5, ServerVadSettings(prefix_padding_ms=0, silence_duration_ms=21))
    assert (seg.start_ms, seg.onset_ms, seg.offset_ms, seg.end_ms) == (32, 32, 63, 84)


@pytest.mark.parametrize("frame_ms", [0.0, -32.0, math.inf])
def test_invalid_frame_length_is_rejected(frame_ms: float) -> None:
    with pytest.raises(ValueError):
        Segmenter(ServerVadSettings(), frame_ms)
    with pytest.raises(ValueError):
        segment([0.0], frame_ms)


# -- offline == live -------------------------------------------------------------------------
# Values sit on and around the thresholds' edges (including float32-rounded ones) so the two
# implementations' comparisons are exercised exactly where they could differ.
EDGY = [0.0, 0.01, 0.2, 0.29, 0.3, 0.34, 0.35, 0.36, 0.45, 0.5, 0.55, 0.7, 0.9, 1.0, math.nan]
prob_lists = st.lists(
    st.one_of(st.sampled_from(EDGY), st.floats(0.0, 1.0)),
    max_size=400,
).flatmap(
    lambda xs: st.lists(st.integers(1, 30), min_size=len(xs), max_size=len(xs)).map(
        lambda reps: [x for x, r in zip(xs, reps, strict=True) for _ in range(r)]
    )
)
server_settings = st.builds(
    ServerVadSettings,
    threshold=st.one_of(st.sampled_from([0.0, 0.1, 0.3, 0.35, 0.5, 0.9, 1.0]), st.floats(0, 1)),
    prefix_padding_ms=st.integers(0, 1000),
    silence_duration_ms=st.integers(0, 1500),
)
semantic_settings = st.builds(
    SemanticVadSettings, eagerness=st.sampled_from(["low", "medium", "high", "auto"])
)


@settings(max_examples=300, deadline=None)
@given(
    seq=prob_lists,
    vad=st.one_of(server_settings, semantic_settings),
    frame_ms=st.sampled_from([32.0, 20.0, 10.0, 30.5, 1000 / 48]),
    hysteresis=st.sampled_from([0.15, 0.0, 0.3]),
    as_float32=st.booleans(),
)
def test_offline_segment_equals_the_live_segmenter(
    seq: list[float], vad, frame_ms: float, hysteresis: float, as_float32: bool
) -> None:
    arr = np.asarray(seq, dtype=np.float32 if as_float32 else np.float64)
    expected = segment_stepwise(arr, frame_ms, vad, hysteresis=hysteresis)
    assert segment(arr, frame_ms, vad, hysteresis=hysteresis) == expected


@settings(max_examples=100, deadline=None)
@given(seq=prob_lists, vad=st.one_of(server_settings, semantic_settings))
def test_segments_are_ordered_and_consistent(seq: list[float], vad) -> None:
    segs = segment(seq, F, vad)
    for s in segs:
        assert s.start_ms <= s.onset_ms <= s.offset_ms <= s.end_ms
    for a, b in itertools.pairwise(segs):
        assert a.closed and a.end_ms <= b.start_ms
