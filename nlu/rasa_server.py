"""`python -m nlu.rasa_server run …`: the `rasa` command, with one fix to Rasa 3.6's hot path.

Rasa 3.6 validates every action server response with `jsonschema.validate(result, schema)`, which first
re-checks the (large, constant) events schema itself: measured with py-spy on this project's request form,
that self-check was ~60 % of the Rasa server's CPU per message. Here the response is validated against a
validator built once; what is accepted or rejected is unchanged. Runs in the Rasa venv (imports nothing
from the app); the pinned Rasa version is asserted so an upgrade re-examines the patch.
"""

from __future__ import annotations

import sys
from typing import Any

RASA_VERSION = "3.6.21"


def install() -> None:
    import jsonschema
    import rasa
    from rasa.core.actions.action import RemoteAction

    if rasa.__version__ != RASA_VERSION:
        raise RuntimeError(f"nlu/rasa_server.py patches Rasa {RASA_VERSION}, found {rasa.__version__}")
    original = RemoteAction._validate_action_result
    schema = RemoteAction.action_response_format_spec()
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)  # once, instead of on every action call
    validator = validator_class(schema)

    def validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
        if validator.is_valid(result):
            return True
        return bool(original(self, result))  # raises Rasa's own error, with its message

    RemoteAction._validate_action_result = validate_action_result


def main() -> None:
    install()
    from rasa.__main__ import main as rasa_main

    sys.argv[0] = "rasa"
    rasa_main()


if __name__ == "__main__":
    main()
