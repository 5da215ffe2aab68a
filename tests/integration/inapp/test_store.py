"""The inbox store on SQLite and PostgreSQL: the feed, pages, and erasure.

The state marks and counts have their own file, test_store_states.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.inapp import store
from services.inapp.states import Mark, Status, Target
from services.inapp.store import InboxMessage, Position

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
async def engine(store_engine) -> AsyncEngine:
    return await store_engine(store.TABLES)


def _row(n: int, tenant: str = "acme", user: str = "u1") -> InboxMessage:
    return InboxMessage(
        message_id=f"{tenant}-m{n}",
        tenant_id=tenant,
        user_id=user,
        delivery_id=f"d{n}",
        intent_id="i1",
        title=f"title {n}",
        data={"n": n},
        created_at=T0 + timedelta(seconds=n),
    )


async def test_inserting_the_same_delivery_twice_keeps_one_message(engine):
    assert await store.insert_new(engine, [_row(1), _row(2)]) == {("acme", "d1"), ("acme", "d2")}
    again = _row(1)
    again.message_id = "other"
    assert await store.insert_new(engine, [again]) == set()
    assert await store.message_ids_for(engine, [("acme", "d1")]) == {("acme", "d1"): "acme-m1"}


async def test_a_batch_mixing_repeats_and_new_deliveries_reports_only_the_new(engine):
    await store.insert_new(engine, [_row(1)])
    repeat, twin = _row(1), _row(3)
    repeat.message_id, twin.message_id = "again", "acme-m3-twin"  # twin: d3 twice in one batch
    assert await store.insert_new(engine, [repeat, _row(2), _row(3), twin]) == {
        ("acme", "d2"),
        ("acme", "d3"),
    }
    kept = await store.message_ids_for(engine, [("acme", f"d{n}") for n in (1, 2, 3)])
    assert kept == {("acme", "d1"): "acme-m1", ("acme", "d2"): "acme-m2", ("acme", "d3"): "acme-m3"}


async def test_the_feed_is_newest_first_and_pages_resume_where_they_ended(engine):
    await store.insert_new(engine, [_row(n) for n in range(1, 6)])
    first, counts = await store.list_page(engine, "acme", "u1", 2, None)
    assert [m.message_id for m in first] == ["acme-m5", "acme-m4", "acme-m3"]  # one extra
    assert first[0].data == {"n": 5}
    assert first[0].created_at == T0 + timedelta(seconds=5)
    after = Position(first[1].created_at, first[1].message_id)
    rest, _ = await store.list_page(engine, "acme", "u1", 10, after)
    assert [m.message_id for m in rest] == ["acme-m3", "acme-m2", "acme-m1"]
    assert (counts.unread, counts.unseen) == (5, 5)


async def test_messages_created_in_the_same_instant_page_without_loss(engine):
    rows = [_row(n) for n in range(1, 5)]
    for row in rows:
        row.created_at = T0
    await store.insert_new(engine, rows)
    seen: list[str] = []
    after = None
    while True:
        page, _ = await store.list_page(engine, "acme", "u1", 1, after)
        seen.append(page[0].message_id)
        if len(page) == 1:
            break
        after = Position(page[0].created_at, page[0].message_id)
    assert seen == ["acme-m4", "acme-m3", "acme-m2", "acme-m1"]


async def test_another_tenant_or_user_sees_nothing(engine):
    await store.insert_new(engine, [_row(1)])
    assert (await store.list_page(engine, "globex", "u1", 10, None))[0] == []
    assert (await store.list_page(engine, "acme", "u2", 10, None))[0] == []


async def test_erasing_a_user_removes_their_inbox_archived_messages_included_and_only_theirs(
    engine,
):
    await store.insert_new(engine, [_row(1), _row(2), _row(3, user="u2"), _row(4, tenant="other")])
    archived, _ = await store.apply_mark(
        engine, "acme", "u1", Mark.ARCHIVED, Target.named(("acme-m2",)), T0
    )
    assert archived == 1
    assert await store.erase_users(engine, {("acme", "u1")}) == 2
    assert (await store.list_page(engine, "acme", "u1", 10, None, Status.ARCHIVED))[0] == []
    gone, _ = await store.list_page(engine, "acme", "u1", 10, None)
    kept, _ = await store.list_page(engine, "acme", "u2", 10, None)
    other, _ = await store.list_page(engine, "other", "u1", 10, None)
    assert (gone, [m.message_id for m in kept], len(other)) == ([], ["acme-m3"], 1)


async def test_erasing_several_users_at_once_removes_each_of_theirs(engine):
    await store.insert_new(engine, [_row(1), _row(2, user="u2"), _row(3, user="u3")])
    assert await store.erase_users(engine, {("acme", "u1"), ("acme", "u2")}) == 2
    assert await store.erase_users(engine, set()) == 0
    kept, _ = await store.list_page(engine, "acme", "u3", 10, None)
    assert [m.message_id for m in kept] == ["acme-m3"]
