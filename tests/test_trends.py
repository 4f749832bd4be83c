"""Figures over time (tickets.trends): ISO weeks in Beijing time, series of periods, and the time buckets,
on the six hand-worked tickets of test_metrics plus tickets a week and a month earlier."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import SHANGHAI, Org
from tests.test_metrics import NOVEMBER, at, compute, november_monday
from tickets import trends
from tickets.clock import ManualClock
from tickets.errors import ValidationError
from tickets.metrics import Period, Slice
from tickets.service import NewTicket, TicketService
from tickets.trends import BUCKETS, Measure, Span

H = timedelta(hours=1)


def test_an_iso_week_runs_monday_to_monday_in_beijing_time() -> None:
    w48 = trends.week(2026, 48)
    assert w48.label == "2026-W48"
    # Monday 23 November 2026 00:00 Beijing = Sunday 22 November 16:00 UTC.
    assert w48.start == datetime(2026, 11, 22, 16, tzinfo=UTC)
    assert w48.end == datetime(2026, 11, 29, 16, tzinfo=UTC)
    assert (
        trends.parse_week("2026-W48")
        == w48
        == trends.parse_week(" 2026-48 ")
        == trends.parse_week("2026-w48")
    )
    # ISO week 1 of 2027 starts on Monday 4 January 2027; 2026 has 53 ISO weeks.
    assert trends.week(2027, 1).start == datetime(2027, 1, 4, tzinfo=SHANGHAI)
    assert trends.week(2026, 53).end == trends.week(2027, 1).start


@pytest.mark.parametrize(
    "text", ["", "2026", "2026-W54", "2026-W00", "W48", "2026-W4８x", "<script>", "0000-W01"]
)
def test_a_malformed_week_is_a_readable_validation_error(text: str) -> None:
    with pytest.raises(ValidationError) as raised:
        trends.parse_week(text)
    assert "周" in str(raised.value)


def test_the_period_containing_a_moment_and_the_ones_before() -> None:
    # Sunday 29 November 23:59 Beijing is still week 48; a minute later it is week 49 (and still November).
    sunday_night = datetime(2026, 11, 29, 23, 59, tzinfo=SHANGHAI)
    assert trends.period_containing(sunday_night, Span.WEEK).label == "2026-W48"
    assert trends.period_containing(sunday_night + timedelta(minutes=1), Span.WEEK).label == "2026-W49"
    assert trends.period_containing(sunday_night, Span.MONTH) == NOVEMBER
    # 1 December 00:30 Beijing is 30 November in UTC, but December here.
    assert trends.period_containing(datetime(2026, 11, 30, 16, 30, tzinfo=UTC), Span.MONTH).label == "2026-12"

    months = trends.periods_ending(Period.month(2027, 2), Span.MONTH, 4)
    assert [p.label for p in months] == ["2026-11", "2026-12", "2027-01", "2027-02"]
    weeks = trends.periods_ending(trends.week(2027, 1), Span.WEEK, 3)
    assert [p.label for p in weeks] == ["2026-W52", "2026-W53", "2027-W01"]
    # Consecutive: each ends where the next starts.
    assert all(a.end == b.start for a, b in itertools.pairwise(weeks))


def test_bucket_edges_belong_to_the_bucket_above() -> None:
    assert [b.label for b in BUCKETS] == ["<1小时", "1–4小时", "4–24小时", "1–3天", "3–7天", "≥7天"]
    assert trends.bucket_of(timedelta(minutes=59)) == 0
    assert trends.bucket_of(H) == 1
    assert trends.bucket_of(4 * H - timedelta(seconds=1)) == 1
    assert trends.bucket_of(4 * H) == 2
    assert trends.bucket_of(timedelta(days=1)) == 3
    assert trends.bucket_of(timedelta(days=3)) == 4
    assert trends.bucket_of(timedelta(days=7)) == 5
    assert trends.bucket_of(timedelta(days=400)) == 5


async def test_time_distribution_of_the_hand_worked_tickets(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    s = await november_monday(service, org, clock)
    async with service.sessions() as session:
        accept = await trends.distribution(session, NOVEMBER, Measure.FIRST_RESPONSE)
        resolve = await trends.distribution(session, NOVEMBER, Measure.RESOLUTION)
        anju = await trends.distribution(
            session, NOVEMBER, Measure.FIRST_RESPONSE, where=Slice(community_id=s.anju)
        )
    # Time to accept: T6 0.5h | T1 1h, T3 2h | T2 5h (T4 never accepted, T5 cancelled).
    assert accept.counts == (1, 2, 1, 0, 0, 0)
    # Time to resolve: T6 1.5h, T1 3h | T2 6h (T3's resolution was cleared by the reopen).
    assert resolve.counts == (0, 2, 1, 0, 0, 0)
    assert resolve.rows()[1] == ("1–4小时", 2)
    # 安居 only: T1 1h, T3 2h, T2 5h.
    assert anju.counts == (0, 2, 1, 0, 0, 0) and anju.total == 3
    # The same tickets metrics times: the counts agree.
    f = await compute(service, now=at(16))
    assert (accept.total, resolve.total) == (f.time_to_accept.count, f.time_to_resolve.count)


async def test_long_times_fall_in_the_day_buckets(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    resident = await org.resident(compound="安居苑")
    clock.set(at(9))
    slow = await service.create_ticket(NewTicket(resident, "facility_repair", "路灯坏了"))
    clock.advance(timedelta(days=2))
    await service.accept(slow.number, org["grid-a1"])  # 2 days: 1–3天
    clock.advance(timedelta(days=6))
    await service.resolve(slow.number, org["grid-a1"], "修好了")  # 8 days after creation: ≥7天
    async with service.sessions() as session:
        assert (await trends.distribution(session, NOVEMBER, Measure.FIRST_RESPONSE)).counts == (
            0,
            0,
            0,
            1,
            0,
            0,
        )
        assert (await trends.distribution(session, NOVEMBER, Measure.RESOLUTION)).counts == (0, 0, 0, 0, 0, 1)


async def test_a_weekly_series_counts_each_ticket_in_its_own_week(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    resident = await org.resident(compound="安居苑")
    # Two tickets the week before (week 47), then the six of the Monday of week 48.
    for day in (16, 20):
        clock.set(datetime(2026, 11, day, 10, tzinfo=SHANGHAI))
        done = await service.create_ticket(NewTicket(resident, "legal_aid", f"{day}号老板拖欠工资"))
    await service.accept(done.number, org["law-a"])
    await november_monday(service, org, clock)
    weeks = trends.periods_ending(trends.week(2026, 48), Span.WEEK, 3)
    async with service.sessions() as session:
        points = await trends.series(session, weeks, now=at(16), catalogue=service.catalogue)
    assert [(p.period.label, p.figures.total) for p in points] == [
        ("2026-W46", 0),
        ("2026-W47", 2),
        ("2026-W48", 6),
    ]
    # Week 48's counts (so its rates) are exactly metrics' for those six tickets; one query gave every week,
    # so without durations. Asked with durations, each week is metrics.figures itself.
    w48 = await compute(service, weeks[2], now=at(16))
    assert points[2].figures.counts == w48.counts
    assert points[2].figures.response_rate == w48.response_rate == pytest.approx(3 / 5)
    assert points[2].figures.time_to_accept.count == 0
    async with service.sessions() as session:
        timed = await trends.series(session, weeks, now=at(16), catalogue=service.catalogue, durations=True)
        apart = await trends.series(session, [weeks[0], weeks[2]], now=at(16))  # not back to back
    assert timed[2].figures == w48 and [p.figures.counts for p in timed] == [p.figures.counts for p in points]
    assert [p.figures.total for p in apart] == [0, 6]
    # Week 47: both past their respond-by at 16:00 on the 23rd; only the second one was accepted (at once).
    w47 = points[1].figures
    assert (w47.counts.response_due, w47.counts.responded_in_time, w47.response_rate) == (2, 1, 0.5)
    assert points[0].figures.response_rate is None  # an empty week has no rates, not 0
