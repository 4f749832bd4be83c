"""The action server dies in the middle of a request form: Rasa says the system is busy instead of nothing,
the answer it could not validate is not kept (the address never becomes “确认”), and once the action server
is back the form goes on from the question it was at."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.e2e.conftest import Chat, Stack

BUSY = "系统忙,您的话已保存。请稍等一两分钟再说一次,我们会接着为您办理;情况紧急请直接拨打 110 / 119 / 120。"


async def test_a_dead_action_server_gets_a_busy_answer_and_no_wrong_slot(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    chat = Chat(http, stack, "actions-down-midform")
    await chat.say("楼上养鸽子 鸽子屎落得我家窗台上到处都是")
    assert "哪个社区" in chat.text
    await chat.say("安居社区")
    assert "哪个小区" in chat.text

    actions = stack.assistant.actions
    await asyncio.to_thread(actions.stop)
    try:
        for said in ("安居苑", "确认"):
            replies = await chat.say(said)
            assert replies and replies[0].get("text") == BUSY, replies  # the whole answer: never silence
    finally:
        await asyncio.to_thread(actions.start)
        await asyncio.to_thread(actions.wait_healthy, stack.assistant.wait_s)

    await chat.say("安居苑")  # said again, as asked: the form is where it was, nothing was filled wrongly
    assert "几栋" in chat.text and "确认" not in chat.text
