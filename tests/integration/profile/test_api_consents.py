"""SetConsent, ListConsentHistory and quiet hours on a running profile service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2 as pb

from tests.integration.grpc_helpers import bad_fields
from tests.integration.profile.conftest import full_profile
from tests.integration.profile.test_api import get, upsert

C = intent_pb2.Channel
T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def statement(channel: int, granted: bool, source: str = "form", **kw) -> pb.Consent:
    return pb.Consent(channel=channel, granted=granted, source=source, **kw)  # type: ignore[arg-type]


def timestamp_in(delta: timedelta) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(datetime.now(UTC) + delta)
    return ts


async def set_consent(profiles, tenants, user: str, consent: pb.Consent, tenant: str = "acme"):
    request = pb.SetConsentRequest(user_id=user, consent=consent)
    return (await profiles.SetConsent(request, metadata=tenants.metadata(tenant))).profile


async def history(profiles, tenants, user: str, **kw) -> pb.ListConsentHistoryResponse:
    request = pb.ListConsentHistoryRequest(user_id=user, **kw)
    return await profiles.ListConsentHistory(request, metadata=tenants.metadata())


async def test_consent_is_stamped_now_when_it_has_no_time_and_shows_on_the_profile(
    profiles, tenants
):
    await upsert(profiles, tenants, full_profile("u1"))
    before = datetime.now(UTC) - timedelta(seconds=1)
    profile = await set_consent(profiles, tenants, "u1", statement(C.CHANNEL_EMAIL, True))
    [consent] = profile.consents
    assert (consent.channel, consent.granted, consent.source) == (C.CHANNEL_EMAIL, True, "form")
    assert consent.at.ToDatetime(tzinfo=UTC) >= before
    assert list((await get(profiles, tenants, "u1")).consents) == [consent]


async def test_every_statement_stays_in_the_history_and_the_profile_shows_the_latest_per_pair(
    profiles, tenants
):
    await upsert(profiles, tenants, full_profile("u1"))
    written = []
    for n, (channel, granted) in enumerate(
        [(C.CHANNEL_EMAIL, True), (C.CHANNEL_SMS, True), (C.CHANNEL_EMAIL, False)]
    ):
        consent = statement(channel, granted, source=f"source-{n}")
        consent.at.FromDatetime(T0 + timedelta(hours=n))
        written.append(consent)
        await set_consent(profiles, tenants, "u1", consent)
    # Upserting the profile again changes no consent.
    await upsert(profiles, tenants, full_profile("u1"))
    assert list((await get(profiles, tenants, "u1")).consents) == [written[2], written[1]]

    first = await history(profiles, tenants, "u1", page_size=2)
    rest = await history(profiles, tenants, "u1", page_token=first.next_page_token)
    assert [*first.consents, *rest.consents] == list(reversed(written))
    assert rest.next_page_token == ""


async def test_consent_for_an_unknown_profile_is_not_found(profiles, tenants):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await set_consent(profiles, tenants, "nobody", statement(C.CHANNEL_EMAIL, True))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    await upsert(profiles, tenants, full_profile("nobody"), tenant="globex")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await set_consent(profiles, tenants, "nobody", statement(C.CHANNEL_EMAIL, True))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("consent", "field"),
    [
        (statement(C.CHANNEL_EMAIL, True, source=""), "consent.source"),
        (statement(C.ValueType(42), True), "consent.channel"),
        (statement(C.CHANNEL_EMAIL, True, category="Promo!"), "consent.category"),
        (statement(C.CHANNEL_EMAIL, True, at=timestamp_in(timedelta(hours=1))), "consent.at"),
    ],
    ids=["no source", "unknown channel", "bad category", "in the future"],
)
async def test_a_bad_consent_is_refused_naming_the_field(profiles, tenants, consent, field):
    await upsert(profiles, tenants, full_profile("u1"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await set_consent(profiles, tenants, "u1", consent)
    assert list(bad_fields(err.value)) == [field]
    assert list((await history(profiles, tenants, "u1")).consents) == []


async def test_quiet_hours_are_part_of_the_profile_and_checked(profiles, tenants):
    profile = full_profile("u1")
    profile.quiet_hours.start_minute, profile.quiet_hours.end_minute = 1260, 480
    await upsert(profiles, tenants, profile)
    assert (await get(profiles, tenants, "u1")).quiet_hours == profile.quiet_hours
    profile.quiet_hours.end_minute = 1440
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await upsert(profiles, tenants, profile)
    assert list(bad_fields(err.value)) == ["profile.quiet_hours.end_minute"]
