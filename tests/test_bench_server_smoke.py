"""Smoke test of benchmarks/bench_server.py on a tiny size, so the benchmark cannot rot.

It runs the real code paths (server process, load-generator processes, local VAD replay, the
turn-latency client) against the isolated-VAD server; it asserts correctness of what the
benchmark measures, never a timing goal.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_server.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_server", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_server"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


bench = _load()


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    with bench.ServerProcess(vad_only=True) as srv:
        yield srv


def test_capacity_step_gets_every_expected_vad_event(server: Any,
                                                     tmp_path: Path) -> None:
    """Two sessions (one per load-generator process) for 3 s: every event the local replay
    predicts arrives, none other, and no lag is negative (an event cannot precede the chunk
    that decides it)."""
    work = bench.prepare_workload(tmp_path, stream_s=3.0)
    assert work.expected.started and work.expected.stopped
    step = bench.run_step(server.url, server.pid, 2, work)
    assert (step.failures, step.missing, step.mismatched) == (0, 0, 0), step.errors
    per_session = len(step.lags_ms) / 2
    assert per_session == len(work.expected.started) + len(work.expected.stopped) >= 2
    assert all(0 <= lag < 2000 for lag in step.lags_ms)
    keys = {"name", "value", "unit", "reference", "goal", "met", "detail"}
    figure = bench.capacity_figure("x", [step], "smoke")
    assert set(figure) == keys
    assert figure["value"] == (2 if step.ok else 0)
    cpu = bench.cpu_per_session_figure([step], work, streams=4)
    assert set(cpu) == keys and cpu["value"] > 0


def test_turn_latency_milestones_are_ordered(server: Any) -> None:
    """One turn: the response's milestones come in protocol order, and speech_stopped cannot
    come before the 200 ms silence window has been streamed."""
    import asyncio

    turns, window = asyncio.run(bench.measure_turns(server.url, [bench.espeak("hello there")],
                                                    timeout_s=15))
    assert window == 200
    marks = turns[-1].latency()
    assert marks is not None
    order = ["speech_stopped", "committed", "response.created", "output_item.added",
             "first_audio_delta"]
    values = [marks[k] for k in order]
    assert values == sorted(values)
    assert window <= marks["speech_stopped"] and math.isfinite(marks["first_audio_delta"])
