"""Smoke test of benchmarks/bench_noise.py on a tiny size, so the benchmark cannot rot.

Runs the real code paths (the Speex filter, a Silero stream, SessionCore's append path with and
without noise_reduction) and asserts the figures are well formed, never a timing goal.
"""

from __future__ import annotations

import math


def test_bench_noise_runs_on_a_tiny_size() -> None:
    from benchmarks import bench_noise

    figures = {f["name"]: f for f in bench_noise.run(seconds=2.0)}
    assert set(figures) == {"noise_filter_vs_silero_cpu", "noise_filter_x_realtime",
                            "append_with_filter_vs_without", "white_noise_attenuation_db"}
    for f in figures.values():
        assert isinstance(f["met"], bool) and math.isfinite(f["value"]) and f["reference"]
    assert figures["white_noise_attenuation_db"]["value"] > 0
