"""RecordEvents, ListEvents and MatchRules on a running profile service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2 as pb

from tests.integration.grpc_helpers import bad_fields
from tests.integration.profile.test_api import stored_events

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def user_event(user: str, name: str, at: datetime | None = None, **props: str) -> pb.UserEvent:
    item = pb.UserEvent(user_id=user, event=pb.BehaviourEvent(name=name, properties=props))
    if at is not None:
        item.event.occurred_at.FromDatetime(at)
    return item


def rule(name: str, within: timedelta, **props: str) -> intent_pb2.BehaviourRule:
    r = intent_pb2.BehaviourRule(event=name, properties=props)
    r.within.FromTimedelta(within)
    return r


async def record(profiles, tenants, *items: pb.UserEvent, tenant: str = "acme") -> int:
    request = pb.RecordEventsRequest(events=items)
    return (await profiles.RecordEvents(request, metadata=tenants.metadata(tenant))).recorded


async def test_a_thousand_events_are_recorded_in_one_call_stamped_now_when_untimed(
    profiles, tenants, profile_service
):
    items = [user_event(f"u{n % 3}", "page_view", T0 + timedelta(seconds=n)) for n in range(999)]
    items.append(user_event("u0", "purchase"))
    before = datetime.now(UTC) - timedelta(seconds=1)
    assert await record(profiles, tenants, *items) == 1000
    rows = await stored_events(profile_service, "acme", "u0")
    assert len(rows) == 334
    assert rows[-1].name == "purchase" and rows[-1].occurred_at >= before


async def test_one_bad_event_refuses_the_whole_call_naming_each_bad_one(
    profiles, tenants, profile_service
):
    items = [user_event("u1", "purchase"), user_event("", "x"), user_event("u1", "")]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await record(profiles, tenants, *items)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(bad_fields(err.value)) == ["events[1].user_id", "events[2].event.name"]
    assert await stored_events(profile_service, "acme", "u1") == []


@pytest.mark.parametrize(("count", "fragment"), [(0, "at least one"), (1001, "at most 1,000")])
async def test_an_empty_or_oversized_event_batch_is_refused(profiles, tenants, count, fragment):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await record(profiles, tenants, *[user_event("u1", "x") for _ in range(count)])
    assert fragment in bad_fields(err.value)["events"]


async def list_events(profiles, tenants, **fields) -> pb.ListEventsResponse:
    return await profiles.ListEvents(pb.ListEventsRequest(**fields), metadata=tenants.metadata())


async def test_events_list_newest_first_a_page_at_a_time_and_filter_by_name_and_time(
    profiles, tenants
):
    await record(
        profiles,
        tenants,
        *[user_event("u1", "view", T0 + timedelta(hours=n), n=str(n)) for n in range(5)],
        user_event("u1", "purchase", T0 + timedelta(hours=2)),
        user_event("u2", "view", T0),
    )
    first = await list_events(profiles, tenants, user_id="u1", name="view", page_size=3)
    assert [e.properties["n"] for e in first.events] == ["4", "3", "2"]
    rest = await list_events(
        profiles, tenants, user_id="u1", name="view", page_size=3, page_token=first.next_page_token
    )
    assert [e.properties["n"] for e in rest.events] == ["1", "0"]
    assert rest.next_page_token == ""

    window = pb.ListEventsRequest(user_id="u1")
    window.since.FromDatetime(T0 + timedelta(hours=2))
    window.until.FromDatetime(T0 + timedelta(hours=4))
    found = await profiles.ListEvents(window, metadata=tenants.metadata())
    assert sorted(e.name for e in found.events) == ["purchase", "view", "view"]
    other_tenant = await profiles.ListEvents(window, metadata=tenants.metadata("globex"))
    assert list(other_tenant.events) == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"user_id": ""}, "user_id"),
        ({"user_id": "u1", "page_token": "nonsense"}, "page_token"),
        ({"user_id": "u1", "page_size": -1}, "page_size"),
        ({"user_id": "u1", "name": "n" * 65}, "name"),
    ],
    ids=["no user", "bad token", "negative page size", "name too long"],
)
async def test_a_bad_event_listing_is_refused_naming_the_field(profiles, tenants, fields, field):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await list_events(profiles, tenants, **fields)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(bad_fields(err.value)) == [field]


async def test_a_window_that_ends_before_it_starts_is_refused(profiles, tenants):
    request = pb.ListEventsRequest(user_id="u1")
    request.since.FromDatetime(T0)
    request.until.FromDatetime(T0)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await profiles.ListEvents(request, metadata=tenants.metadata())
    assert list(bad_fields(err.value)) == ["until"]


async def test_rules_match_stored_events_as_of_the_instant_asked_one_answer_per_check(
    profiles, tenants
):
    await record(
        profiles,
        tenants,
        user_event("buyer", "purchase", T0 - timedelta(hours=3), shop="web"),
        user_event("browser", "page_view", T0 - timedelta(hours=1)),
        user_event("late", "purchase", T0 + timedelta(hours=1)),
    )
    await record(
        profiles, tenants, user_event("buyer", "checkout", T0 - timedelta(hours=1)), tenant="globex"
    )
    rules = [
        rule("checkout", timedelta(hours=2)),
        rule("purchase", timedelta(hours=24), shop="web"),
    ]
    request = pb.MatchRulesRequest(
        checks=[
            pb.RuleCheck(user_id="buyer", rules=rules),
            pb.RuleCheck(user_id="browser", rules=rules),
            pb.RuleCheck(user_id="late", rules=rules),
            pb.RuleCheck(user_id="buyer", rules=[rule("purchase", timedelta(hours=1))]),
            pb.RuleCheck(user_id="buyer"),
        ]
    )
    request.at.FromDatetime(T0)
    reply = await profiles.MatchRules(request, metadata=tenants.metadata())
    assert [(m.user_id, m.matched, m.rule_index) for m in reply.matches] == [
        ("buyer", True, 1),
        ("browser", False, 0),
        ("late", False, 0),
        ("buyer", False, 0),
        ("buyer", False, 0),
    ]
    assert reply.matches[0].event.name == "purchase"
    assert reply.matches[0].event.properties["shop"] == "web"


async def test_bad_rule_checks_are_refused_naming_each_field(profiles, tenants):
    request = pb.MatchRulesRequest(
        checks=[
            pb.RuleCheck(user_id="u1", rules=[intent_pb2.BehaviourRule(event="purchase")]),
            pb.RuleCheck(user_id="", rules=[rule("", timedelta(hours=1))]),
        ]
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await profiles.MatchRules(request, metadata=tenants.metadata())
    assert list(bad_fields(err.value)) == [
        "checks[0].rules[0].within",
        "checks[1].user_id",
        "checks[1].rules[0].event",
    ]
    too_many = pb.MatchRulesRequest(checks=[pb.RuleCheck(user_id="u1")] * 1001)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await profiles.MatchRules(too_many, metadata=tenants.metadata())
    assert list(bad_fields(err.value)) == ["checks"]
