"""热点 / 每月一题: what a community's residents ask about most, and the same problem reported by many.

Top categories by grid
    For each grid of the slice, the categories of the tickets created in the current week (or month) —
    the period containing `now` — against the previous one: count now, count before, change. The current
    period is still running: its count is "so far", and the page says so. Cancelled tickets count (a
    resident asked); tickets without a grid form their own row (未划分网格).

Groups of similar requests
    Open tickets (created, dispatched, accepted) of the slice created in the last `within` (30 days
    unless told), split by (grid, category). Within each part:
    - keywords: jieba's TF-IDF `extract_tags` over the text, without STOPWORDS (words every request of a
      community says: 物业, 小区, 问题, 尽快 …, and words of time or degree), without building numbers
      (三栋: the building is read apart) and without digits (a phone number or a flat number is no topic,
      and must not end up in a label). No part-of-speech filter: jieba's POS tagger is ten times slower
      (20,000 texts: 15 s against 1.5 s);
    - similarity: rapidfuzz `token_set_ratio` between the keyword strings, for every pair at once
      (`process.cdist`, vectorised, score_cutoff = SIMILAR_AT = 50). token_set_ratio scores 100 when
      one ticket's keywords are a subset of the other's, and about 50–60 when two short requests share
      their main noun (电梯 停运 / 电梯 又坏了); unrelated requests of one category score under 45 on our
      samples. Synonyms (漏水 / 渗水) are not seen as the same: a known limit of string similarity;
    - groups: connected components of the "similar" pairs (union-find), kept when they hold requests
      of at least MIN_RESIDENTS (2) distinct residents: one resident writing three times is not a hotspot.
    A group's label is its three most frequent keywords; its building (3栋, 3号楼 and 三栋 read alike) is
    named when most of its requests say the same one.
    Cost: jieba ≈ 0.08 ms a text (keywords cached by text, so a page seen again skips it), cdist per part;
    a few thousand open tickets of a street take well under a second. At most the newest MAX_REQUESTS
    open requests are read. The caller runs `group_similar` off the event loop.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tickets.catalogue import Catalogue
from tickets.metrics import Period, Slice
from tickets.models import OPEN_TICKET_SQL, Grid, Ticket

NO_GRID = "未划分网格"
SIMILAR_AT = 50  # token_set_ratio over keyword strings (see the module docstring)
MIN_RESIDENTS = 2
KEYWORDS = 8
LABEL_WORDS = 3
MAX_REQUESTS = 10_000  # the newest open requests grouped (a street has a few thousand a month)
# Words nearly every request says (the category already says what kind of matter it is), and words of
# time, degree or place that do not name the problem.
# fmt: off
STOPWORDS = frozenset((
    "物业", "小区", "社区", "问题", "情况", "反映", "希望", "尽快", "处理", "解决", "居民", "麻烦", "帮忙", "一下",
    "没人管", "不了", "我们", "他们", "现在", "已经", "一直", "还是", "请问", "谢谢", "投诉", "帮助", "联系", "需要",
    "导致", "影响", "出现", "发现", "有人", "家里", "楼里", "号楼", "几天", "两天", "好几天", "好久", "经常", "严重",
    "方便", "不管", "又坏了", "坏了", "下楼", "每天", "天天", "晚上", "白天", "今天", "昨天", "最近", "一个", "这个",
    "那个", "什么", "怎么", "为什么", "可以", "不能", "没有", "知道", "觉得", "非常", "特别", "实在", "真的",
))
# fmt: on


# ---------------------------------------------------------------------------------- top categories


def category_label(catalogue: Catalogue, code: str) -> str:
    """The category's Chinese name; the code itself for one since removed from the catalogue."""
    category = catalogue.categories.get(code)
    return category.name if category else code


@dataclass(frozen=True)
class CategoryCount:
    category: str
    label: str
    count: int
    previous: int

    @property
    def change(self) -> int:
        return self.count - self.previous

    @property
    def change_rate(self) -> float | None:
        """count / previous − 1; None when there was nothing before."""
        return self.count / self.previous - 1 if self.previous else None


@dataclass(frozen=True)
class GridHotspots:
    grid_id: int | None
    grid: str
    total: int
    previous_total: int
    top: list[CategoryCount]


async def _counts(
    session: AsyncSession, period: Period, where: Slice | None
) -> dict[tuple[int | None, str], int]:
    query = (
        select(Ticket.grid_id, Ticket.category, func.count().label("n"))
        .where(
            Ticket.created_at >= period.start,
            Ticket.created_at < period.end,
            *(where.conditions() if where else []),
        )
        .group_by(Ticket.grid_id, Ticket.category)
    )
    return {(row.grid_id, row.category): int(row.n) for row in await session.execute(query)}


async def top_categories(
    session: AsyncSession,
    current: Period,
    before: Period,
    *,
    where: Slice | None = None,
    catalogue: Catalogue,
    top: int = 3,
) -> list[GridHotspots]:
    """Per grid with tickets in either period: its `top` categories now (most first; ties in catalogue
    order), each with the count before. Grids by their count now, most first."""
    now_counts = await _counts(session, current, where)
    before_counts = await _counts(session, before, where)
    grids = {g for g, _ in now_counts} | {g for g, _ in before_counts}
    names = {
        gid: name
        for gid, name in await session.execute(
            select(Grid.id, Grid.name).where(Grid.id.in_(sorted(g for g in grids if g is not None)))
        )
    }
    order = list(catalogue.categories)

    def rank(code: str) -> int:
        return order.index(code) if code in order else len(order)

    found = []
    for grid in grids:
        here = {c: n for (g, c), n in now_counts.items() if g == grid}
        there = {c: n for (g, c), n in before_counts.items() if g == grid}
        codes = sorted(here, key=lambda c: (-here[c], rank(c), c))[:top]
        found.append(
            GridHotspots(
                grid_id=grid,
                grid=NO_GRID if grid is None else names.get(grid, str(grid)),
                total=sum(here.values()),
                previous_total=sum(there.values()),
                top=[CategoryCount(c, category_label(catalogue, c), here[c], there.get(c, 0)) for c in codes],
            )
        )
    found.sort(key=lambda g: (-g.total, g.grid_id is None, g.grid))
    return found


# -------------------------------------------------------------------------------- similar requests


@dataclass(frozen=True)
class Request:
    """An open ticket as the grouping reads it."""

    number: str
    resident_id: int
    grid_id: int | None
    category: str
    text: str


@dataclass(frozen=True)
class SimilarGroup:
    grid_id: int | None
    grid: str
    category: str
    category_label: str
    numbers: list[str]  # oldest first
    residents: int  # distinct residents
    keywords: list[str]
    building: str | None  # "3栋" when most of the group's requests name it

    @property
    def label(self) -> str:
        """'安居第一网格 3栋:3 位居民反映同一问题(电梯、停运)'"""
        where = f"{self.grid} {self.building}" if self.building else self.grid
        topic = "、".join(self.keywords) or self.category_label
        return f"{where}:{self.residents} 位居民反映同一{self.category_label}问题({topic})"


async def open_requests(
    session: AsyncSession, since: datetime, *, where: Slice | None = None, limit: int = MAX_REQUESTS
) -> list[Request]:
    """Open tickets of the slice created since `since` (the newest `limit` of them), oldest first."""
    query = (
        select(Ticket.number, Ticket.resident_id, Ticket.grid_id, Ticket.category, Ticket.text)
        .where(OPEN_TICKET_SQL, Ticket.created_at >= since, *(where.conditions() if where else []))
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .limit(limit)
    )
    return [Request(*row) for row in reversed((await session.execute(query)).all())]


_DIGITS = re.compile(r"\d")
_NUMERALS = {c: str(i) for i, c in enumerate("零一二三四五六七八九十", start=0)}
_BUILDING = re.compile(r"([0-9]{1,3}|[一二三四五六七八九十]{1,3})\s*(?:号楼|栋|幢|号楼栋)")


@lru_cache(maxsize=1)
def _tags() -> Any:
    import jieba
    import jieba.analyse

    jieba.setLogLevel(60)  # jieba logs its dictionary loading at INFO
    return jieba.analyse.extract_tags


def warm_up() -> None:
    """Load jieba's dictionary now (about a second, once per process) rather than on the first page."""
    keywords("电梯停运")


@lru_cache(maxsize=50_000)
def keywords(text: str) -> tuple[str, ...]:
    """The request's topic words (see the module docstring), most characteristic first. Cached by text:
    the same open requests are grouped again on every page view."""
    words = _tags()(text, topK=KEYWORDS * 3)
    return tuple(
        w
        for w in words
        if w not in STOPWORDS and not _DIGITS.search(w) and not _BUILDING.fullmatch(w) and len(w) > 1
    )[:KEYWORDS]


def building(text: str) -> str | None:
    """'3栋' for 3栋 / 3号楼 / 三栋 / 3 幢 in the text; None when it names none."""
    match = _BUILDING.search(text)
    if not match:
        return None
    number = match.group(1)
    if not number.isdigit():
        if number.startswith("十"):  # 十, 十二
            number = "1" + (_NUMERALS.get(number[1:], "0") if len(number) > 1 else "0")
        elif number.endswith("十"):  # 二十
            number = _NUMERALS.get(number[0], "") + "0"
        else:
            number = "".join(_NUMERALS.get(c, "") for c in number.replace("十", ""))
    return f"{int(number)}栋" if number.isdigit() else None


class _Parts:
    """Union-find over 0..n-1."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def join(self, i: int, j: int) -> None:
        a, b = self.find(i), self.find(j)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def _similar_pairs(texts: Sequence[str]) -> Iterable[tuple[int, int]]:
    """(i, j), i < j, of the keyword strings scoring SIMILAR_AT or more."""
    from rapidfuzz import fuzz, process

    if len(texts) < 2:
        return []
    scores = process.cdist(texts, texts, scorer=fuzz.token_set_ratio, score_cutoff=SIMILAR_AT, workers=1)
    rows, columns = scores.nonzero()
    return [(int(i), int(j)) for i, j in zip(rows, columns, strict=True) if i < j]


def group_similar(
    requests: Sequence[Request], *, grid_names: dict[int, str], catalogue: Catalogue
) -> list[SimilarGroup]:
    """Groups of similar requests from at least MIN_RESIDENTS residents, per (grid, category); the
    largest groups (by residents) first."""
    parts: dict[tuple[int | None, str], list[tuple[Request, tuple[str, ...]]]] = defaultdict(list)
    for request in requests:
        words = keywords(request.text)
        if words:  # a text without topic words cannot be compared
            parts[(request.grid_id, request.category)].append((request, words))

    groups = []
    for (grid_id, category), members in parts.items():
        if len({r.resident_id for r, _ in members}) < MIN_RESIDENTS:
            continue
        union = _Parts(len(members))
        for i, j in _similar_pairs([" ".join(sorted(words)) for _, words in members]):
            union.join(i, j)
        components: dict[int, list[int]] = defaultdict(list)
        for i in range(len(members)):
            components[union.find(i)].append(i)
        for indexes in components.values():
            chosen = [members[i] for i in indexes]
            residents = len({r.resident_id for r, _ in chosen})
            if residents < MIN_RESIDENTS:
                continue
            counted = Counter(w for _, ws in chosen for w in ws)
            # Most frequent first; ties: the order the texts gave them (first text's most characteristic)
            label_words = [w for w, _ in counted.most_common(LABEL_WORDS)]
            buildings = Counter(b for r, _ in chosen if (b := building(r.text)))
            place, said = buildings.most_common(1)[0] if buildings else (None, 0)
            groups.append(
                SimilarGroup(
                    grid_id=grid_id,
                    grid=NO_GRID if grid_id is None else grid_names.get(grid_id, str(grid_id)),
                    category=category,
                    category_label=category_label(catalogue, category),
                    numbers=[r.number for r, _ in chosen],
                    residents=residents,
                    keywords=label_words,
                    building=place if said * 2 > len(chosen) else None,
                )
            )
    groups.sort(key=lambda g: (-g.residents, -len(g.numbers), g.grid, g.category, g.numbers[0]))
    return groups


async def grid_names(session: AsyncSession, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    return {
        gid: name
        for gid, name in await session.execute(select(Grid.id, Grid.name).where(Grid.id.in_(wanted)))
    }
