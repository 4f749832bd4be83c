"""Residents' conversations end to end through the compose deployment's entry (docker/compose.yaml: nginx ->
web x2 -> Rasa x2 -> actions x2, PostgreSQL, Redis), as a browser does it: the web chat's consent, the
greeting's button, the request form answered, and a ticket number (MH-…) in the last answer and on 我的诉求.
Loopback only, bounded (each resident's turns at most 20, each request 60 s).

    python benchmarks/docker_conversation.py                       # one resident
    python benchmarks/docker_conversation.py --residents 50        # 50 at once

Prints per-turn latency (p50/p95) and exits 1 on any error, missing or duplicate ticket number. Which
replica served each turn is in the entry's log: `docker compose … logs lb` (one line per Rasa and action
call with the upstream's address).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import sys
import time
from typing import Any

import aiohttp
from common import pct

FORM_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PAGE_CSRF = re.compile(r'data-csrf="([^"]+)"')
NUMBER = re.compile(r"MH-\d{8}-\d{4,}")
# What a resident answers to each question of the request form (as tests/e2e/conftest.py FORM_ANSWERS).
FORM_ANSWERS = {
    "请核对": "确认",
    "具体说说": "已经好几天了,一直没人来处理,影响我们正常生活",
    "哪个社区": "安居社区",
    "哪个小区": "安居苑",
    "几栋": "3栋2单元501",
    "联系电话": "13912345678",
    "急不急": "不急",
}


THROTTLED = [0]  # 429 answers waited out (behind the entry every resident has the entry's address)


async def patient(send: Any) -> aiohttp.ClientResponse:
    """A request sent again after 429 (the web chat's per-address limits), at most for 4 minutes."""
    for _ in range(48):
        response: aiohttp.ClientResponse = await send()
        if response.status != 429:
            return response
        response.release()
        THROTTLED[0] += 1
        await asyncio.sleep(5)
    raise RuntimeError("still 429 after 4 minutes")


async def resident(url: str, turns: list[float], *, think: float = 0.0, address: str | None = None) -> str:
    """One resident's whole conversation; the ticket number they were given. `think`: the mean seconds a
    resident reads and types before each message (random, 0.5x-1.5x). `address`: the resident's own address as
    an X-Forwarded-For (only an entry that trusts the loopback as its proxy reads it: MINHU_TRUSTED_PROXIES)."""
    timeout = aiohttp.ClientTimeout(total=60)
    jar = aiohttp.CookieJar(unsafe=True)  # keeps cookies of an IP address (127.0.0.1), as a browser does
    headers = {"X-Forwarded-For": address} if address else None
    async with aiohttp.ClientSession(
        base_url=url, timeout=timeout, cookie_jar=jar, headers=headers
    ) as browser:
        async with browser.get("/chat") as response:
            form = FORM_CSRF.search(await response.text())
        if form is None:
            raise RuntimeError(f"no consent form at {url}/chat")
        consent = await patient(lambda: browser.post("/chat/consent", data={"csrf_token": form.group(1)}))
        async with consent as response:
            page = PAGE_CSRF.search(await response.text())
        if page is None:
            raise RuntimeError("consent did not lead to the chat page")
        token = page.group(1)

        async def say(text: str) -> list[dict[str, Any]]:
            if think:
                await asyncio.sleep(think * random.uniform(0.5, 1.5))
            start = time.perf_counter()
            async with browser.post(
                "/chat/messages", json={"text": text}, headers={"X-CSRF-Token": token}
            ) as r:
                body = await r.text()
                if r.status != 200:
                    raise RuntimeError(f"{r.status} for {text!r}: {body[:300]}")
                turns.append(time.perf_counter() - start)
                return list((await r.json())["bubbles"])

        bubbles = await say("你好")
        buttons = {b["title"]: b["payload"] for bubble in bubbles for b in bubble.get("buttons", [])}
        await say(buttons.get("物业服务", "/property"))
        bubbles = await say("电梯坏了三天了物业一直不管")
        for _ in range(16):
            said = "\n".join(b.get("text", "") for b in bubbles)
            if "已受理" in said:
                break
            cue = next((cue for cue in FORM_ANSWERS if cue in said), None)
            if cue is None:
                raise RuntimeError(f"unexpected reply: {said!r}")
            bubbles = await say(FORM_ANSWERS[cue])
        else:
            raise RuntimeError(f"the form did not finish: {bubbles!r}")
        number = NUMBER.search(said)
        if number is None:
            raise RuntimeError(f"no ticket number in {said!r}")
        async with browser.get("/chat/tickets") as response:
            if number.group(0) not in await response.text():
                raise RuntimeError(f"{number.group(0)} is not on 我的诉求")
        return number.group(0)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8088", help="the deployment's entry (loopback)")
    parser.add_argument("--residents", type=int, default=1, help="residents at once (at most 200)")
    args = parser.parse_args()
    if not re.match(r"https?://(127\.|localhost|\[::1\])", args.url):
        parser.error("loopback addresses only")
    count = max(1, min(args.residents, 200))
    turns: list[float] = []
    start = time.perf_counter()
    results = await asyncio.gather(*(resident(args.url, turns) for _ in range(count)), return_exceptions=True)
    elapsed = time.perf_counter() - start
    errors = [r for r in results if isinstance(r, BaseException)]
    numbers = [r for r in results if isinstance(r, str)]
    for error in errors[:5]:
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
    duplicates = len(numbers) - len(set(numbers))
    print(
        f"{count} residents in {elapsed:.1f}s: {len(numbers)} tickets ({', '.join(numbers[:3])}"
        f"{', …' if len(numbers) > 3 else ''}), {len(errors)} errors, {duplicates} duplicates; "
        f"{len(turns)} turns, p50 {pct(turns, 0.5) * 1000:.0f} ms, p95 {pct(turns, 0.95) * 1000:.0f} ms "
        f"(a turn's time includes any 429 waited out: {THROTTLED[0]} of them)"
    )
    return 0 if not errors and not duplicates and len(numbers) == count else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
