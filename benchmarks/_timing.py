"""Timing helpers shared by the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_of(repeats: int, fn: Callable[[], object],
            clock: Callable[[], float] = time.perf_counter) -> float:
    """The shortest of ``repeats`` runs of ``fn`` by ``clock`` (wall time; ``time.process_time``
    for this process's CPU), in seconds: the least disturbed run."""
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        fn()
        best = min(best, clock() - start)
    return best
