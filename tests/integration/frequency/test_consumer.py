"""The frequency stage on the real broker: frequency queue -> send.<channel>,
deferred and events; release and control queues give slots back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intent.v1 import intent_pb2

from services.frequency import ledger, store, windows
from services.frequency.__main__ import create_runtime
from services.frequency.caps import CALENDAR_DAY, Policy
from services.frequency.choice import Ask, Request
from services.frequency.settings import FrequencySettings
from shared import envelopes
from shared.bus import topology
from shared.bus.topology import Topology
from shared.clock import from_timestamp, now_timestamp, to_timestamp, utcnow
from shared.envelopes import decode_envelope
from shared.runtime import ServiceRuntime
from tests.conftest import TEST_RETRY_DELAYS, running
from tests.integration.bus_helpers import drain, publish_to_stage

C = intent_pb2.Channel
S = intent_pb2.DeliveryState
NAMES: dict[int, str] = {
    C.CHANNEL_EMAIL: "email",
    C.CHANNEL_SMS: "sms",
    C.CHANNEL_WEBPUSH: "webpush",
    C.CHANNEL_INAPP: "inapp",
}
PUSH = C.CHANNEL_WEBPUSH
PUSH_DAILY = Policy("push_daily", limit=2, window_kind=CALENDAR_DAY, channel=PUSH)
NEW_YORK = "America/New_York"


@pytest.fixture
def topo(namespace: str) -> Topology:
    return Topology(namespace, TEST_RETRY_DELAYS)


@pytest.fixture
async def frequency(make_settings: Callable[..., Any]) -> AsyncIterator[ServiceRuntime]:
    async with running(create_runtime(make_settings(FrequencySettings))) as runtime:
        yield runtime


def allowed_envelope(
    strategy: int, channels: list[int], users: list[str], delivered_in: list[int] | None = None
) -> envelope_pb2.Envelope:
    """An envelope as eligibility sends it on: every delivery allowed so far."""
    env = envelope_pb2.Envelope(tenant_id="acme", intent_id="intent-f")
    env.accepted_at.CopyFrom(now_timestamp())
    env.intent.strategy = strategy  # type: ignore[assignment]
    env.intent.channels.extend(channels)  # type: ignore[arg-type]
    for user in users:
        for channel in delivered_in or channels:
            delivery = env.deliveries.add(
                delivery_id=f"{user}-{NAMES[channel]}",
                user_id=user,
                channel=channel,
            )
            delivery.decisions.append(
                envelopes.decision("profile", S.DELIVERY_STATE_PENDING, "planned")
            )
            delivery.decisions.append(
                envelopes.decision("eligibility", S.DELIVERY_STATE_PENDING, "allowed")
            )
        env.profiles[user].user_id = user
        env.profiles[user].contacts.email = f"{user}@example.com"
    return env


async def test_first_available_sends_only_the_first_channel_and_reports_the_others_skipped(
    frequency, amqp_url, topo
):
    # Deliveries listed in another order than the intent's: the intent's order decides.
    env = allowed_envelope(
        intent_pb2.STRATEGY_FIRST_AVAILABLE,
        [C.CHANNEL_EMAIL, C.CHANNEL_SMS, C.CHANNEL_INAPP],
        ["u1", "u2"],
        delivered_in=[C.CHANNEL_INAPP, C.CHANNEL_SMS, C.CHANNEL_EMAIL],
    )
    await publish_to_stage(amqp_url, topo, topology.FREQUENCY, env)
    [email_msg] = await drain(amqp_url, topo.queue(topology.send_stage("email")), 1)
    [events_msg] = await drain(amqp_url, topo.queue(topology.EVENTS_INTAKE), 1)
    for other in ("sms", "inapp"):
        assert await drain(amqp_url, topo.queue(topology.send_stage(other)), 1, within=0.5) == []

    to_email = decode_envelope(email_msg.body)
    assert sorted(d.delivery_id for d in to_email.deliveries) == ["u1-email", "u2-email"]
    for d in to_email.deliveries:
        assert [(x.stage, x.reason) for x in d.decisions] == [
            ("profile", "planned"),
            ("eligibility", "allowed"),
            ("frequency", "no_cap_policy"),
        ]
        assert d.decisions[-1].state == S.DELIVERY_STATE_PENDING
    assert sorted(to_email.profiles) == ["u1", "u2"]

    events = envelope_pb2.EventBatch.FromString(events_msg.body).events
    assert sorted(e.delivery_id for e in events) == ["u1-inapp", "u1-sms", "u2-inapp", "u2-sms"]
    for e in events:
        assert (e.decision.stage, e.decision.state, e.decision.reason) == (
            "frequency",
            S.DELIVERY_STATE_SKIPPED,
            "fallback_not_needed",
        )
        assert [(x.stage, x.reason) for x in e.trail] == [
            ("profile", "planned"),
            ("eligibility", "allowed"),
        ]
        assert (e.tenant_id, e.intent_id) == ("acme", "intent-f")


async def test_first_available_uses_the_next_channel_when_the_first_did_not_reach_this_stage(
    frequency, amqp_url, topo
):
    # Email was suppressed by eligibility: only inapp arrives, and it is sent.
    env = allowed_envelope(
        intent_pb2.STRATEGY_FIRST_AVAILABLE,
        [C.CHANNEL_EMAIL, C.CHANNEL_INAPP],
        ["u1"],
        delivered_in=[C.CHANNEL_INAPP],
    )
    await publish_to_stage(amqp_url, topo, topology.FREQUENCY, env)
    [inapp_msg] = await drain(amqp_url, topo.queue(topology.send_stage("inapp")), 1)
    assert [d.delivery_id for d in decode_envelope(inapp_msg.body).deliveries] == ["u1-inapp"]
    assert await drain(amqp_url, topo.queue(topology.EVENTS_INTAKE), 1, within=0.5) == []


async def test_all_routes_each_delivery_to_its_channels_send_queue_and_reports_nothing(
    frequency, amqp_url, topo
):
    env = allowed_envelope(
        intent_pb2.STRATEGY_ALL, [C.CHANNEL_EMAIL, C.CHANNEL_SMS, C.CHANNEL_INAPP], ["u1", "u2"]
    )
    await publish_to_stage(amqp_url, topo, topology.FREQUENCY, env)
    for channel in ("email", "sms", "inapp"):
        [msg] = await drain(amqp_url, topo.queue(topology.send_stage(channel)), 1)
        onward = decode_envelope(msg.body)
        assert sorted(d.delivery_id for d in onward.deliveries) == [
            f"u1-{channel}",
            f"u2-{channel}",
        ]
        assert all(d.decisions[-1].reason == "no_cap_policy" for d in onward.deliveries)
        assert sorted(onward.profiles) == ["u1", "u2"]
        assert (onward.tenant_id, onward.intent_id, onward.intent) == (
            "acme",
            "intent-f",
            env.intent,
        )
    assert await drain(amqp_url, topo.queue(topology.send_stage("webpush")), 1, within=0.5) == []
    assert await drain(amqp_url, topo.queue(topology.EVENTS_INTAKE), 1, within=0.5) == []


async def test_an_unspecified_strategy_is_all(frequency, amqp_url, topo):
    env = allowed_envelope(
        intent_pb2.STRATEGY_UNSPECIFIED, [C.CHANNEL_EMAIL, C.CHANNEL_INAPP], ["u1"]
    )
    await publish_to_stage(amqp_url, topo, topology.FREQUENCY, env)
    for channel in ("email", "inapp"):
        [msg] = await drain(amqp_url, topo.queue(topology.send_stage(channel)), 1)
        assert [d.delivery_id for d in decode_envelope(msg.body).deliveries] == [f"u1-{channel}"]


def marketing_push(
    intent_id: str,
    user: str = "u1",
    *,
    channels: tuple[int, ...] = (PUSH,),
    strategy: int = intent_pb2.STRATEGY_ALL,
    on_capped: int = intent_pb2.CAP_ACTION_UNSPECIFIED,
    timezone: str = "",
) -> envelope_pb2.Envelope:
    env = allowed_envelope(strategy, list(channels), [user])
    env.intent_id = intent_id
    for d in env.deliveries:
        d.delivery_id = f"{intent_id}-{d.delivery_id}"
    env.intent.category = "cart_reminder"
    env.intent.kind = intent_pb2.KIND_MARKETING
    env.intent.on_capped = on_capped  # type: ignore[assignment]
    env.profiles[user].timezone = timezone
    return env


async def fill_slots(runtime: ServiceRuntime, *delivery_ids: str, user: str = "u1") -> None:
    """Reservations made earlier today, as this stage made them."""
    assert runtime.engine is not None
    await store.put_policy(runtime.engine, "acme", PUSH_DAILY)
    asks = [Ask(d, PUSH, "cart_reminder", intent_pb2.KIND_MARKETING) for d in delivery_ids]
    zone = ZoneInfo(NEW_YORK)
    await ledger.reserve(
        runtime.engine, [Request("acme", user, utcnow(), zone, (a,)) for a in asks]
    )


async def used_slots(runtime: ServiceRuntime, user: str = "u1") -> int:
    assert runtime.engine is not None
    [usage] = await ledger.usage(runtime.engine, "acme", user, utcnow(), UTC)
    return usage.used


async def eventually(probe: Callable[[], Awaitable[bool]], within_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not await probe():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def events_of(amqp_url: str, topo: Topology, expect: int) -> list[envelope_pb2.DeliveryEvent]:
    found: list[envelope_pb2.DeliveryEvent] = []
    for msg in await drain(amqp_url, topo.queue(topology.EVENTS_INTAKE), expect):
        found.extend(envelope_pb2.EventBatch.FromString(msg.body).events)
    return found


async def test_no_more_than_two_marketing_pushes_a_day_the_third_is_capped(
    frequency, amqp_url, topo
):
    assert frequency.engine is not None
    await store.put_policy(frequency.engine, "acme", PUSH_DAILY)
    for n in (1, 2, 3):
        await publish_to_stage(amqp_url, topo, topology.FREQUENCY, marketing_push(f"i{n}"))
    webpush = topo.queue(topology.send_stage("webpush"))
    sent = await drain(amqp_url, webpush, 2)
    assert await drain(amqp_url, webpush, 1, within=0.5) == []
    deliveries = [d for msg in sent for d in decode_envelope(msg.body).deliveries]
    assert [d.delivery_id for d in deliveries] == ["i1-u1-webpush", "i2-u1-webpush"]
    for d in deliveries:
        last = d.decisions[-1]
        assert (last.stage, last.state, last.reason) == (
            "frequency",
            S.DELIVERY_STATE_PENDING,
            "reserved",
        )
        assert last.detail == "slot under push_daily"
    [event] = await events_of(amqp_url, topo, 1)
    assert (event.delivery_id, event.decision.state, event.decision.reason) == (
        "i3-u1-webpush",
        S.DELIVERY_STATE_CAPPED,
        "capped",
    )
    assert event.decision.detail == "policy push_daily: 2/2 today"
    assert [x.reason for x in event.trail] == ["planned", "allowed"]
    assert await drain(amqp_url, topo.queue(topology.DEFERRED), 1, within=0.3) == []


async def test_a_redelivered_envelope_is_sent_again_without_a_second_slot(
    frequency, amqp_url, topo
):
    await fill_slots(frequency, "other")
    env = marketing_push("again")
    for _ in range(2):
        await publish_to_stage(amqp_url, topo, topology.FREQUENCY, env)
    sent = await drain(amqp_url, topo.queue(topology.send_stage("webpush")), 2)
    assert len(sent) == 2
    assert await used_slots(frequency) == 2


async def test_a_capped_push_with_defer_waits_for_midnight_in_the_recipients_zone(
    frequency, amqp_url, topo
):
    await fill_slots(frequency, "d1", "d2")
    before = windows.next_midnight(utcnow(), ZoneInfo(NEW_YORK))
    env = marketing_push("later", on_capped=intent_pb2.CAP_ACTION_DEFER, timezone=NEW_YORK)
    env.deferral.due_at.CopyFrom(now_timestamp())  # a spent deferral, from an earlier round
    env.deferral.stage = "eligibility"
    await publish_to_stage(amqp_url, topo, topology.FREQUENCY, env)

    [msg] = await drain(amqp_url, topo.queue(topology.DEFERRED), 1)
    deferred = decode_envelope(msg.body)
    after = windows.next_midnight(utcnow(), ZoneInfo(NEW_YORK))
    due = from_timestamp(deferred.deferral.due_at)
    assert due in (before, after)
    assert due.astimezone(ZoneInfo(NEW_YORK)).time().hour == 0
    assert (deferred.deferral.stage, deferred.deferral.reason) == ("frequency", "capped")
    [delivery] = deferred.deliveries
    last = delivery.decisions[-1]
    assert (last.stage, last.state, last.reason) == (
        "frequency",
        S.DELIVERY_STATE_SCHEDULED,
        "capped",
    )
    assert from_timestamp(last.not_before) == due
    assert deferred.profiles["u1"].timezone == NEW_YORK

    [event] = await events_of(amqp_url, topo, 1)
    assert (event.decision.state, event.decision.reason) == (S.DELIVERY_STATE_SCHEDULED, "capped")
    assert from_timestamp(event.decision.not_before) == due
    assert await drain(amqp_url, topo.queue(topology.send_stage("webpush")), 1, within=0.3) == []


async def test_a_capped_push_that_would_expire_before_its_slot_is_dropped(
    frequency, amqp_url, topo
):
    await fill_slots(frequency, "d1", "d2")
    env = marketing_push("soon", on_capped=intent_pb2.CAP_ACTION_DEFER, timezone=NEW_YORK)
    env.intent.timing.expires_at.CopyFrom(to_timestamp(datetime.now(UTC)))
    await publish_to_stage(amqp_url, topo, topology.FREQUENCY, env)
    [event] = await events_of(amqp_url, topo, 1)
    assert (event.decision.state, event.decision.reason) == (S.DELIVERY_STATE_CAPPED, "capped")
    assert event.decision.detail.endswith("the next slot is after the intent expires")
    assert await drain(amqp_url, topo.queue(topology.DEFERRED), 1, within=0.3) == []


async def test_first_available_falls_back_to_the_next_channel_when_the_first_is_capped(
    frequency, amqp_url, topo
):
    await fill_slots(frequency, "d1", "d2")
    env = marketing_push(
        "fallback",
        channels=(PUSH, C.CHANNEL_EMAIL, C.CHANNEL_INAPP),
        strategy=intent_pb2.STRATEGY_FIRST_AVAILABLE,
    )
    await publish_to_stage(amqp_url, topo, topology.FREQUENCY, env)
    [msg] = await drain(amqp_url, topo.queue(topology.send_stage("email")), 1)
    [delivery] = decode_envelope(msg.body).deliveries
    assert (delivery.delivery_id, delivery.decisions[-1].reason) == (
        "fallback-u1-email",
        "no_cap_policy",
    )
    events = {e.delivery_id: e.decision for e in await events_of(amqp_url, topo, 1)}
    assert {k: (v.state, v.reason) for k, v in events.items()} == {
        "fallback-u1-webpush": (S.DELIVERY_STATE_CAPPED, "capped"),
        "fallback-u1-inapp": (S.DELIVERY_STATE_SKIPPED, "fallback_not_needed"),
    }
    for channel in ("webpush", "inapp"):
        assert await drain(amqp_url, topo.queue(topology.send_stage(channel)), 1, within=0.3) == []


async def test_first_available_with_every_channel_capped_defers_the_first_one(
    frequency, amqp_url, topo
):
    assert frequency.engine is not None
    await store.put_policy(
        frequency.engine, "acme", Policy("one", limit=1, window_kind=CALENDAR_DAY)
    )
    await fill_slots(frequency, "d1")
    env = marketing_push(
        "all-capped",
        channels=(C.CHANNEL_INAPP, PUSH),
        strategy=intent_pb2.STRATEGY_FIRST_AVAILABLE,
        on_capped=intent_pb2.CAP_ACTION_DEFER,
    )
    await publish_to_stage(amqp_url, topo, topology.FREQUENCY, env)
    [msg] = await drain(amqp_url, topo.queue(topology.DEFERRED), 1)
    assert [d.delivery_id for d in decode_envelope(msg.body).deliveries] == ["all-capped-u1-inapp"]
    events = {e.delivery_id: e.decision.state for e in await events_of(amqp_url, topo, 1)}
    assert events == {
        "all-capped-u1-inapp": S.DELIVERY_STATE_SCHEDULED,
        "all-capped-u1-webpush": S.DELIVERY_STATE_CAPPED,
    }


async def test_a_delivery_released_after_a_permanent_failure_frees_its_slot(
    frequency, amqp_url, topo
):
    await fill_slots(frequency, "failed", "delivered")
    failed = envelope_pb2.DeliveryEvent(tenant_id="acme", delivery_id="failed", user_id="u1")
    failed.decision.state = S.DELIVERY_STATE_FAILED
    delivered = envelope_pb2.DeliveryEvent(tenant_id="acme", delivery_id="delivered")
    delivered.decision.state = S.DELIVERY_STATE_SENT
    batch = envelopes.event_batch([failed, delivered])
    await publish_to_stage(amqp_url, topo, topology.RELEASE, batch)

    async def one_slot_left() -> bool:
        return await used_slots(frequency) == 1

    await eventually(one_slot_left)
    await publish_to_stage(amqp_url, topo, topology.FREQUENCY, marketing_push("retry"))
    [msg] = await drain(amqp_url, topo.queue(topology.send_stage("webpush")), 1)
    assert decode_envelope(msg.body).deliveries[0].decisions[-1].reason == "reserved"


async def test_an_erased_profile_leaves_no_reservation_and_a_cancellation_changes_nothing(
    frequency, amqp_url, topo
):
    await fill_slots(frequency, "d1", "d2")
    await fill_slots(frequency, "x1", user="u2")
    control = topology.control_stage("frequency")
    cancelled = envelope_pb2.ControlEvent()
    cancelled.intent_cancelled.tenant_id, cancelled.intent_cancelled.intent_id = "acme", "i1"
    erased = envelope_pb2.ControlEvent()
    erased.profile_erased.tenant_id, erased.profile_erased.user_id = "acme", "u1"
    for message in (cancelled, erased):
        await publish_to_stage(amqp_url, topo, control, message)

    async def u1_forgotten() -> bool:
        return await used_slots(frequency, "u1") == 0

    await eventually(u1_forgotten)
    assert await used_slots(frequency, "u2") == 1
    assert await drain(amqp_url, topo.dead_letter_queue(control), 1, within=0.3) == []
