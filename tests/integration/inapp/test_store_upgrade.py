"""An inbox database made by an earlier version works after start-up
(shared/db.py's create_tables), on SQLite and PostgreSQL.

The state columns (seen_at, read_at, archived_at) are as old as the table;
what this version adds is the counts index.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.inapp import store
from services.inapp.states import Mark, Target
from services.inapp.store import Counts, InboxMessage
from shared import db

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = db.create_engine(database_url)
    yield engine
    await db.dispose(engine)


def _row(n: int) -> InboxMessage:
    return InboxMessage(
        message_id=f"m{n}",
        tenant_id="acme",
        user_id="u1",
        delivery_id=f"d{n}",
        intent_id="i1",
        created_at=T0 + timedelta(minutes=n),
    )


async def _indexes(engine: AsyncEngine) -> set[str]:
    def look(conn: Any) -> set[str]:
        return {str(i["name"]) for i in inspect(conn).get_indexes("inbox_messages")}

    async with engine.connect() as conn:
        return await conn.run_sync(look)


async def test_an_inbox_made_before_the_counts_index_works_after_start_up(engine):
    await db.create_tables(engine, store.TABLES)
    async with engine.begin() as conn:
        await conn.execute(text("DROP INDEX ix_inbox_counts"))
    await store.insert_new(engine, [_row(1), _row(2)])
    assert "ix_inbox_counts" not in await _indexes(engine)

    await db.create_tables(engine, store.TABLES)  # what every service runs at start-up
    assert "ix_inbox_counts" in await _indexes(engine)

    assert await store.insert_new(engine, [_row(3)]) == {("acme", "d3")}
    page, counts = await store.list_page(engine, "acme", "u1", 10, None)
    assert [(m.message_id, m.seen_at, m.read_at) for m in page] == [
        ("m3", None, None),
        ("m2", None, None),
        ("m1", None, None),
    ]
    assert counts == Counts(unread=3, unseen=3)
    read = await store.apply_mark(engine, "acme", "u1", Mark.READ, Target.named(("m1",)), T0)
    archived = await store.apply_mark(
        engine, "acme", "u1", Mark.ARCHIVED, Target.named(("m2",)), T0
    )
    assert (read, archived) == ((1, Counts(2, 2)), (1, Counts(1, 1)))
