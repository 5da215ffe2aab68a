from __future__ import annotations

import asyncio

import aio_pika
from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intake.v1 import intake_pb2
from sendmesh.intent.v1 import intent_pb2

from shared import envelopes
from shared.bus import topology
from shared.bus.topology import Topology
from shared.ids import delivery_id
from tests.conftest import TEST_RETRY_DELAYS
from tests.integration.bus_helpers import drain
from tests.integration.intake.conftest import inapp_intent

S = intent_pb2.DeliveryState
I = intake_pb2.IntentState  # noqa: E741
INAPP = intent_pb2.CHANNEL_INAPP


async def publish_events(
    amqp_url: str, namespace: str, *events: envelope_pb2.DeliveryEvent
) -> None:
    topo = Topology(namespace, TEST_RETRY_DELAYS)
    conn = await aio_pika.connect(amqp_url)
    async with conn:
        channel = await conn.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(topo.events_exchange, ensure=False)
        body = envelopes.event_batch(events).SerializeToString()
        await exchange.publish(
            aio_pika.Message(body, delivery_mode=2), routing_key=topology.EVENTS_DELIVERY_KEY
        )


def event(
    intent_id: str, user: str, stage: str, state: int, reason: str, at_s: int
) -> envelope_pb2.DeliveryEvent:
    dec = intent_pb2.Decision(stage=stage, state=state, reason=reason)  # type: ignore[arg-type]
    dec.at.FromSeconds(1_900_000_000 + at_s)
    return envelope_pb2.DeliveryEvent(
        tenant_id="acme",
        intent_id=intent_id,
        delivery_id=delivery_id(intent_id, user, INAPP),
        user_id=user,
        channel=INAPP,
        decision=dec,
    )


async def get(stub, tenants, intent_id: str) -> intake_pb2.Intent:
    return (
        await stub.GetIntent(
            intake_pb2.GetIntentRequest(intent_id=intent_id), metadata=tenants.metadata()
        )
    ).intent


async def wait_for_state(stub, tenants, intent_id: str, state: int) -> intake_pb2.Intent:
    for _ in range(100):
        view = await get(stub, tenants, intent_id)
        if view.state == state:
            return view
        await asyncio.sleep(0.05)
    raise AssertionError(f"intent never reached state {state}: {view}")


async def test_get_intent_shows_each_delivery_with_its_reason_and_history(
    stub, tenants, amqp_url, namespace
):
    iid = (
        await stub.Submit(
            intake_pb2.SubmitRequest(intent=inapp_intent(users=("u1", "u2"))),
            metadata=tenants.metadata(),
        )
    ).intent_id
    assert (await get(stub, tenants, iid)).state == I.INTENT_STATE_ACCEPTED
    await publish_events(
        amqp_url,
        namespace,
        event(iid, "u1", "profile", S.DELIVERY_STATE_PENDING, "planned", 1),
        event(iid, "u2", "profile", S.DELIVERY_STATE_PENDING, "unknown_recipient", 1),
    )
    await wait_for_state(stub, tenants, iid, I.INTENT_STATE_PROCESSING)
    await publish_events(
        amqp_url,
        namespace,
        event(iid, "u1", "inapp", S.DELIVERY_STATE_SENT, "sent", 2),
        event(iid, "u2", "eligibility", S.DELIVERY_STATE_SUPPRESSED, "no_contact_point", 2),
    )
    view = await wait_for_state(stub, tenants, iid, I.INTENT_STATE_COMPLETED)
    by_user = {d.user_id: d for d in view.deliveries}
    assert (by_user["u1"].current.state, by_user["u1"].current.reason) == (
        S.DELIVERY_STATE_SENT,
        "sent",
    )
    assert by_user["u2"].current.reason == "no_contact_point"
    assert [h.reason for h in by_user["u2"].history] == ["unknown_recipient", "no_contact_point"]


async def test_a_late_pending_event_never_overwrites_a_final_state(
    stub, tenants, amqp_url, namespace
):
    iid = (
        await stub.Submit(
            intake_pb2.SubmitRequest(intent=inapp_intent()), metadata=tenants.metadata()
        )
    ).intent_id
    await publish_events(
        amqp_url, namespace, event(iid, "u1", "inapp", S.DELIVERY_STATE_SENT, "sent", 5)
    )
    await wait_for_state(stub, tenants, iid, I.INTENT_STATE_COMPLETED)
    await publish_events(
        amqp_url, namespace, event(iid, "u1", "profile", S.DELIVERY_STATE_PENDING, "planned", 1)
    )
    await asyncio.sleep(0.5)
    view = await get(stub, tenants, iid)
    assert view.state == I.INTENT_STATE_COMPLETED
    assert view.deliveries[0].current.reason == "sent"
    assert {h.reason for h in view.deliveries[0].history} == {"planned", "sent"}


async def test_watch_streams_changes_and_ends_when_the_intent_completes(
    stub, tenants, amqp_url, namespace
):
    iid = (
        await stub.Submit(
            intake_pb2.SubmitRequest(intent=inapp_intent()), metadata=tenants.metadata()
        )
    ).intent_id
    updates: list[intake_pb2.IntentUpdate] = []

    async def watch() -> None:
        async for update in stub.WatchIntent(
            intake_pb2.WatchIntentRequest(intent_id=iid), metadata=tenants.metadata()
        ):
            updates.append(update)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.3)
    await publish_events(
        amqp_url, namespace, event(iid, "u1", "profile", S.DELIVERY_STATE_PENDING, "planned", 1)
    )
    await publish_events(
        amqp_url, namespace, event(iid, "u1", "inapp", S.DELIVERY_STATE_SENT, "sent", 2)
    )
    await asyncio.wait_for(watcher, 10)
    assert updates[0].state == I.INTENT_STATE_ACCEPTED
    assert updates[-1].state == I.INTENT_STATE_COMPLETED
    assert updates[-1].delivery.current.reason == "sent"


async def test_cancel_is_announced_to_every_stage_and_shown(stub, tenants, amqp_url, namespace):
    intent = inapp_intent(cancel_key="cart-42")
    iid = (
        await stub.Submit(intake_pb2.SubmitRequest(intent=intent), metadata=tenants.metadata())
    ).intent_id
    reply = await stub.CancelIntent(
        intake_pb2.CancelIntentRequest(cancel_key="cart-42"), metadata=tenants.metadata()
    )
    assert list(reply.intent_ids) == [iid]
    topo = Topology(namespace, TEST_RETRY_DELAYS)
    got = await drain(amqp_url, topo.queue(topology.control_stage("inapp")), 1)
    assert envelope_pb2.ControlEvent.FromString(got[0].body).intent_cancelled.intent_id == iid
    assert (await get(stub, tenants, iid)).state == I.INTENT_STATE_CANCELLED
    again = await stub.CancelIntent(
        intake_pb2.CancelIntentRequest(intent_id=iid), metadata=tenants.metadata()
    )
    assert list(again.intent_ids) == []
