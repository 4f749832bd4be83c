#!/usr/bin/env python3
"""The web chat relay's own cost per message (issue 15): POST /chat/messages through the real application
(dashboard.app.make_app, in this process, over a real socket) against the tests' fake Rasa (tests/fake_rasa.py,
answering at once), one consented resident at a time, on a scratch SQLite file or PostgreSQL database. The
time per message is the relay's whole share (the fake Rasa's own answer is well under a millisecond).
Run it with another checkout first on PYTHONPATH to time that code in the same run (interleave old and new):

    PYTHONPATH=$PWD .venv/bin/python benchmarks/webchat_relay_cost.py --db sqlite --messages 200
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
import time
import uuid
from pathlib import Path

# isort: split
from common import DEFAULT_PG, pct, pg_admin, pg_url

CSRF = re.compile(r'data-csrf="([^"]+)"')
FORM = re.compile(r'name="csrf_token" value="([^"]+)"')


async def run(db: str, messages: int, residents: int) -> tuple[list[float], dict[str, int]]:
    from alembic import command
    from sqlalchemy import event

    from dashboard.app import ChatConfig, make_app
    from tests.dashboard.conftest import SECRET, browsers_on
    from tests.fake_rasa import FakeRasa
    from tickets.db import alembic_config, create_engine, session_factory
    from tickets.service import TicketService

    name = ""
    with tempfile.TemporaryDirectory(prefix="minhu-relay-cost-") as folder:
        if db == "sqlite":
            url = f"sqlite+aiosqlite:///{folder}/minhu.db"
        else:
            name = f"minhu_bench_relay_{uuid.uuid4().hex[:8]}"
            await pg_admin(DEFAULT_PG, f'CREATE DATABASE "{name}"')
            url = pg_url(DEFAULT_PG, name)
        try:
            await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
            engine = create_engine(url)
            # What the database is asked per message: statements (BEGIN included where the driver sends it
            # as one) and commits; counted over the timed messages only.
            counts = {"statements": 0, "commits": 0}
            timing = False

            @event.listens_for(engine.sync_engine, "before_cursor_execute")
            def statement(*_: object) -> None:
                counts["statements"] += timing

            @event.listens_for(engine.sync_engine, "commit")
            def commit(*_: object) -> None:
                counts["commits"] += timing

            rasa = FakeRasa()
            await rasa.start()
            service = TicketService(session_factory(engine))
            config = ChatConfig(
                rasa_url=rasa.url,
                photo_dir=Path(folder) / "photos",
                replay_every=3600,
                messages_per_minute=100_000,
                posts_per_minute_per_address=100_000,
            )
            app = make_app(service, secret=SECRET, chat_config=config)
            times: list[float] = []
            async with browsers_on(app) as new:
                people = []
                for _ in range(residents):
                    client = await new()
                    form = FORM.search(await (await client.get("/chat")).text())
                    assert form
                    page = await client.post("/chat/consent", data={"csrf_token": form.group(1)})
                    token = CSRF.search(await page.text())
                    assert token
                    people.append((client, token.group(1)))
                for i in range(messages + 20):  # the first 20: warm-up, not timed
                    client, token = people[i % residents]
                    timing = i >= 20
                    start = time.perf_counter()
                    response = await client.post(
                        "/chat/messages", json={"text": f"你好 {i}"}, headers={"X-CSRF-Token": token}
                    )
                    body = await response.json()
                    elapsed = time.perf_counter() - start
                    assert response.status == 200 and body["bubbles"], body
                    if i >= 20:
                        times.append(elapsed)
            await rasa.stop()
            await engine.dispose()
            return times, counts
        finally:
            if name:
                await pg_admin(DEFAULT_PG, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--messages", type=int, default=200)
    p.add_argument("--residents", type=int, default=5)
    p.add_argument("--label", default="")
    args = p.parse_args()
    times, counts = asyncio.run(run(args.db, args.messages, args.residents))
    ms = [t * 1000 for t in times]
    per = {k: v / len(ms) for k, v in counts.items()}
    print(
        f"{args.label or 'code'} {args.db}: n {len(ms)} p50 {pct(ms, 0.5):.2f} p95 {pct(ms, 0.95):.2f} "
        f"mean {sum(ms) / len(ms):.2f} ms; per message {per['statements']:.1f} statements, "
        f"{per['commits']:.1f} commits",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
