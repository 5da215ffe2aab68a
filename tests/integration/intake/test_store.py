from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intent.v1 import intent_pb2

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
