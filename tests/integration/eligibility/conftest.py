from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sendmesh.eligibility.v1 import eligibility_pb2_grpc
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2

from services.eligibility.__main__ import create_runtime
from services.eligibility.settings import EligibilitySettings
from shared.runtime import ServiceRuntime
from tests.conftest import running
from tests.integration.grpc_helpers import channel_to

C = intent_pb2.Channel
HASH_KEY = "integration-test-hash-key"


def cart_reminder(kind: int = intent_pb2.KIND_MARKETING) -> intent_pb2.SendIntent:
    intent = intent_pb2.SendIntent(
        category="cart_reminder",
        kind=kind,  # type: ignore[arg-type]
        channels=[C.CHANNEL_EMAIL, C.CHANNEL_SMS, C.CHANNEL_INAPP],
    )
    intent.content.template.template_id = "cart-v1"
    return intent


def opted_in(user: str, timezone: str = "Europe/Vienna") -> profile_pb2.Profile:
    profile = profile_pb2.Profile(user_id=user, timezone=timezone)
    profile.contacts.email = f"{user}@example.com"
    profile.contacts.phone = "+4366412345678"
    profile.consents.add(channel=C.CHANNEL_UNSPECIFIED, category="", granted=True)
    return profile


@pytest.fixture
async def eligibility(make_settings: Callable[..., Any]) -> AsyncIterator[ServiceRuntime]:
    settings = make_settings(EligibilitySettings, suppression_hash_key=HASH_KEY)
    async with running(create_runtime(settings)) as runtime:
        yield runtime


@pytest.fixture
async def stub(eligibility: ServiceRuntime) -> AsyncIterator[eligibility_pb2_grpc.EligibilityStub]:
    async with channel_to(eligibility.port) as channel:
        yield eligibility_pb2_grpc.EligibilityStub(channel)
