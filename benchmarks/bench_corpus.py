"""Benchmark of corpus sweeps (``lab.sweep_corpus``) on Dask: 200 recordings x 100 settings.

The corpus: 200 WAV files of 8 s, cut at different offsets from the 60 s espeak-ng recording of
``bench_lab`` (phrases, 0.3–2.5 s pauses, light pink noise) with gains from -12 to +3 dB, written
to a temporary folder that the workers read themselves. The grid: bench_lab's 100 server_vad
settings. Each cluster is a real ``dask.distributed.LocalCluster`` of worker processes with one
thread each, warmed up on two files first (Python imports, the Silero model) so the figures
compare steady-state work.

* ``corpus_dask_2_vs_1_workers`` — wall time with 1 worker / with 2, same run. Goal >= 1.7 (the
  machine has 2 cores; this process and the scheduler take a little of them).
* ``corpus_per_setting_vs_single_sweep`` — settings x audio-seconds judged per second of work:
  the corpus sweep on 1 Dask worker over ``lab.sweep`` of one 60 s recording in this process
  (inline, one core). Goal >= 0.8: the corpus machinery, Dask and 200 probability passes over
  short files cost at most a fifth of the throughput of the single-recording sweep.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_lab import GRID, InlineExecutor, recording_60s
from benchmarks.bench_server import _cpu_seconds, _machine_busy
from realtime_nb import lab
from realtime_nb.audio import Audio

RATE = 24_000
FILES = 200
FILE_S = 8.0


def write_corpus(folder: Path, base: Audio, files: int = FILES, seconds: float = FILE_S) -> float:
    """``files`` WAV cuts of ``base`` into ``folder``; returns the total audio seconds."""
    rng = np.random.default_rng(7)
    n = int(seconds * RATE)
    for i in range(files):
        start = int(rng.integers(0, len(base.samples) - n))
        gain = 10 ** (rng.uniform(-12, 3) / 20)
        cut = np.clip(base.samples[start:start + n].astype(np.float64) * gain, -32768, 32767)
        (folder / f"call{i:03d}.wav").write_bytes(Audio(cut.astype(np.int16), RATE).to_wav())
    return files * seconds


def _timed_cluster(folder: Path, workers: int) -> tuple[float, Any, float]:
    """Wall time of the sweep on a ``workers``-process LocalCluster, its result, and the cores
    the rest of the machine (not the workers) kept busy meanwhile."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    with cluster, Client(cluster) as client:
        executor = client.get_executor()
        warm = sorted(folder.glob("*.wav"))[:2 * workers]
        lab.sweep_corpus(warm, GRID, executor, progress=False)
        pids = list(client.run(os.getpid).values())
        cpu0, busy0 = sum(_cpu_seconds(p) for p in pids), _machine_busy()
        t0 = time.perf_counter()
        result = lab.sweep_corpus(folder, GRID, executor, progress=False)
        wall = time.perf_counter() - t0
        others = (_machine_busy() - busy0 - (sum(_cpu_seconds(p) for p in pids) - cpu0)) / wall
        return wall, result, max(0.0, others)


def run() -> list[dict[str, Any]]:
    base = recording_60s()
    n_settings = len(lab.expand_grid(GRID))
    inline = InlineExecutor()
    lab.sweep(base, grid=GRID, executor=inline, progress=False)  # model loaded, code warm
    t0 = time.perf_counter()
    single = lab.sweep(base, grid=GRID, executor=inline, progress=False)
    t_single = time.perf_counter() - t0
    single_rate = n_settings * len(single.audio.samples) / RATE / t_single
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        audio_s = write_corpus(folder, base)
        t1, r1, busy1 = _timed_cluster(folder, 1)
        t2, r2, busy2 = _timed_cluster(folder, 2)
    same = [r.metrics() for r in r1] == [r.metrics() for r in r2]
    replayed_s = r1.duration_ms / 1000
    rate1 = n_settings * replayed_s / t1
    speedup = t1 / t2
    per = rate1 / single_rate
    best = r2.recommend()
    return [
        {"name": "corpus_dask_2_vs_1_workers", "value": round(speedup, 3),
         "unit": "x (wall time 1 worker / 2 workers)",
         "reference": f"the same corpus sweep on a 1-worker LocalCluster ({t1:.1f} s)",
         "goal": ">= 1.7", "met": speedup >= 1.7 and same,
         "detail": f"{FILES} recordings x {FILE_S:.0f} s ({audio_s:.0f} s of audio, "
                   f"{replayed_s:.0f} s with the closing tails) x {n_settings} settings: "
                   f"{t1:.1f} s on 1 worker, {t2:.1f} s on 2; pooled results identical: {same}. "
                   f"Everything but the workers (this process, the scheduler, other programs) "
                   f"kept {busy1:.2f} and {busy2:.2f} of the {os.cpu_count()} cores busy during "
                   "the two runs. "
                   f"Recommended: {lab.settings_label(best.settings)} "
                   f"({best.record.errors} errors over the corpus)."},
        {"name": "corpus_per_setting_vs_single_sweep", "value": round(per, 3),
         "unit": "x (settings x audio-seconds per second: corpus on 1 worker / one recording)",
         "reference": f"lab.sweep of one 60 s recording inline, same run ({t_single:.2f} s for "
                      f"{n_settings} settings)",
         "goal": ">= 0.8", "met": per >= 0.8,
         "detail": f"corpus {rate1:.0f}, single recording {single_rate:.0f} setting-seconds "
                   "per second."},
    ]


if __name__ == "__main__":
    for fig in run():
        print(fig)
