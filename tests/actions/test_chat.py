"""`minhu chat`: buttons as numbered choices, Chinese in and out, against a stand-in REST channel."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from typer.testing import CliRunner

from minhu.chat import Reply, chat_loop, render, resolve_choice, terminal_sender
from minhu.cli import app


def test_buttons_become_numbered_choices() -> None:
    text, payloads = render(
        [
            Reply("请问您住在哪个社区?", [("安居社区", "安居社区"), ("锦江社区", "锦江社区")]),
            Reply("第二行\n第三行"),
        ]
    )
    assert "助手: 请问您住在哪个社区?" in text and "[1] 安居社区" in text and "[2] 锦江社区" in text
    assert payloads == ["安居社区", "锦江社区"]
    assert resolve_choice("2", payloads) == "锦江社区"
    assert resolve_choice("3", payloads) == "3"  # not a choice: sent as typed
    assert resolve_choice(" 电梯坏了 ", payloads) == "电梯坏了"


async def test_chat_loop_talks_to_the_rest_channel() -> None:
    received: list[dict[str, Any]] = []

    async def webhook(request: web.Request) -> web.Response:
        body = await request.json()
        received.append(body)
        if body["message"] == "电梯坏了":
            return web.json_response(
                [
                    {
                        "text": "急不急?",
                        "buttons": [{"title": "急", "payload": "急"}, {"title": "不急", "payload": "不急"}],
                    }
                ]
            )
        return web.json_response([{"text": f"收到:{body['message']}"}])

    app = web.Application()
    app.router.add_post("/webhooks/rest/webhook", webhook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    lines = iter(["电梯坏了", "2", "/quit"])
    out: list[str] = []
    try:
        await chat_loop(f"http://127.0.0.1:{port}", "web:t", read=lambda _: next(lines), write=out.append)
    finally:
        await runner.cleanup()
    assert [r["message"] for r in received] == ["电梯坏了", "不急"]
    assert all(r["sender"] == "web:t" for r in received)
    assert any("[2] 不急" in line for line in out) and any("收到:不急" in line for line in out)


def test_each_user_account_on_each_machine_is_its_own_resident() -> None:
    me = terminal_sender("wang", "laptop")
    assert me == terminal_sender("wang", "laptop")  # a restarted chat is still the same resident
    assert me.startswith("web:terminal-") and "wang" not in me and "laptop" not in me  # names not stored
    assert len({me, terminal_sender("li", "laptop"), terminal_sender("wang", "desktop")}) == 3
    assert terminal_sender() == terminal_sender() != "web:terminal"  # no longer one resident for everyone


def test_the_terminal_chat_says_who_you_are_and_how_to_be_someone_else() -> None:
    chat = CliRunner().invoke(app, ["chat", "--url", "http://127.0.0.1:9"], input="/quit\n")
    assert chat.exit_code == 0, chat.output
    who = terminal_sender().removeprefix("web:")
    assert f"您在这台电脑上的居民身份是 {who}" in chat.output
    assert "共用这台电脑的同一个账号" in chat.output and "--sender" in chat.output

    named = CliRunner().invoke(app, ["chat", "--sender", "web:王阿姨"], input="/quit\n")
    assert "您这次的居民身份是 王阿姨" in named.output
