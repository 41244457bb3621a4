"""The offline sweep: one recording, many settings, the local server's own VAD without sockets.

The speech is espeak-ng with a known structure (see tests/lab_fixtures.py): two phrases, the
first with a short pause inside, so that a short silence window cuts it and a long one does not.
"""

from __future__ import annotations

import concurrent.futures as cf
from typing import Any

import numpy as np
import pytest
from lab_fixtures import LabSpeech, lab_speech  # noqa: F401

from realtime_nb import lab
from realtime_nb.audio import Audio
from realtime_nb.lab import _sweep
from realtime_nb.vad import (
    SemanticVadSettings,
    ServerVadSettings,
    segment,
    speech_probabilities,
)

GRID = {"threshold": [0.5, 0.8], "prefix_padding_ms": [0, 300],
        "silence_duration_ms": [200, 500, 800]}


@pytest.fixture(scope="module")
def clean_ref(lab_speech: LabSpeech) -> lab.Reference:  # noqa: F811
    return lab.reference_from_clean(lab_speech.clean)


@pytest.fixture(scope="module")
def result(lab_speech: LabSpeech, clean_ref: lab.Reference) -> lab.SweepResult:  # noqa: F811
    return lab.sweep(lab_speech.noisy, grid=GRID, reference=clean_ref, progress=False)


def _overlaps(turn: tuple[int, int], span: tuple[int, int]) -> bool:
    return turn[0] < span[1] and turn[1] > span[0]


def test_one_record_per_setting_in_grid_order(result: lab.SweepResult) -> None:
    assert [r.settings for r in result] == lab.expand_grid(GRID)
    assert all(r.backend == "offline" for r in result)


def test_long_silence_window_finds_one_turn_per_phrase(
    result: lab.SweepResult, lab_speech: LabSpeech, clean_ref: lab.Reference  # noqa: F811
) -> None:
    """With 500 ms or more of required silence each phrase is one turn that covers its speech
    and ends a silence window after it."""
    for rec in result:
        if rec.settings.silence_duration_ms < 500:
            continue
        assert len(rec.turns) == 2, rec
        for turn, span, utt in zip(rec.turns, lab_speech.spans, clean_ref.utterances,
                                   strict=True):
            assert _overlaps(turn, span)
            assert turn[1] >= utt[1] + rec.settings.silence_duration_ms - 100


def test_short_silence_window_cuts_the_phrase_with_a_pause(
    result: lab.SweepResult, lab_speech: LabSpeech  # noqa: F811
) -> None:
    """The service's real default (200 ms) ends a turn at the pause after "Hello there."."""
    rec = result.find(threshold=0.5, prefix_padding_ms=300, silence_duration_ms=200)
    in_a = [t for t in rec.turns if _overlaps(t, lab_speech.spans[0])]
    assert len(in_a) >= 2
    assert rec.premature_cutoffs >= 1
    assert any(t.cut_off for t in rec.segments)
    longer = result.find(threshold=0.5, prefix_padding_ms=300, silence_duration_ms=500)
    assert longer.premature_cutoffs == 0


def test_no_prefix_padding_clips_onsets_and_300_ms_does_not(result: lab.SweepResult) -> None:
    for rec in result:
        if rec.settings.prefix_padding_ms == 0:
            assert rec.clipped_onsets >= 1, rec
        else:
            assert rec.clipped_onsets == 0, rec


def test_turns_are_exactly_what_the_segmenter_gives(
    result: lab.SweepResult, lab_speech: LabSpeech  # noqa: F811
) -> None:
    """The sweep is plumbing around realtime_nb.vad: same probabilities, same segments."""
    replay = lab.replay_audio(lab_speech.noisy, result.tail_ms)
    probs = speech_probabilities(replay)
    assert np.array_equal(probs, result.probabilities)
    end_ms = len(replay.samples) * 1000 // replay.sample_rate
    for rec in result:
        segs = segment(probs, result.frame_ms, rec.settings, end_ms=end_ms)
        assert rec.turns == [(s.start_ms, s.end_ms) for s in segs]
        assert [t.onset_ms for t in rec.segments] == [s.onset_ms for s in segs]


def test_commit_times_and_latency_follow_the_silence_window(result: lab.SweepResult) -> None:
    for rec in result:
        for turn in rec.segments:
            assert turn.closed
            assert turn.committed_at_ms == turn.end_ms
            assert turn.started_at_ms is not None and turn.started_at_ms > turn.onset_ms
        assert rec.latency_ms is not None
        assert rec.latency_ms >= rec.settings.silence_duration_ms - 100
    by_silence = {s: result.find(threshold=0.5, prefix_padding_ms=300, silence_duration_ms=s)
                  for s in (200, 500, 800)}
    latencies = [by_silence[s].latency_ms for s in (200, 500, 800)]
    assert latencies == sorted(latencies)


def test_recommendation_avoids_cut_offs_and_is_the_quickest_error_free(
    result: lab.SweepResult,
) -> None:
    best = result.recommend()
    assert best.record.errors == 0
    clean = [r for r in result if r.errors == 0]
    assert best.record.latency_ms == min(r.latency_ms for r in clean)
    assert "cut" in best.reason  # it says what the default did wrong
    assert "clean recording" in best.reason
    assert best.turn_detection == {"type": "server_vad", **{
        k: getattr(best.settings, k)
        for k in ("threshold", "prefix_padding_ms", "silence_duration_ms")}}


def test_auto_yardstick_comes_from_the_recordings_probabilities(
    lab_speech: LabSpeech,  # noqa: F811
) -> None:
    res = lab.sweep(lab_speech.noisy, grid={"silence_duration_ms": [200, 800]}, progress=False)
    assert res.reference.source == "auto"
    assert len(res.reference.utterances) == 2
    assert res.reference == lab.auto_reference(res.probabilities, res.frame_ms)
    assert "speech model" in res.recommend().reason


def test_tail_is_long_enough_for_the_longest_wait(lab_speech: LabSpeech) -> None:  # noqa: F811
    """semantic_vad low waits up to 8 s for a short utterance: the tail must let it close."""
    res = lab.sweep(lab_speech.clean, grid={"eagerness": ["low", "high"]}, progress=False)
    assert res.tail_ms >= 8000
    assert all(t.closed for r in res for t in r.segments)
    assert res.audio.duration_ms == pytest.approx(lab_speech.clean.duration_ms + res.tail_ms,
                                                  abs=1)


def test_mixed_server_and_semantic_grid(lab_speech: LabSpeech) -> None:  # noqa: F811
    res = lab.sweep(lab_speech.clean, grid=[ServerVadSettings(), {"eagerness": ["high"]},
                                            {"type": "server_vad", "threshold": 0.6}],
                    progress=False)
    assert [type(r.settings) for r in res] == [ServerVadSettings, SemanticVadSettings,
                                               ServerVadSettings]
    assert res[2].settings.threshold == 0.6


def test_explicit_executors_give_the_inline_results(
    result: lab.SweepResult, lab_speech: LabSpeech, clean_ref: lab.Reference  # noqa: F811
) -> None:
    with cf.ThreadPoolExecutor(2) as pool:
        threaded = lab.sweep(lab_speech.noisy, grid=GRID, reference=clean_ref, executor=pool,
                             progress=False)
    assert threaded.to_records() == result.to_records()


class _ResultOnlyExecutor:
    """Like some cluster executors: futures that only promise ``result()``."""

    class _Future:
        def __init__(self, value: Any) -> None:
            self._value = value

        def result(self) -> Any:
            return self._value

    def __init__(self) -> None:
        self.submitted = 0

    def submit(self, fn: Any, *args: Any) -> Any:
        self.submitted += 1
        return self._Future(fn(*args))


def test_executor_without_concurrent_futures(
    result: lab.SweepResult, lab_speech: LabSpeech, clean_ref: lab.Reference  # noqa: F811
) -> None:
    ex = _ResultOnlyExecutor()
    res = lab.sweep(lab_speech.noisy, grid=GRID, reference=clean_ref, executor=ex,
                    progress=False)
    assert ex.submitted > 1
    assert res.to_records() == result.to_records()


def test_default_uses_a_process_pool_for_big_sweeps(
    result: lab.SweepResult, lab_speech: LabSpeech, clean_ref: lab.Reference,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pretend every sweep is big: the default path starts a process pool, same results."""
    started: list[Any] = []
    real = cf.ProcessPoolExecutor

    class Spy(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            started.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(_sweep, "AUTO_POOL_S", 0.0)
    monkeypatch.setattr(_sweep.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(_sweep.cf, "ProcessPoolExecutor", Spy)
    res = lab.sweep(lab_speech.noisy, grid=GRID, reference=clean_ref, progress=False)
    assert len(started) == 1
    assert res.to_records() == result.to_records()


def test_records_and_dataframe(result: lab.SweepResult) -> None:
    rows = result.to_records()
    assert len(rows) == len(result)
    first = rows[0]
    for key in ("type", "threshold", "prefix_padding_ms", "silence_duration_ms", "turns",
                *lab.METRICS):
        assert key in first
    assert first["turns"] == result[0].turns
    df = result.to_dataframe()
    assert list(df["silence_duration_ms"]) == [r.settings.silence_duration_ms for r in result]
    assert list(df["premature_cutoffs"]) == [r.premature_cutoffs for r in result]


def test_plot_draws_one_row_per_setting_plus_the_yardstick(result: lab.SweepResult) -> None:
    fig = result.plot()
    wave_ax, seg_ax = fig.axes[0], fig.axes[1]
    labels = [t.get_text() for t in seg_ax.get_yticklabels()]
    assert len(labels) == len(result) + 1
    assert labels[0].startswith("yardstick")
    assert any(r.label in text for r in result for text in labels)
    assert wave_ax.get_xlim()[1] == pytest.approx(result.audio.duration_ms / 1000, rel=0.05)


def test_heatmap_cells_hold_the_metric(result: lab.SweepResult) -> None:
    fig = result.heatmap("silence_duration_ms", "threshold", "latency_ms", agg="min")
    grid = np.asarray(fig.axes[0].images[0].get_array())
    assert grid.shape == (2, 3)  # thresholds x silences
    for i, thr in enumerate((0.5, 0.8)):
        for j, sil in enumerate((200, 500, 800)):
            want = min(r.latency_ms for r in result
                       if r.settings.threshold == thr and r.settings.silence_duration_ms == sil)
            assert grid[i, j] == pytest.approx(want)
    with pytest.raises(KeyError):
        result.heatmap("silence_duration_ms", "eagerness")


def test_numpy_input_at_another_rate_is_resampled(lab_speech: LabSpeech) -> None:  # noqa: F811
    x16 = lab_speech.clean.resample(16000).samples
    res = lab.sweep(x16, 16000, grid={"silence_duration_ms": [800]}, progress=False)
    assert res.audio.sample_rate == 24000
    assert res[0].n_turns == 2


def test_unknown_backend_and_grid_errors(lab_speech: LabSpeech) -> None:  # noqa: F811
    with pytest.raises(ValueError, match="backend"):
        lab.sweep(lab_speech.clean, backend="nope")
    with pytest.raises(ValueError, match="semantic_vad has no"):
        lab.sweep(lab_speech.clean, grid={"eagerness": ["low"], "threshold": [0.5]})


def test_silence_only_recording_recommends_checking_the_audio() -> None:
    res = lab.sweep(Audio.silence(3000), grid={"threshold": [0.5, 0.9]}, progress=False)
    assert all(r.n_turns == 0 for r in res)
    assert "No setting detected any turn" in res.recommend().reason
