"""Every action answers, whatever fails inside it.

An exception that escapes an action's `run` would reach rasa-sdk's error handler: it logs the traceback and
answers Rasa with a 500 whose body is the exception's text and the whole request, the resident's tracker
(their messages, phone, ID number), which Rasa then writes to its log; and the resident hears nothing.
`Guarded` (a base class of every action, see `test_every_served_action_is_guarded`) wraps `run`: an
unexpected error is logged as its type and where it was raised (app.logs.where, never its text or a
traceback), half an answer is dropped, and the resident is answered politely (`busy_text`); a form
validation action also leaves the slots it was validating unfilled, so nothing unchecked is kept.

An error outside any action's `run` (a malformed call, a tracker rasa-sdk cannot read) would still reach
rasa-sdk's handler. This module is also an rasa-sdk plugin (`attach_sanic_app_extensions`, registered by
the `actions` package in every worker process) that replaces that handler with one that logs the error's type
and place and answers a bare status, never the request.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from types import ModuleType
from typing import Any, ClassVar

import pluggy
import structlog
from rasa_sdk import FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.plugin import plugin_manager
from rasa_sdk.types import DomainDict
from sanic import HTTPResponse, Request, Sanic, response
from sanic.exceptions import SanicException
from sanic.handlers import ErrorHandler

from actions.health import note_action
from app.logs import where

log = structlog.get_logger("actions")

BUSY_TEXT = "抱歉,系统暂时有点忙,刚才这一步没有办成,请稍后再试。情况紧急请拨打社区电话或 12345 热线。"
FORM_BUSY_TEXT = (
    "抱歉,系统暂时有点忙,刚才这一项没能记下,请稍后再回复一次。情况紧急请拨打社区电话或 12345 热线。"
)

Run = Callable[[Any, CollectingDispatcher, Tracker, DomainDict], Awaitable[list[EventType]]]


def guarded(run: Run) -> Run:
    """`run` that never raises: see the module's docstring."""

    @functools.wraps(run)
    async def safe_run(
        self: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        said = len(dispatcher.messages)
        started = time.perf_counter()
        try:
            events = await run(self, dispatcher, tracker, domain)
        except Exception as error:
            note_action(self.name(), time.perf_counter() - started, error)
            log.error("action failed", action=self.name(), error=type(error).__name__, at=where(error))
            del dispatcher.messages[said:]
            dispatcher.utter_message(text=self.busy_text)
            failed: list[EventType] = self.failed(tracker)
            return failed
        note_action(self.name(), time.perf_counter() - started)
        return events

    safe_run.guarded = True  # type: ignore[attr-defined]
    return safe_run


class Guarded:
    """Base class of every action (before rasa-sdk's `Action` or `FormValidationAction`): its `run`, its own
    or inherited, is `guarded`."""

    busy_text: ClassVar[str] = BUSY_TEXT

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        run = getattr(cls, "run", None)
        if run is not None and not getattr(run, "guarded", False):
            setattr(cls, "run", guarded(run))  # noqa: B010 (mypy does not allow assigning a method)
        if issubclass(cls, FormValidationAction) and "busy_text" not in cls.__dict__:
            cls.busy_text = FORM_BUSY_TEXT

    def failed(self, tracker: Tracker) -> list[EventType]:
        """The events of a failed run: none, or a form's just-answered slots unfilled."""
        if isinstance(self, FormValidationAction):
            return [SlotSet(slot, None) for slot in tracker.slots_to_validate()]
        return []


def is_guarded(run: Callable[..., Any]) -> bool:
    return bool(getattr(run, "guarded", False))


# --- the action server's own error answers --------------------------------------------------------------

hookimpl = pluggy.HookimplMarker("rasa_sdk")


class AnswerWithoutTheRequest(ErrorHandler):
    """Sanic's error handler without rasa-sdk's own (which answers the request back): a bare status, and an
    error of ours logged as its type and place only."""

    def default(self, request: Request, exception: Exception) -> HTTPResponse:
        status = (
            exception.status_code
            if isinstance(exception, SanicException)
            else HTTPStatus.INTERNAL_SERVER_ERROR
        )
        if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            log.error("action server request failed", error=type(exception).__name__, at=where(exception))
        return response.json({"error": HTTPStatus(status).phrase}, status=status)


@hookimpl
def attach_sanic_app_extensions(app: Sanic[Any, Any]) -> None:
    """rasa-sdk's hook, called on each app it builds (in every worker): ours replaces its error handler."""
    app.error_handler = AnswerWithoutTheRequest()


def register_plugin(module: ModuleType) -> None:
    """Make `module` (with `hookimpl`s) an rasa-sdk plugin (once per process)."""
    manager = plugin_manager()
    if not manager.is_registered(module):
        manager.register(module)
