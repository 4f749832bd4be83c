"""benchmarks/common.py: the percentile every benchmark reports, and the /proc CPU reading.

The percentile is nearest rank, not interpolated: the figures in benchmarks/README.md and docs/ were
measured that way, so a change of definition would make new figures incomparable with them.
"""

from __future__ import annotations

import math
import os
import random
import statistics
import time
from pathlib import Path

import pytest

from benchmarks.common import cpu_seconds, pct, process_cpu

GONE = 10**9  # above any pid_max: no such process


def test_pct_is_the_nearest_rank_of_the_inclusive_quantile() -> None:
    """pct(q) is the data point nearest to statistics.quantiles(method='inclusive')'s interpolated q
    quantile: one of the two points it lies between, the one whose rank is nearer."""
    rng = random.Random(11)
    for n in (2, 3, 7, 20, 101, 500):
        values = [rng.expovariate(1 / 10) for _ in range(n)]
        ordered = sorted(values)
        cuts = statistics.quantiles(values, n=100, method="inclusive")
        for p in (50, 95, 99):
            position = p / 100 * (n - 1)
            lower, upper = ordered[math.floor(position)], ordered[math.ceil(position)]
            got = pct(values, p / 100)
            assert got in (lower, upper)
            assert abs(got - cuts[p - 1]) <= (upper - lower) / 2 + 1e-12


def test_pct_edges() -> None:
    assert math.isnan(pct([], 0.95))
    assert pct([4.0], 0.99) == 4.0
    assert pct([3.0, 1.0, 2.0], 0.5) == statistics.median([3.0, 1.0, 2.0]) == 2.0
    assert pct([1.0, 2.0, 3.0], 1.0) == 3.0 and pct([1.0, 2.0, 3.0], 0.0) == 1.0
    # A rank exactly halfway goes to the even index (Python's round): 0.5 of 2 values is the lower,
    # 0.5 of 4 values (rank 1.5) the third.
    assert pct([1.0, 2.0], 0.5) == 1.0
    assert pct([1.0, 2.0, 3.0, 4.0], 0.5) == 3.0


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads Linux /proc")
def test_process_cpu_reads_user_plus_system_time() -> None:
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:  # use some CPU
        pass
    before = time.process_time()
    cpu = process_cpu(os.getpid())
    after = time.process_time()
    assert cpu is not None
    assert before - 0.05 <= cpu <= after + 0.05  # /proc counts in clock ticks (10 ms)
    assert process_cpu(GONE) is None
    assert abs(cpu_seconds([os.getpid(), GONE]) - cpu) <= 0.05
