#!/usr/bin/env python3
"""Message -> reply latency through the whole chat path: Rasa REST channel -> dialogue -> action server
-> ticket core -> database, at 1, 20 and 50 concurrent residents. Target: p95 <= 80 ms at 20.

Starts its own stack on loopback (free ports, a temporary SQLite database with the test org), or uses
a running one with --url (then the database is whatever that action server uses). Every resident runs
full request conversations (request, the form's questions, confirmation -> a ticket); each POST to
/webhooks/rest/webhook is one sample.

    .venv/bin/python benchmarks/chat_latency.py                     # 1, 20, 50 concurrent
    .venv/bin/python benchmarks/chat_latency.py --levels 1,20 --rounds 2
    .venv/bin/python benchmarks/chat_latency.py --url http://127.0.0.1:5005
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import FORM_ANSWERS, free_port  # noqa: E402

REQUESTS = [
    "地下车库积水 我车子都泡了 物业说排水泵坏了",
    "工地半夜还在施工 打桩机咚咚响 伢睡不着觉",
    "窨井盖被车压碎了 就在后湖大道公交站旁边",
    "邻居把鞋柜纸箱全堆在楼道里 消防通道都堵了 说了还骂人",
    "被电动车撞了 对方不赔医药费 想请个律师",
]


async def conversation(
    http: aiohttp.ClientSession, url: str, sender: str, first: str, samples: list[float]
) -> bool:
    message = first
    for _ in range(12):
        start = time.perf_counter()
        async with http.post(
            f"{url}/webhooks/rest/webhook", json={"sender": sender, "message": message}
        ) as r:
            replies = await r.json()
        samples.append(time.perf_counter() - start)
        text = "\n".join(str(x.get("text") or "") for x in replies)
        if "已受理" in text or "稍等" in text or "已经保存了您的留言" in text:
            return "已受理" in text
        message = next((a for cue, a in FORM_ANSWERS.items() if cue in text), "")
        if not message:
            return False
    return False


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def level(url: str, residents: int, rounds: int, tag: str) -> dict[str, float]:
    samples: list[float] = []
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=60), connector=aiohttp.TCPConnector(limit=0)
    ) as http:
        # Warm-up (first-time resident path, model warm-up) not counted.
        await conversation(http, url, f"web:warm-{tag}-{residents}", REQUESTS[0], [])
        ok = 0
        start = time.perf_counter()
        for r in range(rounds):
            results = await asyncio.gather(
                *(
                    conversation(
                        http,
                        url,
                        f"web:bench-{tag}-{residents}-{i}-{r}",
                        REQUESTS[(i + r) % len(REQUESTS)],
                        samples,
                    )
                    for i in range(residents)
                )
            )
            ok += sum(results)
        elapsed = time.perf_counter() - start
    return {
        "residents": residents,
        "messages": len(samples),
        "tickets": ok,
        "p50_ms": round(statistics.median(samples) * 1000, 1),
        "p95_ms": round(pct(samples, 95) * 1000, 1),
        "max_ms": round(max(samples) * 1000, 1),
        "msgs_per_s": round(len(samples) / elapsed, 1),
    }


async def run(args: argparse.Namespace) -> list[dict[str, float]]:
    levels = [int(x) for x in args.levels.split(",")]
    tag = str(int(time.time()))
    if args.url:
        return [await level(args.url, n, args.rounds, tag) for n in levels]

    from alembic import command

    from minhu.settings import Settings
    from minhu.stack import local_stack
    from tickets.catalogue import Catalogue
    from tickets.db import alembic_config, create_engine, session_factory, unit_of_work
    from tickets.org import load_org, parse_org

    with tempfile.TemporaryDirectory(prefix="minhu-chat-bench-") as tmp:
        db_url = f"sqlite+aiosqlite:///{tmp}/minhu.db"
        await asyncio.to_thread(command.upgrade, alembic_config(db_url), "head")
        engine = create_engine(db_url)
        async with unit_of_work(session_factory(engine)) as session:
            await load_org(session, parse_org(ROOT / "tests" / "fixtures" / "org.yml"), Catalogue.load())
        await engine.dispose()
        settings = Settings.model_validate({"MINHU_DATA_DIR": tmp, "DATABASE_URL": db_url})
        async with local_stack(
            settings, action_port=free_port(), rasa_port=free_port(), model=args.model
        ) as url:
            return [await level(url, n, args.rounds, tag) for n in levels]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="a running Rasa server (REST channel); default: start a local stack")
    parser.add_argument(
        "--model", help="a model file (default: scripts/rasa-train.sh's for the current inputs)"
    )
    parser.add_argument("--levels", default="1,20,50", help="concurrent residents, comma-separated")
    parser.add_argument("--rounds", type=int, default=1, help="conversations per resident per level")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    print(
        f"{'residents':>9} {'messages':>8} {'tickets':>7} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'msg/s':>7}"
    )
    for f in figures:
        print(
            f"{f['residents']:>9} {f['messages']:>8} {f['tickets']:>7} {f['p50_ms']:>8} {f['p95_ms']:>8} "
            f"{f['max_ms']:>8} {f['msgs_per_s']:>7}"
        )
    at20 = [f for f in figures if f["residents"] == 20]
    if at20:
        verdict = "met" if at20[0]["p95_ms"] <= 80 else "NOT met"
        print(f"target p95 <= 80 ms at 20 concurrent residents: {verdict} ({at20[0]['p95_ms']} ms)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
