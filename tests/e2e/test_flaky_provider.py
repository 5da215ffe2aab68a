"""A provider that fails 30% of the time: every message still arrives, once.

The SMS peer answers a seeded random 30% of requests with 500, 503 or 429
(Retry-After: 1). The worker retries through the real delay queues; the peer
counts every message it accepted per idempotency token (the delivery id), so
a message sent twice would show as a count of 2.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Tenants
from tests.e2e.sms_mesh import S, SmsMesh, phone_of, sms_delivery_id, sms_mesh
from tests.integration.bus_helpers import queue_depth

INTENTS = 60
FAILURE_RATE = 0.3
# Each message fails at most 4 times and has 6 attempts, so none can go to
# dead letters by bad luck: the test is about retries, not about odds.
MAX_FAILURES_PER_MESSAGE = 4
MAX_ATTEMPTS = 6


@pytest.fixture
async def mesh(
    make_settings: Callable[..., Any],
    tenants: Tenants,
    tmp_path: Path,
    amqp_url: str,
    namespace: str,
) -> AsyncIterator[SmsMesh]:
    async with sms_mesh(
        make_settings, tenants, tmp_path, amqp_url, namespace, max_attempts=MAX_ATTEMPTS
    ) as running:
        yield running


async def test_a_provider_failing_thirty_percent_of_the_time_still_gets_every_message_exactly_once(
    mesh: SmsMesh,
):
    users = [f"flaky-{n}" for n in range(INTENTS)]
    await asyncio.gather(*(mesh.add_user(u, phone_of(n)) for n, u in enumerate(users)))
    mesh.peer.fail_randomly(
        FAILURE_RATE, seed=20300115, max_per_token=MAX_FAILURES_PER_MESSAGE, retry_after="1"
    )

    ids = await asyncio.gather(*(mesh.submit_sms(f"flaky-{u}", u) for u in users))
    intents = dict(zip(users, ids, strict=True))
    statuses = await mesh.settled(intents, S.DELIVERY_STATE_SENT, "sent")

    # The fault happened: many answers were errors, of every kind.
    failures = mesh.peer.failures
    assert sum(failures.values()) >= 10, failures
    assert {500, 503, 429} <= set(failures), failures
    assert max(mesh.peer.failures_by_token.values()) >= 2  # some were retried more than once

    expected = {sms_delivery_id(intents[u], u) for u in users}
    assert set(mesh.peer.accepts_by_token) == expected
    assert all(count == 1 for count in mesh.peer.accepts_by_token.values())
    assert sorted(a.to for a in mesh.peer.accepted) == sorted(phone_of(n) for n in range(INTENTS))
    for user, status in statuses.items():
        assert status.delivery_id == sms_delivery_id(intents[user], user)
        assert ("sms", "sent") in [(h.stage, h.reason) for h in status.history]
    dead = mesh.topology.dead_letter_queue("send.sms")
    assert await queue_depth(mesh.amqp_url, dead) == 0
