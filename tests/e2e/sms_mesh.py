"""The pipeline of test_pipeline.py with an SMS worker whose provider is the
twilio one, talking HTTP to the local Twilio-style peer (tests/peers/sms.py):
intake, profile, eligibility, frequency and sms, in this process, on the real
broker, each with its own database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sendmesh.eligibility.v1 import eligibility_pb2, eligibility_pb2_grpc
from sendmesh.intake.v1 import intake_pb2, intake_pb2_grpc
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2, profile_pb2_grpc

from services.eligibility import __main__ as eligibility
from services.eligibility.settings import EligibilitySettings
from services.frequency import __main__ as frequency
from services.frequency.settings import FrequencySettings
from services.intake import __main__ as intake
from services.intake.settings import IntakeSettings
from services.profile import __main__ as profile
from services.profile.settings import ProfileSettings
from services.sms import __main__ as sms
from services.sms.settings import SmsSettings
from shared.auth import new_api_key
from shared.bus.topology import Topology
from shared.ids import delivery_id
from tests import servers
from tests.conftest import TEST_RETRY_DELAYS, Tenants, running
from tests.e2e.test_pipeline import eventually
from tests.integration.grpc_helpers import channel_to
from tests.peers.sms import ACCOUNT_SID, AUTH_TOKEN, SmsPeer

C = intent_pb2.Channel
S = intent_pb2.DeliveryState
I = intake_pb2.IntentState  # noqa: E741
T = TypeVar("T")

SERVICES: list[tuple[str, Any, type]] = [
    ("intake", intake, IntakeSettings),
    ("profile", profile, ProfileSettings),
    ("eligibility", eligibility, EligibilitySettings),
    ("frequency", frequency, FrequencySettings),
    ("sms", sms, SmsSettings),
]
FROM = "+15005550006"
# A give-up bound for a loaded machine, not a speed requirement.
SETTLED_WITHIN_S = 120.0


def phone_of(n: int) -> str:
    """A distinct, valid number per user: suppressing one suppresses no other."""
    return f"+1415555{2600 + n:04d}"


@dataclass
class SmsMesh:
    tenants: Tenants
    intake: intake_pb2_grpc.IntakeStub
    profiles: profile_pb2_grpc.ProfilesStub
    eligibility: eligibility_pb2_grpc.EligibilityStub
    peer: SmsPeer
    topology: Topology
    amqp_url: str

    async def add_user(self, user: str, phone: str) -> None:
        p = profile_pb2.Profile(user_id=user, locale="en", timezone="Europe/Vienna")
        p.contacts.phone = phone
        request = profile_pb2.UpsertProfileRequest(profile=p)
        await self.profiles.UpsertProfile(request, metadata=self.tenants.metadata())

    async def submit_sms(self, key: str, user: str) -> str:
        intent = intent_pb2.SendIntent(
            idempotency_key=key,
            category="security",
            kind=intent_pb2.KIND_TRANSACTIONAL,
            channels=[C.CHANNEL_SMS],
        )
        intent.audience.user_ids.append(user)
        intent.content.inline.sms.text = "Your code is 1234"
        reply = await self.intake.Submit(
            intake_pb2.SubmitRequest(intent=intent), metadata=self.tenants.metadata()
        )
        return reply.intent_id

    async def suppress(self, phone: str) -> None:
        """The number texted STOP: it is on the tenant's suppression list now."""
        entry = eligibility_pb2.Suppression(
            channel=C.CHANNEL_SMS,
            contact=phone,
            reason=eligibility_pb2.SUPPRESSION_REASON_SMS_STOP,
        )
        request = eligibility_pb2.AddSuppressionsRequest(entries=[entry])
        await self.eligibility.AddSuppressions(request, metadata=self.tenants.metadata())

    async def sms_status(self, intent_id: str) -> intake_pb2.DeliveryStatus | None:
        request = intake_pb2.GetIntentRequest(intent_id=intent_id)
        view = (await self.intake.GetIntent(request, metadata=self.tenants.metadata())).intent
        return next((d for d in view.deliveries if d.channel == C.CHANNEL_SMS), None)

    async def settled(
        self, intents: dict[str, str], state: intent_pb2.DeliveryState.ValueType, reason: str
    ) -> dict[str, intake_pb2.DeliveryStatus]:
        """Each intent's SMS delivery, once every one is in `state` for `reason`."""

        async def probe() -> dict[str, intake_pb2.DeliveryStatus] | None:
            found = await asyncio.gather(*(self.sms_status(i) for i in intents.values()))
            if all(
                d is not None and (d.current.state, d.current.reason) == (state, reason)
                for d in found
            ):
                return {u: d for u, d in zip(intents, found, strict=True) if d is not None}
            return None

        what = f"every SMS delivery {S.Name(state)} ({reason})"
        return await eventually(probe, SETTLED_WITHIN_S, what)


def sms_delivery_id(intent_id: str, user: str) -> str:
    return delivery_id(intent_id, user, C.CHANNEL_SMS)


def wiring(ports: dict[str, int], peer: SmsPeer, sms_overrides: dict[str, Any]) -> dict[str, Any]:
    """Each service's settings for finding the others, as `sendmesh run` sets them."""
    key = new_api_key()
    address = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
    stages = {f"{n}_address": address[n] for n in ("profile", "eligibility", "frequency")}
    vendor = {
        "provider": "twilio",
        "sms_api_base": peer.url,
        "sms_account_sid": ACCOUNT_SID,
        "sms_auth_token": AUTH_TOKEN,
        "sms_from_number": FROM,
        "sms_timeout_s": 5.0,
        "profile_address": address["profile"],
        **sms_overrides,
    }
    extra: dict[str, dict[str, Any]] = {"intake": stages, "sms": vendor}
    return {
        name: {"grpc_port": port, "internal_key": key, **extra.get(name, {})}
        for name, port in ports.items()
    }


@asynccontextmanager
async def sms_mesh(
    make_settings: Callable[..., Any],
    tenants: Tenants,
    tmp_path: Path,
    amqp_url: str,
    namespace: str,
    **sms_overrides: Any,
) -> AsyncIterator[SmsMesh]:
    """The mesh, with `sms_overrides` on the SMS worker's settings (max_attempts...)."""
    with SmsPeer() as peer:
        async with AsyncExitStack() as stack:
            ports = {name: servers.free_port() for name, _, _ in SERVICES}
            wired = wiring(ports, peer, sms_overrides)
            for name, module, settings_cls in SERVICES:
                settings = make_settings(settings_cls, var_dir=tmp_path / name, **wired[name])
                await stack.enter_async_context(running(module.create_runtime(settings)))

            async def stub(name: str, cls: Callable[[Any], T]) -> T:
                return cls(await stack.enter_async_context(channel_to(ports[name])))

            yield SmsMesh(
                tenants=tenants,
                intake=await stub("intake", intake_pb2_grpc.IntakeStub),
                profiles=await stub("profile", profile_pb2_grpc.ProfilesStub),
                eligibility=await stub("eligibility", eligibility_pb2_grpc.EligibilityStub),
                peer=peer,
                topology=Topology(namespace, TEST_RETRY_DELAYS),
                amqp_url=amqp_url,
            )
