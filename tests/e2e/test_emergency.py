"""Life safety through the REAL Rasa server (trained model, REST channel) and the real action server: every
emergency of tests/emergency/cases.yml gets its numbers in the FIRST reply (recall must be 100 %), no near miss
gets them; an emergency typed as a form answer ends the form and fills nothing; the urgent ticket on a yes;
and with the action server down the numbers still come (a second Rasa on the same model, actions unreachable).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from minhu.stack import Child
from tests.e2e.conftest import REPO, STARTUP_TIMEOUT, Chat, Stack, _script, free_port, resolve
from tests.e2e.test_conversations import REQUESTS, tickets_of
from tickets.actors import SYSTEM
from tickets.catalogue import Catalogue
from tickets.models import Status, Urgency
from tickets.service import TicketService

pytestmark = pytest.mark.slow

CASES = yaml.safe_load((REPO / "tests" / "emergency" / "cases.yml").read_text(encoding="utf-8"))
GUIDE = Catalogue.load().emergencies
assert GUIDE is not None
REPLIES = {GUIDE.default.reply, *(k.reply for k in GUIDE.kinds.values())}
PARALLEL = 6  # residents talking at once: the suite's machine has two cores


def first_reply(replies: list[dict[str, Any]]) -> str:
    return str(replies[0].get("text") or "") if replies else ""


async def parse(http: aiohttp.ClientSession, stack: Stack, text: str) -> dict[str, Any]:
    url = f"{stack.rasa_url}/model/parse"
    async with http.post(url, json={"text": text}, params={"token": stack.token}) as response:
        assert response.status == 200
        return dict(await response.json())


async def in_turns(work: list[Any], run: Any) -> list[Any]:
    gate = asyncio.Semaphore(PARALLEL)

    async def one(item: Any) -> Any:
        async with gate:
            return await run(item)

    return list(await asyncio.gather(*(one(item) for item in work)))


async def test_every_emergency_gets_its_numbers_in_the_first_reply(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    cases: list[dict[str, Any]] = CASES["emergencies"]

    async def run(
        item: tuple[int, dict[str, Any]],
    ) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
        i, case = item
        chat = Chat(http, stack, f"emergency-{i}")
        return case, await chat.say(case["text"]), await parse(http, stack, case["text"])

    results = await in_turns(list(enumerate(cases)), run)
    misses, wrong_kind = [], []
    by_classifier = Counter()
    for case, replies, parsed in results:
        expected = GUIDE.kind(case["kind"])
        numbers = case.get("numbers") or expected.numbers
        said = first_reply(replies)
        if said not in REPLIES or not all(n in said for n in numbers):
            misses.append((case["text"], said[:40]))
        elif said != expected.reply:
            wrong_kind.append((case["text"], case["kind"]))
        # The offer of the urgent ticket follows the numbers (the action server answered).
        assert any(b.get("title") == "不用了" for r in replies for b in r.get("buttons") or []), case["text"]
        by_classifier[parsed["emergency"]["classifier_intent"] == "emergency"] += 1
    caught = len(cases) - len(misses)
    print(
        f"\nemergency recall through Rasa: {caught}/{len(cases)} = {caught / len(cases):.1%}; "
        f"right kind {caught - len(wrong_kind)}/{len(cases)}; "
        f"the classifier alone said emergency for {by_classifier[True]}/{len(cases)}"
    )
    assert not misses, misses
    assert not wrong_kind, wrong_kind


async def test_near_misses_stay_ordinary_requests(stack: Stack, http: aiohttp.ClientSession) -> None:
    texts: list[str] = CASES["near_misses"]

    async def run(item: tuple[int, str]) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
        i, text = item
        chat = Chat(http, stack, f"near-miss-{i}")
        return text, await chat.say(text), await parse(http, stack, text)

    results = await in_turns(list(enumerate(texts)), run)
    alarms = [
        (text, parsed["intent"]["name"], parsed["emergency"])
        for text, replies, parsed in results
        if parsed["intent"]["name"] == "emergency" or any(r.get("text") in REPLIES for r in replies)
    ]
    intents = Counter(parsed["intent"]["name"] for _, _, parsed in results)
    print(
        f"\nnear misses through Rasa: {len(texts) - len(alarms)}/{len(texts)} ordinary; intents {dict(intents)}"
    )
    assert not alarms, alarms


async def test_over_inclusions_get_every_number(stack: Stack, http: aiohttp.ClientSession) -> None:
    """A danger phrase the net's guard word silenced, confirmed by the classifier: the numbers of that phrase's
    kind (救护车: 120), on purpose."""
    for i, text in enumerate(CASES["over_inclusive"]):
        parsed = await parse(http, stack, text)
        chat = Chat(http, stack, f"over-{i}")
        await chat.say(text)
        if parsed["emergency"]["classifier_intent"] == "emergency":
            assert first_reply(chat.replies) in REPLIES and "不用了" in chat.buttons
        else:  # the classifier did not: an ordinary request, like a near miss
            assert not any(r.get("text") in REPLIES for r in chat.replies)


async def test_the_issue_messages(stack: Stack, http: aiohttp.ClientSession, core: TicketService) -> None:
    """Issue 12's four messages: the right number first, never a ticket form, a greeting or 我没太明白."""
    expected = {
        "家里煤气泄漏了好大的味道": "119",
        "楼下有个老人晕倒了叫不醒": "120",
        "着火了!!三楼冒烟了": "119",
        "有人在小区里打架 拿着刀": "110",
    }
    for i, (text, number) in enumerate(expected.items()):
        chat = Chat(http, stack, f"issue-{i}")
        await chat.say(text)
        assert number in first_reply(chat.replies), (text, chat.text)
        assert "没太明白" not in chat.text and "您好" not in chat.text and "具体说说" not in chat.text
        assert chat.buttons == ["是,请社区马上联系我", "不用了"] or chat.buttons[-1] == "不用了"
        assert await tickets_of(core, chat.sender) == []


async def test_an_emergency_as_a_form_answer_ends_the_form_then_the_urgent_ticket(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService
) -> None:
    chat = Chat(http, stack, "emergency-in-form")
    await chat.say("楼上养鸽子 鸽子屎落得我家窗台上到处都是")
    assert "哪个社区" in chat.text
    await chat.say("楼下着火了 楼道里好多烟")
    assert first_reply(chat.replies) == GUIDE.kind("fire").reply  # the numbers before anything else
    assert "刚才正在登记的诉求先停下了" in chat.text and "哪个社区" not in chat.text
    assert chat.buttons == ["是,我住安居社区", "是,我住锦江社区", "不用了"]  # a first-time resident
    assert await tickets_of(core, chat.sender) == []

    await chat.say('/affirm{"community": "安居社区"}')
    assert "紧急求助工单" in chat.text and "社区工作人员周*" in chat.text and "119" in chat.text
    [ticket] = await tickets_of(core, chat.sender)
    assert (ticket.category, ticket.urgency) == ("emergency", Urgency.URGENT)
    assert ticket.text.startswith("【火灾】") and "鸽子" not in ticket.text  # the form's slot was not filled
    assert ticket.status == Status.DISPATCHED and ticket.assignee_id is not None

    # The resident can carry on afterwards: a new request starts a new form, the community remembered.
    await chat.say(REQUESTS["facility_repair"])
    assert "哪个社区" not in chat.text and "个人信息说明" not in chat.text


async def test_an_emergency_in_the_feedback_form_is_answered_and_rates_nothing(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService
) -> None:
    chat = Chat(http, stack, "emergency-in-feedback")
    await chat.say("窨井盖被车压碎了 就在后湖大道公交站旁边")
    await chat.answer_form()
    [ticket] = await tickets_of(core, chat.sender)
    await resolve(core, ticket, "已更换井盖")
    await chat.say("给接单的同志点个赞")
    assert "联系过您吗" in chat.text
    await chat.say("我爸突然晕倒了 叫不醒")
    assert first_reply(chat.replies) == GUIDE.kind("medical").reply
    assert chat.buttons == ["是,请社区马上联系我", "不用了"]
    await chat.say("/deny")
    assert "请注意安全" in chat.text
    assert (await core.ticket(ticket.number, SYSTEM)).status == Status.RESOLVED  # not rated by it


# ----------------------------------------------------------------------------- the action server is down


@pytest.fixture(scope="module")
def rasa_without_actions(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second Rasa server on the same model whose action server does not exist."""
    venv = Path(_script("rasa-env.sh"))
    model = os.environ.get("MINHU_E2E_MODEL") or _script("rasa-train.sh")
    folder = tmp_path_factory.mktemp("no-actions")
    endpoints = folder / "endpoints.yml"
    endpoints.write_text(
        f"action_endpoint:\n  url: http://127.0.0.1:{free_port()}/webhook\n", encoding="utf-8"
    )
    port = free_port()
    log = folder / "rasa.log"
    env = {
        **os.environ,
        "SANIC_HOST": "127.0.0.1",
        "RASA_TELEMETRY_ENABLED": "false",
        "PYTHONPATH": str(REPO),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONWARNINGS": "ignore",
        "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
    }
    command = [str(venv / "bin" / "python"), "-m", "nlu.rasa_server", "run", "--enable-api", "--model", model]
    command += ["--endpoints", str(endpoints), "--credentials", "credentials.yml"]
    command += ["--interface", "127.0.0.1", "--port", str(port)]
    rasa = Child("Rasa", "Rasa", command, port, "MINHU_RASA_PORT", "/status", log, env, needle="model_file")
    rasa.start()
    try:
        rasa.wait_healthy(STARTUP_TIMEOUT)
        yield f"http://127.0.0.1:{port}"
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)
    finally:
        rasa.stop()


async def test_the_numbers_come_even_when_the_action_server_is_down(
    rasa_without_actions: str, http: aiohttp.ClientSession
) -> None:
    webhook = f"{rasa_without_actions}/webhooks/rest/webhook"
    for i, (text, kind) in enumerate([("家里煤气泄漏了好大的味道", "gas"), ("我不想活了", "self_harm")]):
        async with http.post(webhook, json={"sender": f"down-{i}", "message": text}) as response:
            assert response.status == 200
            replies = await response.json()
        assert first_reply(replies) == GUIDE.kind(kind).reply, json.dumps(replies, ensure_ascii=False)
