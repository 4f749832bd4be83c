"""Phones at rest (tickets.crypto): stored AES-GCM encrypted on every write path (ORM, the batched Core create,
the org loader), read back by the app, unreadable with a wrong key or as a plain legacy value, and still
readable after a key rotation until `rekey` has rewritten them under the new key."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.datakeys import KeyFileError, add_key, keyring_from, read_key_file
from app.settings import Settings
from tests.conftest import TEST_KEYRING, Org
from tickets import crypto
from tickets.crypto import DataKey, DataKeyError, Keyring
from tickets.models import Base, Resident, Responder, Ticket
from tickets.service import NewTicket, TicketService

PHONE = "13912345678"
E164 = "+86" + PHONE


async def raw(engine: AsyncEngine, sql: str) -> list[str]:
    async with engine.connect() as conn:
        return [row[0] for row in await conn.execute(text(sql))]


def looks_encrypted(value: str, ring: Keyring = TEST_KEYRING) -> bool:
    return value.startswith(ring.current_id + ":") and PHONE not in value and PHONE[-4:] not in value


async def ticket_with_phone(org: Org) -> Ticket:
    resident = await org.resident("r1")
    await org.service.remember_resident(resident, phone=PHONE)
    return await org.service.create_ticket(NewTicket(resident, "eldercare", "想申请助餐"))


async def test_every_phone_column_is_stored_encrypted_and_read_back(engine: AsyncEngine, org: Org) -> None:
    ticket = await ticket_with_phone(org)  # resident by the ORM, ticket by the batched Core INSERT
    other = await org.resident("r2")
    direct = await org.service.create_ticket(NewTicket(other, "eldercare", "陪诊", phone="139 8765 4321"))

    stored = await raw(engine, "SELECT phone FROM residents WHERE phone IS NOT NULL")
    stored += await raw(engine, "SELECT contact_phone FROM tickets")
    stored += await raw(engine, "SELECT phone FROM responders WHERE phone IS NOT NULL")  # by load_org
    assert len(stored) == 1 + 2 + 2
    for value in stored:
        assert looks_encrypted(value), value
        assert not re.search(r"1[3-9]\d{9}", value)
    assert "13987654321" not in " ".join(stored) and "13800000001" not in " ".join(stored)
    assert len(set(stored)) == len(stored)  # a fresh nonce every time

    assert ticket.contact_phone == E164 and direct.contact_phone == "+8613987654321"
    again = await org.service.ticket(ticket.number, org.service_actor)
    assert again.contact_phone == E164
    async with org.service.sessions() as session:
        assert (await session.get_one(Resident, again.resident_id)).phone == E164
        assert (await session.get_one(Responder, org["vol-a1"])).phone == "+8613800000001"


async def test_a_wrong_key_fails_loudly(org: Org) -> None:
    ticket = await ticket_with_phone(org)
    crypto.configure(Keyring(DataKey.generate()))
    with pytest.raises(DataKeyError, match="not configured"):
        await org.service.ticket(ticket.number, org.service_actor)
    # The same key id but another secret cannot happen by accident; an altered value is refused too.
    forged = TEST_KEYRING.encrypt(E164)
    crypto.configure(TEST_KEYRING)
    tampered = forged[:-2] + ("A" if forged[-2] != "A" else "B") + forged[-1]
    with pytest.raises(DataKeyError, match="does not authenticate"):
        TEST_KEYRING.decrypt(tampered)


async def test_a_plain_legacy_value_fails_loudly_instead_of_passing_through(
    engine: AsyncEngine, org: Org
) -> None:
    resident = await org.resident("r1")
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE residents SET phone = :p WHERE id = :id"), {"p": E164, "id": resident}
        )
    with pytest.raises(DataKeyError, match="not encrypted"):
        await org.service.remember_resident(resident)


async def test_no_keyring_configured_fails_loudly(org: Org) -> None:
    resident = await org.resident("r1")
    crypto.configure(None)
    # On a write SQLAlchemy wraps it (StatementError, its cause the DataKeyError).
    with pytest.raises(StatementError, match=r"DataKeyError.*no data key configured"):
        await org.service.remember_resident(resident, phone=PHONE)


async def test_rotation_old_values_still_read_and_rekey_rewrites_them(
    engine: AsyncEngine, org: Org, service: TicketService
) -> None:
    first = await ticket_with_phone(org)
    new_key = DataKey.generate()
    crypto.configure(Keyring(new_key, [TEST_KEYRING.current]))  # key 2 current, key 1 still decrypts

    assert (await service.ticket(first.number, org.service_actor)).contact_phone == E164
    second = await service.create_ticket(NewTicket(first.resident_id, "environment", "垃圾没人收"))
    stored = dict(
        zip(
            await raw(engine, "SELECT number FROM tickets ORDER BY id"),
            await raw(engine, "SELECT contact_phone FROM tickets ORDER BY id"),
            strict=True,
        )
    )
    assert stored[first.number].startswith(TEST_KEYRING.current_id + ":")
    assert stored[second.number].startswith(new_key.id + ":")

    rewritten = await crypto.rekey(engine, Base.metadata, batch=2)
    assert rewritten == {"responders.phone": 2, "residents.phone": 1, "tickets.contact_phone": 1}
    for sql in (
        "SELECT phone FROM residents",
        "SELECT phone FROM responders",
        "SELECT contact_phone FROM tickets",
    ):
        for value in await raw(engine, sql + " WHERE 1 = 1"):
            if value is not None:
                assert value.startswith(new_key.id + ":"), sql
    assert await crypto.rekey(engine, Base.metadata) == dict.fromkeys(rewritten, 0)

    crypto.configure(Keyring(new_key))  # key 1 dropped: everything still reads
    assert (await service.ticket(first.number, org.service_actor)).contact_phone == E164
    assert (await service.ticket(second.number, org.service_actor)).contact_phone == E164


async def test_encrypted_columns_refuse_sql_comparisons(org: Org) -> None:
    with pytest.raises(TypeError, match="encrypted column"):
        select(Resident).where(Resident.phone == E164)
    with pytest.raises(TypeError, match="encrypted column"):
        select(Ticket).order_by(Ticket.contact_phone.desc())
    select(Resident).where(Resident.phone.is_not(None))  # presence is fine


# ------------------------------------------------------------------------------------------ the key file


def test_the_key_file_is_made_on_first_use_with_mode_0600_and_kept(tmp_path: Path) -> None:
    settings = Settings(MINHU_DATA_DIR=tmp_path / "data", MINHU_DATA_KEY="")
    ring = keyring_from(settings)
    assert stat.S_IMODE(settings.key_file.stat().st_mode) == 0o600
    assert keyring_from(settings).current_id == ring.current_id  # the same key next time
    value = ring.encrypt(E164)

    new = add_key(settings.key_file)
    rotated = keyring_from(settings)
    assert rotated.current_id == new.id != ring.current_id
    assert rotated.decrypt(value) == E164  # the older key still decrypts
    assert stat.S_IMODE(settings.key_file.stat().st_mode) == 0o600
    assert [k.id for k in read_key_file(settings.key_file)] == [ring.current_id, new.id]

    settings.key_file.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        keyring_from(settings)


def test_the_environment_key_wins_and_older_keys_still_decrypt(tmp_path: Path) -> None:
    old, new = DataKey.generate(), DataKey.generate()
    settings = Settings(
        MINHU_DATA_DIR=tmp_path, MINHU_DATA_KEY=new.encoded(), MINHU_DATA_OLD_KEYS=old.encoded()
    )
    ring = keyring_from(settings)
    assert ring.current_id == new.id and not settings.key_file.exists()
    assert ring.decrypt(Keyring(old).encrypt(E164)) == E164
    with pytest.raises(KeyFileError, match="32 random bytes"):
        keyring_from(Settings(MINHU_DATA_DIR=tmp_path, MINHU_DATA_KEY="short"))
