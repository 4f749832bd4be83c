"""The relays name the sender to the deployment's entry in X-Minhu-Sender on every call to Rasa's REST channel
(docker/nginx.conf hashes it: one sender's turns on one Rasa replica, RasaHQ/rasa#9213). Against the fake
Rasa on a real port (tests/fake_rasa.py), which records the header as the entry would see it."""

from __future__ import annotations

import pytest

from app.relay import RasaClient, RasaUnavailable
from tests.fake_rasa import FakeRasa


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


async def test_several_replicas_each_sender_to_its_own_and_to_the_next_when_refused() -> None:
    """MINHU_RASA_URL naming two replicas (no load balancer): a sender's turns stay on one replica; with one
    replica stopped (connections refused: nothing was sent) its senders move to the other, the others stay;
    a replica that answers an error is not asked again elsewhere (the relay keeps the message)."""
    first, second = FakeRasa(), FakeRasa()
    await first.start()
    await second.start()
    client = RasaClient(f"{first.url}, {second.url}/")
    senders = [f"web:{i}" for i in range(20)]
    try:
        for sender in senders * 2:
            await client.send(sender, "你好")
        on_first = {s for s, _ in first.received}
        on_second = {s for s, _ in second.received}
        assert on_first and on_second and on_first | on_second == set(senders) and not on_first & on_second

        await first.stop()
        second.received.clear()
        for sender in senders:
            assert await client.send(sender, "还在吗") == [{"recipient_id": sender, "text": "收到:还在吗"}]
        assert {s for s, _ in second.received} == set(senders)
        assert await client.reachable()

        second.up = False  # answers 503: sent, not answered: not tried elsewhere
        with pytest.raises(RasaUnavailable, match="HTTP 503"):
            await client.send(sorted(on_second)[0], "喂")
    finally:
        await client.close()
        await second.stop()
