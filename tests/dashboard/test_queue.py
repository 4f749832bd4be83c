"""The queue page: the scope's open tickets with their labels, filters kept in the URL, pages, no phone."""

from __future__ import annotations

import re
from datetime import timedelta

from dashboard.app import SERVICE
from tests.conftest import Org
from tests.dashboard.conftest import Client, sign_in
from tickets.clock import ManualClock
from tickets.service import NewTicket


async def test_the_queue_lists_the_scope_s_open_tickets_without_phones(
    client: Client, org: Org, clock: ManualClock
) -> None:
    service = client.app[SERVICE]
    anju, jinjiang = await org.resident("a"), await org.resident("j", community="jinjiang")
    mine = await service.create_ticket(
        NewTicket(anju, "property", "楼道灯坏了,请打13812345678联系我", phone="13812345678")
    )
    other = await service.create_ticket(NewTicket(jinjiang, "property", "锦江的灯也坏了"))
    clock.advance(timedelta(hours=3))
    await sign_in(client, org, "staff-a")

    page = await (await client.get("/")).text()
    assert mine.number in page and other.number not in page
    assert "超期" in page and "共 1 张未办结工单" in page
    assert "13812345678" not in page and "138****5678" in page
    assert "物业" in page or "property" not in page  # the category's name, not its code


async def test_filters_stay_in_the_url_and_pages_follow(client: Client, org: Org, clock: ManualClock) -> None:
    service = client.app[SERVICE]
    resident = await org.resident()
    for number in range(55):
        clock.advance(timedelta(minutes=1))
        await service.create_ticket(NewTicket(resident, "property", f"第{number}个:楼道灯不亮"))
    await service.create_ticket(NewTicket(resident, "eldercare", "想申请助餐"))
    await sign_in(client, org, "staff-a")

    first = await (await client.get("/?category=property")).text()
    assert "共 55 张未办结工单" in first and 'value="property" selected' in first
    next_link = re.search(r'href="([^"]+)" rel="next"', first)
    assert next_link and "category=property" in next_link.group(1)
    second = await (await client.get(next_link.group(1).replace("&amp;", "&"))).text()
    first_rows = set(re.findall(r'data-number="([^"]+)"', first))
    second_rows = set(re.findall(r'data-number="([^"]+)"', second))
    assert len(first_rows) == 50 and len(second_rows) == 5 and not first_rows & second_rows
    assert 'rel="next"' not in second
