"""The timing loop and the child-process measure the benchmarks share."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass


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


@dataclass(frozen=True)
class ProcessUsage:
    """What one child process cost: wall seconds, user and system CPU seconds, peak RSS in MiB."""

    wall: float
    user: float
    system: float
    peak_mib: float

    @property
    def cpu(self) -> float:
        return self.user + self.system


def run_process(command: list[str], *, env: Mapping[str, str] | None = None) -> ProcessUsage:
    """Run ``command`` to completion and measure it alone (``wait4`` rusage of that process).

    A child's peak RSS starts from its parent's (Linux carries it across fork and exec),
    so the measuring process should stay small. A failing command ends the benchmark.
    """
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        stderr = process.stderr.read().decode() if process.stderr else ""
        raise SystemExit(f"{' '.join(command)} failed: {stderr}")
    return ProcessUsage(wall, usage.ru_utime, usage.ru_stime, usage.ru_maxrss / 1024)
