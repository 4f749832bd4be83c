"""Soak (issue 16): simulated residents with think time, for minutes, through a deployment's entry (the compose
deployment's `lb`, or `minhu run --no-chat`'s web address), while the memory of every process of the deployment
is sampled. Each resident has one conversation after another (docker_conversation.resident: consent, the
greeting's button, the request form, a ticket number checked on 我的诉求), each as a new browser.

    python benchmarks/soak.py --url http://127.0.0.1:8088 --residents 200 --minutes 10 --root <pid>…

`--root`: the processes whose whole tree is the deployment (`minhu run`'s pid; for compose, the
containerd-shim pids: `pgrep -f containerd-shim`). Memory is each process's private RSS (RssAnon) from /proc;
its level is taken when the warm-up ends, and the soak fails if a process there from then to the end ends more
than 10 % (and 2 MiB) above it.
`--addresses`: each resident sends its own X-Forwarded-For (10.x.y.z) so that the per-address limits see
residents, not the load generator: start the entry with MINHU_TRUSTED_PROXIES=127.0.0.1.

Prints p50/p95 per turn (after the warm-up), conversations, tickets, errors, duplicates, and per process its
memory at the warm-up's end, at the end and at most; exits 1 on any error, duplicate or growth past 10 %.
Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from common import pct
from docker_conversation import resident

GROWTH_LIMIT = 0.10
GROWTH_FLOOR_KIB = 2048  # a few-MiB helper (a containerd shim, an idle backend) growing by 0.5 MiB is no leak


def rss_kib(pid: int) -> int | None:
    """The process's private resident memory in KiB (RssAnon: its heap and stacks; not the files it maps nor
    shared memory, such as PostgreSQL's shared buffers, which every backend's VmRSS counts once it has read
    them); None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    except OSError:
        return None
    return 0  # a zombie has no RssAnon line


def started(pid: int) -> int | None:
    """When the process started (clock ticks since boot): a pid used again by a new process differs."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def process_tree(roots: list[int]) -> dict[int, str]:
    """The roots and all their descendants: pid → a short name (the command line's first words)."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = (
                Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            )
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
        parents[int(entry)] = parent
        words = cmdline.split()
        names[int(entry)] = " ".join(Path(word).name if i == 0 else word for i, word in enumerate(words[:4]))
        if "-c" in words:  # multiprocessing's helpers (Sanic's workers): named after their parent below
            names[int(entry)] = "resource tracker" if "resource_tracker" in cmdline else "worker"
    for pid, name in list(names.items()):
        if name in ("resource tracker", "worker"):
            names[pid] = f"{names.get(parents[pid], '?')[:40]} → {name}"
    tree: dict[int, str] = {}
    stack = list(roots)
    while stack:
        pid = stack.pop()
        if pid in names and pid not in tree:
            tree[pid] = names[pid]
            stack.extend(children.get(pid, []))
    return tree


@dataclass
class Memory:
    """Private memory samples of a process tree. A process is judged when it was there at the first sample after
    the warm-up (its level) and still is at the last one: probes, `runc` and other short-lived processes that a
    sample happens to catch are not, nor a pid that a new process has taken since."""

    roots: list[int]
    names: dict[int, str] = field(default_factory=dict)
    level: dict[int, int] = field(default_factory=dict)
    last: dict[int, int] = field(default_factory=dict)
    most: dict[int, int] = field(default_factory=dict)
    starts: dict[int, int | None] = field(default_factory=dict)
    alive: set[int] = field(default_factory=set)  # the pids of the latest sample
    warmed: bool = False

    def sample(self, *, warm: bool) -> None:
        self.alive = set()
        for pid, name in process_tree(self.roots).items():
            kib, start = rss_kib(pid), started(pid)
            if not kib:
                continue
            if self.starts.setdefault(pid, start) != start:  # another process on a used pid: not the same
                self.level.pop(pid, None)
                continue
            self.names.setdefault(pid, name)
            self.alive.add(pid)
            if warm and not self.warmed:
                self.level[pid] = kib
            self.last[pid] = kib
            if pid in self.level:
                self.most[pid] = max(self.most.get(pid, 0), kib)
        self.warmed = self.warmed or warm

    def judged(self) -> list[int]:
        return [pid for pid in self.level if pid in self.alive]

    def growth(self, pid: int) -> float:
        return self.last[pid] / self.level[pid] - 1

    def grown(self, pid: int) -> bool:
        """More than 10 % above its level, and by more than 2 MiB."""
        return self.growth(pid) > GROWTH_LIMIT and self.last[pid] - self.level[pid] > GROWTH_FLOOR_KIB

    def report(self) -> list[str]:
        lines = []
        for pid in sorted(self.judged(), key=lambda p: self.names[p]):
            lines.append(
                f"  {self.names[pid][:60]:60} pid {pid:>7}: {self.level[pid] / 1024:7.1f} MiB after warm-up, "
                f"{self.last[pid] / 1024:7.1f} at the end ({self.growth(pid):+.1%}), "
                f"{self.most[pid] / 1024:7.1f} at most"
            )
        return lines


@dataclass
class Tally:
    turns: list[float] = field(default_factory=list)  # after the warm-up
    warm_turns: list[float] = field(default_factory=list)
    numbers: list[str] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


async def one_resident(url: str, index: int, tally: Tally, *, think: float, warm_at: float, until: float,
                       addresses: bool) -> None:  # fmt: skip
    address = f"10.{index // 250 % 250}.{index % 250}.{1 + index // 62500}" if addresses else None
    await asyncio.sleep(think * index / 200)  # residents arrive over the first think time, not all at once
    while time.monotonic() < until:
        turns: list[float] = []
        try:
            tally.numbers.append(await resident(url, turns, think=think, address=address))
        except Exception as error:  # every failure counts, and the soak carries on
            tally.errors[f"{type(error).__name__}: {str(error)[:120]}"] += 1
        (tally.turns if time.monotonic() > warm_at else tally.warm_turns).extend(turns)


async def sample_memory(memory: Memory, warm_at: float, until: float, every: float) -> None:
    while time.monotonic() < until:
        memory.sample(warm=time.monotonic() >= warm_at)
        await asyncio.sleep(every)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8088", help="the deployment's entry (loopback)")
    parser.add_argument("--residents", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long new conversations start")
    parser.add_argument("--warmup", type=float, default=2.0, help="minutes before memory levels are taken")
    parser.add_argument("--think", type=float, default=8.0, help="mean seconds before each message")
    parser.add_argument("--root", type=int, nargs="*", default=[], help="the deployment's root pids")
    parser.add_argument("--addresses", action="store_true", help="an X-Forwarded-For per resident")
    parser.add_argument("--sample-every", type=float, default=10.0)
    args = parser.parse_args()
    if not re.match(r"https?://(127\.|localhost|\[::1\])", args.url):
        parser.error("loopback addresses only")
    start = time.monotonic()
    warm_at, until = start + args.warmup * 60, start + args.minutes * 60
    tally, memory = Tally(), Memory(args.root)
    sampler = asyncio.create_task(sample_memory(memory, warm_at, until, args.sample_every))
    await asyncio.gather(
        *(
            one_resident(
                args.url, i, tally, think=args.think, warm_at=warm_at, until=until, addresses=args.addresses
            )
            for i in range(args.residents)
        )
    )
    memory.sample(warm=True)
    sampler.cancel()
    elapsed = time.monotonic() - start
    duplicates = len(tally.numbers) - len(set(tally.numbers))
    errors = sum(tally.errors.values())
    load = os.getloadavg()
    print(
        f"{args.residents} residents, think {args.think:.0f} s, {elapsed / 60:.1f} min (warm-up "
        f"{args.warmup:.0f} min), load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}: {len(tally.numbers) + errors} conversations, "
        f"{len(tally.numbers)} tickets, each on 我的诉求, {errors} errors, {duplicates} duplicates; "
        f"{len(tally.turns)} turns after the warm-up: p50 {pct(tally.turns, 0.5) * 1000:.0f} ms, "
        f"p95 {pct(tally.turns, 0.95) * 1000:.0f} ms, max {max(tally.turns, default=0) * 1000:.0f} ms"
    )
    for error, count in tally.errors.most_common(5):
        print(f"  error ×{count}: {error}")
    grown = [pid for pid in memory.judged() if memory.grown(pid)]
    if memory.level:
        print(
            f"private memory (RssAnon) of the {len(memory.judged())} processes there from the warm-up to the end:"
        )
        print("\n".join(memory.report()))
    elif args.root:
        print("no memory samples after the warm-up: is --warmup shorter than --minutes?")
    return 0 if not errors and not duplicates and not grown and tally.numbers else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
