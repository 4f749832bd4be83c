"""`python -m nlu.rasa_server run …`: the `rasa` command, with fixes to Rasa 3.6's per-message hot path.

Measured on this project's request form (py-spy and cProfile of the Rasa server, see benchmarks/README.md),
Rasa spent much of its CPU per message on work whose result never changes:

* `jsonschema.validate(result, schema)` on every action-server response first re-checks the large, constant
  events schema itself (~60 % of the CPU per message before this module existed), and then tries each
  event against all 23 branches of the schema's `oneOf`. Here each event is checked against the one branch
  its `event` name selects (the branches differ by a `const` event name, so no other branch can match);
  anything that does not pass goes through Rasa's own check, which rejects it with Rasa's message.
* `Event.resolve_by_type` walks every subclass of `Event` (recursively, with `inspect.isabstract`) for
  each event it deserialises: every tracker read from the tracker store and every action response.
  Here the name → class map is built once; an unknown name still takes Rasa's own path.
* A new aiohttp session, and so a new TCP connection, per action call: here each endpoint keeps one session
  with keep-alive connections (closed by the client before the action server's 120 s keep-alive ends).

What Rasa accepts, rejects or returns is unchanged. Runs in the Rasa venv (imports nothing from the app);
the pinned Rasa version is asserted so an upgrade re-examines the patches.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

RASA_VERSION = "3.6.21"
KEEPALIVE_S = 30.0  # below rasa-sdk's DEFAULT_KEEP_ALIVE_TIMEOUT (120 s): the client always closes first


def install() -> None:
    import rasa

    if rasa.__version__ != RASA_VERSION:
        raise RuntimeError(f"nlu/rasa_server.py patches Rasa {RASA_VERSION}, found {rasa.__version__}")
    _validate_action_responses_once()
    _resolve_event_types_once()
    if os.environ.get("MINHU_RASA_KEEP_SESSIONS", "1") != "0":  # TEMPORARY A/B switch
        _keep_endpoint_sessions()


def _validate_action_responses_once() -> None:
    import jsonschema
    from rasa.core.actions.action import RemoteAction

    original = RemoteAction._validate_action_result
    schema = RemoteAction.action_response_format_spec()
    validator_for = jsonschema.validators.validator_for(schema)
    validator_for.check_schema(schema)  # once, instead of on every action call
    item = schema["properties"]["events"]["items"]
    base = {key: value for key, value in item.items() if key != "oneOf"}
    by_event = {
        branch["properties"]["event"]["const"]: validator_for({**base, "allOf": [branch]})
        for branch in item["oneOf"]
    }
    responses = validator_for(schema["properties"]["responses"])

    def quick_check(result: Any) -> bool:
        if not isinstance(result, dict):
            return False
        events = result.get("events", [])
        if not isinstance(events, list) or not responses.is_valid(result.get("responses", [])):
            return False
        for event in events:
            validator = by_event.get(event.get("event")) if isinstance(event, dict) else None
            if validator is None or not validator.is_valid(event):
                return False
        return True

    def validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
        if quick_check(result):
            return True
        return bool(original(self, result))  # raises Rasa's own error, with its message

    RemoteAction._validate_action_result = validate_action_result


def _resolve_event_types_once() -> None:
    from rasa.shared.core.events import Event
    from rasa.shared.utils.common import all_subclasses

    original = Event.resolve_by_type
    known: dict[str, type[Event]] = {}

    def resolve_by_type(type_name: str, default: type[Event] | None = None) -> type[Event] | None:
        if not known:
            for cls in all_subclasses(Event):  # Rasa's order: the first class with a name wins
                known.setdefault(cls.type_name, cls)
        return known.get(type_name) or original(type_name, default)

    Event.resolve_by_type = staticmethod(resolve_by_type)  # type: ignore[method-assign]


class _Kept:
    """`async with endpoint.session()` that hands out the endpoint's long-lived session and leaves it open."""

    def __init__(self, session: Any) -> None:
        self.session = session

    async def __aenter__(self) -> Any:
        return self.session

    async def __aexit__(self, *exc: object) -> None:
        return None


def _keep_endpoint_sessions() -> None:
    import aiohttp
    from rasa.core.constants import DEFAULT_REQUEST_TIMEOUT
    from rasa.utils.endpoints import EndpointConfig

    kept: dict[str, tuple[asyncio.AbstractEventLoop, aiohttp.ClientSession]] = {}

    def session(self: EndpointConfig) -> _Kept:
        loop = asyncio.get_running_loop()
        held = kept.get(self.url)
        if held is None or held[0] is not loop or held[1].closed:
            auth = self.basic_auth
            fresh = aiohttp.ClientSession(  # Rasa's own settings, plus reused connections
                headers=self.headers,
                auth=aiohttp.BasicAuth(auth["username"], auth["password"]) if auth else None,
                timeout=aiohttp.ClientTimeout(total=DEFAULT_REQUEST_TIMEOUT),
                connector=aiohttp.TCPConnector(keepalive_timeout=KEEPALIVE_S),
            )
            held = kept[self.url] = (loop, fresh)
        return _Kept(held[1])

    EndpointConfig.session = session


def main() -> None:
    install()
    from rasa.__main__ import main as rasa_main

    sys.argv[0] = "rasa"
    rasa_main()


if __name__ == "__main__":
    main()
