"""一次性告知: one message tells the resident everything, and abolished certificates say where to go."""

import pytest

from tickets.guide import EntryKind, Guide


@pytest.fixture(scope="module")
def guide() -> Guide:
    return Guide.load()


def test_an_issued_certificate_is_answered_completely_in_one_message(guide: Guide) -> None:
    entry = guide.lookup("我想开个居住证明 孩子上学要用")
    assert entry is not None and entry.kind == "certificate_issued"
    for part in ("需要带", "身份证", "在哪里办", "一站式", "多久办好", "网上办理"):
        assert part in entry.answer


@pytest.mark.parametrize(
    ("text", "name", "go"),
    [
        ("社区能开单身证明吗", "婚姻状况证明", "不用再开"),
        ("我要开无犯罪证明", "无犯罪记录证明", "派出所"),
        ("给我爸开个亲属关系证明", "亲属关系证明", "公证处"),
        ("领养老金还要开健在证明吗", "健在证明", "刷脸"),
    ],
)
def test_abolished_certificates_say_where_to_go_instead(guide: Guide, text: str, name: str, go: str) -> None:
    entry = guide.lookup(text)
    assert entry is not None and entry.kind == "certificate_abolished" and entry.name == name
    assert "不再开具" in entry.answer and go in entry.answer


@pytest.mark.parametrize(
    ("text", "name"), [("底保怎么申请", "低保申请"), ("我妈87了 高龄补贴在哪领", "高龄津贴")]
)
def test_consultations_are_found_despite_typos(guide: Guide, text: str, name: str) -> None:
    entry = guide.lookup(text)
    assert entry is not None and entry.name == name and entry.category is not None


@pytest.mark.parametrize("text", ["", "电梯坏了三天了", "今天天气怎么样", "🙏", "x" * 4000])
def test_unrelated_text_finds_nothing(guide: Guide, text: str) -> None:
    assert guide.lookup(text) is None


def test_each_answer_says_once_that_the_community_no_longer_issues_it(guide: Guide) -> None:
    for entry in guide.entries:
        said = entry.answer.count("不再开具") + entry.answer.count("不再出具")
        assert said == (1 if entry.kind is EntryKind.ABOLISHED else 0), entry.name
        assert entry.offers_help is (entry.kind is not EntryKind.ABOLISHED)


def test_whether_it_is_still_needed_comes_before_what_to_bring(guide: Guide) -> None:
    for entry in guide.entries:
        if entry.kind is EntryKind.ISSUED and "先提醒您" in entry.answer:
            assert (
                entry.answer.index("先提醒您")
                < entry.answer.index("确实需要的话,社区可以开具")
                < entry.answer.index("需要带")
            )
    residence = guide.lookup("居住证明")
    assert residence is not None and "社区可以开具。" in residence.answer.split("\n")[1]


def test_no_answer_offers_help_itself(guide: Guide) -> None:
    """The assistant asks once whether to register it (ActionStartRequest): an answer that offers too asks twice."""
    for entry in guide.entries:
        assert "帮您登记" not in entry.answer and "我可以帮" not in entry.answer, entry.name
