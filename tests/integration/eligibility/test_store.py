"""The eligibility store on SQLite and PostgreSQL: suppression hashes and quiet-hours policies."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sendmesh.eligibility.v1 import eligibility_pb2
from sendmesh.intent.v1 import intent_pb2
from sqlalchemy import select, text

from services.eligibility import store
from services.eligibility.policies import QuietHoursCache
from services.eligibility.quiet_hours import QuietPolicy
from services.eligibility.suppression import contact_hash

C = intent_pb2.Channel
EMAIL, SMS = C.CHANNEL_EMAIL, C.CHANNEL_SMS
KEY = b"test-key-0123456789"
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
BOUNCE = eligibility_pb2.SUPPRESSION_REASON_HARD_BOUNCE
STOP = eligibility_pb2.SUPPRESSION_REASON_SMS_STOP


def email_entry(address: str, reason: int = BOUNCE) -> store.Entry:
    return store.Entry(EMAIL, contact_hash(KEY, EMAIL, address), reason, "550 no such user", T0)


def sms_entry(number: str) -> store.Entry:
    return store.Entry(SMS, contact_hash(KEY, SMS, number), STOP, "", T0)


@pytest.fixture
async def engine(store_engine):
    return await store_engine(store.TABLES)


async def test_listed_contacts_are_found_by_hash_for_their_tenant_only(engine):
    await store.add_suppressions(engine, "acme", [email_entry("a@example.com")])
    await store.add_suppressions(engine, "globex", [sms_entry("+4366412345678")])
    a = contact_hash(KEY, EMAIL, "A@Example.com ")
    phone = contact_hash(KEY, SMS, "+4366412345678")
    wanted = {
        ("acme", EMAIL, a),
        ("acme", SMS, phone),
        ("globex", EMAIL, a),
        ("globex", SMS, phone),
    }
    assert await store.find_suppressions(engine, wanted) == {
        ("acme", EMAIL, a): BOUNCE,
        ("globex", SMS, phone): STOP,
    }
    assert await store.find_suppressions(engine, set()) == {}


async def test_the_table_holds_hashes_and_never_the_contact(engine):
    await store.add_suppressions(engine, "acme", [email_entry("secret.person@example.com")])
    async with engine.connect() as conn:
        dump = repr((await conn.execute(select(store.SuppressionRow))).all())
    assert "secret.person" not in dump
    assert contact_hash(KEY, EMAIL, "secret.person@example.com") in dump


async def test_a_contact_listed_twice_is_added_once_and_keeps_its_first_reason(engine):
    first = await store.add_suppressions(engine, "acme", [email_entry("a@example.com")])
    again = await store.add_suppressions(
        engine,
        "acme",
        [
            email_entry("a@example.com", eligibility_pb2.SUPPRESSION_REASON_COMPLAINT),
            email_entry("b@example.com"),
        ],
    )
    assert (first, again) == (1, 1)
    page = await store.list_suppressions(engine, "acme", EMAIL, 10, None)
    reasons = {e.contact_hash: e.reason for e in page}
    assert reasons[contact_hash(KEY, EMAIL, "a@example.com")] == BOUNCE


async def test_removal_takes_only_the_callers_entries_and_counts_them(engine):
    entry = email_entry("a@example.com")
    await store.add_suppressions(engine, "acme", [entry])
    await store.add_suppressions(engine, "globex", [entry])
    key = (EMAIL, entry.contact_hash)
    assert await store.remove_suppressions(engine, "acme", {key, (SMS, entry.contact_hash)}) == 1
    assert await store.remove_suppressions(engine, "acme", {key}) == 0
    remaining = await store.find_suppressions(engine, {("acme", *key), ("globex", *key)})
    assert list(remaining) == [("globex", *key)]


async def test_the_list_pages_in_channel_and_hash_order_with_timestamps_in_utc(engine):
    entries = [email_entry(f"u{i}@example.com") for i in range(5)] + [sms_entry("+4366412345678")]
    await store.add_suppressions(engine, "acme", entries)
    await store.add_suppressions(engine, "globex", [email_entry("other@example.com")])
    seen, after = [], None
    while True:
        rows = await store.list_suppressions(engine, "acme", None, 4, after)
        page = rows[:4]
        seen.extend(page)
        if len(rows) <= 4:
            break
        after = (page[-1].channel, page[-1].contact_hash)
    assert [(e.channel, e.contact_hash) for e in seen] == sorted(
        (e.channel, e.contact_hash) for e in entries
    )
    assert all(e.at == T0 and e.at.tzinfo is not None for e in seen)
    only_sms = await store.list_suppressions(engine, "acme", SMS, 10, None)
    assert [e.channel for e in only_sms] == [SMS]


async def test_a_whole_consumer_batch_of_keys_is_looked_up_at_once(engine):
    entries = [email_entry(f"u{i}@example.com") for i in range(300)]
    await store.add_suppressions(engine, "acme", entries)
    keys = {("acme", EMAIL, contact_hash(KEY, EMAIL, f"u{i}@example.com")) for i in range(6000)}
    found = await store.find_suppressions(engine, keys)
    assert len(found) == 300


async def test_quiet_hours_are_stored_per_tenant_and_replaced_by_a_new_policy(engine):
    vienna = QuietPolicy(True, 1260, 480, "Europe/Vienna")
    await store.set_quiet_hours(engine, "acme", vienna, T0)
    assert await store.quiet_hours_of(engine, ["acme", "globex"]) == {"acme": vienna}
    off = QuietPolicy(False, 0, 0, "")
    await store.set_quiet_hours(engine, "acme", off, T0)
    await store.set_quiet_hours(engine, "globex", vienna, T0)
    assert await store.quiet_hours_of(engine, ["acme", "globex"]) == {
        "acme": off,
        "globex": vienna,
    }
    async with engine.connect() as conn:
        count = (await conn.execute(text("SELECT count(*) FROM quiet_hours_policies"))).scalar()
    assert count == 2


async def test_the_consumers_policy_cache_rereads_a_tenant_only_after_its_ttl(engine):
    clock = [100.0]
    cache = QuietHoursCache(engine, ttl_s=30, clock=lambda: clock[0])
    assert await cache.get_many(["acme"]) == {"acme": None}
    policy = QuietPolicy(True, 1260, 480, "")
    await store.set_quiet_hours(engine, "acme", policy, T0)
    clock[0] += 29
    assert await cache.get_many(["acme"]) == {"acme": None}
    clock[0] += 1
    assert await cache.get_many(["acme", "globex"]) == {"acme": policy, "globex": None}
