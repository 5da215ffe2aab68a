"""The Profiles gRPC API on a running profile service: real server, real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from sendmesh.profile.v1 import profile_pb2
from sqlalchemy import select

from services.profile.store import BehaviourEventRow
from shared.runtime import ServiceRuntime
from tests.conftest import Tenants
from tests.integration.grpc_helpers import bad_fields
from tests.integration.profile.conftest import full_profile


async def upsert(profiles, tenants: Tenants, profile, tenant: str = "acme"):
    request = profile_pb2.UpsertProfileRequest(profile=profile)
    return (await profiles.UpsertProfile(request, metadata=tenants.metadata(tenant))).profile


async def get(profiles, tenants: Tenants, user: str, tenant: str = "acme"):
    request = profile_pb2.GetProfileRequest(user_id=user)
    return (await profiles.GetProfile(request, metadata=tenants.metadata(tenant))).profile


async def record(profiles, tenants: Tenants, user: str, name: str, tenant: str = "acme", **kw):
    event = profile_pb2.BehaviourEvent(name=name, **kw)
    request = profile_pb2.RecordEventRequest(user_id=user, event=event)
    await profiles.RecordEvent(request, metadata=tenants.metadata(tenant))


async def erase(profiles, tenants: Tenants, user: str, tenant: str = "acme") -> bool:
    request = profile_pb2.EraseProfileRequest(user_id=user)
    return (await profiles.EraseProfile(request, metadata=tenants.metadata(tenant))).erased


async def stored_events(runtime: ServiceRuntime, tenant: str, user: str) -> list[BehaviourEventRow]:
    """Behaviour events in the profile service's own database, read directly."""
    assert runtime.engine is not None
    async with runtime.engine.connect() as conn:
        rows = await conn.execute(
            select(BehaviourEventRow)
            .where(BehaviourEventRow.tenant_id == tenant, BehaviourEventRow.user_id == user)  # type: ignore[arg-type]
            .order_by(BehaviourEventRow.id)  # type: ignore[arg-type]
        )
        return [BehaviourEventRow.model_validate(r._mapping) for r in rows]


def without_time(profile: profile_pb2.Profile) -> profile_pb2.Profile:
    copy = profile_pb2.Profile()
    copy.CopyFrom(profile)
    copy.ClearField("updated_at")
    return copy


async def test_an_upserted_profile_reads_back_as_written_with_its_update_time(profiles, tenants):
    before = datetime.now(UTC) - timedelta(seconds=1)
    written = full_profile("u1")
    saved = await upsert(profiles, tenants, written)
    assert without_time(saved) == written
    assert saved.updated_at.ToDatetime(tzinfo=UTC) >= before
    read = await get(profiles, tenants, "u1")
    assert without_time(read) == written
    assert read.updated_at == saved.updated_at


async def test_an_upsert_replaces_the_whole_profile(profiles, tenants):
    first = await upsert(profiles, tenants, full_profile("u1"))
    replacement = profile_pb2.Profile(user_id="u1", locale="en")
    replacement.contacts.phone = "+15555550100"
    await upsert(profiles, tenants, replacement)
    read = await get(profiles, tenants, "u1")
    assert without_time(read) == replacement
    assert read.contacts.email == "" and len(read.contacts.webpush) == 0
    assert read.updated_at.ToDatetime() >= first.updated_at.ToDatetime()


async def test_an_unknown_profile_is_not_found(profiles, tenants):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await get(profiles, tenants, "nobody")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "nobody" in (err.value.details() or "")


async def test_a_recorded_event_is_stored_at_once_and_stamped_now_when_it_has_no_time(
    profiles, tenants, profile_service
):
    occurred = profile_pb2.BehaviourEvent().occurred_at
    occurred.FromDatetime(datetime(2030, 5, 1, 8, 30, tzinfo=UTC))
    await record(
        profiles, tenants, "u1", "purchase", occurred_at=occurred, properties={"sku": "42"}
    )
    before = datetime.now(UTC) - timedelta(seconds=1)
    await record(profiles, tenants, "u1", "page_view")
    rows = await stored_events(profile_service, "acme", "u1")
    assert [(r.name, r.properties) for r in rows] == [
        ("purchase", {"sku": "42"}),
        ("page_view", {}),
    ]
    assert rows[0].occurred_at == datetime(2030, 5, 1, 8, 30, tzinfo=UTC)
    assert before <= rows[1].occurred_at <= datetime.now(UTC) + timedelta(seconds=1)


async def test_erase_removes_the_profile_and_its_events(profiles, tenants, profile_service):
    await upsert(profiles, tenants, full_profile("u1"))
    await record(profiles, tenants, "u1", "purchase")
    await record(profiles, tenants, "u2", "purchase")  # somebody else's stays

    assert await erase(profiles, tenants, "u1") is True
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await get(profiles, tenants, "u1")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert await stored_events(profile_service, "acme", "u1") == []
    assert len(await stored_events(profile_service, "acme", "u2")) == 1
    assert await erase(profiles, tenants, "u1") is False


async def test_erase_of_a_user_known_only_by_events_erases_them(profiles, tenants, profile_service):
    await record(profiles, tenants, "only-events", "cart_add")
    assert await erase(profiles, tenants, "only-events") is True
    assert await stored_events(profile_service, "acme", "only-events") == []


def _with(**changes: object) -> profile_pb2.Profile:
    profile = full_profile("u1")
    for path, value in changes.items():
        target: object = profile
        *parents, name = path.split("__")
        for parent in parents:
            target = getattr(target, parent)
        setattr(target, name, value)
    return profile


def _bad_webpush(endpoint: str, p256dh: str = "k", auth: str = "a") -> profile_pb2.Profile:
    profile = full_profile("u1")
    profile.contacts.ClearField("webpush")
    profile.contacts.webpush.add(endpoint=endpoint, p256dh=p256dh, auth=auth)
    return profile


BAD_PROFILES = {
    "phone without plus": (_with(contacts__phone="066412345678"), "profile.contacts.phone"),
    "phone with spaces": (_with(contacts__phone="+43 664 123456"), "profile.contacts.phone"),
    "phone too short": (_with(contacts__phone="+12345"), "profile.contacts.phone"),
    "unknown time zone": (_with(timezone="Mars/Olympus_Mons"), "profile.timezone"),
    "utc offset as zone": (_with(timezone="+02:00"), "profile.timezone"),
    "email without at": (_with(contacts__email="not-an-address"), "profile.contacts.email"),
    "email with two ats": (_with(contacts__email="a@b@example.com"), "profile.contacts.email"),
    "email with a space": (_with(contacts__email="a b@example.com"), "profile.contacts.email"),
    "email with a header": (_with(contacts__email="a@x.com\r\nBcc: b@x.com"), "profile.contacts.email"),
    "email too long": (_with(contacts__email="a" * 250 + "@x.com"), "profile.contacts.email"),
    "locale": (_with(locale="english please"), "profile.locale"),
    "user id missing": (_with(user_id=""), "profile.user_id"),
    "user id too long": (_with(user_id="u" * 256), "profile.user_id"),
    "plain http push endpoint": (_bad_webpush("http://push.example/1"), "profile.contacts.webpush[0]"),
    "push without keys": (_bad_webpush("https://push.example/1", p256dh=""), "profile.contacts.webpush[0]"),
}  # fmt: skip


@pytest.mark.parametrize(("profile", "field"), BAD_PROFILES.values(), ids=BAD_PROFILES.keys())
async def test_an_invalid_profile_is_rejected_naming_the_field_and_nothing_is_stored(
    profiles, tenants, profile, field
):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await upsert(profiles, tenants, profile)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(bad_fields(err.value)) == [field]
    if profile.user_id and len(profile.user_id) <= 255:
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await get(profiles, tenants, profile.user_id)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_every_problem_of_a_profile_is_named_at_once(profiles, tenants):
    profile = _with(timezone="Nowhere/Town", contacts__email="x", contacts__phone="12")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await upsert(profiles, tenants, profile)
    assert set(bad_fields(err.value)) == {
        "profile.timezone",
        "profile.contacts.email",
        "profile.contacts.phone",
    }


@pytest.mark.parametrize(
    ("method", "request_", "field"),
    [
        ("GetProfile", profile_pb2.GetProfileRequest(), "user_id"),
        ("EraseProfile", profile_pb2.EraseProfileRequest(user_id="u\n1"), "user_id"),
        (
            "RecordEvent",
            profile_pb2.RecordEventRequest(user_id="", event=profile_pb2.BehaviourEvent(name="x")),
            "user_id",
        ),
        (
            "RecordEvent",
            profile_pb2.RecordEventRequest(user_id="u1", event=profile_pb2.BehaviourEvent()),
            "event.name",
        ),
        (
            "RecordEvent",
            profile_pb2.RecordEventRequest(
                user_id="u1", event=profile_pb2.BehaviourEvent(name="e" * 65)
            ),
            "event.name",
        ),
    ],
    ids=["get without user", "erase with control char", "event without user", "event without name", "event name too long"],
)  # fmt: skip
async def test_other_invalid_requests_are_rejected_naming_the_field(
    profiles, tenants, method, request_, field
):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await getattr(profiles, method)(request_, metadata=tenants.metadata())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(bad_fields(err.value)) == [field]


async def test_a_tenant_never_sees_or_changes_another_tenants_profiles(
    profiles, tenants, profile_service
):
    await upsert(profiles, tenants, full_profile("u1"), tenant="acme")
    await record(profiles, tenants, "u1", "purchase", tenant="acme")

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await get(profiles, tenants, "u1", tenant="globex")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert await erase(profiles, tenants, "u1", tenant="globex") is False

    theirs = profile_pb2.Profile(user_id="u1", locale="fr")
    theirs.contacts.SetInParent()  # the store always gives contacts back, empty or not
    await upsert(profiles, tenants, theirs, tenant="globex")
    assert without_time(await get(profiles, tenants, "u1", tenant="globex")) == theirs
    assert without_time(await get(profiles, tenants, "u1", tenant="acme")) == full_profile("u1")

    assert await erase(profiles, tenants, "u1", tenant="globex") is True
    assert without_time(await get(profiles, tenants, "u1", tenant="acme")) == full_profile("u1")
    assert len(await stored_events(profile_service, "acme", "u1")) == 1


@pytest.mark.parametrize(
    ("method", "request_"),
    [
        ("UpsertProfile", profile_pb2.UpsertProfileRequest(profile=full_profile("u1"))),
        ("GetProfile", profile_pb2.GetProfileRequest(user_id="u1")),
        (
            "RecordEvent",
            profile_pb2.RecordEventRequest(
                user_id="u1", event=profile_pb2.BehaviourEvent(name="purchase")
            ),
        ),
        ("EraseProfile", profile_pb2.EraseProfileRequest(user_id="u1")),
    ],
    ids=["upsert", "get", "record", "erase"],
)
@pytest.mark.parametrize(
    "metadata",
    [(), (("authorization", "Bearer smk_not-a-real-key"),)],
    ids=["no key", "unknown key"],
)
async def test_every_rpc_without_a_valid_key_is_unauthenticated_and_does_nothing(
    profiles, tenants, profile_service, method, request_, metadata
):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await getattr(profiles, method)(request_, metadata=metadata)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await get(profiles, tenants, "u1")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert await stored_events(profile_service, "acme", "u1") == []
