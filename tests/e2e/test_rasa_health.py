"""The real Rasa's /healthz, /readyz and /metrics (nlu/health.py, added by nlu/rasa_server.py): ready while its
model, conversation store and action server answer; not ready, saying why, while the action server is down;
its requests and custom actions timed, the failed ones counted."""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp

from tests.e2e.conftest import Chat, Stack
from tests.test_health import get, sample

WEBHOOK = (
    'minhu_http_request_duration_seconds_count{method="POST",route="/webhooks/rest/webhook",status="200"}'
)


def action_samples(metrics: str, outcome: str) -> float:
    """How many custom actions ran with this outcome (all actions together)."""
    pattern = re.compile(
        rf'^minhu_rasa_action_duration_seconds_count\{{action="[a-z_]+",outcome="{outcome}"\}} (\S+)$'
    )
    return sum(float(m.group(1)) for line in metrics.splitlines() if (m := pattern.match(line)))


async def test_rasa_answers_health_readiness_and_metrics(stack: Stack, http: aiohttp.ClientSession) -> None:
    url = stack.rasa_url
    assert await get(http, f"{url}/healthz") == (200, '{"alive":true}')
    status, body = await get(http, f"{url}/readyz")  # SQLite conversations, Rasa's in-memory locks
    assert (status, json.loads(body)) == (200, {"model": "ok", "tracker_store": "ok", "action_server": "ok"})

    chat = Chat(http, stack, "health-1")
    await chat.say("小区电梯坏了三天了")
    metrics = (await get(http, f"{url}/metrics"))[1]
    assert (sample(metrics, WEBHOOK) or 0) >= 1
    ran = action_samples(metrics, "ok")
    assert ran >= 1, metrics

    await asyncio.to_thread(stack.assistant.actions.stop)
    try:
        status, body = await get(http, f"{url}/readyz")
        assert status == 503 and json.loads(body)["action_server"] == "ClientConnectorError", body
        assert json.loads(body)["tracker_store"] == "ok"
        await Chat(http, stack, "health-2").say("小区电梯坏了三天了")  # told the system is busy
        metrics = (await get(http, f"{url}/metrics"))[1]
        assert action_samples(metrics, "failed") >= 1
        assert 'minhu_rasa_action_errors_total{action="' in metrics
    finally:
        await asyncio.to_thread(stack.assistant.restart, stack.assistant.actions)
    assert (await get(http, f"{url}/readyz"))[0] == 200
