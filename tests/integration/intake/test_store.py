from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intent.v1 import intent_pb2
from sqlalchemy import text

from services.intake.server import new_intent
from services.intake.store import TABLES, IntakeStore
from tests.integration.intake.conftest import inapp_intent
from tests.integration.intake.test_status import event

S = intent_pb2.DeliveryState


@pytest.fixture
async def store(store_engine):
    return IntakeStore(await store_engine(TABLES))


def announce(intent_id: str) -> tuple[str, bytes]:
    cancelled = envelope_pb2.IntentCancelled(intent_id=intent_id)
    return "ControlEvent", envelope_pb2.ControlEvent(intent_cancelled=cancelled).SerializeToString()


async def test_a_cancel_written_while_the_relay_publishes_is_not_deleted_with_its_envelope(store):
    [stored] = await store.store_intents([new_intent("acme", inapp_intent())])
    [envelope_row] = await store.pending_outbox(10)  # the relay is publishing this one
    assert stored.outbox == envelope_row
    await store.cancel("acme", datetime.now(UTC), announce, intent_id=stored.intent_id)
    await store.delete_outbox([envelope_row.id])  # the relay's confirm arrives
    pending = await store.pending_outbox(10)
    assert [(row.routing_key, row.type) for row in pending] == [
        ("intent.cancelled", "ControlEvent")
    ]


async def test_one_key_twice_in_one_group_commit_is_one_intent(store):
    first, second = new_intent("acme", inapp_intent("k")), new_intent("acme", inapp_intent("k"))
    a, b = await store.store_intents([first, second])
    assert a.intent_id == b.intent_id == first.intent_id
    assert (a.duplicate, b.duplicate) == (False, True)
    assert len(await store.pending_outbox(10)) == 1


async def test_a_reused_key_with_other_content_is_a_conflict(store):
    await store.store_intents([new_intent("acme", inapp_intent("k"))])
    [again] = await store.store_intents([new_intent("acme", inapp_intent("k", users=("other",)))])
    assert again.conflict


async def test_out_of_order_events_settle_on_the_final_state(store):
    [stored] = await store.store_intents([new_intent("acme", inapp_intent())])
    iid = stored.intent_id
    await store.apply_events([event(iid, "u1", "inapp", S.DELIVERY_STATE_SENT, "sent", 5)])
    await store.apply_events([event(iid, "u1", "profile", S.DELIVERY_STATE_PENDING, "planned", 1)])
    [current], history = await store.deliveries("acme", iid)
    assert (current.state, current.reason) == (S.DELIVERY_STATE_SENT, "sent")
    assert sorted(h.reason for h in history) == ["planned", "sent"]


async def test_a_repeated_event_is_recorded_once(store):
    [stored] = await store.store_intents([new_intent("acme", inapp_intent())])
    sent = event(stored.intent_id, "u1", "inapp", S.DELIVERY_STATE_SENT, "sent", 5)
    await store.apply_events([sent, sent])
    await store.apply_events([sent])
    _, history = await store.deliveries("acme", stored.intent_id)
    assert len(history) == 1


def with_trail(
    later: envelope_pb2.DeliveryEvent, *earlier: envelope_pb2.DeliveryEvent
) -> envelope_pb2.DeliveryEvent:
    """`later`, carrying the earlier events' decisions as its trail, as stages send it."""
    later.trail.extend(e.decision for e in earlier)
    return later


async def test_a_trail_fills_in_decisions_whose_own_events_never_came(store):
    [stored] = await store.store_intents([new_intent("acme", inapp_intent())])
    iid = stored.intent_id
    planned = event(iid, "u1", "profile", S.DELIVERY_STATE_PENDING, "planned", 1)
    allowed = event(iid, "u1", "eligibility", S.DELIVERY_STATE_PENDING, "allowed", 2)
    await store.apply_events([planned])
    # Eligibility's own event was dead-lettered: in-app's trail still tells of it.
    sent = event(iid, "u1", "inapp", S.DELIVERY_STATE_SENT, "sent", 3)
    await store.apply_events([with_trail(sent, planned, allowed)])
    _, history = await store.deliveries("acme", iid)
    assert [h.reason for h in history] == ["planned", "allowed", "sent"]


async def test_trail_entries_this_process_stored_are_not_offered_again(store):
    [stored] = await store.store_intents([new_intent("acme", inapp_intent())])
    iid = stored.intent_id
    planned = event(iid, "u1", "profile", S.DELIVERY_STATE_PENDING, "planned", 1)
    await store.apply_events([planned])
    assert store.recent.stored(planned.delivery_id, "profile", S.DELIVERY_STATE_PENDING)
    # Take the stored row away behind the store's back: if the trail entry
    # were offered again, the insert would bring it back.
    async with store.engine.begin() as conn:
        await conn.execute(text("DELETE FROM delivery_decisions WHERE stage = 'profile'"))
    sent = event(iid, "u1", "inapp", S.DELIVERY_STATE_SENT, "sent", 3)
    await store.apply_events([with_trail(sent, planned)])
    _, history = await store.deliveries("acme", iid)
    assert [h.reason for h in history] == ["sent"]
    # A process that does not remember it (a restart, another replica) offers it.
    fresh = IntakeStore(store.engine)
    await fresh.apply_events([with_trail(sent, planned)])
    _, history = await fresh.deliveries("acme", iid)
    assert [h.reason for h in history] == ["planned", "sent"]
