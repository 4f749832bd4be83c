"""The life-safety layer without Rasa: the keyword net (nlu/emergency_net.py, plain Python) on the
emergency test set tests/emergency/cases.yml, the catalogue's numbers and first replies (tickets/data/
emergencies.yml) against domain.yml's utter_emergency, and the dialogue wiring. The same cases through the
real Rasa server: tests/e2e/test_emergency.py; the urgent ticket: tests/test_emergency_ticket.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from rapidfuzz import fuzz, process

from nlu.emergency_net import KINDS, MULTIPLE, UNKNOWN, EmergencyNet, normalize
from tickets.catalogue import Catalogue

ROOT = Path(__file__).resolve().parents[1]
CASES = yaml.safe_load((ROOT / "tests" / "emergency" / "cases.yml").read_text(encoding="utf-8"))
EMERGENCIES: list[dict[str, Any]] = CASES["emergencies"]
NEAR_MISSES: list[str] = CASES["near_misses"]
NET = EmergencyNet()
GUIDE = Catalogue.load().emergencies


def _yaml(name: str) -> Any:
    return yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------- the test set


def test_the_test_set_covers_every_kind_in_every_script() -> None:
    assert len(EMERGENCIES) >= 60 and len(NEAR_MISSES) >= 40
    kinds = {c["kind"] for c in EMERGENCIES}
    assert set(KINDS) <= kinds
    for kind in KINDS:
        assert sum(c["kind"] == kind for c in EMERGENCIES) >= 8, kind
    texts = [c["text"] for c in EMERGENCIES]
    assert sum(bool(re.search(r"[氣著煙樓裡暈沒頭丟幫絕孫亂]", t)) for t in texts) >= 6  # Traditional
    assert sum(bool(re.search(r"[A-Za-z]{3,}", t)) for t in texts) >= 5  # English
    assert sum(not re.search(r"[\s,。!?!?,]", t) for t in texts) >= 15  # no punctuation at all
    assert any("\uff01" in t for t in texts)  # full-width punctuation
    assert len(set(texts)) == len(texts) and len(set(NEAR_MISSES)) == len(NEAR_MISSES)


def test_the_test_set_is_held_out_from_the_training_data() -> None:
    annotation = re.compile(r"\[([^\]]+)\]\([^)]*\)")
    train = []
    for path in sorted((ROOT / "nlu" / "intents").glob("*.yml")):
        for item in _yaml(str(path.relative_to(ROOT)))["nlu"]:
            for line in item["examples"].splitlines():
                if line.strip().startswith("- "):
                    train.append(annotation.sub(r"\1", line.strip()[2:]))
    close = [
        (text, hit[0], hit[1])
        for text in [c["text"] for c in EMERGENCIES] + NEAR_MISSES + CASES["over_inclusive"]
        if (hit := process.extractOne(text, train, scorer=fuzz.ratio, score_cutoff=85))
    ]
    assert not close, close


# ---------------------------------------------------------------------------------- the keyword net alone


@pytest.mark.parametrize("case", EMERGENCIES, ids=lambda c: c["text"][:20])
def test_every_emergency_is_caught_with_its_kind(case: dict[str, Any]) -> None:
    verdict = NET.check(case["text"])
    assert verdict is not None, case["text"]
    assert verdict.kind == case["kind"], (case["text"], verdict.kind, verdict.matched)


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_stay_ordinary_requests(text: str) -> None:
    verdict = NET.check(text)
    assert verdict is None, (text, verdict and verdict.matched)


@pytest.mark.parametrize("text", CASES["over_inclusive"])
def test_over_inclusions_are_a_silenced_danger_phrase(text: str) -> None:
    """The net alone leaves them (a guard word silences a weak phrase); Rasa's classifier may confirm them."""
    assert NET.check(text) is None and NET.hits(text)


def test_recall_and_false_alarms_in_figures() -> None:
    caught = sum(NET.check(c["text"]) is not None for c in EMERGENCIES)
    alarms = sum(NET.check(t) is not None for t in NEAR_MISSES)
    assert (caught, alarms) == (len(EMERGENCIES), 0)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        # a worry or a what-if is a request, for danger to things; not for violence or self-harm
        ("万一着火了怎么办", None),
        ("担心老人走丢 想办个手环", None),
        ("我好怕 我妈晕倒了", "medical"),
        ("我怕他又打我", "violence"),
        ("我很担心他想不开", "self_harm"),
        # negated
        ("没有着火 就是有点焦味", None),
        # long ago, with a follow-up: a request; a missing person is missing until found
        ("我老公前年脑溢血走了 想申请低保", None),
        ("前几天有人在那被抢了包 路灯一直不修", None),
        ("孩子昨天走丢了 到现在还没找到", "missing"),
        # a guard word silences a weak word only
        ("灭火器过期了 楼道里冒烟了", "fire"),
        ("检查的时候发现燃气泄漏", "gas"),
        ("车胎漏气了", None),
        ("楼道漏气 好大一股臭鸡蛋味", "gas"),
        # phrases that only look dangerous
        ("打人工", None),
        ("气得我说不出话", None),
        ("热得想死", None),
        ("伢的准考证丢了", None),
        ("我爸去年中风了 现在半边身子不灵活", None),
        ("落水管堵了", None),
        # full-width, Traditional, spaces
        ("著火了\uff01\uff01", "fire"),
        ("媽媽暈倒了", "medical"),
        ("煤 气 泄 漏", None),  # one character a word is not how anyone writes; documented
        ("煤气  泄漏了", "gas"),
    ],
)
def test_the_net_reads_context(text: str, kind: str | None) -> None:
    verdict = NET.check(text)
    assert (verdict.kind if verdict else None) == kind, (text, verdict and verdict.matched)


def test_normalize_is_full_width_and_traditional_aware() -> None:
    assert normalize("着火了\uff01\uff01 ＳＯＳ") == "着火了!! sos"
    assert normalize("煤氣洩漏  了") == "煤气泄漏 了"


def test_the_kind_to_answer_with() -> None:
    assert NET.primary(["fire", "gas"]) == "fire"  # do not open windows to a fire
    assert NET.primary(["medical", "self_harm"]) == "self_harm"  # its reply gives 120 too
    assert NET.primary(["violence", "medical"]) == MULTIPLE
    assert NET.primary([UNKNOWN]) == UNKNOWN
    assert NET.primary(["missing", UNKNOWN]) == "missing"


# ------------------------------------------------------------------- the numbers: one source of truth


def test_the_catalogue_says_the_right_numbers_for_each_kind() -> None:
    assert GUIDE is not None
    assert set(GUIDE.kinds) == set(KINDS)
    assert {"110", "119", "120", "12356"} <= set(GUIDE.numbers)
    expected = {
        "gas": {"119"},
        "fire": {"119"},
        "medical": {"120"},
        "violence": {"110"},
        "missing": {"110"},
        "self_harm": {"110", "120", "12356"},
    }
    assert {k: set(v.numbers) for k, v in GUIDE.kinds.items()} == expected
    assert set(GUIDE.default.numbers) == {"110", "119", "120"}
    for kind in [*GUIDE.kinds.values(), GUIDE.default]:
        assert all(n in kind.reply for n in kind.numbers), kind.code
    assert "24 小时" in GUIDE.kind("missing").reply  # no 24-hour wait
    assert "电梯" in GUIDE.kind("fire").reply and "楼梯" in GUIDE.kind("fire").reply
    assert "开关" in GUIDE.kind("gas").reply and "室外" in GUIDE.kind("gas").reply
    assert "搬动" in GUIDE.kind("medical").reply
    assert GUIDE.kind(UNKNOWN) is GUIDE.default and GUIDE.kind(MULTIPLE) is GUIDE.default
    assert GUIDE.kind(None) is GUIDE.default


def test_domain_utter_emergency_is_the_catalogue_word_for_word() -> None:
    """domain.yml holds a copy (Rasa says it without the action server); this keeps it from drifting."""
    assert GUIDE is not None
    variations = _yaml("domain.yml")["responses"]["utter_emergency"]
    by_kind = {}
    default = []
    for variation in variations:
        condition = variation.get("condition")
        if condition is None:
            default.append(variation["text"])
            continue
        [slot] = condition
        assert (slot["type"], slot["name"]) == ("slot", "emergency_kind")
        by_kind[slot["value"]] = variation["text"]
    expected = (
        "\n".join(
            f"    - condition:\n        - type: slot\n          name: emergency_kind\n          value: {code}\n"
            f"      text: {json.dumps(kind.reply, ensure_ascii=False)}"
            for code, kind in GUIDE.kinds.items()
        )
        + f"\n    - text: {json.dumps(GUIDE.default.reply, ensure_ascii=False)}"
    )
    message = f"domain.yml utter_emergency differs from tickets/data/emergencies.yml; paste:\n{expected}"
    assert by_kind == {code: kind.reply for code, kind in GUIDE.kinds.items()}, message
    assert default == [GUIDE.default.reply], message


def test_the_dialogue_is_wired_for_emergencies() -> None:
    domain = _yaml("domain.yml")
    assert "emergency" in domain["intents"] and "emergency_kind" in domain["entities"]
    assert "action_emergency" in domain["actions"]
    assert domain["slots"]["emergency_kind"]["mappings"] == [
        {"type": "from_entity", "entity": "emergency_kind"}
    ]
    # an emergency typed as a form answer never fills the slot
    for name, slot in domain["slots"].items():
        for mapping in slot["mappings"]:
            if mapping["type"] == "from_text":
                assert "emergency" in mapping["not_intent"], name
    rules = _yaml("nlu/dialogue/rules.yml")["rules"]
    emergency_rules = [r for r in rules if r["steps"][0] == {"intent": "emergency"}]
    forms = sorted(c["active_loop"] for r in emergency_rules for c in r.get("condition", []))
    assert forms == ["feedback_form", "request_form"] and len(emergency_rules) == 3
    for rule in emergency_rules:
        actions = [s["action"] for s in rule["steps"] if "action" in s]
        assert actions[0] == "utter_emergency" and actions[-1] == "action_emergency"
    pipeline = [c["name"] for c in _yaml("config.yml")["pipeline"]]
    assert pipeline[-1] == "nlu.components.emergency.EmergencyOverride"
    assert pipeline.index("nlu.components.opencc_normalizer.TraditionalToSimplified") == 0
