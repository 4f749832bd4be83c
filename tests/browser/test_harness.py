"""The browser harness itself, on a tiny aiohttp page served on a real loopback port: Chromium renders it at
both widths, a screenshot is saved, axe-core runs offline in the page and the accessibility check fails on a
serious violation with a message naming the rule and the element."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from tests.browser.conftest import Shot, accessibility_violations, assert_accessible, serve

GOOD = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>测试页</title></head>
<body><main><h1>您好</h1>
<form method="post"><label for="q">搜索</label><input id="q" name="q"><button>查找</button></form>
<p id="width"></p></main>
<script>document.getElementById("width").textContent = String(window.innerWidth);</script>
</body></html>"""
# An input without a label and an image without alt text: axe calls both critical.
BAD = GOOD.replace('<label for="q">搜索</label>', "").replace("<p id", '<img src="/x.png"><p id')


def tiny_app() -> web.Application:
    async def good(request: web.Request) -> web.Response:
        return web.Response(text=GOOD, content_type="text/html")

    async def bad(request: web.Request) -> web.Response:
        return web.Response(text=BAD, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", good)
    app.router.add_get("/bad", bad)
    return app


async def test_a_page_served_on_a_real_port_renders_at_the_viewport_width(
    page: Any, viewport: str, shot: Shot
) -> None:
    async with serve(tiny_app()) as base:
        response = await page.goto(base + "/")
        assert response is not None and response.status == 200
        assert await page.get_by_role("heading", name="您好").is_visible()
        width = await page.locator("#width").text_content()
        assert width == {"desk": "1280", "phone": "390"}[viewport]
        path = await shot(page, "tiny")
        assert (
            path.name
            == f"test_a_page_served_on_a_real_port_renders_at_the_viewport_width-{viewport}-tiny.png"
        )
        assert path.stat().st_size > 1000
        await assert_accessible(page)


@pytest.mark.parametrize("viewport", ["desk"], indirect=True)
async def test_the_accessibility_check_fails_on_serious_violations_and_names_them(page: Any) -> None:
    async with serve(tiny_app()) as base:
        await page.goto(base + "/bad")
        found = {v["id"]: v["impact"] for v in await accessibility_violations(page)}
        assert found.get("label") == "critical"
        assert found.get("image-alt") == "critical"
        with pytest.raises(AssertionError) as failure:
            await assert_accessible(page)
    message = str(failure.value)
    assert "label (critical)" in message and "#q" in message
    assert "image-alt (critical)" in message and '<img src="/x.png">' in message
