"""Yardsticks and scoring: crafted turns against crafted reference segments, so every metric is
known by construction; plus references derived from a clean recording and from probabilities."""

from __future__ import annotations

import numpy as np
import pytest
from lab_fixtures import LabSpeech, lab_speech  # noqa: F401

from realtime_nb import lab
from realtime_nb.audio import Audio
from realtime_nb.lab import Reference, Turn, measure

# Three utterances; the second has two regions with a 200 ms pause inside.
REF = Reference(
    utterances=((1000, 2000), (3000, 4000), (6000, 6500)),
    regions=((1000, 2000), (3000, 3400), (3600, 4000), (6000, 6500)),
)


def _turn(start: int, end: int, closed: bool = True) -> Turn:
    return Turn(start, end, closed, committed_at_ms=float(end) if closed else None)


TURNS = [
    _turn(900, 2100),    # utterance 1, whole, 100 ms padding each side
    _turn(3050, 3500),   # utterance 2: starts 50 ms late, ends in its pause (cut off)
    _turn(3500, 4300),   # the rest of utterance 2
    _turn(5000, 5200),   # no speech: false start
]                        # utterance 3 is never heard: missed


def test_crafted_turns_score_as_constructed() -> None:
    turns, m = measure(TURNS, REF, tolerance_ms=20)
    assert m["n_turns"] == 4
    assert m["clipped_onsets"] == 1
    assert [t.clipped_ms for t in turns] == [0, 50, 0, 0]
    assert m["premature_cutoffs"] == 1
    assert [t.cut_off for t in turns] == [False, True, False, False]
    assert m["false_starts"] == 1
    assert m["missed_utterances"] == 1
    assert m["missed_speech_ms"] == 50 + 500  # 3000-3050 and the whole third utterance
    assert m["errors"] == 1 + 1 + 1 + 1
    # onset: utt1 900-1000=-100, utt2 3050-3000=+50; offset: 2100-2000=+100, 4300-4000=+300
    assert m["onset_error_ms"] == pytest.approx(-25)
    assert m["onset_abs_error_ms"] == pytest.approx(75)
    assert m["offset_error_ms"] == pytest.approx(200)
    assert m["offset_abs_error_ms"] == pytest.approx(200)
    # latency = commit - end of the last speech region in the turn
    assert [t.latency_ms for t in turns] == [100.0, 100.0, 300.0, None]
    assert m["latency_ms"] == 100.0
    assert m["latency_max_ms"] == 300.0


def test_tolerance_forgives_small_clips_and_cuts() -> None:
    turns = [_turn(1015, 1990 + 5)]
    _, strict = measure(turns, REF, tolerance_ms=0)
    _, loose = measure(turns, REF, tolerance_ms=20)
    assert (strict["clipped_onsets"], strict["premature_cutoffs"]) == (1, 1)
    assert (loose["clipped_onsets"], loose["premature_cutoffs"]) == (0, 0)


def test_clip_counts_only_speech_after_the_previous_turn() -> None:
    """Speech inside the previous turn was committed with it: not clipped from this one."""
    turns = [_turn(3000, 3200), _turn(3300, 4200)]  # second starts 100 ms after the first ends
    out, m = measure(turns, REF)
    assert [t.clipped_ms for t in out] == [0, 100]
    assert m["premature_cutoffs"] == 1


def test_open_turn_is_never_a_premature_cut_off() -> None:
    out, m = measure([_turn(900, 1500, closed=False)], REF)
    assert m["premature_cutoffs"] == 0
    assert out[0].latency_ms is None


def test_reference_from_segments_sorts_merges_and_joins() -> None:
    ref = Reference.from_segments([(3000, 3500), (1000, 2000), (1800, 2200), (3600, 4000)])
    assert ref.regions == ((1000, 2200), (3000, 3500), (3600, 4000))
    assert ref.utterances == ref.regions
    joined = Reference.from_segments([(1000, 2000), (2300, 3000)], pause_ms=500)
    assert joined.utterances == ((1000, 3000),)
    assert joined.regions == ((1000, 2000), (2300, 3000))
    with pytest.raises(ValueError):
        Reference.from_segments([(2000, 1000)])


def test_reference_from_a_clean_recording_of_tone_bursts() -> None:
    rate = 24000
    t = np.arange(rate) / rate
    burst = (0.3 * np.sin(2 * np.pi * 300 * t) * 32767).astype(np.int16)

    def part(ms: float) -> np.ndarray:
        return burst[: round(ms * rate / 1000)]

    def gap(ms: float) -> np.ndarray:
        return np.zeros(round(ms * rate / 1000), dtype=np.int16)

    # 400 ms at 500, then 40 ms gap (a closure), 300 ms, then 250 ms pause, 200 ms, 900 ms silence,
    # then 500 ms
    x = np.concatenate([gap(500), part(400), gap(40), part(300), gap(250), part(200), gap(900),
                        part(500), gap(300)])
    ref = lab.reference_from_clean(Audio(x, rate), pause_ms=500)
    assert ref.source == "clean recording"
    assert ref.regions == ((500, 1240), (1490, 1690), (2590, 3090))
    assert ref.utterances == ((500, 1690), (2590, 3090))


def test_clean_espeak_reference_matches_where_the_phrases_were_placed(
    lab_speech: LabSpeech,  # noqa: F811
) -> None:
    ref = lab.reference_from_clean(lab_speech.clean)
    assert len(ref.utterances) == 2
    for (us, ue), (ps, pe) in zip(ref.utterances, lab_speech.spans, strict=True):
        assert ps <= us < ps + 100  # espeak starts speaking at once
        assert ps < ue <= pe        # and ends with some silence of its own
    assert len(ref.regions) > len(ref.utterances)  # the pause after "Hello there."


def test_auto_reference_from_probabilities() -> None:
    p = np.array([0.0, 0.2, 0.6, 0.9, 0.3, 0.1, 0.0, 0.3, 0.4, 0.2, 0.0, 0.55, 0.2, 0.0]
                 + [0.0] * 20)
    ref = lab.auto_reference(p, 32.0, pause_ms=100)
    # runs >= 0.15 with a frame >= 0.5: frames 1-4 and 11-12; frames 7-9 have no seed
    assert ref.regions == ((32, 160), (352, 416))
    assert ref.utterances == ref.regions
    assert lab.auto_reference(p, 32.0, pause_ms=300).utterances == ((32, 416),)


def test_rescore_switches_the_yardstick(lab_speech: LabSpeech) -> None:  # noqa: F811
    res = lab.sweep(lab_speech.clean, grid={"prefix_padding_ms": [0, 300],
                                            "silence_duration_ms": [800]}, progress=False)
    labels = [(u[0] - 200, u[1]) for u in lab.reference_from_clean(lab_speech.clean).utterances]
    again = res.rescore(labels)
    assert again.reference.source == "labels"
    assert [r.turns for r in again] == [r.turns for r in res]
    # labels starting 200 ms before the speech: without padding every onset is now clipped
    assert again.find(prefix_padding_ms=0).clipped_onsets == 2
    assert again.find(prefix_padding_ms=300).clipped_onsets == 0
