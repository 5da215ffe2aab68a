"""UpsertProfiles: a bulk import of profiles and their consents in one call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2 as pb

from tests.integration.grpc_helpers import bad_fields
from tests.integration.profile.conftest import full_profile
from tests.integration.profile.test_api import get, upsert

C = intent_pb2.Channel


def with_consent(user: str, channel: int = C.CHANNEL_INAPP, granted: bool = True) -> pb.Profile:
    profile = full_profile(user)
    profile.consents.add(channel=channel, granted=granted, source="import")
    return profile


async def upsert_many(profiles, tenants, items: list[pb.Profile], tenant: str = "acme"):
    request = pb.UpsertProfilesRequest(profiles=items)
    return await profiles.UpsertProfiles(request, metadata=tenants.metadata(tenant))


async def test_a_bulk_import_stores_every_profile_with_its_consents_stamped_now(profiles, tenants):
    before = datetime.now(UTC) - timedelta(seconds=1)
    reply = await upsert_many(profiles, tenants, [with_consent(f"u{i}") for i in range(1000)])
    assert (reply.upserted, reply.consents_added) == (1000, 1000)
    stored = await get(profiles, tenants, "u999")
    assert stored.contacts.email == "u999@example.com"
    [consent] = stored.consents
    assert (consent.channel, consent.granted, consent.source) == (C.CHANNEL_INAPP, True, "import")
    assert consent.at.ToDatetime(tzinfo=UTC) >= before


async def test_a_bulk_import_replaces_existing_profiles_and_appends_to_their_consent_history(
    profiles, tenants
):
    await upsert(profiles, tenants, full_profile("u1"))
    replaced = with_consent("u1", granted=False)
    replaced.locale = "en"
    await upsert_many(profiles, tenants, [replaced])
    stored = await get(profiles, tenants, "u1")
    assert stored.locale == "en"
    assert [c.granted for c in stored.consents] == [False]
    # Another tenant's import of the same user id is another person.
    await upsert_many(profiles, tenants, [with_consent("u1")], tenant="globex")
    assert [c.granted for c in (await get(profiles, tenants, "u1")).consents] == [False]


async def test_a_bulk_import_with_one_bad_item_names_it_and_stores_nothing(profiles, tenants):
    bad_zone = with_consent("u2")
    bad_zone.timezone = "Mars/Base"
    bad_consent = with_consent("u3")
    bad_consent.consents[0].source = ""
    items = [with_consent("u1"), bad_zone, bad_consent, with_consent("u1")]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await upsert_many(profiles, tenants, items)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(bad_fields(err.value)) == {
        "profiles[1].timezone",
        "profiles[2].consents[0].source",
        "profiles[3].user_id",
    }
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await get(profiles, tenants, "u1")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_bulk_import_takes_one_to_a_thousand_profiles(profiles, tenants):
    for items in ([], [full_profile(f"u{i}") for i in range(1001)]):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await upsert_many(profiles, tenants, items)
        assert bad_fields(err.value).keys() == {"profiles"}
