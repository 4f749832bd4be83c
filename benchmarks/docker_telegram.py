"""Telegram residents through the compose deployment's `telegram` profile (bot-receiver ×1, bot-worker ×2,
deliverer ×2) against the fake Bot API (tests/bot/fake_api.py) served on the host, on the Docker network's
gateway address, so the containers reach it as their TELEGRAM_API_URL. Each resident: /start, 同意 (consent),
你好, the greeting's 物业服务 button, the request form answered in messages, and a ticket number (MH-…) in the
bot's last answer. Bounded: each step waits at most 90 s for the bot's answer.

    # docker/.env: TELEGRAM_BOT_TOKEN=123456:TEST-TOKEN  TELEGRAM_API_URL=http://172.30.77.128:18081
    python benchmarks/docker_telegram.py --host 172.30.77.128 --port 18081 --residents 5

Prints the tickets, errors, duplicates and p50/p95 from a message to the bot's first answer; exits 1 on any
error or duplicate. Run from the repository root (it imports tests.bot.*).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp import web
from common import pct
from docker_conversation import FORM_ANSWERS

from tests.bot.conftest import Telegram
from tests.bot.fake_api import Call, FakeBotAPI

NUMBER = re.compile(r"MH-\d{8}-\d{4,}")
QUIET = 2.0  # seconds without a new message from the bot: its answer is complete


async def serve(api: FakeBotAPI, host: str, port: int) -> web.AppRunner:
    """FakeBotAPI.start, on a given address (the containers' gateway) instead of a random loopback port."""
    app = web.Application()
    app.router.add_route("*", "/bot{token}/{method}", api._handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    api.url = f"http://{host}:{port}"
    return runner


async def answer(
    api: FakeBotAPI, chat: int, before: int, latencies: list[float], sent_at: float
) -> list[Call]:
    """The bot's messages to `chat` after the first `before`, once it has been quiet for QUIET seconds."""
    deadline, first = time.monotonic() + 90, None
    while time.monotonic() < deadline:
        calls = api.sent(chat)[before:]
        if calls and first is None:
            first = time.monotonic()
            latencies.append(calls[0].at - sent_at)
        if calls and time.monotonic() - max(c.at for c in calls) > QUIET:
            return calls
        await asyncio.sleep(0.2)
    raise RuntimeError(f"chat {chat}: no complete answer in 90 s")


async def resident(api: FakeBotAPI, tg: Telegram, chat: int, latencies: list[float]) -> str:
    async def send(update: dict[str, object]) -> list[Call]:
        before = len(api.sent(chat))
        sent_at = time.monotonic()
        api.updates.append(update)
        return await answer(api, chat, before, latencies, sent_at)

    def button(calls: list[Call], data: str) -> Call:
        found = next((c for c in calls if any(d == data for _, d in c.buttons)), None)
        if found is None:
            raise RuntimeError(f"chat {chat}: no {data!r} button in {[c.text[:40] for c in calls]!r}")
        return found

    calls = await send(tg.text_update(chat, "/start"))
    await send(tg.press_update(chat, "consent", button(calls, "consent")))
    calls = await send(tg.text_update(chat, "你好"))
    await send(tg.press_update(chat, "r:/property", button(calls, "r:/property")))
    calls = await send(tg.text_update(chat, "电梯坏了三天了物业一直不管"))
    for _ in range(16):
        said = "\n".join(c.text for c in calls)
        if "已受理" in said:
            number = NUMBER.search(said)
            if number is None:
                raise RuntimeError(f"chat {chat}: no ticket number in {said!r}")
            return number.group(0)
        cue = next((cue for cue in FORM_ANSWERS if cue in said), None)
        if cue is None:
            raise RuntimeError(f"chat {chat}: unexpected reply {said!r}")
        calls = await send(tg.text_update(chat, FORM_ANSWERS[cue]))
    raise RuntimeError(f"chat {chat}: the form did not finish")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="172.30.77.128", help="the Docker network's gateway (the host)")
    parser.add_argument("--port", type=int, default=18081)
    parser.add_argument("--residents", type=int, default=5)
    args = parser.parse_args()
    api = FakeBotAPI()
    runner = await serve(api, args.host, args.port)
    tg = Telegram(None, api)  # type: ignore[arg-type]  # only its update builders
    # Telegram never reuses an update_id, and the receiver drops one it has recorded: ids from the clock (and
    # chats of this run) so that a second run is new to the deployment.
    tg.update_ids = itertools.count((int(time.time()) - 1_700_000_000) * 10)
    first_chat = 8_000_000 + int(time.time()) % 100_000 * 100
    latencies: list[float] = []
    start = time.monotonic()
    results = await asyncio.gather(
        *(resident(api, tg, first_chat + i, latencies) for i in range(args.residents)), return_exceptions=True
    )
    await runner.cleanup()
    numbers = [r for r in results if isinstance(r, str)]
    errors = [r for r in results if not isinstance(r, str)]
    duplicates = len(numbers) - len(set(numbers))
    print(
        f"{args.residents} Telegram residents in {time.monotonic() - start:.1f}s: {len(numbers)} tickets "
        f"({', '.join(numbers[:3])}{', …' if len(numbers) > 3 else ''}), {len(errors)} errors, {duplicates} "
        f"duplicates; {len(latencies)} answers, first message p50 {pct(latencies, 0.5) * 1000:.0f} ms, "
        f"p95 {pct(latencies, 0.95) * 1000:.0f} ms; {len(api.calls)} Bot API calls"
    )
    for error in errors[:5]:
        print(f"  error: {error!r}")
    return 0 if numbers and not errors and not duplicates else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
