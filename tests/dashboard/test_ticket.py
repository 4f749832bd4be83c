"""The ticket page: history, masked phone and its logged reveal, actions through the domain with a flash
(post/redirect/get), another community's ticket not shown."""

from __future__ import annotations

from dashboard.app import SERVICE
from tests.conftest import Org, actions
from tests.dashboard.conftest import Client, csrf_of, sign_in
from tickets.service import NewTicket


async def make_ticket(client: Client, org: Org, category: str = "eldercare") -> str:
    service = client.app[SERVICE]
    resident = await org.resident()
    ticket = await service.create_ticket(
        NewTicket(resident, category, "想给我妈申请助餐", phone="13812345678")
    )
    return ticket.number


async def test_the_ticket_page_shows_history_and_a_masked_phone(client: Client, org: Org) -> None:
    number = await make_ticket(client, org)
    await sign_in(client, org, "staff-a")
    response = await client.get(f"/tickets/{number}")
    page = await response.text()
    assert response.status == 200
    assert "想给我妈申请助餐" in page and "办理记录" in page and "受理" in page
    assert "138****5678" in page and "13812345678" not in page  # in the text too: only the reveal shows it


async def test_reveal_shows_the_phone_once_and_the_admin_reads_the_log(client: Client, org: Org) -> None:
    number = await make_ticket(client, org)
    await sign_in(client, org, "staff-a")
    token = await csrf_of(client, f"/tickets/{number}")
    revealed = await (await client.post(f"/tickets/{number}/reveal", data={"csrf_token": token})).text()
    assert "+8613812345678" in revealed and "已记录本次查看" in revealed
    assert "13812345678" not in await (await client.get(f"/tickets/{number}")).text()
    assert (await client.get("/reveals")).status == 403  # not an admin

    await sign_in(client, org, "street-1", admin=True)
    log = await (await client.get("/reveals")).text()
    assert number in log and "周丽" in log and "13812345678" not in log


async def test_actions_go_through_the_domain_and_flash_in_chinese(client: Client, org: Org) -> None:
    number = await make_ticket(client, org, category="facility_repair")
    await sign_in(client, org, "staff-a")
    token = await csrf_of(client, f"/tickets/{number}")

    noted = await client.post(
        f"/tickets/{number}/note", data={"csrf_token": token, "note": "已电话联系"}, allow_redirects=False
    )
    assert (noted.status, noted.headers["Location"]) == (303, f"/tickets/{number}")
    page = await (await client.get(f"/tickets/{number}")).text()
    assert "备注已添加" in page and "已电话联系" in page

    empty = await client.post(f"/tickets/{number}/escalate", data={"csrf_token": token, "reason": ""})
    assert "请填写原因" in await empty.text()
    await client.post(f"/tickets/{number}/escalate", data={"csrf_token": token, "reason": "需要社区协调"})
    reassigned = await client.post(
        f"/tickets/{number}/dispatch",
        data={"csrf_token": token, "responder": str(org["grid-a2"]), "reason": "换人"},
    )
    assert "已派单" in await reassigned.text() or "已改派" in await reassigned.text()
    done = [action for action, _, _ in await actions(client.app[SERVICE], number)]
    assert "note" in done and "escalate" in done and ("dispatch" in done[-1:] or "reassign" in done[-1:])

    refused = await client.post(f"/tickets/{number}/close", data={"csrf_token": token, "reason": "结"})
    assert "不能结案" in await refused.text()


async def test_another_community_s_ticket_is_not_shown(client: Client, org: Org) -> None:
    number = await make_ticket(client, org)
    await sign_in(client, org, "staff-j")
    response = await client.get(f"/tickets/{number}")
    assert response.status == 404 and "想给我妈申请助餐" not in await response.text()
    token = await csrf_of(client, "/")
    note = await client.post(f"/tickets/{number}/note", data={"csrf_token": token, "note": "x"})
    assert note.status == 404
    assert "note" not in [a for a, _, _ in await actions(client.app[SERVICE], number)]
