"""Run in the Rasa venv by tests/e2e/test_rasa_server.py: nlu/rasa_server.py's patches accept, reject and
return exactly what Rasa 3.6.21 does without them. Prints one line per check; exits non-zero on failure."""

from __future__ import annotations

import sys

import jsonschema
from rasa.core.actions.action import RemoteAction
from rasa.shared.core.events import Event
from rasa.shared.utils.common import all_subclasses

ORIGINAL_VALIDATE = RemoteAction._validate_action_result
ORIGINAL_RESOLVE = Event.resolve_by_type

from nlu.rasa_server import install  # noqa: E402

install()
action = RemoteAction("action_submit_request", None)

VALID = [
    {"events": [], "responses": []},
    {},
    {
        "events": [
            {"event": "slot", "name": "confirm", "value": None, "timestamp": None},
            {"event": "slot", "name": "ticket_number", "value": "MH-20261123-0001"},
            {"event": "active_loop", "name": None},
            {"event": "followup", "name": "action_listen"},
            {"event": "bot", "text": "已受理", "data": {"buttons": [{"title": "好", "payload": "/affirm"}]}},
            {"event": "reset_slots"},
        ],
        "responses": [{"text": "已受理,工单号 MH-20261123-0001", "buttons": []}],
    },
]
INVALID = [
    {"events": [{"event": "no_such_event"}]},
    {"events": [{"name": "confirm"}]},  # no event name
    {"events": [{"event": "slot", "name": 3, "value": 1}]},  # a slot name must be a string
    {"events": [{"event": "slot", "name": "x", "value": 1, "timestamp": "yesterday"}]},
    {"events": "not a list"},
    {"responses": ["not an object"]},
    {"events": [None]},
]


def rasa_accepts(result: object) -> bool:
    try:
        return bool(ORIGINAL_VALIDATE(action, result))
    except jsonschema.ValidationError:
        return False


def patched_accepts(result: object) -> bool:
    try:
        return bool(action._validate_action_result(result))
    except jsonschema.ValidationError as error:
        assert "Failed to validate Action server response" in error.message, error.message
        return False


def main() -> int:
    failures = 0
    for result in VALID + INVALID:
        same = rasa_accepts(result) == patched_accepts(result)
        failures += not same
        print(f"validate {'ok' if same else 'DIFFERENT'}: {str(result)[:80]}")
    names = {cls.type_name for cls in all_subclasses(Event)}
    for name in sorted(names):
        same = Event.resolve_by_type(name) is ORIGINAL_RESOLVE(name)
        failures += not same
        print(f"resolve {'ok' if same else 'DIFFERENT'}: {name}")
    try:
        Event.resolve_by_type("no_such_event")
        failures += 1
        print("resolve DIFFERENT: an unknown event name did not raise")
    except ValueError:
        print("resolve ok: an unknown event name raises ValueError")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
