"""Corpus sweeps (``lab.sweep_corpus``): many recordings, one grid, pooled and per-file results,
in the calling process, a process pool, and a real ``dask.distributed`` LocalCluster."""

from __future__ import annotations

import concurrent.futures as cf
import pickle
import statistics
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from engine_fixtures import espeak_speech, silence

from realtime_nb import lab
from realtime_nb.audio import Audio
from realtime_nb.lab import measure

GRID = {"threshold": [0.3, 0.6], "silence_duration_ms": [200, 600]}
PHRASES = ["turn on the lights", "what time is it", "book a table for two please"]


def _recording(i: int) -> tuple[Audio, list[tuple[float, float]]]:
    """Three phrases with pauses of 300..700 ms; returns the audio and its speech spans (ms)."""
    parts, spans, at = [silence(0.4)], [], 400.0
    for j in range(3):
        speech = espeak_speech(PHRASES[(i + j) % 3]).resample(24_000)
        pause = silence(0.3 + 0.2 * ((i + j) % 3))
        spans.append((at, at + speech.duration_ms))
        at += speech.duration_ms + pause.duration_ms
        parts += [speech, pause]
    return Audio.concat(parts), spans


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    """Five WAV files; four with an Audacity label file beside them (seconds, tab-separated)."""
    folder = tmp_path_factory.mktemp("corpus")
    (folder / "sub").mkdir()
    for i in range(5):
        audio, spans = _recording(i)
        path = folder / ("sub" if i == 4 else ".") / f"rec{i}.wav"
        path.write_bytes(audio.to_wav())
        if i != 3:
            path.with_suffix(".txt").write_text("".join(
                f"{s / 1000:.6f}\t{e / 1000:.6f}\tspeech\n" for s, e in spans))
    (folder / "notes.md").write_text("not audio")
    return folder


def test_each_file_gets_exactly_the_single_recording_sweep(corpus_dir):
    result = lab.sweep_corpus(corpus_dir, GRID, labels="audacity", progress=False)
    assert [f.name for f in result.files] == ["rec0", "rec1", "rec2", "rec3", "sub/rec4"]
    assert [f.reference.source for f in result.files] == ["labels"] * 3 + ["auto", "labels"]
    tail = lab.sweep(corpus_dir / "rec0.wav", grid=GRID, progress=False).tail_ms
    for f in result.files:
        path = corpus_dir / f"{f.name}.wav"
        labels = (lab.read_audacity_labels(path.with_suffix(".txt"))
                  if path.with_suffix(".txt").exists() else None)
        alone = lab.sweep(path, grid=GRID, reference=labels, tail_ms=tail, progress=False)
        assert [r.segments for r in alone] == [r.segments for r in f.records]
        assert [r.metrics() for r in alone] == [r.metrics() for r in f.records]


def test_pooled_records_are_totals_and_pooled_medians(corpus_dir):
    result = lab.sweep_corpus(corpus_dir, GRID, labels="audacity", progress=False)
    assert len(result) == 4 and result.reference.source == "labels where given, else auto"
    assert len(result.reference.utterances) == sum(len(f.reference.utterances)
                                                   for f in result.files)
    for i, pooled in enumerate(result):
        per = [f.records[i] for f in result.files]
        for count in ("n_turns", "clipped_onsets", "premature_cutoffs", "false_starts",
                      "missed_utterances", "missed_speech_ms", "errors"):
            assert getattr(pooled, count) == sum(getattr(r, count) for r in per), count
        lat = [t.latency_ms for r in per for t in r.segments if t.latency_ms is not None]
        assert pooled.latency_ms == pytest.approx(statistics.median(lat))
        assert pooled.latency_max_ms == pytest.approx(max(lat))
        assert pooled.extra["files_with_errors"] == sum(r.errors > 0 for r in per)
        # the spec: the recordings played one after another, measured in one go
        turns = [replace(t, start_ms=t.start_ms + off, end_ms=t.end_ms + off,
                         committed_at_ms=None if t.committed_at_ms is None
                         else t.committed_at_ms + off)
                 for f, off in zip(result.files, result.offsets, strict=True)
                 for t in f.records[i].segments]
        _, brute = measure(turns, result.reference)
        assert brute == pytest.approx(pooled.metrics())
    rows = result.per_file_dataframe()
    assert len(rows) == 4 * 5 and set(rows["file"]) == {f.name for f in result.files}
    assert len(result.to_dataframe()) == 4


def test_recommend_and_heatmap_work_on_the_corpus(corpus_dir):
    result = lab.sweep_corpus(corpus_dir, GRID, labels="audacity", progress=False)
    rec = result.recommend()
    best = min(result, key=lambda r: (r.n_turns == 0, r.errors, r.latency_ms or 1e9))
    assert rec.record.errors == best.errors
    assert "Over 5 recordings" in rec.reason
    fig = result.heatmap("silence_duration_ms", "threshold", "latency_ms")
    assert fig.axes[0].get_xlabel() == "silence_duration_ms"
    by_file = result.per_file(threshold=0.3, silence_duration_ms=600)
    assert set(by_file) == {f.name for f in result.files}


def test_long_windows_merge_the_short_pauses_and_are_counted_as_cutoffs_nowhere(corpus_dir):
    """Labels per phrase, pauses of 300-700 ms: a 600 ms window joins some phrases into one
    turn (fewer turns than utterances); a 200 ms window splits them all."""
    result = lab.sweep_corpus(corpus_dir, GRID, labels="audacity", progress=False)
    short = result.find(threshold=0.6, silence_duration_ms=200)
    long = result.find(threshold=0.6, silence_duration_ms=600)
    assert short.n_turns == len(result.reference.utterances) == 15
    assert long.n_turns < short.n_turns
    assert long.latency_ms > short.latency_ms


def test_inputs_lists_mappings_globs_and_refusals(corpus_dir, tmp_path):
    audio, spans = _recording(0)
    arrays = lab.sweep_corpus([audio.samples, audio.samples.copy()], GRID, sample_rate=24_000,
                              labels={"item0": spans}, progress=False)
    assert [f.name for f in arrays.files] == ["item0", "item1"]
    assert [f.reference.source for f in arrays.files] == ["labels", "auto"]
    mapping = lab.sweep_corpus({"a": audio}, GRID, labels=lambda name: spans, progress=False)
    assert mapping.files[0].records == arrays.files[0].records
    globbed = lab.sweep_corpus(str(corpus_dir / "**" / "rec*.wav"), GRID, progress=False)
    assert [f.name for f in globbed.files] == ["rec0", "rec1", "rec2", "rec3", "rec4"]
    with pytest.raises(ValueError, match="holds no recording"):
        lab.sweep_corpus(tmp_path, GRID)
    with pytest.raises(FileNotFoundError):
        lab.sweep_corpus(tmp_path / "missing", GRID)
    with pytest.raises(ValueError, match="unique"):
        lab.sweep_corpus([corpus_dir / "rec0.wav", corpus_dir / "rec0.wav"], GRID)
    bad = tmp_path / "x.wav"
    bad.write_bytes(audio.to_wav())
    bad.with_suffix(".txt").write_text("one two\n")
    with pytest.raises(ValueError, match="Audacity label"):
        lab.sweep_corpus(tmp_path, GRID, labels="audacity")


def test_a_process_pool_gives_the_same_results(corpus_dir):
    inline = lab.sweep_corpus(corpus_dir, GRID, labels="audacity", progress=False)
    with cf.ProcessPoolExecutor(2) as pool:
        pooled = lab.sweep_corpus(corpus_dir, GRID, pool, labels="audacity", progress=False,
                                  files_per_job=2)
    assert [f.records for f in pooled.files] == [f.records for f in inline.files]
    assert [r.metrics() for r in pooled] == [r.metrics() for r in inline]


@pytest.mark.slow
def test_dask_distributed_two_workers_one_task_per_recording(corpus_dir):
    """A real LocalCluster (2 worker processes): the same results; each recording is one task
    on one worker, and what comes back is records, not audio."""
    distributed = pytest.importorskip("distributed")
    inline = lab.sweep_corpus(corpus_dir, GRID, labels="audacity", progress=False)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    with cluster, distributed.Client(cluster) as client, \
            distributed.get_task_stream(client) as stream:
        result = lab.sweep_corpus(corpus_dir, GRID, client.get_executor(), labels="audacity",
                                  progress=False)
    tasks = [t for t in stream.data if "sweep_files" in str(t["key"])]
    assert len(tasks) == len({str(t["key"]) for t in tasks}) == 5  # one task per recording
    assert len({t["worker"] for t in tasks}) == 2  # spread over both workers
    assert [f.records for f in result.files] == [f.records for f in inline.files]
    for f in result.files:
        assert len(pickle.dumps(f)) < 60_000  # records only: 10 s of audio would be 480 kB
        assert not any(isinstance(v, np.ndarray | Audio) for v in vars(f).values())
