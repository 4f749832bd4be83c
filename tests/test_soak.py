"""benchmarks/soak.py's memory watch: which processes make up a deployment, and when one has grown too much."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # the scripts import `common`
import soak


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    yield process
    process.kill()
    process.wait()


def test_the_tree_of_a_root_holds_its_children_named_after_their_parents(
    child: subprocess.Popen[bytes],
) -> None:
    tree = soak.process_tree([os.getpid()])
    assert os.getpid() in tree
    assert tree[child.pid].endswith("→ worker")  # a `python -c` helper, named after this process
    assert child.pid not in soak.process_tree([child.pid + 10_000_000])  # not a root's descendant: not there


def test_memory_is_measured_from_the_level_after_the_warm_up(child: subprocess.Popen[bytes]) -> None:
    memory = soak.Memory([child.pid])
    memory.sample(warm=False)
    assert memory.level == {}  # still warming up: nothing to compare with
    memory.sample(warm=True)
    assert memory.level[child.pid] > 0
    memory.level[child.pid], memory.last[child.pid] = 100_000, 120_000  # as if it had grown by 20 % since
    assert memory.growth(child.pid) == pytest.approx(0.2) and memory.grown(child.pid)
    # +20 %, but 0.6 MiB: a small helper's noise
    memory.level[child.pid], memory.last[child.pid] = 3_000, 3_600
    assert not memory.grown(child.pid)
    assert "(+20.0%)" in memory.report()[0]


def test_only_processes_there_from_the_warm_up_to_the_end_are_judged(child: subprocess.Popen[bytes]) -> None:
    memory = soak.Memory([os.getpid()])
    memory.sample(warm=True)
    assert child.pid in memory.judged()
    late = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        memory.sample(warm=True)
        assert late.pid in memory.alive and late.pid not in memory.judged()  # born after the warm-up
        child.kill()
        child.wait()
        memory.sample(warm=True)
        assert child.pid not in memory.judged()  # gone before the end: a probe, not a leak
        memory.starts[late.pid] = -1  # as if its pid had belonged to another process at the warm-up
        memory.level[late.pid] = 1
        memory.sample(warm=True)
        assert late.pid not in memory.judged()
    finally:
        late.kill()
        late.wait()
