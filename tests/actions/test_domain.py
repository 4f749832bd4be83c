"""domain.yml and the action server agree: every custom action the domain names is served, and back."""

from pathlib import Path

import yaml
from rasa_sdk.executor import ActionExecutor

ROOT = Path(__file__).resolve().parents[2]


def test_domain_actions_are_exactly_the_served_ones() -> None:
    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    executor = ActionExecutor()
    executor.register_package("actions")
    assert set(domain["actions"]) == set(executor.actions)


def test_intents_are_the_nineteen_of_the_nlu_data() -> None:
    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    files = {p.stem for p in (ROOT / "nlu" / "intents").glob("*.yml")}
    assert set(domain["intents"]) - {"nlu_fallback"} == files and len(files) == 19


def test_every_form_slot_is_asked_by_an_action() -> None:
    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    for form in domain["forms"].values():
        for slot in form["required_slots"]:
            assert f"action_ask_{slot}" in domain["actions"] or f"utter_ask_{slot}" in domain["responses"]
