from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sendmesh.intake.v1 import intake_pb2_grpc
from sendmesh.intent.v1 import intent_pb2
from sqlalchemy import func, select

from services.intake.__main__ import create_runtime
from services.intake.settings import IntakeSettings
from services.intake.store import IntentRow
from shared.runtime import ServiceRuntime
from tests.conftest import running
from tests.integration.grpc_helpers import channel_to


def inapp_intent(
    key: str = "k1", users: tuple[str, ...] = ("u1",), **kw: Any
) -> intent_pb2.SendIntent:
    intent = intent_pb2.SendIntent(
        idempotency_key=key,
        category="cart_reminder",
        kind=intent_pb2.KIND_MARKETING,
        channels=[intent_pb2.CHANNEL_INAPP],
        **kw,
    )
    intent.audience.user_ids.extend(users)
    intent.content.inline.inapp.title = "Your cart"
    intent.content.inline.inapp.body = "misses you"
    return intent


async def stored_intents(runtime: ServiceRuntime) -> int:
    """Intents in intake's own database, read directly."""
    assert runtime.engine is not None
    async with runtime.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(IntentRow))).scalar_one())


@pytest.fixture
async def intake(make_settings: Callable[..., Any]) -> AsyncIterator[ServiceRuntime]:
    async with running(create_runtime(make_settings(IntakeSettings))) as runtime:
        yield runtime


@pytest.fixture
async def stub(intake: ServiceRuntime) -> AsyncIterator[intake_pb2_grpc.IntakeStub]:
    async with channel_to(intake.port) as channel:
        yield intake_pb2_grpc.IntakeStub(channel)
