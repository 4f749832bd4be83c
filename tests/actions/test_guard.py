"""An action that fails answers politely, and no resident's words reach an error body or a log: every action
through the real rasa-sdk action server (its Sanic app, on a loopback port), with a ticket core that raises
errors carrying a resident's words."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from rasa_sdk.endpoint import create_app_for_serve
from rasa_sdk.executor import ActionExecutor, CollectingDispatcher
from sanic import Sanic

from actions.guard import BUSY_TEXT, FORM_BUSY_TEXT, Guarded, is_guarded
from actions.runtime import RUNTIME, PendingStore
from tests.actions.conftest import DOMAIN_FORMS, tracker
from tests.e2e.conftest import free_port
from tickets.catalogue import Catalogue
from tickets.clock import SystemClock

SECRET = "身份证号420102199001011234"
SECRETS = ("420102", "身份证号", "电梯坏了三天")


class Leaking:
    """A ticket core whose every call fails with the resident's words in the error (as a database error
    quoting the statement's parameters does)."""

    def __init__(self) -> None:
        self.catalogue = Catalogue.load()
        self.clock = SystemClock()

    def __getattr__(self, name: str) -> Any:
        async def fail(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError(f"INSERT failed [parameters: ('web:alice', '电梯坏了三天 {SECRET}')]")

        return fail


def executor() -> ActionExecutor:
    served = ActionExecutor()
    served.register_package("actions")
    return served


def call(action: str) -> dict[str, Any]:
    """What Rasa posts to the action server: the whole tracker, the resident's words in it."""
    slots = {
        "category": "property",
        "description": f"电梯坏了三天 {SECRET}",
        "community": "安居社区",
        "compound": "安居苑",
        "phone": "+8613912345678",
        "urgency": "normal",
        "confirm": "yes",
        "fb_ticket": "MH-20261123-0001",
        "fb_contacted": "yes",
        "fb_solved": "yes",
        "fb_rating": "satisfied",
        "requested_slot": "community",
    }
    form = {"validate_request_form": "request_form", "validate_feedback_form": "feedback_form"}.get(action)
    text = f"电梯坏了三天 {SECRET} 查一下 MH-20261123-0001"
    answered = "fb_rating" if form == "feedback_form" else "community"  # the slot the form asked for
    return {
        "next_action": action,
        "sender_id": "web:alice",
        "version": "3.6.21",
        "domain": {"forms": DOMAIN_FORMS, "slots": {name: {} for name in slots}},
        "tracker": {
            "sender_id": "web:alice",
            "slots": slots,
            "latest_message": {"text": text, "intent": {"name": "property"}, "entities": []},
            "events": [
                {"event": "user", "text": text},
                {"event": "slot", "name": answered, "value": text},
            ],
            "paused": False,
            "followup_action": None,
            "active_loop": {"name": form} if form else {},
            "latest_action_name": "action_listen",
        },
    }


@pytest.fixture
async def action_server(tmp_path: Any) -> AsyncIterator[str]:
    """rasa-sdk's own app in-process, built as `python -m rasa_sdk` builds it in each worker
    (rasa_sdk.endpoint.create_app_for_serve: with its plugins, ours among them)."""
    RUNTIME.set_service(Leaking(), PendingStore(tmp_path / "pending_requests.jsonl"))  # type: ignore[arg-type]
    Sanic.test_mode = True  # a fresh app named "rasa_sdk" per test
    port = free_port()
    server = await create_app_for_serve(executor()).create_server(
        host="127.0.0.1", port=port, return_asyncio_server=True
    )
    assert server is not None
    await server.startup()
    await server.before_start()
    await server.after_start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await server.before_stop()
        await server.close()
        await server.after_stop()
        RUNTIME.set_service(None)


def test_every_served_action_is_guarded() -> None:
    served = executor().actions
    assert served and {name for name, run in served.items() if not is_guarded(run)} == set()


@pytest.mark.filterwarnings("ignore:Your versions of rasa and rasa_sdk")
async def test_failing_actions_answer_politely_and_leak_nothing(
    action_server: str, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bodies = []
    async with aiohttp.ClientSession() as http:
        for name in sorted(executor().actions):
            async with http.post(f"{action_server}/webhook", json=call(name)) as response:
                body = await response.text()
                assert response.status == 200, (name, response.status)
                bodies.append(body)
                said = " ".join(str(r.get("text") or "") for r in (await response.json())["responses"])
                assert re.search(r"[\u4e00-\u9fff]", said), (name, said)  # a Chinese answer, not silence
    # The community answer is checked against the org's communities: that failed, the guard said so and
    # left the slot unfilled.
    answer = call("validate_request_form")
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{action_server}/webhook", json=answer) as response,
    ):
        result = await response.json()
    assert [r["text"] for r in result["responses"]] == [FORM_BUSY_TEXT]
    assert result["events"] == [{"event": "slot", "timestamp": None, "name": "community", "value": None}]
    # No error body: neither the error's text nor the request (the tracker) comes back; answers may repeat
    # what the resident said to them (the read-back), the logs never.
    assert not any("INSERT failed" in body or "request_body" in body for body in bodies)
    logs = capfd.readouterr()
    for secret in SECRETS:
        assert secret not in logs.out + logs.err + caplog.text
    assert "action failed" in logs.out + logs.err + caplog.text  # the failure is logged, without the words


class Broken(Guarded):  # not an rasa-sdk Action: the executor does not serve it
    def name(self) -> str:
        return "action_broken"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Any, domain: Any) -> list[Any]:
        dispatcher.utter_message(text="您的工单")
        raise RuntimeError(SECRET)


async def test_half_an_answer_is_dropped_for_the_polite_one(capfd: pytest.CaptureFixture[str]) -> None:
    dispatcher = CollectingDispatcher()
    assert await Broken().run(dispatcher, tracker(), {}) == []
    assert [m["text"] for m in dispatcher.messages] == [BUSY_TEXT]
    logs = capfd.readouterr()
    assert (
        "action=action_broken" in logs.out and "error=RuntimeError" in logs.out and "420102" not in logs.out
    )


@pytest.mark.filterwarnings("ignore:Your versions of rasa and rasa_sdk")
async def test_an_error_outside_any_action_answers_a_bare_status(
    action_server: str, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # A tracker rasa-sdk cannot read fails before any action runs, in rasa-sdk's own code.
    unreadable = {
        "next_action": "action_check_status",
        "version": "3.6.21",
        "domain": {"slots": {}},
        "tracker": f"电梯坏了三天 {SECRET}",
    }
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{action_server}/webhook", json=unreadable) as response:
            assert (response.status, await response.json()) == (500, {"error": "Internal Server Error"})
        async with http.get(f"{action_server}/no-such-page") as response:
            assert (response.status, await response.json()) == (404, {"error": "Not Found"})
        async with http.get(f"{action_server}/health") as response:
            assert response.status == 200
    logs = capfd.readouterr()
    for secret in SECRETS:
        assert secret not in logs.out + logs.err + caplog.text
    assert "action server request failed" in logs.out + logs.err + caplog.text
