"""Several problems in one message are found by the catalogue's cue words, cautiously."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tickets.catalogue import Catalogue
from tickets.problems import Problem, problems

INTENTS = Path(__file__).resolve().parents[1] / "nlu" / "intents"


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load()


@pytest.mark.parametrize(
    ("text", "found"),
    [
        (
            "楼下垃圾好几天没人收了,还有门口路灯也坏了",
            [("environment", "楼下垃圾好几天没人收了"), ("facility_repair", "门口路灯也坏了")],
        ),
        (
            "3栋门口 井盖松了 另外小区电梯又停了 老人下不了楼",
            [("facility_repair", "3栋门口,井盖松了"), ("property", "小区电梯又停了,老人下不了楼")],
        ),
        # The same category twice is one problem (one ticket, one responder).
        ("垃圾桶满了 垃圾还撒了一地", [("environment", "垃圾桶满了,垃圾还撒了一地")]),
        ("电梯坏了三天了物业不管", [("property", "电梯坏了三天了物业不管")]),
        # Who is responsible is no second problem.
        (
            "我们小区的路灯都不亮了 跟物业说了一个月还冇换",
            [("facility_repair", "我们小区的路灯都不亮了,跟物业说了一个月还冇换")],
        ),
        # A clause naming two categories: too unsure to split.
        ("路灯下面的垃圾没人收 电梯也坏了", []),
        ("", []),
    ],
)
def test_problems_in_a_message(catalogue: Catalogue, text: str, found: list[tuple[str, str]]) -> None:
    assert problems(text, catalogue) == [Problem(c, t) for c, t in found]


def test_the_nlu_examples_are_almost_never_split(catalogue: Catalogue) -> None:
    """Every training example names one request; the cues may split only the rare true double."""
    split = []
    for path in sorted(INTENTS.glob("*.yml")):
        for block in yaml.safe_load(path.read_text(encoding="utf-8"))["nlu"]:
            for line in block["examples"].splitlines():
                text = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", line.strip().removeprefix("- "))
                if len(problems(text, catalogue)) > 1:
                    split.append(text)
    # The one known: the property company left, so rubbish and the lift both stopped (two responders).
    assert split == ["物业撤场了 现在冇人管 垃圾没人收 电梯也停了"]
