#!/usr/bin/env python3
"""Message -> reply latency through the whole chat path: Rasa REST channel -> dialogue -> action server
-> ticket core -> database, at 1, 20 and 50 concurrent residents. Target: p95 <= 80 ms at 20.

Starts its own stack on loopback (free ports, a temporary SQLite database with the test org), or uses
a running one with --url (then the database is whatever that action server uses). Every resident runs
full request conversations (request, the form's questions, confirmation -> a ticket); each POST to
/webhooks/rest/webhook is one sample.

    .venv/bin/python benchmarks/chat_latency.py                     # 1, 20, 50 concurrent; think 0 and 3 s
    .venv/bin/python benchmarks/chat_latency.py --levels 1,20 --rounds 2
    .venv/bin/python benchmarks/chat_latency.py --url http://127.0.0.1:5005
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

# isort: split
# benchmarks/common.py: the script's own folder is first on sys.path
from common import REPO, cpu_seconds, pct

sys.path.insert(0, str(REPO))

from tests.e2e.conftest import FORM_ANSWERS, free_port

REQUESTS = [
    "地下车库积水 我车子都泡了 物业说排水泵坏了",
    "工地半夜还在施工 打桩机咚咚响 伢睡不着觉",
    "窨井盖被车压碎了 就在后湖大道公交站旁边",
    "邻居把鞋柜纸箱全堆在楼道里 消防通道都堵了 说了还骂人",
    "被电动车撞了 对方不赔医药费 想请个律师",
]


Say = Callable[[str], Awaitable[str]]  # one message sent, the replies' text back


async def converse(
    say: Say, sender: str, first: str, samples: list[tuple[str, float]], think: float = 0.0
) -> bool:
    """One resident's request conversation through `say` (the REST channel here, the web chat in
    webchat_speed.py); `think` is the mean pause (reading, typing) before each answer, drawn uniformly from
    0.5x to 1.5x with a seed per resident; the first message comes at a random moment within one pause.
    Each message's time to its replies is appended to `samples`, named by the question it answered."""
    pauses = random.Random(sender)
    message, answering = first, "request"
    for turn in range(12):
        if think:  # residents start at random moments too, not all in the same millisecond
            await asyncio.sleep(think * (pauses.uniform(0.5, 1.5) if turn else pauses.uniform(0, 1)))
        start = time.perf_counter()
        text = await say(message)
        samples.append((answering, time.perf_counter() - start))
        if "已受理" in text or "稍等" in text or "已经保存了您的留言" in text:
            return "已受理" in text
        answering, message = next(((c, a) for c, a in FORM_ANSWERS.items() if c in text), ("", ""))
        if not message:
            return False
    return False


def rest_say(
    http: aiohttp.ClientSession, url: str, sender: str, headers: dict[str, str] | None = None
) -> Say:
    """A message to Rasa's REST channel as `sender` (with `headers`: a relay's, app/relay.py)."""

    async def say(message: str) -> str:
        async with http.post(
            f"{url}/webhooks/rest/webhook", json={"sender": sender, "message": message}, headers=headers
        ) as r:
            replies = await r.json()
        return "\n".join(str(x.get("text") or "") for x in replies)

    return say


async def conversation(
    http: aiohttp.ClientSession,
    url: str,
    sender: str,
    first: str,
    samples: list[tuple[str, float]],
    think: float = 0.0,
) -> bool:
    """One resident's request conversation over the REST channel (see `converse`)."""
    return await converse(rest_say(http, url, sender), sender, first, samples, think)


def stack_processes(port: int) -> list[int]:
    """The process started with `--port <port>` and its children (rasa-sdk's Sanic workers), from /proc."""
    parents: dict[int, int] = {}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if b"--port" in args[:-1] and args[args.index(b"--port") + 1] == str(port).encode():
            found.append(int(entry.name))
    return found + [pid for pid, parent in parents.items() if parent in found]


async def level(
    url: str, residents: int, rounds: int, tag: str, think: float, processes: dict[str, list[int]]
) -> dict[str, Any]:
    samples: list[tuple[str, float]] = []
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=60), connector=aiohttp.TCPConnector(limit=0)
    ) as http:
        # Warm-up (first-time resident path, model warm-up) not counted.
        await conversation(http, url, f"web:warm-{tag}-{residents}", REQUESTS[0], [])
        ok = 0
        cpu_before = {name: cpu_seconds(pids) for name, pids in processes.items()}
        start = time.perf_counter()
        for r in range(rounds):
            results = await asyncio.gather(
                *(
                    conversation(
                        http,
                        url,
                        f"web:bench-{tag}-{think}-{residents}-{i}-{r}",
                        REQUESTS[(i + r) % len(REQUESTS)],
                        samples,
                        think,
                    )
                    for i in range(residents)
                )
            )
            ok += sum(results)
        elapsed = time.perf_counter() - start
        cpu = {name: cpu_seconds(pids) - cpu_before[name] for name, pids in processes.items()}
    seconds = [s for _, s in samples]
    by_turn: dict[str, list[float]] = {}
    for answering, s in samples:
        by_turn.setdefault(answering, []).append(s)
    return {
        "think_s": think,
        "residents": residents,
        "messages": len(samples),
        "tickets": ok,
        "p50_ms": round(statistics.median(seconds) * 1000, 1),
        "p95_ms": round(pct(seconds, 0.95) * 1000, 1),
        "max_ms": round(max(seconds) * 1000, 1),
        "msgs_per_s": round(len(samples) / elapsed, 1),
        # CPU of the Rasa server and of the action server (with its workers), per message
        **{f"{name}_cpu_ms": round(seconds * 1000 / len(samples), 1) for name, seconds in cpu.items()},
        # which turn is slow: the reply to the first message, and to each form question (by its cue)
        "turns": {
            answering: {
                "n": len(values),
                "p50_ms": round(statistics.median(values) * 1000, 1),
                "p95_ms": round(pct(values, 0.95) * 1000, 1),
            }
            for answering, values in by_turn.items()
        },
    }


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    levels = [int(x) for x in args.levels.split(",")]
    thinks = [float(x) for x in args.think.split(",")]
    tag = str(int(time.time()))

    async def measure(url: str, action_port: int) -> list[dict[str, Any]]:
        processes = {
            "rasa": stack_processes(int(url.rsplit(":", 1)[1].strip("/"))),
            "actions": stack_processes(action_port),
        }
        return [await level(url, n, args.rounds, tag, t, processes) for t in thinks for n in levels]

    if args.url:
        return await measure(args.url, args.action_port)

    from alembic import command

    from app.settings import Settings
    from app.wiring import configure_data_keys
    from minhu.stack import local_stack
    from tickets.catalogue import Catalogue
    from tickets.db import alembic_config, create_engine, session_factory, unit_of_work
    from tickets.org import load_org, parse_org

    with tempfile.TemporaryDirectory(prefix="minhu-chat-bench-") as tmp:
        db_url = f"sqlite+aiosqlite:///{tmp}/minhu.db"
        settings = Settings.model_validate({"MINHU_DATA_DIR": tmp, "DATABASE_URL": db_url})
        configure_data_keys(settings)  # the key file in tmp: the action server reads the phones with it
        await asyncio.to_thread(command.upgrade, alembic_config(db_url), "head")
        engine = create_engine(db_url)
        async with unit_of_work(session_factory(engine)) as session:
            await load_org(session, parse_org(REPO / "tests" / "fixtures" / "org.yml"), Catalogue.load())
        await engine.dispose()
        action_port = free_port()
        async with local_stack(
            settings, action_port=action_port, rasa_port=free_port(), model=args.model
        ) as url:
            return await measure(url, action_port)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="a running Rasa server (REST channel); default: start a local stack")
    parser.add_argument(
        "--model", help="a model file (default: scripts/rasa-train.sh's for the current inputs)"
    )
    parser.add_argument(
        "--action-port", type=int, default=5055, help="with --url: the action server's port (for its CPU)"
    )
    parser.add_argument("--levels", default="1,20,50", help="concurrent residents, comma-separated")
    parser.add_argument(
        "--think",
        default="0,3",
        help="mean seconds a resident pauses before answering, comma-separated (0: back-to-back, a stress test)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="conversations per resident per level")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    print(
        f"{'think s':>7} {'residents':>9} {'messages':>8} {'tickets':>7} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'msg/s':>7}"
        f" {'Rasa CPU ms/msg':>15} {'actions CPU ms/msg':>18}"
    )
    for f in figures:
        print(
            f"{f['think_s']:>7} {f['residents']:>9} {f['messages']:>8} {f['tickets']:>7} {f['p50_ms']:>8} {f['p95_ms']:>8} "
            f"{f['max_ms']:>8} {f['msgs_per_s']:>7} {f.get('rasa_cpu_ms', '-'):>15} {f.get('actions_cpu_ms', '-'):>18}"
        )
    for f in figures:
        turns = ", ".join(f"{name or '?'} {t['p50_ms']}/{t['p95_ms']}" for name, t in f["turns"].items())
        print(f"think {f['think_s']} s, {f['residents']} residents, p50/p95 ms by turn answered: {turns}")
    for f in figures:
        if f["residents"] == 20:
            verdict = "met" if f["p95_ms"] <= 80 else "NOT met"
            print(
                f"target p95 <= 80 ms at 20 concurrent residents, think {f['think_s']} s: {verdict} ({f['p95_ms']} ms)"
            )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
