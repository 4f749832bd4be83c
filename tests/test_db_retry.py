"""tickets.db.retry_if_dropped: which database errors mean "the database is away" (the resident is told so,
politely) and which are real errors that must not be hidden."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import exc

from tickets.db import retry_if_dropped
from tickets.errors import DatabaseUnavailable


class DriverError(Exception):
    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def failing(sqlstate: str, message: str) -> tuple[list[int], Callable[[], Awaitable[None]]]:
    calls: list[int] = []

    async def work() -> None:
        calls.append(1)
        raise exc.DBAPIError("INSERT INTO inbound_messages ...", {}, DriverError(sqlstate, message))

    return calls, work


async def test_a_server_shutting_down_is_the_database_away_after_one_more_try() -> None:
    # Seen in CI: a connection made while a PostgreSQL server crashes is refused with SQLSTATE 57P03, which
    # asyncpg raises as a plain DBAPIError (neither OperationalError nor an invalidated connection).
    calls, work = failing("57P03", "the database system is shutting down")
    with pytest.raises(DatabaseUnavailable):
        await retry_if_dropped(work)
    assert len(calls) == 2


async def test_a_lost_connection_is_the_database_away() -> None:
    calls, work = failing("08006", "connection failure")
    with pytest.raises(DatabaseUnavailable):
        await retry_if_dropped(work)
    assert len(calls) == 2


async def test_any_other_database_error_is_raised_as_it_is_and_not_tried_again() -> None:
    calls, work = failing("23505", "duplicate key value violates unique constraint")
    with pytest.raises(exc.DBAPIError) as raised:
        await retry_if_dropped(work)
    assert not isinstance(raised.value, DatabaseUnavailable) and len(calls) == 1
