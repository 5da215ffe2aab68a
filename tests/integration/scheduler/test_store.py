"""The scheduler's store on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sendmesh.bus.v1 import envelope_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scheduler import listing, store
from services.scheduler.deferrals import Held, hold
from shared import db
from tests import servers
from tests.integration.scheduler.support import deferred_envelope

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)
STAGES = {"eligibility", "frequency"}


@pytest.fixture
async def engine(store_engine) -> AsyncEngine:
    return await store_engine(store.TABLES)


def held(seconds: float, **kw) -> Held:
    return hold(deferred_envelope(T0 + timedelta(seconds=seconds), **kw), STAGES)


async def claimed(engine: AsyncEngine, at: datetime, limit: int = 100) -> list[store.Row]:
    async with store.claim_due(engine, at, limit) as rows:
        return rows


async def test_rows_are_claimed_soonest_first_once_due_and_deleted_by_the_claim(engine):
    await store.keep(engine, [held(20, intent="late"), held(10, intent="early")])
    assert await claimed(engine, T0 + timedelta(seconds=5)) == []
    rows = await claimed(engine, T0 + timedelta(seconds=30))
    intents = [envelope_pb2.Envelope.FromString(r.body).intent_id for r in rows]
    assert intents == ["early", "late"]
    first = rows[0]
    assert (first.stage, first.size, first.due_at) == ("eligibility", 1, T0 + timedelta(seconds=10))
    assert await claimed(engine, T0 + timedelta(seconds=30)) == []
    assert await store.pending_deliveries(engine) == 0


async def test_a_claim_whose_publish_fails_keeps_its_rows(engine):
    await store.keep(engine, [held(0, users=("u1", "u2"))])
    with pytest.raises(RuntimeError):
        async with store.claim_due(engine, T0, 10) as rows:
            assert len(rows) == 1
            raise RuntimeError("broker said no")
    assert await store.pending_deliveries(engine) == 2
    assert len(await claimed(engine, T0)) == 1


async def test_a_claim_takes_at_most_its_limit(engine):
    await store.keep(engine, [held(n, intent=f"i{n}") for n in range(5)])
    assert len(await claimed(engine, T0 + timedelta(minutes=1), limit=2)) == 2
    assert await store.next_due_at(engine) == T0 + timedelta(seconds=2)


async def test_a_redelivered_envelope_is_stored_once(engine):
    env = deferred_envelope(T0, users=("u1", "u2"))
    first = hold(env, STAGES)
    again = hold(envelope_pb2.Envelope.FromString(env.SerializeToString()), STAGES)
    await store.keep(engine, [first])
    await store.keep(engine, [again, again])
    assert await store.pending_deliveries(engine) == 2
    assert len(await claimed(engine, T0)) == 1


async def test_deferrals_of_a_cancelled_intent_are_refused_not_stored(engine):
    await store.remember_cancelled(engine, [("acme", "i1")], forget_before=LONG_AGO)
    kept = await store.keep(engine, [held(0), held(0, intent="i2"), held(0, tenant="globex")])
    assert [(h.tenant_id, h.intent_id) for h in kept.refused] == [("acme", "i1")]
    assert sorted((h.tenant_id, h.intent_id) for h in kept.stored) == [
        ("acme", "i2"),
        ("globex", "i1"),
    ]
    assert await store.pending_deliveries(engine) == 2


async def test_cancelled_intents_are_forgotten_after_their_retention(engine):
    await store.remember_cancelled(engine, [("acme", "old")], forget_before=LONG_AGO)
    # Remembered now, and forgetting everything older than a second from now:
    await store.remember_cancelled(
        engine, [("acme", "new")], forget_before=datetime.now(UTC) + timedelta(seconds=1)
    )
    kept = await store.keep(engine, [held(0, intent="old"), held(0, intent="new")])
    assert [h.intent_id for h in kept.stored] == ["old", "new"]
    await store.remember_cancelled(engine, [("acme", "kept")], forget_before=LONG_AGO)
    kept = await store.keep(engine, [held(1, intent="kept")])
    assert [h.intent_id for h in kept.refused] == ["kept"]


async def test_taking_an_intent_removes_only_that_intent_of_that_tenant(engine):
    await store.keep(
        engine,
        [held(0, users=("u1", "u2")), held(1, users=("u3",)), held(0, intent="i2"),
         held(0, tenant="globex")],
    )  # fmt: skip
    async with store.take_intents(engine, [("acme", "i1")], 1) as first:
        assert len(first) == 1
    async with store.take_intents(engine, [("acme", "i1")], 10) as rest:
        assert len(rest) == 1
    listed = await listing.list_page(engine, "acme", "", 10, None)
    assert [r.intent_id for r in listed] == ["i2"]
    assert len(await listing.list_page(engine, "globex", "", 10, None)) == 1


async def test_erasing_a_user_rewrites_shared_envelopes_and_drops_emptied_ones(engine):
    await store.keep(
        engine,
        [held(0, users=("u1", "u2")), held(1, intent="i2", users=("u1",)),
         held(2, tenant="globex", users=("u1",))],
    )  # fmt: skip
    assert await store.erase_users(engine, [("acme", "u1")]) == 2
    assert await store.erase_users(engine, [("acme", "u1")]) == 0
    rows = await claimed(engine, T0 + timedelta(minutes=1))
    bodies = [envelope_pb2.Envelope.FromString(r.body) for r in rows]
    assert [(b.tenant_id, [d.user_id for d in b.deliveries]) for b in bodies] == [
        ("acme", ["u2"]),
        ("globex", ["u1"]),
    ]
    assert sorted(bodies[0].profiles) == ["u2"]
    assert [r.size for r in rows] == [1, 1]


async def test_listing_is_soonest_first_per_tenant_and_pages_without_loss(engine):
    await store.keep(
        engine,
        [held(3, intent="i1", users=("u1", "u2")), held(1, intent="i2", users=("u3",)),
         held(2, intent="i1", users=("u4",)), held(0, tenant="globex")],
    )  # fmt: skip
    seen: list[str] = []
    after = None
    while True:
        page = await listing.list_page(engine, "acme", "", 1, after)
        seen.append(page[0].user_id)
        if len(page) == 1:
            break
        after = page[0].position
    assert seen == ["u3", "u4", "u1", "u2"]
    only_i1 = await listing.list_page(engine, "acme", "i1", 10, None)
    assert [r.user_id for r in only_i1] == ["u4", "u1", "u2"]
    first = only_i1[0]
    assert (first.stage, first.reason, first.position.due_at) == (
        "eligibility",
        "quiet_hours",
        T0 + timedelta(seconds=2),
    )


@pytest.mark.postgres
async def test_two_replicas_on_postgresql_never_claim_the_same_row(pg_admin_url):
    name = await servers.create_pg_database(pg_admin_url)
    url = servers.asyncpg_url(pg_admin_url, name)
    one, two = db.create_engine(url), db.create_engine(url)
    try:
        await db.create_tables(one, store.TABLES)
        await store.keep(one, [held(n, intent=f"i{n}") for n in range(4)])
        later = T0 + timedelta(minutes=1)
        # The second claims while the first is still open (publishing): it skips its rows.
        async with (
            store.claim_due(one, later, 2) as first,
            store.claim_due(two, later, 10) as second,
        ):
            pass
        assert len(first) == 2
        assert len(second) == 2
        assert not {r.id for r in first} & {r.id for r in second}
        assert await store.pending_deliveries(one) == 0
    finally:
        await db.dispose(one)
        await db.dispose(two)
        await servers.drop_pg_database(pg_admin_url, name)
