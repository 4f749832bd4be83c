"""Personal data is shown masked wherever the full value is not needed."""

import pytest

from tickets.errors import ValidationError
from tickets.privacy import clean_text, mask_name, mask_phone, normalize_phone, scrub


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("13812345678", "+8613812345678"),
        ("+86 138-1234-5678", "+8613812345678"),
        ("027-85551234", "+862785551234"),
    ],
)
def test_phones_are_normalised(raw: str, stored: str) -> None:
    assert normalize_phone(raw) == stored


@pytest.mark.parametrize("bad", ["", "12345", "abc", "1381234567890123", "电话"])
def test_bad_phones_get_a_friendly_error(bad: str) -> None:
    with pytest.raises(ValidationError, match="电话号码"):
        normalize_phone(bad)


def test_masks() -> None:
    assert mask_phone("+8613812345678") == "138****5678"
    assert mask_phone(None) == ""
    assert mask_name("王小明") == "王**"
    assert mask_name("李") == "李*"


def test_scrub_masks_phones_and_id_numbers_inside_text() -> None:
    text = "我是张三 电话13812345678 身份证42010619800101123X 座机027-85551234"
    assert scrub(text) == "我是张三 电话138****5678 身份证420106********123X 座机027-****1234"


def test_clean_text_keeps_emoji_and_newlines() -> None:
    assert clean_text(" 电梯\x00坏了🙏\n三天\u200b了 ") == "电梯坏了🙏\n三天了"
