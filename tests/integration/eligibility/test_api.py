"""The Eligibility gRPC API on a running service: Check, the suppression list, quiet hours."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import REGISTRY
from sendmesh.eligibility.v1 import eligibility_pb2 as pb
from sendmesh.intent.v1 import intent_pb2

from services.eligibility.suppression import contact_hash
from tests.conftest import Tenants
from tests.integration.eligibility.conftest import HASH_KEY, cart_reminder, opted_in
from tests.integration.grpc_helpers import bad_fields

C = intent_pb2.Channel
S = intent_pb2.DeliveryState
EMAIL, SMS = C.CHANNEL_EMAIL, C.CHANNEL_SMS
KEY = HASH_KEY.encode()
NIGHT_IN_VIENNA = datetime(2030, 1, 15, 22, 0, tzinfo=UTC)
NOON = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)


def ts(at: datetime) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(at)
    return t


async def check(stub, tenants: Tenants, profile, at=NOON, tenant="acme", intent=None):
    request = pb.CheckRequest(intent=intent or cart_reminder(), profile=profile, at=ts(at))
    response = await stub.Check(request, metadata=tenants.metadata(tenant))
    return {d.channel: d.decision for d in response.decisions}


async def add(stub, tenants: Tenants, *entries: pb.Suppression, tenant="acme") -> int:
    request = pb.AddSuppressionsRequest(entries=list(entries))
    return (await stub.AddSuppressions(request, metadata=tenants.metadata(tenant))).added


async def listing(stub, tenants: Tenants, tenant="acme", **kw) -> pb.ListSuppressionsResponse:
    request = pb.ListSuppressionsRequest(**kw)
    return await stub.ListSuppressions(request, metadata=tenants.metadata(tenant))


async def set_quiet(stub, tenants: Tenants, policy: pb.QuietHoursPolicy, tenant="acme"):
    request = pb.SetQuietHoursRequest(policy=policy)
    return (await stub.SetQuietHours(request, metadata=tenants.metadata(tenant))).policy


async def invalid(call, request, tenants: Tenants) -> dict[str, str]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(request, metadata=tenants.metadata())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    return bad_fields(err.value)


def bounce(contact: str, channel: int = EMAIL) -> pb.Suppression:
    return pb.Suppression(
        channel=channel,  # type: ignore[arg-type]
        contact=contact,
        reason=pb.SUPPRESSION_REASON_HARD_BOUNCE,
    )


def decisions_counted() -> float:
    total = 0.0
    for metric in REGISTRY.collect():
        if metric.name == "sendmesh_decisions":
            total += sum(
                s.value
                for s in metric.samples
                if s.name.endswith("_total") and s.labels["stage"] == "eligibility"
            )
    return total


async def test_check_decides_every_channel_as_of_the_instant_asked(stub, tenants):
    await set_quiet(
        stub, tenants, pb.QuietHoursPolicy(enabled=True, start_minute=1260, end_minute=480)
    )
    by_noon = await check(stub, tenants, opted_in("u1"), at=NOON)
    assert [d.reason for d in by_noon.values()] == ["allowed"] * 3
    by_night = await check(stub, tenants, opted_in("u1"), at=NIGHT_IN_VIENNA)
    email = by_night[EMAIL]
    assert (email.state, email.reason) == (S.DELIVERY_STATE_SCHEDULED, "quiet_hours")
    assert email.not_before.ToDatetime(tzinfo=UTC) == datetime(2030, 1, 16, 7, 0, tzinfo=UTC)
    assert email.at.ToDatetime(tzinfo=UTC) == NIGHT_IN_VIENNA


async def test_check_sees_the_callers_suppression_list_only(stub, tenants):
    assert await add(stub, tenants, bounce(" U1@Example.com")) == 1
    mine = await check(stub, tenants, opted_in("u1"))
    assert (mine[EMAIL].reason, mine[EMAIL].detail) == (
        "suppressed",
        "on the suppression list (hard_bounce)",
    )
    assert mine[SMS].reason == "allowed"
    theirs = await check(stub, tenants, opted_in("u1"), tenant="globex")
    assert theirs[EMAIL].reason == "allowed"


async def test_check_is_a_dry_run_that_counts_no_decisions(stub, tenants):
    before = decisions_counted()
    await check(stub, tenants, opted_in("u1"))
    assert decisions_counted() == before


async def test_check_names_every_bad_field(stub, tenants):
    intent = intent_pb2.SendIntent(channels=[EMAIL, 42])  # type: ignore[list-item]
    fields = await invalid(stub.Check, pb.CheckRequest(intent=intent), tenants)
    assert set(fields) == {"intent.channels[1]", "intent.kind", "profile.user_id"}
    fields = await invalid(stub.Check, pb.CheckRequest(), tenants)
    assert "intent.channels" in fields


async def test_suppressions_are_listed_by_hash_and_never_by_contact(stub, tenants):
    await add(stub, tenants, bounce("Ann@Example.com"), bounce("+43 664 12345678", SMS))
    entries = (await listing(stub, tenants)).entries
    assert [(e.channel, e.contact_hash) for e in entries] == [
        (EMAIL, contact_hash(KEY, EMAIL, "ann@example.com")),
        (SMS, contact_hash(KEY, SMS, "+4366412345678")),
    ]
    assert all(e.contact == "" and e.at.seconds > 0 for e in entries)
    assert "ann@" not in str(entries).lower()
    assert len((await listing(stub, tenants, channel=SMS)).entries) == 1
    assert (await listing(stub, tenants, tenant="globex")).entries == []


async def test_a_long_list_pages_with_tokens(stub, tenants):
    await add(stub, tenants, *(bounce(f"u{i}@example.com") for i in range(7)))
    seen: list[str] = []
    token = ""
    for _ in range(5):
        page = await listing(stub, tenants, page_size=3, page_token=token)
        seen.extend(e.contact_hash for e in page.entries)
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)) == 7
    fields = await invalid(
        stub.ListSuppressions, pb.ListSuppressionsRequest(page_token="nonsense"), tenants
    )
    assert set(fields) == {"page_token"}


async def test_a_suppression_is_removed_by_contact_or_by_hash(stub, tenants):
    await add(stub, tenants, bounce("a@example.com"), bounce("b@example.com"))
    digest = contact_hash(KEY, EMAIL, "b@example.com")
    request = pb.RemoveSuppressionsRequest(
        entries=[
            pb.Suppression(channel=EMAIL, contact="A@example.com"),
            pb.Suppression(channel=EMAIL, contact_hash=digest.upper()),
            pb.Suppression(channel=EMAIL, contact="never-listed@example.com"),
        ]
    )
    response = await stub.RemoveSuppressions(request, metadata=tenants.metadata())
    assert response.removed == 2
    assert (await listing(stub, tenants)).entries == []


async def test_another_tenant_cannot_remove_my_suppressions(stub, tenants):
    await add(stub, tenants, bounce("a@example.com"))
    request = pb.RemoveSuppressionsRequest(
        entries=[pb.Suppression(channel=EMAIL, contact="a@example.com")]
    )
    response = await stub.RemoveSuppressions(request, metadata=tenants.metadata("globex"))
    assert response.removed == 0
    assert len((await listing(stub, tenants)).entries) == 1


async def test_adding_names_each_bad_entry_without_repeating_the_contact(stub, tenants):
    request = pb.AddSuppressionsRequest(
        entries=[
            bounce("fine@example.com"),
            bounce("not-an-address"),
            bounce("066412345678", SMS),
            bounce("x@example.com", C.CHANNEL_WEBPUSH),
            pb.Suppression(channel=EMAIL, contact="y@example.com", reason=99),  # type: ignore[arg-type]
            pb.Suppression(channel=EMAIL, detail="x" * 501, contact="z@example.com"),
            pb.Suppression(channel=SMS),
        ]
    )
    fields = await invalid(stub.AddSuppressions, request, tenants)
    assert set(fields) == {
        "entries[1].contact",
        "entries[2].contact",
        "entries[3].channel",
        "entries[4].reason",
        "entries[5].detail",
        "entries[6].contact",
    }
    assert not any("not-an-address" in d or "0664" in d for d in fields.values())
    assert (await listing(stub, tenants)).entries == []  # nothing of a bad call is kept


async def test_adding_takes_at_least_one_and_at_most_a_thousand_entries(stub, tenants):
    assert set(await invalid(stub.AddSuppressions, pb.AddSuppressionsRequest(), tenants)) == {
        "entries"
    }
    many = pb.AddSuppressionsRequest(entries=[bounce(f"u{i}@example.com") for i in range(1001)])
    assert set(await invalid(stub.AddSuppressions, many, tenants)) == {"entries"}


async def test_removing_needs_a_contact_or_a_hash_but_not_both(stub, tenants):
    request = pb.RemoveSuppressionsRequest(
        entries=[
            pb.Suppression(channel=EMAIL),
            pb.Suppression(channel=EMAIL, contact="a@example.com", contact_hash="ab" * 32),
            pb.Suppression(channel=EMAIL, contact_hash="xyz"),
            pb.Suppression(channel=C.CHANNEL_INAPP, contact="a@example.com"),
        ]
    )
    fields = await invalid(stub.RemoveSuppressions, request, tenants)
    assert set(fields) == {
        "entries[0].contact",
        "entries[1]",
        "entries[2].contact_hash",
        "entries[3].channel",
    }


async def test_quiet_hours_are_the_callers_own_and_off_until_set(stub, tenants):
    empty = (
        await stub.GetQuietHours(pb.GetQuietHoursRequest(), metadata=tenants.metadata())
    ).policy
    assert empty == pb.QuietHoursPolicy()
    policy = pb.QuietHoursPolicy(
        enabled=True, start_minute=1260, end_minute=480, default_timezone="Europe/Vienna"
    )
    assert await set_quiet(stub, tenants, policy) == policy
    mine = await stub.GetQuietHours(pb.GetQuietHoursRequest(), metadata=tenants.metadata())
    theirs = await stub.GetQuietHours(
        pb.GetQuietHoursRequest(), metadata=tenants.metadata("globex")
    )
    assert (mine.policy, theirs.policy) == (policy, pb.QuietHoursPolicy())
    by_night = await check(stub, tenants, opted_in("u1"), at=NIGHT_IN_VIENNA, tenant="globex")
    assert by_night[EMAIL].reason == "allowed"


async def test_quiet_hours_name_every_bad_field(stub, tenants):
    bad = pb.SetQuietHoursRequest(
        policy=pb.QuietHoursPolicy(
            enabled=True, start_minute=1440, end_minute=-1, default_timezone="Mars/Olympus"
        )
    )
    assert set(await invalid(stub.SetQuietHours, bad, tenants)) == {
        "policy.start_minute",
        "policy.end_minute",
        "policy.default_timezone",
    }
    empty_window = pb.SetQuietHoursRequest(
        policy=pb.QuietHoursPolicy(enabled=True, start_minute=600, end_minute=600)
    )
    assert set(await invalid(stub.SetQuietHours, empty_window, tenants)) == {"policy.end_minute"}
    assert set(await invalid(stub.SetQuietHours, pb.SetQuietHoursRequest(), tenants)) == {"policy"}
