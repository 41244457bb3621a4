"""Smoke test of benchmarks/bench_turn.py on a tiny size, so the benchmark cannot rot.

Runs the real code paths — decision cost, the accuracy count on espeak-ng speech, and one
capacity step (server process, load generators, the semantic replay with Smart Turn) — and
asserts what the benchmark measures is consistent, never a timing goal.
"""

from __future__ import annotations

import math

import pytest

from realtime_nb.vad import turn_model_available

pytestmark = pytest.mark.skipif(not turn_model_available(),
                                reason="the smartturn extra (pipecat-ai) is not installed")


def test_bench_turn_runs_on_a_tiny_size() -> None:
    from benchmarks import bench_turn

    figures = {f["name"]: f for f in bench_turn.run(ramp_steps=(1,), stream_s=6.0,
                                                     voices=("espeak",))}
    assert set(figures) == {"turn_decision_cost_vs_silero", "turn_batched_vs_single",
                            "turn_accuracy_espeak", "semantic_vad_capacity_sessions"}
    for f in figures.values():
        assert isinstance(f["met"], bool) and math.isfinite(f["value"]) and f["reference"]
    acc = figures["turn_accuracy_espeak"]
    assert 0.0 <= acc["value"] <= 1.0 and "judged complete" in acc["detail"]
    cap = figures["semantic_vad_capacity_sessions"]
    assert "N=1:" in cap["detail"] and "mismatched" not in cap["detail"]
    assert "missing" not in cap["detail"]
