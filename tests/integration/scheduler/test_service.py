"""The scheduler on the real broker: deferred queue in, stage queues and events out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import pytest
from google.protobuf.message import Message
from prometheus_client import REGISTRY
from sendmesh.bus.v1 import envelope_pb2

from services.scheduler import store
from services.scheduler.__main__ import create_runtime
from services.scheduler.settings import SchedulerSettings
from shared import db
from shared.bus import topology
from shared.bus.topology import Topology
from shared.clock import from_timestamp, now_timestamp
from shared.envelopes import decode_envelope
from shared.runtime import ServiceRuntime
from tests.conftest import TEST_RETRY_DELAYS, running
from tests.integration.bus_helpers import drain, publish_to_stage
from tests.integration.scheduler.support import S, deferred_envelope

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def topo(namespace: str) -> Topology:
    return Topology(namespace, TEST_RETRY_DELAYS)


@pytest.fixture
def settings(make_settings: Callable[..., Any]) -> SchedulerSettings:
    # A slow poll: a row this process stores must wake the dispatcher itself.
    settings: SchedulerSettings = make_settings(SchedulerSettings, dispatch_poll_s=5.0)
    return settings


@pytest.fixture
async def scheduler(settings: SchedulerSettings) -> AsyncIterator[ServiceRuntime]:
    async with running(create_runtime(settings)) as runtime:
        yield runtime


async def publish_event(amqp_url: str, topo: Topology, key: str, msg: Message) -> None:
    conn = await aio_pika.connect(amqp_url)
    async with conn:
        channel = await conn.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(topo.events_exchange, ensure=False)
        await exchange.publish(aio_pika.Message(msg.SerializeToString(), delivery_mode=2), key)


def cancel_event(intent: str, tenant: str = "acme") -> envelope_pb2.ControlEvent:
    cancelled = envelope_pb2.IntentCancelled(tenant_id=tenant, intent_id=intent)
    cancelled.at.CopyFrom(now_timestamp())
    return envelope_pb2.ControlEvent(intent_cancelled=cancelled)


def lag_count() -> float:
    return REGISTRY.get_sample_value("sendmesh_scheduler_lag_seconds_count") or 0.0


async def stored_deliveries(runtime: ServiceRuntime, expect: int, within: float = 5.0) -> int:
    """How many deliveries the scheduler holds, once it holds `expect` (or time is up)."""
    assert runtime.engine is not None
    deadline = time.monotonic() + within
    while (count := await store.pending_deliveries(runtime.engine)) != expect:
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    return count


async def test_a_deferred_envelope_comes_back_on_its_stage_queue_when_due_without_its_deferral(
    scheduler, amqp_url, topo
):
    lags_before = lag_count()
    due = datetime.now(UTC) + timedelta(seconds=1)
    env = deferred_envelope(due, users=("u1", "u2"), stage=topology.FREQUENCY, reason="capped")
    await publish_to_stage(amqp_url, topo, topology.DEFERRED, env)
    [back] = await drain(amqp_url, topo.queue(topology.FREQUENCY), 1, within=10)
    arrived = datetime.now(UTC)
    assert lag_count() - lags_before == 2  # one observation per delivery

    # Not early, and late by well under the poll interval (5 s): it was woken.
    lateness = (arrived - due).total_seconds()
    assert 0 <= lateness < 1.5, lateness
    returned = decode_envelope(back.body)
    assert not returned.HasField("deferral")
    env.ClearField("deferral")
    assert returned == env
    assert back.type == "sendmesh.bus.v1.Envelope"
    assert await stored_deliveries(scheduler, 0) == 0


async def test_an_envelope_due_already_goes_back_at_once_to_the_stage_it_names(
    scheduler, amqp_url, topo
):
    env = deferred_envelope(datetime.now(UTC) - timedelta(minutes=5), stage=topology.ELIGIBILITY)
    start = time.monotonic()
    await publish_to_stage(amqp_url, topo, topology.DEFERRED, env)
    [back] = await drain(amqp_url, topo.queue(topology.ELIGIBILITY), 1, within=10)
    assert time.monotonic() - start < 1.5
    assert decode_envelope(back.body).intent_id == env.intent_id


@pytest.mark.parametrize(
    "spoil",
    [lambda e: e.ClearField("deferral"), lambda e: setattr(e.deferral, "stage", "nowhere")],
    ids=["no deferral", "unknown stage"],
)
async def test_an_envelope_the_scheduler_cannot_put_back_is_dead_lettered(
    scheduler, amqp_url, topo, spoil
):
    env = deferred_envelope(datetime.now(UTC))
    spoil(env)
    await publish_to_stage(amqp_url, topo, topology.DEFERRED, env)
    [dead] = await drain(amqp_url, topo.dead_letter_queue(topology.DEFERRED), 1)
    assert decode_envelope(dead.body).intent_id == env.intent_id
    assert await stored_deliveries(scheduler, 0, within=0.2) == 0


async def test_a_cancelled_intents_deferred_deliveries_never_come_back_and_are_reported(
    scheduler, amqp_url, topo
):
    due = datetime.now(UTC) + timedelta(seconds=1.5)
    await publish_to_stage(
        amqp_url, topo, topology.DEFERRED, deferred_envelope(due, intent="gone", users=("u1", "u2"))
    )
    await publish_to_stage(amqp_url, topo, topology.DEFERRED, deferred_envelope(due, intent="kept"))
    assert await stored_deliveries(scheduler, 3) == 3

    await publish_event(amqp_url, topo, topology.EVENTS_CANCELLED_KEY, cancel_event("gone"))
    [reported] = await drain(amqp_url, topo.queue(topology.EVENTS_INTAKE), 1)
    events = envelope_pb2.EventBatch.FromString(reported.body).events
    assert sorted(e.delivery_id for e in events) == ["gone-u1-email", "gone-u2-email"]
    for e in events:
        assert (e.decision.stage, e.decision.state, e.decision.reason) == (
            "scheduler",
            S.DELIVERY_STATE_CANCELLED,
            "cancelled",
        )
        assert [t.reason for t in e.trail] == ["planned", "quiet_hours"]

    back = await drain(amqp_url, topo.queue(topology.ELIGIBILITY), 2, within=4)
    assert [decode_envelope(m.body).intent_id for m in back] == ["kept"]


async def test_a_deferral_arriving_after_its_intent_was_cancelled_is_reported_not_stored(
    scheduler, amqp_url, topo
):
    await publish_event(amqp_url, topo, topology.EVENTS_CANCELLED_KEY, cancel_event("late"))
    await asyncio.sleep(0.5)  # the cancel is consumed first
    env = deferred_envelope(datetime.now(UTC), intent="late")
    await publish_to_stage(amqp_url, topo, topology.DEFERRED, env)
    [reported] = await drain(amqp_url, topo.queue(topology.EVENTS_INTAKE), 1)
    [event] = envelope_pb2.EventBatch.FromString(reported.body).events
    assert (event.intent_id, event.decision.state) == ("late", S.DELIVERY_STATE_CANCELLED)
    assert await drain(amqp_url, topo.queue(topology.ELIGIBILITY), 1, within=1) == []


async def test_an_erased_user_leaves_the_deferred_envelope_and_the_others_still_come_back(
    scheduler, amqp_url, topo
):
    due = datetime.now(UTC) + timedelta(seconds=1)
    env = deferred_envelope(due, users=("u1", "u2"))
    await publish_to_stage(amqp_url, topo, topology.DEFERRED, env)
    assert await stored_deliveries(scheduler, 2) == 2
    erased = envelope_pb2.ProfileErased(tenant_id="acme", user_id="u1")
    await publish_event(
        amqp_url,
        topo,
        topology.EVENTS_ERASED_KEY,
        envelope_pb2.ControlEvent(profile_erased=erased),
    )
    assert await stored_deliveries(scheduler, 1) == 1
    [back] = await drain(amqp_url, topo.queue(topology.ELIGIBILITY), 1)
    returned = decode_envelope(back.body)
    assert [d.user_id for d in returned.deliveries] == ["u2"]
    assert sorted(returned.profiles) == ["u2"]


async def test_a_stored_deferral_survives_a_restart_and_the_next_process_puts_it_back(
    settings, amqp_url, topo
):
    due = datetime.now(UTC) + timedelta(seconds=2)
    async with running(create_runtime(settings)) as first:
        await publish_to_stage(amqp_url, topo, topology.DEFERRED, deferred_envelope(due))
        assert await stored_deliveries(first, 1) == 1

    # The fault happened: no scheduler runs, the row is in its database and
    # nothing went back yet.
    engine = db.create_engine(settings.resolved_database_url())
    try:
        assert await store.pending_deliveries(engine) == 1
    finally:
        await db.dispose(engine)
    assert await drain(amqp_url, topo.queue(topology.ELIGIBILITY), 1, within=0.2) == []

    async with running(create_runtime(settings)) as second:
        [back] = await drain(amqp_url, topo.queue(topology.ELIGIBILITY), 1, within=10)
        assert datetime.now(UTC) >= due
        assert await stored_deliveries(second, 0) == 0
    returned = decode_envelope(back.body)
    assert from_timestamp(returned.deliveries[0].decisions[-1].not_before) == due
