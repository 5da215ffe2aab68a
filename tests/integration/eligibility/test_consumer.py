"""The eligibility stage on a real broker: onward, deferred, and reported deliveries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import REGISTRY
from sendmesh.bus.v1 import envelope_pb2
from sendmesh.eligibility.v1 import eligibility_pb2 as pb
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2
from sqlalchemy import event

from shared.bus import topology
from shared.bus.topology import Topology
from shared.clock import to_timestamp
from shared.envelopes import decode_envelope
from shared.runtime import ServiceRuntime
from tests.conftest import TEST_RETRY_DELAYS
from tests.integration.bus_helpers import drain, publish_to_stage, queue_depth
from tests.integration.eligibility.conftest import cart_reminder, opted_in

C = intent_pb2.Channel
S = intent_pb2.DeliveryState
EMAIL = C.CHANNEL_EMAIL


def envelope(
    intent_id: str, intent: intent_pb2.SendIntent, profiles: list[profile_pb2.Profile]
) -> envelope_pb2.Envelope:
    env = envelope_pb2.Envelope(tenant_id="acme", intent_id=intent_id, intent=intent)
    for profile in profiles:
        env.deliveries.add(
            delivery_id=f"{intent_id}-{profile.user_id}", user_id=profile.user_id, channel=EMAIL
        )
        env.profiles[profile.user_id].CopyFrom(profile)
    return env


def purchase(at: datetime, **properties: str) -> profile_pb2.BehaviourEvent:
    e = profile_pb2.BehaviourEvent(name="purchase", properties=properties)
    e.occurred_at.FromDatetime(at)
    return e


def deferred_count(reason: str) -> float:
    labels = {"stage": "eligibility", "reason": reason}
    return REGISTRY.get_sample_value("sendmesh_deferrals_total", labels) or 0.0


def count_queries(runtime: ServiceRuntime, table: str) -> list[str]:
    """Statements against `table` on the service's own engine, from now on."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if f"FROM {table}" in statement:
            seen.append(statement)

    assert runtime.engine is not None
    event.listen(runtime.engine.sync_engine, "before_cursor_execute", record)
    return seen


async def test_one_batch_is_sorted_into_opted_out_suppressed_excluded_and_allowed(
    eligibility, stub, tenants, amqp_url, namespace
):
    now = datetime.now(UTC)
    topo = Topology(namespace, TEST_RETRY_DELAYS)
    listed = pb.Suppression(
        channel=EMAIL, contact="listed@example.com", reason=pb.SUPPRESSION_REASON_COMPLAINT
    )
    await stub.AddSuppressions(
        pb.AddSuppressionsRequest(entries=[listed]), metadata=tenants.metadata()
    )
    opted_out = opted_in("out")
    opted_out.consents.add(channel=EMAIL, category="cart_reminder", granted=False)
    suppressed = opted_in("listed")
    excluded = opted_in("bought")
    excluded.recent_events.append(purchase(now - timedelta(hours=2), sku="A1"))
    excluded.recent_events.append(purchase(now - timedelta(hours=30), sku="B2"))
    allowed = opted_in("fine")
    allowed.recent_events.append(purchase(now - timedelta(hours=1), sku="B2"))
    intent = cart_reminder()
    rule = intent.exclude_if.add(event="purchase", properties={"sku": "A1"})
    rule.within.FromTimedelta(timedelta(hours=24))
    queries = count_queries(eligibility, "suppressions")

    env = envelope("i1", intent, [opted_out, suppressed, excluded, allowed])
    await publish_to_stage(amqp_url, topo, topology.ELIGIBILITY, env)
    onward = await drain(amqp_url, topo.queue(topology.FREQUENCY), 1)
    events = await drain(amqp_url, topo.queue(topology.EVENTS_INTAKE), 1)

    forwarded = decode_envelope(onward[0].body)
    assert [d.user_id for d in forwarded.deliveries] == ["fine"]
    assert list(forwarded.profiles) == ["fine"]
    assert forwarded.deliveries[0].decisions[-1].reason == "allowed"
    batch = envelope_pb2.EventBatch.FromString(events[0].body)
    assert [(e.user_id, e.decision.state, e.decision.reason) for e in batch.events] == [
        ("out", S.DELIVERY_STATE_SUPPRESSED, "opted_out"),
        ("listed", S.DELIVERY_STATE_SUPPRESSED, "suppressed"),
        ("bought", S.DELIVERY_STATE_SUPPRESSED, "excluded_by_rule"),
    ]
    details = [e.decision.detail for e in batch.events]
    assert details[1] == "on the suppression list (complaint)"
    assert details[2].startswith("purchase within 24h")
    assert not any("@" in d for d in details)
    assert len(queries) == 1  # every contact of the batch in one lookup


async def test_marketing_in_quiet_hours_is_deferred_to_the_windows_end_and_transactional_passes(
    eligibility, stub, tenants, amqp_url, namespace
):
    now = datetime.now(UTC)
    minute = now.hour * 60 + now.minute
    # A window around now, in UTC, so this test is in quiet hours whenever it runs.
    policy = pb.QuietHoursPolicy(
        enabled=True, start_minute=(minute - 60) % 1440, end_minute=(minute + 60) % 1440
    )
    await stub.SetQuietHours(pb.SetQuietHoursRequest(policy=policy), metadata=tenants.metadata())
    due = now.replace(second=0, microsecond=0) + timedelta(minutes=60)
    topo = Topology(namespace, TEST_RETRY_DELAYS)
    before = deferred_count("quiet_hours")

    marketing = envelope("m1", cart_reminder(), [opted_in("u1", ""), opted_in("u2", "")])
    receipt = envelope("t1", cart_reminder(intent_pb2.KIND_TRANSACTIONAL), [opted_in("u1", "")])
    await publish_to_stage(amqp_url, topo, topology.ELIGIBILITY, marketing)
    await publish_to_stage(amqp_url, topo, topology.ELIGIBILITY, receipt)
    deferred = await drain(amqp_url, topo.queue(topology.DEFERRED), 1)
    onward = await drain(amqp_url, topo.queue(topology.FREQUENCY), 1)
    events = await drain(amqp_url, topo.queue(topology.EVENTS_INTAKE), 1)

    env = decode_envelope(deferred[0].body)
    assert env.intent_id == "m1"
    assert [d.user_id for d in env.deliveries] == ["u1", "u2"]
    assert sorted(env.profiles) == ["u1", "u2"]
    assert env.deferral.due_at.ToDatetime(tzinfo=UTC) == due
    assert (env.deferral.stage, env.deferral.reason) == ("eligibility", "quiet_hours")
    last = env.deliveries[0].decisions[-1]
    assert (last.state, last.reason) == (S.DELIVERY_STATE_SCHEDULED, "quiet_hours")
    assert last.not_before.ToDatetime(tzinfo=UTC) == due
    assert decode_envelope(onward[0].body).intent_id == "t1"
    batch = envelope_pb2.EventBatch.FromString(events[0].body)
    assert [(e.delivery_id, e.decision.state) for e in batch.events] == [
        ("m1-u1", S.DELIVERY_STATE_SCHEDULED),
        ("m1-u2", S.DELIVERY_STATE_SCHEDULED),
    ]
    assert deferred_count("quiet_hours") == before + 2
    assert await queue_depth(amqp_url, topo.queue(topology.DEFERRED)) == 0


async def test_a_future_send_at_goes_to_the_scheduler_and_comes_back_cleared_when_due(
    eligibility, amqp_url, namespace
):
    topo = Topology(namespace, TEST_RETRY_DELAYS)
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    intent = cart_reminder(intent_pb2.KIND_TRANSACTIONAL)
    intent.timing.send_at.CopyFrom(to_timestamp(later))
    await publish_to_stage(
        amqp_url, topo, topology.ELIGIBILITY, envelope("s1", intent, [opted_in("u1")])
    )
    deferred = decode_envelope((await drain(amqp_url, topo.queue(topology.DEFERRED), 1))[0].body)
    assert deferred.deferral.due_at.ToDatetime(tzinfo=UTC) == later
    assert deferred.deferral.reason == "scheduled"

    # The scheduler puts it back once due: here, the same envelope with send_at passed.
    deferred.intent.timing.send_at.CopyFrom(to_timestamp(datetime.now(UTC) - timedelta(seconds=1)))
    await publish_to_stage(amqp_url, topo, topology.ELIGIBILITY, deferred)
    onward = decode_envelope((await drain(amqp_url, topo.queue(topology.FREQUENCY), 1))[0].body)
    assert not onward.HasField("deferral")
    assert [d.reason for d in onward.deliveries[0].decisions] == ["scheduled", "allowed"]


async def test_undecodable_message_goes_to_dead_letters_and_others_flow(
    eligibility, amqp_url, namespace
):
    topo = Topology(namespace, TEST_RETRY_DELAYS)
    fine = envelope("i2", cart_reminder(intent_pb2.KIND_TRANSACTIONAL), [opted_in("u1")])
    await publish_to_stage(amqp_url, topo, topology.ELIGIBILITY, b"\xff\xfe not a protobuf")
    await publish_to_stage(amqp_url, topo, topology.ELIGIBILITY, fine)
    dead = await drain(amqp_url, topo.dead_letter_queue(topology.ELIGIBILITY), 1)
    onward = await drain(amqp_url, topo.queue(topology.FREQUENCY), 1)

    assert dead[0].headers["x-sendmesh-reason"] == "undecodable"
    assert len(onward) == 1


async def test_a_delivery_without_its_profile_is_suppressed_not_crashed(
    eligibility, amqp_url, namespace
):
    topo = Topology(namespace, TEST_RETRY_DELAYS)
    env = envelope("i3", cart_reminder(intent_pb2.KIND_TRANSACTIONAL), [])
    env.deliveries.add(delivery_id="i3-ghost", user_id="ghost", channel=EMAIL)
    await publish_to_stage(amqp_url, topo, topology.ELIGIBILITY, env)
    events = await drain(amqp_url, topo.queue(topology.EVENTS_INTAKE), 1)
    batch = envelope_pb2.EventBatch.FromString(events[0].body)
    assert [(e.delivery_id, e.decision.reason) for e in batch.events] == [
        ("i3-ghost", "no_contact_point")
    ]
