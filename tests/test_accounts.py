"""Staff accounts (tickets.accounts): only staff get one, passwords are argon2 hashes, five failures in a row
lock the account for 15 minutes (the injected clock), a new password or disabling ends it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.conftest import Org
from tickets.clock import ManualClock
from tickets.errors import AccountLocked, LoginRefused, NotFound, ValidationError
from tickets.models import StaffAccount
from tickets.service import TicketService

PASSWORD = "correct horse 1"


async def test_an_account_signs_in_with_its_password_only(service: TicketService, org: Org) -> None:
    added = await service.add_account("zhouli", org["staff-a"], PASSWORD)
    assert (added.name, added.responder_id, added.is_admin) == ("周丽", org["staff-a"], False)
    assert added.community_id is not None

    login = await service.authenticate("zhouli", PASSWORD)
    assert login.account_id == added.account_id
    with pytest.raises(LoginRefused):
        await service.authenticate("zhouli", "wrong password")
    with pytest.raises(LoginRefused):
        await service.authenticate("nobody", PASSWORD)

    async with service.sessions() as session:
        stored = (await session.scalars(select(StaffAccount))).one()
    assert stored.password_hash.startswith("$argon2id$") and PASSWORD not in stored.password_hash


async def test_street_staff_have_the_whole_street_and_volunteers_get_no_account(
    service: TicketService, org: Org
) -> None:
    street = await service.add_account("he", org["street-1"], PASSWORD, is_admin=True)
    assert (street.community_id, street.is_admin) == (None, True)
    with pytest.raises(ValidationError, match="只有社区或街道工作人员"):
        await service.add_account("vol", org["vol-j1"], PASSWORD)
    with pytest.raises(ValidationError, match="已经有人用了"):
        await service.add_account("he", org["staff-a"], PASSWORD)
    with pytest.raises(ValidationError, match="至少需要"):
        await service.add_account("short", org["staff-a"], "abc")
    with pytest.raises(ValidationError, match="用户名只能"):
        await service.add_account("' OR 1=1 --", org["staff-a"], PASSWORD)


async def test_five_failures_in_a_row_lock_the_account_for_15_minutes(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    await service.add_account("zhouli", org["staff-a"], PASSWORD)
    for _ in range(4):
        with pytest.raises(LoginRefused):
            await service.authenticate("zhouli", "wrong password")
    await service.authenticate("zhouli", PASSWORD)  # a success resets the count
    for _ in range(5):
        with pytest.raises(LoginRefused):
            await service.authenticate("zhouli", "wrong password")

    with pytest.raises(AccountLocked, match="15 分钟"):
        await service.authenticate("zhouli", PASSWORD)  # even the right password, while locked
    clock.advance(timedelta(minutes=14))
    with pytest.raises(AccountLocked, match="1 分钟"):
        await service.authenticate("zhouli", PASSWORD)
    clock.advance(timedelta(minutes=1, seconds=1))
    assert (await service.authenticate("zhouli", PASSWORD)).username == "zhouli"


async def test_a_new_password_or_disabling_ends_the_account_s_sessions(
    service: TicketService, org: Org
) -> None:
    added = await service.add_account("zhouli", org["staff-a"], PASSWORD)
    await service.set_password("zhouli", "another password 2")
    with pytest.raises(LoginRefused):
        await service.authenticate("zhouli", PASSWORD)
    after = await service.authenticate("zhouli", "another password 2")
    assert after.generation == added.generation + 1

    await service.disable_account("zhouli")
    assert await service.staff_login(added.account_id) is None
    with pytest.raises(LoginRefused):
        await service.authenticate("zhouli", "another password 2")
    with pytest.raises(NotFound):
        await service.disable_account("nobody")
