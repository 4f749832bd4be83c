"""一次性告知: one message tells the resident everything, and abolished certificates say where to go."""

import pytest

from tickets.guide import Guide


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
