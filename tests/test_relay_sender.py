"""The relays name the sender to the deployment's entry in X-Minhu-Sender on every call to Rasa's REST channel
(docker/nginx.conf hashes it: one sender's turns on one Rasa replica, RasaHQ/rasa#9213). Against the fake
Rasa on a real port (tests/fake_rasa.py), which records the header as the entry would see it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.relay import RasaClient
from tests.fake_rasa import FakeRasa


@pytest.fixture
async def rasa() -> AsyncIterator[FakeRasa]:
    fake = FakeRasa()
    await fake.start()
    yield fake
    await fake.stop()


async def test_each_call_names_its_sender_and_a_non_ascii_one_is_percent_encoded(rasa: FakeRasa) -> None:
    client = RasaClient(rasa.url)
    try:
        await client.send("web:abc", "你好")
        await client.send("rest:王小明", "你好")  # a header carries ASCII only
        await client.send("web:abc", "再见")
    finally:
        await client.close()
    assert rasa.sender_headers == ["web:abc", "rest:%E7%8E%8B%E5%B0%8F%E6%98%8E", "web:abc"]
    assert [sender for sender, _ in rasa.received] == ["web:abc", "rest:王小明", "web:abc"]
