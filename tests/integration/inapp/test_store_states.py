"""Seen, read and archived on SQLite and PostgreSQL: every mark is one UPDATE,
idempotent, scoped to one tenant's user, and the counts follow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from services.inapp import store
from services.inapp.states import Mark, Status, Target
from services.inapp.store import Counts, InboxMessage
from shared import db

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LATER = T0 + timedelta(hours=1)
LATEST = T0 + timedelta(hours=2)


@pytest.fixture
async def engine(store_engine) -> AsyncEngine:
    engine = await store_engine(store.TABLES)
    await store.insert_new(
        engine, [_row(1), _row(2), _row(3), _row(4, user="u2"), _row(5, tenant="globex")]
    )
    return engine


def _row(n: int, tenant: str = "acme", user: str = "u1") -> InboxMessage:
    return InboxMessage(
        message_id=f"m{n}",
        tenant_id=tenant,
        user_id=user,
        delivery_id=f"d{n}",
        intent_id="i1",
        created_at=T0 + timedelta(minutes=n),
    )


def _ids(*ids: str) -> Target:
    return Target.named(ids)


async def _states(engine: AsyncEngine, tenant: str = "acme", user: str = "u1") -> dict[str, tuple]:
    """message id -> (seen_at, read_at, archived_at), archived messages included."""
    feed, _ = await store.list_page(engine, tenant, user, 100, None)
    archived, _ = await store.list_page(engine, tenant, user, 100, None, Status.ARCHIVED)
    return {m.message_id: (m.seen_at, m.read_at, m.archived_at) for m in feed + archived}


async def test_reading_a_message_sets_read_and_seen_and_lowers_both_counts(engine):
    assert await store.counts(engine, "acme", "u1") == Counts(unread=3, unseen=3)
    updated, counts = await store.apply_mark(engine, "acme", "u1", Mark.READ, _ids("m1"), T0)
    assert (updated, counts) == (1, Counts(unread=2, unseen=2))
    assert (await _states(engine))["m1"] == (T0, T0, None)


async def test_reading_twice_keeps_the_first_read_at_and_changes_nothing(engine):
    await store.apply_mark(engine, "acme", "u1", Mark.READ, _ids("m1"), T0)
    updated, counts = await store.apply_mark(engine, "acme", "u1", Mark.READ, _ids("m1"), LATER)
    assert (updated, counts) == (0, Counts(unread=2, unseen=2))
    assert (await _states(engine))["m1"] == (T0, T0, None)


async def test_reading_a_message_seen_earlier_keeps_when_it_was_seen(engine):
    await store.apply_mark(engine, "acme", "u1", Mark.SEEN, _ids("m1", "m2"), T0)
    assert await store.counts(engine, "acme", "u1") == Counts(unread=3, unseen=1)
    await store.apply_mark(engine, "acme", "u1", Mark.READ, _ids("m1"), LATER)
    states = await _states(engine)
    assert (states["m1"], states["m2"]) == ((T0, LATER, None), (T0, None, None))


async def test_marking_unread_clears_read_at_but_the_message_stays_seen(engine):
    await store.apply_mark(engine, "acme", "u1", Mark.READ, _ids("m1"), T0)
    updated, counts = await store.apply_mark(engine, "acme", "u1", Mark.UNREAD, _ids("m1"), LATER)
    again, _ = await store.apply_mark(engine, "acme", "u1", Mark.UNREAD, _ids("m1"), LATEST)
    assert (updated, again, counts) == (1, 0, Counts(unread=3, unseen=2))
    assert (await _states(engine))["m1"] == (T0, None, None)


async def test_an_archived_message_leaves_the_feed_and_the_counts_and_comes_back_as_it_was(
    engine,
):
    await store.apply_mark(engine, "acme", "u1", Mark.READ, _ids("m1"), T0)
    archived, counts = await store.apply_mark(
        engine, "acme", "u1", Mark.ARCHIVED, _ids("m1", "m2"), LATER
    )
    twice, _ = await store.apply_mark(engine, "acme", "u1", Mark.ARCHIVED, _ids("m2"), LATEST)
    feed, _ = await store.list_page(engine, "acme", "u1", 10, None)
    shelf, _ = await store.list_page(engine, "acme", "u1", 10, None, Status.ARCHIVED)
    assert (archived, twice, counts) == (2, 0, Counts(unread=1, unseen=1))
    assert [m.message_id for m in feed] == ["m3"]
    assert [(m.message_id, m.archived_at) for m in shelf] == [("m2", LATER), ("m1", LATER)]

    back, counts = await store.apply_mark(
        engine, "acme", "u1", Mark.UNARCHIVED, _ids("m1", "m2"), LATEST
    )
    assert (back, counts) == (2, Counts(unread=2, unseen=2))
    states = await _states(engine)
    assert (states["m1"], states["m2"]) == ((T0, T0, None), (None, None, None))


async def test_an_archived_message_can_still_be_read_by_its_id(engine):
    await store.apply_mark(engine, "acme", "u1", Mark.ARCHIVED, _ids("m1"), T0)
    updated, counts = await store.apply_mark(engine, "acme", "u1", Mark.READ, _ids("m1"), LATER)
    assert (updated, counts) == (1, Counts(unread=2, unseen=2))
    assert (await _states(engine))["m1"] == (LATER, LATER, T0)


async def test_marking_all_read_stops_at_its_cut_off_and_skips_archived_messages(engine):
    await store.apply_mark(engine, "acme", "u1", Mark.ARCHIVED, _ids("m1"), T0)
    # m2 was delivered at T0+2min and m3 at T0+3min: a cut-off between them.
    cut_off = Target.feed_up_to(T0 + timedelta(minutes=2, seconds=30))
    updated, counts = await store.apply_mark(engine, "acme", "u1", Mark.READ, cut_off, LATER)
    assert (updated, counts) == (1, Counts(unread=1, unseen=1))
    states = await _states(engine)
    assert [states[m][1] for m in ("m1", "m2", "m3")] == [None, LATER, None]
    everything, counts = await store.apply_mark(
        engine, "acme", "u1", Mark.READ, Target.feed_up_to(LATEST), LATEST
    )
    assert (everything, counts) == (1, Counts(unread=0, unseen=0))


async def test_marking_all_seen_leaves_them_unread(engine):
    updated, counts = await store.apply_mark(
        engine, "acme", "u1", Mark.SEEN, Target.feed_up_to(LATER), LATER
    )
    assert (updated, counts) == (3, Counts(unread=3, unseen=0))


async def test_no_mark_reaches_another_tenant_or_user(engine):
    targets = [_ids("m1", "m2", "m3", "m4", "m5"), Target.feed_up_to(LATEST)]
    for mark in Mark:
        for target in targets:
            updated, _ = await store.apply_mark(engine, "globex", "u2", mark, target, T0)
            assert updated == 0, (mark, target)
    before = await _states(engine)
    for mark in (Mark.READ, Mark.ARCHIVED):
        await store.apply_mark(engine, "acme", "u9", mark, targets[0], T0)
        await store.apply_mark(engine, "acme", "u9", mark, targets[1], T0)
    assert await _states(engine) == before
    assert (await _states(engine, "acme", "u2"))["m4"] == (None, None, None)
    assert (await _states(engine, "globex", "u1"))["m5"] == (None, None, None)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (Status.ALL, ["m3", "m2"]),
        (Status.UNREAD, ["m3"]),
        (Status.UNSEEN, []),
        (Status.ARCHIVED, ["m1"]),
    ],
)
async def test_each_status_filter_lists_only_its_messages(engine, status, expected):
    await store.apply_mark(engine, "acme", "u1", Mark.SEEN, Target.feed_up_to(LATEST), T0)
    await store.apply_mark(engine, "acme", "u1", Mark.READ, _ids("m2"), T0)
    await store.apply_mark(engine, "acme", "u1", Mark.ARCHIVED, _ids("m1"), T0)
    page, counts = await store.list_page(engine, "acme", "u1", 10, None, status)
    assert [m.message_id for m in page] == expected
    assert counts == Counts(unread=1, unseen=0)


async def test_the_counts_are_read_from_the_counts_index_alone_on_sqlite(tmp_path: Path):
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'plan.db'}")
    await db.create_tables(engine, store.TABLES)
    query = store.counts_query("acme", "u1").compile(
        dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}
    )
    async with engine.connect() as conn:
        plan = (await conn.execute(text(f"EXPLAIN QUERY PLAN {query}"))).all()
    await db.dispose(engine)
    details = " ".join(str(row[-1]) for row in plan)
    assert "USING COVERING INDEX ix_inbox_counts" in details, details
