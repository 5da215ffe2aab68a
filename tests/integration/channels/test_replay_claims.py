"""Claims of replayed deliveries (SQLite and PostgreSQL): a replay starts a
fresh attempt budget, its retries do not, and a sent delivery stays sent."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.channels import store
from services.channels.store import Claim, Outcome
from shared.clock import utcnow


@pytest.fixture
async def engine(store_engine) -> AsyncEngine:
    return await store_engine(store.TABLES)


async def claimed_twice(engine: AsyncEngine) -> None:
    """d1 in flight on its second attempt, when its consumer dead-lettered it."""
    await store.claim(engine, [Claim("acme", "d1", "i1")], "dev")
    assert await store.claim(engine, [Claim("acme", "d1", "i1")], "dev") == {("acme", "d1"): 2}


async def test_a_delivery_dead_lettered_while_sending_starts_again_at_one_when_replayed(engine):
    await claimed_twice(engine)
    replayed = Claim("acme", "d1", "i1", replayed_at=utcnow() + timedelta(seconds=1))
    assert await store.claim(engine, [replayed], "dev") == {("acme", "d1"): 1}


async def test_the_retries_of_a_replayed_delivery_count_on_from_its_first_claim(engine):
    await claimed_twice(engine)
    replayed = Claim("acme", "d1", "i1", replayed_at=utcnow())
    assert await store.claim(engine, [replayed], "dev") == {("acme", "d1"): 1}
    # The send failed transiently: the worker records it, then a retry comes
    # back carrying the same replay decision, older than that record now.
    await store.record_outcomes(engine, [Outcome("acme", "d1", "sending")])
    assert await store.claim(engine, [replayed], "dev") == {("acme", "d1"): 2}


async def test_a_replay_older_than_the_last_attempt_does_not_reset_the_count(engine):
    before = utcnow() - timedelta(minutes=5)
    await claimed_twice(engine)
    stale = Claim("acme", "d1", "i1", replayed_at=before)
    assert await store.claim(engine, [stale], "dev") == {("acme", "d1"): 3}


async def test_a_replayed_delivery_already_sent_is_still_never_claimed(engine):
    await store.claim(engine, [Claim("acme", "d1", "i1")], "dev")
    await store.record_outcomes(engine, [Outcome("acme", "d1", "sent", "p-1")])
    replayed = Claim("acme", "d1", "i1", replayed_at=utcnow() + timedelta(seconds=1))
    assert await store.claim(engine, [replayed], "dev") == {}
    [record] = await store.delivery_records(engine, [("acme", "d1")])
    assert (record.state, record.attempts) == ("sent", 1)


async def test_a_replayed_delivery_never_seen_before_is_claimed_at_one(engine):
    replayed = Claim("acme", "d9", "i1", replayed_at=utcnow())
    plain = Claim("acme", "d8", "i1")
    assert await store.claim(engine, [replayed, plain], "dev") == {
        ("acme", "d9"): 1,
        ("acme", "d8"): 1,
    }
