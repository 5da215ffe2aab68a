from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.channels import store
from services.channels.store import Claim, Outcome


@pytest.fixture
async def engine(store_engine) -> AsyncEngine:
    return await store_engine(store.TABLES)


async def test_a_first_claim_is_attempt_one_and_each_claim_adds_one(engine):
    claims = [Claim("acme", "d1", "i1"), Claim("acme", "d2", "i1")]
    assert await store.claim(engine, claims, "dev") == {("acme", "d1"): 1, ("acme", "d2"): 1}
    assert await store.claim(engine, claims[:1], "dev") == {("acme", "d1"): 2}


async def test_a_delivery_recorded_sent_is_never_claimed_again(engine):
    await store.claim(engine, [Claim("acme", "d1", "i1"), Claim("acme", "d2", "i1")], "dev")
    await store.record_outcomes(
        engine, [Outcome("acme", "d1", "sent", "p-1"), Outcome("acme", "d2", "sending")]
    )
    again = await store.claim(engine, [Claim("acme", "d1", "i1"), Claim("acme", "d2", "i1")], "dev")
    assert again == {("acme", "d2"): 2}
    records = {r.delivery_id: r for r in await store.delivery_records(engine, [("acme", "d1")])}
    assert (records["d1"].state, records["d1"].provider_message_id) == ("sent", "p-1")


async def test_a_dead_delivery_replayed_from_dead_letters_starts_a_fresh_budget(engine):
    await store.claim(engine, [Claim("acme", "d1", "i1")], "dev")
    await store.claim(engine, [Claim("acme", "d1", "i1")], "dev")
    await store.record_outcomes(engine, [Outcome("acme", "d1", "dead")])
    assert await store.claim(engine, [Claim("acme", "d1", "i1")], "dev") == {("acme", "d1"): 1}


async def test_the_same_delivery_id_in_two_tenants_is_two_deliveries(engine):
    await store.claim(engine, [Claim("acme", "d1", "i1")], "dev")
    await store.record_outcomes(engine, [Outcome("acme", "d1", "sent")])
    assert await store.claim(engine, [Claim("globex", "d1", "i9")], "dev") == {("globex", "d1"): 1}


async def test_cancelled_intents_are_found_by_tenant_and_intent(engine):
    await store.record_cancellations(engine, [("acme", "i1"), ("acme", "i1")])
    await store.record_cancellations(engine, [("acme", "i1")])  # repeated: no error
    found = await store.cancelled_intents(
        engine, [("acme", "i1"), ("acme", "i2"), ("globex", "i1")]
    )
    assert found == {("acme", "i1")}


async def test_a_large_batch_is_claimed_whole(engine):
    claims = [Claim("acme", f"d{i}", "i1") for i in range(2500)]
    claimed = await store.claim(engine, claims, "dev")
    assert len(claimed) == 2500 and set(claimed.values()) == {1}
