"""The whole pipeline in this process: intake, profile, eligibility, frequency, the
email and in-app workers and the scheduler, on the real broker, each with its own
database, wired to each other as `sendmesh run` wires them (peer addresses, the
internal key for the last behaviour check before a send).

An intent goes in over gRPC; what comes out is read where a user and a caller
would read it: the Inbox API, the email dev provider's outbox, and GetIntent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sendmesh.eligibility.v1 import eligibility_pb2_grpc
from sendmesh.frequency.v1 import frequency_pb2_grpc
from sendmesh.inapp.v1 import inbox_pb2, inbox_pb2_grpc
from sendmesh.intake.v1 import intake_pb2, intake_pb2_grpc
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2, profile_pb2_grpc
from sendmesh.scheduler.v1 import scheduler_pb2_grpc

from services.eligibility import __main__ as eligibility
from services.eligibility.settings import EligibilitySettings
from services.email import __main__ as email
from services.email.settings import EmailSettings
from services.frequency import __main__ as frequency
from services.frequency.settings import FrequencySettings
from services.inapp import __main__ as inapp
from services.inapp.settings import InappSettings
from services.intake import __main__ as intake
from services.intake.settings import IntakeSettings
from services.profile import __main__ as profile
from services.profile.settings import ProfileSettings
from services.scheduler import __main__ as scheduler
from services.scheduler.settings import SchedulerSettings
from shared.auth import new_api_key
from shared.ids import delivery_id
from tests import servers
from tests.conftest import Tenants, running
from tests.integration.grpc_helpers import channel_to

C = intent_pb2.Channel
S = intent_pb2.DeliveryState
I = intake_pb2.IntentState  # noqa: E741
T = TypeVar("T")

# Started in this order (intake first: it owns the plan queue's producer side).
SERVICES: list[tuple[str, Any, type]] = [
    ("intake", intake, IntakeSettings),
    ("profile", profile, ProfileSettings),
    ("eligibility", eligibility, EligibilitySettings),
    ("frequency", frequency, FrequencySettings),
    ("email", email, EmailSettings),
    ("inapp", inapp, InappSettings),
    ("scheduler", scheduler, SchedulerSettings),
]
INBOX_WITHIN_S = 5.0
COMPLETED_WITHIN_S = 15.0


@dataclass
class Mesh:
    tenants: Tenants
    intake: intake_pb2_grpc.IntakeStub
    profiles: profile_pb2_grpc.ProfilesStub
    inbox: inbox_pb2_grpc.InboxStub
    email_var_dir: Path
    eligibility: eligibility_pb2_grpc.EligibilityStub
    frequency: frequency_pb2_grpc.FrequencyStub
    scheduler: scheduler_pb2_grpc.SchedulerStub

    def email_file(self, intent_id: str, user: str) -> Path:
        name = delivery_id(intent_id, user, C.CHANNEL_EMAIL)
        return self.email_var_dir / "outbox" / "email" / f"{name}.json"

    async def add_profile(self, user: str, email_address: str = "") -> None:
        p = profile_pb2.Profile(user_id=user, locale="en", timezone="Europe/Vienna")
        p.contacts.email = email_address
        await self.profiles.UpsertProfile(
            profile_pb2.UpsertProfileRequest(profile=p), metadata=self.tenants.metadata()
        )
        # Marketing needs an opt-in: this user gave one for every channel.
        consent = profile_pb2.Consent(granted=True, source="e2e")
        await self.profiles.SetConsent(
            profile_pb2.SetConsentRequest(user_id=user, consent=consent),
            metadata=self.tenants.metadata(),
        )

    async def submit(self, intent: intent_pb2.SendIntent) -> str:
        reply = await self.intake.Submit(
            intake_pb2.SubmitRequest(intent=intent), metadata=self.tenants.metadata()
        )
        assert not reply.duplicate
        return reply.intent_id

    async def get(self, intent_id: str) -> intake_pb2.Intent:
        request = intake_pb2.GetIntentRequest(intent_id=intent_id)
        return (await self.intake.GetIntent(request, metadata=self.tenants.metadata())).intent

    async def completed(self, intent_id: str) -> intake_pb2.Intent:
        async def probe() -> intake_pb2.Intent | None:
            view = await self.get(intent_id)
            return view if view.state == I.INTENT_STATE_COMPLETED else None

        return await eventually(probe, COMPLETED_WITHIN_S, f"intent {intent_id} never completed")

    async def inbox_of(self, user: str, intent_id: str) -> list[inbox_pb2.InboxMessage]:
        listing = await self.inbox.ListInbox(
            inbox_pb2.ListInboxRequest(user_id=user), metadata=self.tenants.metadata()
        )
        return [m for m in listing.messages if m.intent_id == intent_id]


async def eventually(probe: Callable[[], Awaitable[T | None]], within_s: float, what: str) -> T:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        result = await probe()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"{what} within {within_s} s")
        await asyncio.sleep(0.05)


def wiring(ports: dict[str, int], internal_key: str) -> dict[str, dict[str, Any]]:
    """Each service's settings for finding the others, as `sendmesh run` sets them."""
    address = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
    stages = {f"{name}_address": address[name] for name in ("profile", "eligibility", "frequency")}
    last_look = {"profile_address": address["profile"]}
    extra: dict[str, dict[str, Any]] = {"intake": stages, "email": last_look, "inapp": last_look}
    return {
        name: {"grpc_port": port, "internal_key": internal_key, **extra.get(name, {})}
        for name, port in ports.items()
    }


@pytest.fixture
async def mesh(
    make_settings: Callable[..., Any], tenants: Tenants, tmp_path: Path
) -> AsyncIterator[Mesh]:
    async with AsyncExitStack() as stack:
        # Ports first: intake starts before the stages its Explain asks.
        ports = {name: servers.free_port() for name, _, _ in SERVICES}
        wired = wiring(ports, new_api_key())
        for name, module, settings_cls in SERVICES:
            settings = make_settings(settings_cls, var_dir=tmp_path / name, **wired[name])
            await stack.enter_async_context(running(module.create_runtime(settings)))

        async def stub(name: str, cls: Callable[[Any], T]) -> T:
            return cls(await stack.enter_async_context(channel_to(ports[name])))

        yield Mesh(
            tenants=tenants,
            intake=await stub("intake", intake_pb2_grpc.IntakeStub),
            profiles=await stub("profile", profile_pb2_grpc.ProfilesStub),
            inbox=await stub("inapp", inbox_pb2_grpc.InboxStub),
            email_var_dir=tmp_path / "email",
            eligibility=await stub("eligibility", eligibility_pb2_grpc.EligibilityStub),
            frequency=await stub("frequency", frequency_pb2_grpc.FrequencyStub),
            scheduler=await stub("scheduler", scheduler_pb2_grpc.SchedulerStub),
        )


def intent_for(
    key: str,
    users: list[str],
    channels: list[int],
    strategy: int = intent_pb2.STRATEGY_ALL,
    kind: int = intent_pb2.KIND_MARKETING,
) -> intent_pb2.SendIntent:
    intent = intent_pb2.SendIntent(
        idempotency_key=key,
        category="cart_reminder",
        kind=kind,  # type: ignore[arg-type]
        channels=channels,  # type: ignore[arg-type]
        strategy=strategy,  # type: ignore[arg-type]
    )
    intent.audience.user_ids.extend(users)
    inline = intent.content.inline
    inline.inapp.title, inline.inapp.body = "Your cart", "misses you"
    inline.email.subject, inline.email.text = "Your cart", "You left something behind"
    return intent


def by_delivery(view: intake_pb2.Intent) -> dict[tuple[str, int], intake_pb2.DeliveryStatus]:
    return {(d.user_id, d.channel): d for d in view.deliveries}


def current(status: intake_pb2.DeliveryStatus) -> tuple[str, int, str]:
    return status.current.stage, status.current.state, status.current.reason


def history(status: intake_pb2.DeliveryStatus) -> list[tuple[str, str]]:
    return [(h.stage, h.reason) for h in status.history]


async def test_an_inapp_intent_reaches_the_inbox_and_completes_with_every_stage_explained(
    mesh: Mesh,
):
    await mesh.add_profile("known")
    # Transactional: the unknown recipient has given no marketing consent.
    transactional = intent_pb2.KIND_TRANSACTIONAL
    intent_id = await mesh.submit(
        intent_for("e2e-a", ["known", "ghost"], [C.CHANNEL_INAPP], kind=transactional)
    )

    for user in ("known", "ghost"):

        async def arrived(user: str = user) -> list[inbox_pb2.InboxMessage]:
            return await mesh.inbox_of(user, intent_id)

        [message] = await eventually(arrived, INBOX_WITHIN_S, f"no inbox message for {user}")
        assert (message.title, message.body, message.category) == (
            "Your cart",
            "misses you",
            "cart_reminder",
        )

    view = await mesh.completed(intent_id)
    deliveries = by_delivery(view)
    assert sorted(deliveries) == [("ghost", C.CHANNEL_INAPP), ("known", C.CHANNEL_INAPP)]
    for user, planned in (("known", "planned"), ("ghost", "unknown_recipient")):
        status = deliveries[(user, C.CHANNEL_INAPP)]
        assert status.delivery_id == delivery_id(intent_id, user, C.CHANNEL_INAPP)
        assert current(status) == ("inapp", S.DELIVERY_STATE_SENT, "sent")
        assert history(status) == [
            ("profile", planned),
            ("eligibility", "allowed"),
            ("frequency", "no_cap_policy"),
            ("inapp", "sent"),
        ]


async def test_email_and_inapp_are_both_sent_to_a_user_with_an_address_and_email_is_suppressed_without(
    mesh: Mesh,
):
    await mesh.add_profile("has-email", "has-email@example.com")
    await mesh.add_profile("no-email")
    intent_id = await mesh.submit(
        intent_for("e2e-b", ["has-email", "no-email"], [C.CHANNEL_EMAIL, C.CHANNEL_INAPP])
    )
    view = await mesh.completed(intent_id)
    deliveries = by_delivery(view)

    assert current(deliveries[("has-email", C.CHANNEL_EMAIL)]) == (
        "email",
        S.DELIVERY_STATE_SENT,
        "sent",
    )
    assert current(deliveries[("has-email", C.CHANNEL_INAPP)]) == (
        "inapp",
        S.DELIVERY_STATE_SENT,
        "sent",
    )
    written = json.loads(mesh.email_file(intent_id, "has-email").read_text())
    assert (written["to"], written["subject"], written["text"]) == (
        "has-email@example.com",
        "Your cart",
        "You left something behind",
    )
    assert (written["intent_id"], written["user_id"]) == (intent_id, "has-email")

    no_email = deliveries[("no-email", C.CHANNEL_EMAIL)]
    assert current(no_email) == ("eligibility", S.DELIVERY_STATE_SUPPRESSED, "no_contact_point")
    assert history(no_email) == [("profile", "planned"), ("eligibility", "no_contact_point")]
    assert current(deliveries[("no-email", C.CHANNEL_INAPP)]) == (
        "inapp",
        S.DELIVERY_STATE_SENT,
        "sent",
    )
    assert not mesh.email_file(intent_id, "no-email").exists()
    for user in ("has-email", "no-email"):
        assert len(await mesh.inbox_of(user, intent_id)) == 1


async def test_first_available_falls_back_to_inapp_without_an_address_and_stops_at_email_with_one(
    mesh: Mesh,
):
    await mesh.add_profile("no-email")
    await mesh.add_profile("has-email", "has-email@example.com")
    intent_id = await mesh.submit(
        intent_for(
            "e2e-c",
            ["no-email", "has-email"],
            [C.CHANNEL_EMAIL, C.CHANNEL_INAPP],
            intent_pb2.STRATEGY_FIRST_AVAILABLE,
        )
    )
    view = await mesh.completed(intent_id)
    deliveries = by_delivery(view)

    assert current(deliveries[("no-email", C.CHANNEL_EMAIL)]) == (
        "eligibility",
        S.DELIVERY_STATE_SUPPRESSED,
        "no_contact_point",
    )
    assert current(deliveries[("no-email", C.CHANNEL_INAPP)]) == (
        "inapp",
        S.DELIVERY_STATE_SENT,
        "sent",
    )
    assert len(await mesh.inbox_of("no-email", intent_id)) == 1
    assert not mesh.email_file(intent_id, "no-email").exists()

    assert current(deliveries[("has-email", C.CHANNEL_EMAIL)]) == (
        "email",
        S.DELIVERY_STATE_SENT,
        "sent",
    )
    skipped = deliveries[("has-email", C.CHANNEL_INAPP)]
    assert current(skipped) == ("frequency", S.DELIVERY_STATE_SKIPPED, "fallback_not_needed")
    assert history(skipped) == [
        ("profile", "planned"),
        ("eligibility", "allowed"),
        ("frequency", "fallback_not_needed"),
    ]
    assert mesh.email_file(intent_id, "has-email").exists()
    assert await mesh.inbox_of("has-email", intent_id) == []
