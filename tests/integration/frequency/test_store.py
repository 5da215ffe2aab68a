"""Policies and reservations on SQLite and PostgreSQL, and the race for the last slot."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sendmesh.intent.v1 import intent_pb2
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.frequency import ledger, store
from services.frequency.caps import CALENDAR_DAY, ROLLING, Policy
from services.frequency.choice import Ask, Outcome, Request
from services.frequency.pruning import Pruner
from shared.clock import utcnow
from shared.db import table_of

C = intent_pb2.Channel
EMAIL, PUSH = C.CHANNEL_EMAIL, C.CHANNEL_WEBPUSH
MARKETING = intent_pb2.KIND_MARKETING
NOW = datetime(2026, 6, 10, 12, tzinfo=UTC)

PUSH_DAILY = Policy("push_daily", limit=2, window_kind=CALENDAR_DAY, channel=PUSH)
ALL_DAILY = Policy("all_daily", limit=3, window_kind=CALENDAR_DAY)
WEEKLY = Policy("weekly", limit=5, window_kind=ROLLING, window=timedelta(days=7))


@pytest.fixture
async def engine(store_engine) -> AsyncEngine:
    return await store_engine(store.TABLES)


def push(delivery_id: str, user: str = "u1", at: datetime = NOW, *more: Ask) -> Request:
    asks = (Ask(delivery_id, PUSH, "cart", MARKETING), *more)
    return Request("acme", user, at, UTC, asks)


async def outcomes(engine: AsyncEngine, *requests: Request, dry_run: bool = False) -> list[str]:
    verdicts = await ledger.reserve(engine, list(requests), dry_run=dry_run)
    return [v.outcome.value for tried in verdicts for v in tried]


async def reservation_count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).select_from(table_of(store.ReservationRow))
        return int((await conn.execute(query)).scalar_one())


async def test_policies_are_put_replaced_listed_and_deleted_per_tenant(engine):
    await store.put_policy(engine, "acme", PUSH_DAILY)
    await store.put_policy(engine, "acme", WEEKLY)
    await store.put_policy(engine, "acme", Policy("push_daily", limit=4, window_kind=CALENDAR_DAY))
    await store.put_policy(engine, "globex", ALL_DAILY)
    listed = await store.list_policies(engine, "acme")
    assert [(p.policy_id, p.limit, p.channel) for p in listed] == [
        ("push_daily", 4, 0),
        ("weekly", 5, 0),
    ]
    assert listed[1] == WEEKLY
    assert await store.delete_policy(engine, "acme", "weekly") is True
    assert await store.delete_policy(engine, "acme", "weekly") is False
    assert await store.delete_policy(engine, "acme", "all_daily") is False
    assert [p.policy_id for p in await store.list_policies(engine, "globex")] == ["all_daily"]


async def test_two_pushes_a_day_are_reserved_and_the_third_is_capped(engine):
    await store.put_policy(engine, "acme", PUSH_DAILY)
    assert await outcomes(engine, push("d1"), push("d2")) == ["reserved", "reserved"]
    [[capped]] = await ledger.reserve(engine, [push("d3")])
    assert capped.outcome is Outcome.CAPPED
    assert capped.detail == "policy push_daily: 2/2 today"
    assert capped.next_slot == datetime(2026, 6, 11, tzinfo=UTC)
    assert await reservation_count(engine) == 2


async def test_a_repeated_reservation_of_a_delivery_answers_the_same_and_takes_no_slot(engine):
    await store.put_policy(engine, "acme", PUSH_DAILY)
    assert await outcomes(engine, push("d1")) == ["reserved"]
    assert await outcomes(engine, push("d1"), push("d1")) == ["held", "held"]
    assert await outcomes(engine, push("d2")) == ["reserved"]
    assert await reservation_count(engine) == 2


async def test_a_reservation_takes_a_slot_under_every_matching_policy_or_none(engine):
    await store.put_policy(engine, "acme", PUSH_DAILY)
    await store.put_policy(engine, "acme", ALL_DAILY)
    email = Ask("e1", EMAIL, "cart", MARKETING)
    assert await outcomes(engine, push("d1"), push("d2"), push("d3")) == [
        "reserved",
        "reserved",
        "capped",
    ]
    # The push cap is full, the all-channel one is not: no slot is taken anywhere.
    [usage_before] = [u for u in await usage(engine) if u.policy.policy_id == "all_daily"]
    assert usage_before.used == 2
    assert await outcomes(engine, Request("acme", "u1", NOW, UTC, (email,))) == ["reserved"]
    assert {u.policy.policy_id: u.used for u in await usage(engine)} == {
        "all_daily": 3,
        "push_daily": 2,
    }


async def usage(engine: AsyncEngine, user: str = "u1") -> list[ledger.Usage]:
    return await ledger.usage(engine, "acme", user, NOW, UTC)


async def test_first_available_takes_one_slot_on_the_first_free_channel(engine):
    await store.put_policy(engine, "acme", PUSH_DAILY)
    await outcomes(engine, push("d1"), push("d2"))
    email = Ask("e3", EMAIL, "cart", MARKETING)
    verdicts = await ledger.reserve(engine, [push("d3", "u1", NOW, email)])
    assert [(v.delivery_id, v.outcome.value) for v in verdicts[0]] == [
        ("d3", "capped"),
        ("e3", "no_policy"),
    ]
    assert await reservation_count(engine) == 2


async def test_a_dry_run_answers_and_keeps_nothing(engine):
    await store.put_policy(engine, "acme", PUSH_DAILY)
    assert await outcomes(engine, push("d1"), push("d2"), dry_run=True) == ["reserved", "reserved"]
    assert await reservation_count(engine) == 0


async def test_recipients_and_tenants_are_counted_apart(engine):
    await store.put_policy(engine, "acme", PUSH_DAILY)
    await store.put_policy(engine, "globex", PUSH_DAILY)
    other_tenant = Request("globex", "u1", NOW, UTC, (Ask("d3", PUSH, "cart", MARKETING),))
    assert await outcomes(
        engine, push("d1"), push("d2"), push("x1", "u2"), other_tenant, push("d4")
    ) == ["reserved", "reserved", "reserved", "reserved", "capped"]


async def test_a_calendar_day_is_the_recipients_day(engine):
    await store.put_policy(engine, "acme", PUSH_DAILY)
    tokyo = ZoneInfo("Asia/Tokyo")

    # Tokyo is UTC+9: 13:00 and 14:00 UTC fall on the 10th there, 16:00 on the 11th.
    def at(hour: int) -> Request:
        return Request("acme", "u1", NOW.replace(hour=hour), tokyo, (Ask(f"d{hour}", PUSH, "", 0),))

    assert await outcomes(engine, at(13), at(14), at(16), at(17)) == ["reserved"] * 4
    assert await outcomes(engine, at(18)) == ["capped"]


async def test_a_released_delivery_frees_its_slot(engine):
    await store.put_policy(engine, "acme", PUSH_DAILY)
    await outcomes(engine, push("d1"), push("d2"))
    assert await store.release(engine, [("acme", "d1"), ("acme", "nope"), ("globex", "d2")]) == 1
    assert await outcomes(engine, push("d3")) == ["reserved"]


async def test_an_erased_user_leaves_no_reservation_behind(engine):
    await store.put_policy(engine, "acme", PUSH_DAILY)
    await outcomes(engine, push("d1"), push("d2"), push("x1", "u2"))
    assert await store.erase_users(engine, [("acme", "u1"), ("globex", "u2")]) == 2
    assert [u.used for u in await usage(engine, "u1")] == [0]
    assert [u.used for u in await usage(engine, "u2")] == [1]


async def test_usage_says_how_full_each_policy_is_and_when_it_frees(engine):
    assert await usage(engine) == []
    await store.put_policy(engine, "acme", PUSH_DAILY)
    await store.put_policy(engine, "acme", WEEKLY)
    await outcomes(engine, push("d1"), push("d2"))
    found = {u.policy.policy_id: (u.used, u.next_slot) for u in await usage(engine)}
    assert found == {
        "push_daily": (2, datetime(2026, 6, 11, tzinfo=UTC)),
        "weekly": (2, None),
    }


async def test_pruning_deletes_only_reservations_no_policy_can_count(engine):
    await store.put_policy(engine, "acme", WEEKLY)
    old, recent = NOW - timedelta(days=9), NOW - timedelta(days=6)
    await outcomes(engine, push("old", at=old), push("recent", at=recent), push("now"))
    assert await store.prune(engine, NOW) == 1
    assert [u.used for u in await usage(engine)] == [2]
    assert await store.prune(engine, NOW) == 0


async def test_the_pruner_deletes_old_reservations_while_it_runs(engine):
    await store.put_policy(engine, "acme", WEEKLY)
    await outcomes(engine, push("old", at=utcnow() - timedelta(days=30)), push("now", at=utcnow()))
    pruner = Pruner(engine, 0.05)
    await pruner.start()
    try:
        for _ in range(100):
            if await reservation_count(engine) == 1:
                break
            await asyncio.sleep(0.05)
    finally:
        await pruner.stop()
    assert await reservation_count(engine) == 1


async def test_a_batch_of_many_recipients_is_one_call(engine):
    await store.put_policy(engine, "acme", PUSH_DAILY)
    requests = [push(f"d{n}-{i}", f"u{n}") for n in range(300) for i in range(3)]
    found = await outcomes(engine, *requests)
    assert found.count("reserved") == 600
    assert found.count("capped") == 300


async def test_only_as_many_racing_reservations_as_the_limit_are_granted(
    engine, store_engine, database_url
):
    """20 workers race for one user's 2 slots, on two engines where the
    database allows it (two replicas); each ends in its own transaction."""
    await store.put_policy(engine, "acme", PUSH_DAILY)
    replicas = [engine]
    if database_url.startswith("postgresql"):
        replicas.append(await store_engine(store.TABLES))

    async def race(n: int) -> list[str]:
        return await outcomes(replicas[n % len(replicas)], push(f"race-{n}"))

    results = await asyncio.gather(*(race(n) for n in range(20)))
    flat = [outcome for result in results for outcome in result]
    assert flat.count("reserved") == 2
    assert flat.count("capped") == 18
    assert await reservation_count(engine) == 2
