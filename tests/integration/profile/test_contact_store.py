"""Profiles found by phone number, and keyword consent recorded for them, on
SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sendmesh.intent.v1 import intent_pb2
from sqlalchemy import inspect

from services.profile.contact_store import ContactStore, Statement
from services.profile.store import TABLES, ProfileStore
from tests.integration.profile.conftest import full_profile

SMS = intent_pb2.Channel.CHANNEL_SMS
T0 = datetime(2030, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
PHONE = "+4366412345678"


@pytest.fixture
async def profiles(store_engine):
    return ProfileStore(await store_engine(TABLES))


@pytest.fixture
def contacts(profiles):
    return ContactStore(profiles.engine)


async def test_the_owners_of_a_number_are_found_within_their_tenant_only(profiles, contacts):
    for tenant, user, phone in [
        ("acme", "u1", PHONE),
        ("acme", "u2", PHONE),
        ("acme", "u3", "+15005550006"),
        ("globex", "g1", PHONE),
    ]:
        profile = full_profile(user)
        profile.contacts.phone = phone
        await profiles.upsert(tenant, profile, T0)

    owners = await contacts.owners_of_phones("acme", {PHONE, "+4369912345678"})

    assert owners == {PHONE: ["u1", "u2"]}


async def test_the_lookup_is_indexed_and_making_the_index_again_changes_nothing(contacts):
    await contacts.ensure_index()
    await contacts.ensure_index()

    async with contacts.engine.connect() as conn:
        indexes = await conn.run_sync(lambda c: inspect(c).get_indexes("profiles"))
    assert {"name": "ix_profiles_phone", "columns": ["tenant_id", "phone"]} in [
        {"name": i["name"], "columns": i["column_names"]} for i in indexes
    ]


async def test_a_statement_recorded_again_is_not_added_twice(profiles, contacts):
    await profiles.upsert("acme", full_profile("u1"), T0)
    stop = Statement("u1", SMS, False, "sms_keyword", T0)
    start = Statement("u1", SMS, True, "sms_keyword", T0.replace(minute=5))

    first = await contacts.record("acme", [stop], T0)
    again = await contacts.record("acme", [stop, start, start], T0)
    [current] = (await profiles.get_many("acme", ["u1"]))["u1"].consents

    assert (first, again) == (1, 1)
    assert (current.channel, current.granted, current.source) == (SMS, True, "sms_keyword")
