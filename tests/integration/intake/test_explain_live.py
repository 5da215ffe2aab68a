"""Explain against the real profile, eligibility and frequency services.

All four run in this process on the real broker, each with its own database;
intake asks the others over gRPC as it does in production. One recipient,
four channels, each ending differently; and Explain leaves no trace.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from google.protobuf.duration_pb2 import Duration
from prometheus_client import REGISTRY
from sendmesh.frequency.v1 import frequency_pb2, frequency_pb2_grpc
from sendmesh.intake.v1 import intake_pb2, intake_pb2_grpc
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2, profile_pb2_grpc
from sqlalchemy import func, select

from services.eligibility import __main__ as eligibility
from services.eligibility.settings import EligibilitySettings
from services.frequency import __main__ as frequency
from services.frequency.settings import FrequencySettings
from services.intake import __main__ as intake
from services.intake.settings import IntakeSettings
from services.intake.store import DeliveryRow, IntentRow, OutboxRow
from services.profile import __main__ as profile
from services.profile.settings import ProfileSettings
from shared.bus.topology import Topology
from shared.clock import from_timestamp, to_timestamp
from shared.runtime import ServiceRuntime
from tests.conftest import TEST_RETRY_DELAYS, Tenants, running
from tests.integration.bus_helpers import queue_depth
from tests.integration.grpc_helpers import channel_to

C = intent_pb2.Channel
S = intent_pb2.DeliveryState
VIENNA = ZoneInfo("Europe/Vienna")
USER = "explained"
# Counters a side effect would move: anything published, decided, reserved, deferred, accepted.
COUNTERS = (
    "sendmesh_bus_published_messages",
    "sendmesh_decisions",
    "sendmesh_cap_reservations",
    "sendmesh_deferrals",
    "sendmesh_intents_received",
)


@dataclass
class Stages:
    tenants: Tenants
    intake: intake_pb2_grpc.IntakeStub
    profiles: profile_pb2_grpc.ProfilesStub
    frequency: frequency_pb2_grpc.FrequencyStub
    intake_runtime: ServiceRuntime

    def meta(self) -> tuple[tuple[str, str], ...]:
        return self.tenants.metadata()


@pytest.fixture
async def stages(
    make_settings: Callable[..., Any], tenants: Tenants, tmp_path: Path
) -> AsyncIterator[Stages]:
    """Profile, eligibility and frequency, then an intake that asks them."""
    ports: dict[str, int] = {}
    async with AsyncExitStack() as stack:
        for name, module, cls in (
            ("profile", profile, ProfileSettings),
            ("eligibility", eligibility, EligibilitySettings),
            ("frequency", frequency, FrequencySettings),
        ):
            settings = make_settings(cls, var_dir=tmp_path / name)
            runtime = await stack.enter_async_context(running(module.create_runtime(settings)))
            ports[name] = runtime.port
        addresses = {f"{n}_address": f"127.0.0.1:{p}" for n, p in ports.items()}
        settings = make_settings(IntakeSettings, var_dir=tmp_path / "intake", **addresses)
        front = await stack.enter_async_context(running(intake.create_runtime(settings)))

        async def channel(port: int) -> Any:
            return await stack.enter_async_context(channel_to(port))

        yield Stages(
            tenants=tenants,
            intake=intake_pb2_grpc.IntakeStub(await channel(front.port)),
            profiles=profile_pb2_grpc.ProfilesStub(await channel(ports["profile"])),
            frequency=frequency_pb2_grpc.FrequencyStub(await channel(ports["frequency"])),
            intake_runtime=front,
        )


def local(day: datetime, hour: int) -> datetime:
    """`hour`:00 on `day`'s date in Vienna, as an aware instant."""
    return datetime.combine(day.astimezone(VIENNA).date(), time(hour), tzinfo=VIENNA)


async def given_the_recipient(stages: Stages, noon: datetime) -> None:
    """Opted in to everything but email; quiet from 11:00 to 19:00; two SMS today."""
    p = profile_pb2.Profile(user_id=USER, locale="en", timezone="Europe/Vienna")
    p.contacts.email = "explained@example.com"
    p.contacts.phone = "+4366412345678"
    p.contacts.webpush.add(endpoint="https://push.example/sub/1", p256dh="BKey", auth="secret")
    p.quiet_hours.start_minute, p.quiet_hours.end_minute = 11 * 60, 19 * 60
    meta = stages.meta()
    await stages.profiles.UpsertProfile(profile_pb2.UpsertProfileRequest(profile=p), metadata=meta)
    for channel, granted in ((C.CHANNEL_UNSPECIFIED, True), (C.CHANNEL_EMAIL, False)):
        consent = profile_pb2.Consent(channel=channel, granted=granted, source="test")
        await stages.profiles.SetConsent(
            profile_pb2.SetConsentRequest(user_id=USER, consent=consent), metadata=meta
        )
    # The event the intent's rule names, in its window, but without the
    # property the rule asks for: Explain reads it, and it must not match.
    event = profile_pb2.BehaviourEvent(
        name="cart_add", occurred_at=to_timestamp(noon - timedelta(minutes=10))
    )
    await stages.profiles.RecordEvent(
        profile_pb2.RecordEventRequest(user_id=USER, event=event), metadata=meta
    )
    policy = frequency_pb2.CapPolicy(
        policy_id="sms_daily",
        channel=C.CHANNEL_SMS,
        limit=2,
        window_kind=frequency_pb2.WINDOW_KIND_CALENDAR_DAY,
    )
    await stages.frequency.PutCapPolicy(
        frequency_pb2.PutCapPolicyRequest(policy=policy), metadata=meta
    )
    for n, hour in enumerate((8, 9)):
        reply = await stages.frequency.Reserve(
            frequency_pb2.ReserveRequest(
                user_id=USER,
                channel=C.CHANNEL_SMS,
                category="promo",
                kind=intent_pb2.KIND_MARKETING,
                delivery_id=f"earlier-sms-{n}",
                timezone="Europe/Vienna",
                at=to_timestamp(local(noon, hour)),
            ),
            metadata=meta,
        )
        assert reply.granted


def promotion() -> intent_pb2.SendIntent:
    intent = intent_pb2.SendIntent(
        idempotency_key="explain-1",
        category="promo",
        kind=intent_pb2.KIND_MARKETING,
        channels=[C.CHANNEL_INAPP, C.CHANNEL_EMAIL, C.CHANNEL_SMS, C.CHANNEL_WEBPUSH],
    )
    intent.audience.user_ids.append("ignored: Explain names its own recipient")
    intent.exclude_if.add(event="cart_add", within=Duration(seconds=3600), properties={"sku": "x"})
    inline = intent.content.inline
    inline.inapp.title = inline.webpush.title = "Sale"
    inline.email.subject, inline.email.text = "Sale", "Everything must go"
    inline.sms.text = "Sale today"
    return intent


async def footprint(stages: Stages, topo: Topology, amqp_url: str) -> dict[str, Any]:
    """Everything Explain must leave as it was."""
    meta = stages.meta()
    usage = await stages.frequency.GetUsage(
        frequency_pb2.GetUsageRequest(user_id=USER, timezone="Europe/Vienna"), metadata=meta
    )
    events = await stages.profiles.ListEvents(
        profile_pb2.ListEventsRequest(user_id=USER, page_size=1000), metadata=meta
    )
    engine = stages.intake_runtime.engine
    assert engine is not None
    async with engine.connect() as conn:
        rows = {
            table.__name__: int(
                (await conn.execute(select(func.count()).select_from(table))).scalar_one()
            )
            for table in (IntentRow, OutboxRow, DeliveryRow)
        }
    counters = {
        s.name: s.value
        for metric in REGISTRY.collect()
        if metric.name in COUNTERS
        for s in metric.samples
        if s.name.endswith("_total")
    }
    queues = {q: await queue_depth(amqp_url, q) for q in topo.all_queues()}
    return {
        "usage": [(u.policy_id, u.used, u.limit) for u in usage.usage],
        "events": [e.SerializeToString(deterministic=True) for e in events.events],
        "intake rows": rows,
        "counters": counters,
        "queues": queues,
    }


def steps(explained: intake_pb2.ChannelExplanation) -> list[tuple[str, int, str]]:
    return [(s.stage, s.state, s.reason) for s in explained.steps]


async def test_explain_answers_stage_by_stage_from_the_running_stages_and_changes_nothing(
    stages: Stages, amqp_url: str, namespace: str
):
    noon = local(datetime.now(VIENNA), 12)
    evening = local(noon, 19)
    await given_the_recipient(stages, noon)
    topo = Topology(namespace, TEST_RETRY_DELAYS)
    before = await footprint(stages, topo, amqp_url)
    assert before["usage"] == [("sms_daily", 2, 2)]

    reply = await stages.intake.Explain(
        intake_pb2.ExplainRequest(intent=promotion(), user_id=USER, at=to_timestamp(noon)),
        metadata=stages.meta(),
    )
    answer = {c.channel: c for c in reply.channels}

    assert list(answer) == [C.CHANNEL_INAPP, C.CHANNEL_EMAIL, C.CHANNEL_SMS, C.CHANNEL_WEBPUSH]
    email = answer[C.CHANNEL_EMAIL]
    assert (email.outcome, email.reason) == (S.DELIVERY_STATE_SUPPRESSED, "opted_out")
    assert steps(email) == [
        ("profile", S.DELIVERY_STATE_PENDING, "planned"),
        ("eligibility", S.DELIVERY_STATE_SUPPRESSED, "opted_out"),
    ]
    assert email.summary == "email suppressed: opted_out (withdrawn: email / promo)"

    # Quiet until 19:00 local for every marketing channel: push and in-app wait
    # and would then go; SMS waits too, and at 19:00 it is still 2/2 today.
    waited = [
        ("profile", S.DELIVERY_STATE_PENDING, "planned"),
        ("eligibility", S.DELIVERY_STATE_SCHEDULED, "quiet_hours"),
        ("eligibility", S.DELIVERY_STATE_PENDING, "allowed"),
    ]
    for channel in (C.CHANNEL_WEBPUSH, C.CHANNEL_INAPP):
        sent = answer[channel]
        assert (sent.outcome, sent.reason) == (S.DELIVERY_STATE_SENT, "sent")
        assert from_timestamp(sent.send_at) == evening
        assert steps(sent) == [*waited, ("frequency", S.DELIVERY_STATE_PENDING, "no_cap_policy")]
        assert from_timestamp(sent.steps[1].not_before) == evening
        assert "quiet hours 11:00-19:00 Europe/Vienna" in sent.steps[1].detail
    push_at = evening.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (
        answer[C.CHANNEL_WEBPUSH].summary == f"webpush would be sent at {push_at} (after waiting)"
    )

    sms = answer[C.CHANNEL_SMS]
    assert (sms.outcome, sms.reason) == (S.DELIVERY_STATE_CAPPED, "capped")
    assert steps(sms) == [*waited, ("frequency", S.DELIVERY_STATE_CAPPED, "capped")]
    assert sms.steps[-1].detail == "policy sms_daily: 2/2 today"
    assert from_timestamp(sms.steps[-1].not_before) == local(noon + timedelta(days=1), 0)
    assert sms.summary == "sms capped: capped (policy sms_daily: 2/2 today)"

    after = await footprint(stages, topo, amqp_url)
    assert after == before
