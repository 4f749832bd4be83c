"""Live updates: a ticket created elsewhere (straight through the service, as the action server's process
does) reaches a connected staff member of its scope over /live, not staff of another community; a client
that reconnects with Last-Event-ID gets what it missed."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import ClientResponse

from dashboard import live
from dashboard.app import SERVICE
from tests.conftest import Org
from tests.dashboard.conftest import Client, sign_in
from tickets.service import NewTicket


async def next_event(response: ClientResponse, name: str, within: float = 10.0) -> tuple[str, dict[str, str]]:
    """The next event called `name` on the stream: (id, data)."""
    event_id, event, data = "", "", ""

    async def read() -> tuple[str, dict[str, str]]:
        nonlocal event_id, event, data
        while True:
            line = (await response.content.readline()).decode().rstrip("\r\n")
            if line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data = line[5:].strip()
            elif line == "" and event:
                if event == name:
                    return event_id, json.loads(data)
                event_id, event, data = "", "", ""

    return await asyncio.wait_for(read(), within)


async def test_a_new_ticket_reaches_its_community_s_staff_live(client: Client, org: Org) -> None:
    service = client.app[SERVICE]
    await sign_in(client, org, "staff-a")
    stream = await client.get("/live")
    assert stream.headers["Content-Type"].startswith("text/event-stream")
    await next_event(stream, "ready")

    other = await service.create_ticket(
        NewTicket(await org.resident("j", community="jinjiang"), "property", "锦江灯坏")
    )
    mine = await service.create_ticket(NewTicket(await org.resident(), "property", "楼道灯坏了"))

    _, update = await next_event(stream, "ticket")
    assert update["number"] == mine.number  # the other community's ticket was not sent
    assert other.number != mine.number
    stream.close()


async def test_last_event_id_resumes_what_was_missed(client: Client, org: Org) -> None:
    service = client.app[SERVICE]
    await sign_in(client, org, "staff-a")
    stream = await client.get("/live")
    await next_event(stream, "ready")
    first = await service.create_ticket(NewTicket(await org.resident(), "property", "楼道灯坏了"))
    last_id, update = await next_event(stream, "ticket")
    assert update["number"] == first.number
    stream.close()

    missed = await service.create_ticket(NewTicket(await org.resident("r2"), "property", "电梯坏了"))
    await asyncio.sleep(0.3)  # the poller has moved past it
    again = await client.get("/live", headers={"Last-Event-ID": last_id})
    numbers = set()
    while missed.number not in numbers:
        numbers.add((await next_event(again, "ticket"))[1]["number"])
    again.close()


async def test_anonymous_visitors_get_no_stream(client: Client) -> None:
    response = await client.get("/live", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"].startswith("/login")


async def test_a_disabled_account_s_stream_ends(
    client: Client, org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "RECHECK_EVERY", 0.1)
    await sign_in(client, org, "staff-a")
    stream = await client.get("/live")
    await next_event(stream, "ready")
    await client.app[SERVICE].disable_account("staff-a")
    assert await asyncio.wait_for(stream.content.read(), 10) is not None  # the server ends the stream
    assert stream.content.at_eof()
