"""The dashboard's frame: the signed-in queue page, the login redirect, CSRF, and the Chinese error pages."""

from __future__ import annotations

from yarl import URL

from tests.conftest import Org
from tests.dashboard.conftest import Client, sign_in


async def test_a_signed_in_staff_member_gets_the_queue_page(client: Client, org: Org) -> None:
    await sign_in(client, org, "staff-a")
    response = await client.get("/")
    assert response.status == 200
    page = await response.text()
    assert "<h1>工单队列</h1>" in page
    for label in ("工单队列", "数据", "热点", "人员", "退出"):
        assert label in page
    assert 'lang="zh-CN"' in page


async def test_anonymous_visitors_are_sent_to_the_login_page(client: Client) -> None:
    response = await client.get("/figures?week=1", allow_redirects=False)
    assert response.status == 302
    location = URL(response.headers["Location"])
    assert (location.path, location.query["next"]) == ("/login", "/figures?week=1")


async def test_a_post_without_the_csrf_token_is_refused(client: Client, org: Org) -> None:
    await sign_in(client, org, "staff-a")
    response = await client.post("/logout", data={})
    assert response.status == 403
    assert "请刷新页面后再试" in await response.text()
    assert (await client.get("/", allow_redirects=False)).status == 200  # still signed in


async def test_an_unknown_page_is_a_chinese_404(client: Client) -> None:
    response = await client.get("/no-such-page")
    assert response.status == 404
    assert "没有找到这个页面" in await response.text()
