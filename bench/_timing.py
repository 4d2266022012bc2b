"""The timing loop the benchmarks share."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def round_robin_medians(calls: dict[str, Callable[[], object]], repeat: int, *, warmup: int = 3) -> dict[str, float]:
    """Median wall time of one call of each, in seconds.

    The calls are timed round-robin, one of each per round, so that a burst of
    load on the machine slows them all alike instead of skewing one figure.
    """
    for call in calls.values():
        for _ in range(warmup):
            call()
    samples: dict[str, list[int]] = {name: [] for name in calls}
    for _ in range(repeat):
        for name, call in calls.items():
            start = time.perf_counter_ns()
            call()
            samples[name].append(time.perf_counter_ns() - start)
    return {name: statistics.median(times) / 1e9 for name, times in samples.items()}


def median_seconds(call: Callable[[], object], repeat: int, *, warmup: int = 1) -> float:
    """Median wall time of one call, in seconds (:func:`round_robin_medians` of a single call)."""
    return round_robin_medians({"call": call}, repeat, warmup=warmup)["call"]
