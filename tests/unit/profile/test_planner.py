"""Planning: one delivery per recipient x channel, each with its profile snapshot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2

from services.profile.planner import (
    STAGE,
    chunks,
    continuation,
    could_match,
    is_paged,
    plan_deliveries,
    recipients,
    with_recent_events,
)
from shared.ids import delivery_id

C = intent_pb2.Channel
S = intent_pb2.DeliveryState


def envelope(*users: str, channels: tuple[int, ...] = (C.CHANNEL_EMAIL, C.CHANNEL_INAPP)):
    env = envelope_pb2.Envelope(tenant_id="acme", intent_id="intent-1")
    env.intent.audience.user_ids.extend(users)
    env.intent.channels.extend(channels)  # type: ignore[arg-type]
    return env


def known_profile(user: str) -> profile_pb2.Profile:
    profile = profile_pb2.Profile(user_id=user, locale="de-AT", timezone="Europe/Vienna")
    profile.contacts.email = f"{user}@example.com"
    profile.attributes.update({"member": True})
    return profile


def test_recipients_are_the_audience_in_order_without_repeats():
    assert recipients(envelope("u3", "u1", "u3", "u2", "u1")) == ["u3", "u1", "u2"]


def test_each_recipient_gets_one_delivery_per_channel_in_the_intents_order():
    env = envelope("u1", "u2")
    deliveries, _ = plan_deliveries(env, ["u1", "u2"], {})
    assert [(d.user_id, d.channel) for d in deliveries] == [
        ("u1", C.CHANNEL_EMAIL),
        ("u1", C.CHANNEL_INAPP),
        ("u2", C.CHANNEL_EMAIL),
        ("u2", C.CHANNEL_INAPP),
    ]


def test_delivery_ids_are_deterministic_from_intent_user_and_channel():
    env = envelope("u1")
    first, _ = plan_deliveries(env, ["u1"], {})
    again, _ = plan_deliveries(env, ["u1"], {"u1": known_profile("u1")})
    assert [d.delivery_id for d in first] == [d.delivery_id for d in again]
    assert [d.delivery_id for d in first] == [
        delivery_id("intent-1", "u1", C.CHANNEL_EMAIL),
        delivery_id("intent-1", "u1", C.CHANNEL_INAPP),
    ]
    assert len({d.delivery_id for d in first}) == 2


def test_a_known_recipient_is_planned_with_its_profile_snapshot():
    env = envelope("u1")
    profile = known_profile("u1")
    deliveries, profiles = plan_deliveries(env, ["u1"], {"u1": profile})
    assert profiles == {"u1": profile}
    for d in deliveries:
        [decision] = d.decisions
        assert (decision.stage, decision.state, decision.reason) == (
            STAGE,
            S.DELIVERY_STATE_PENDING,
            "planned",
        )
        assert decision.HasField("at")


def test_an_unknown_recipient_still_gets_deliveries_with_a_bare_profile_and_says_so():
    env = envelope("ghost")
    deliveries, profiles = plan_deliveries(env, ["ghost"], {})
    assert profiles == {"ghost": profile_pb2.Profile(user_id="ghost")}
    assert [(d.decisions[0].state, d.decisions[0].reason) for d in deliveries] == [
        (S.DELIVERY_STATE_PENDING, "unknown_recipient"),
        (S.DELIVERY_STATE_PENDING, "unknown_recipient"),
    ]


def test_only_the_users_asked_for_are_planned():
    env = envelope("u1", "u2", "u3")
    deliveries, profiles = plan_deliveries(env, ["u2"], {"u1": known_profile("u1")})
    assert {d.user_id for d in deliveries} == {"u2"}
    assert list(profiles) == ["u2"]


def test_chunks_cover_every_item_once_in_order_and_none_is_over_size():
    items = list(range(1_200))
    parts = list(chunks(items, 166))
    assert [len(p) for p in parts] == [166] * 7 + [38]
    assert [x for p in parts for x in p] == items


def test_chunks_of_an_empty_list_are_none():
    assert list(chunks([], 10)) == []


def test_topic_and_segment_audiences_are_paged_user_ids_are_not():
    env = envelope("u1")
    assert not is_paged(env)
    env.intent.audience.Clear()
    env.intent.audience.topic = "news"
    assert is_paged(env)
    env.intent.audience.Clear()
    env.intent.audience.segment = "member = true"
    assert is_paged(env)


def test_the_continuation_is_the_same_plan_envelope_with_the_cursor():
    env = envelope()
    env.intent.audience.topic = "news"
    nxt = continuation(env, "user-0499")
    assert nxt.audience_cursor == "user-0499"
    nxt.ClearField("audience_cursor")
    assert nxt == env
    assert env.audience_cursor == ""


NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


def rule(name: str, hours: float, **properties: str) -> intent_pb2.BehaviourRule:
    r = intent_pb2.BehaviourRule(event=name, properties=properties)
    r.within.FromTimedelta(timedelta(hours=hours))
    return r


def behaviour_event(name: str, hours_ago: float, **properties: str) -> profile_pb2.BehaviourEvent:
    e = profile_pb2.BehaviourEvent(name=name, properties=properties)
    e.occurred_at.FromDatetime(NOW - timedelta(hours=hours_ago))
    return e


def test_an_event_could_match_a_rule_with_its_name_properties_and_window():
    purchase = rule("purchase", 24, shop="web")
    assert could_match(purchase, behaviour_event("purchase", 23, shop="web", sku="1"), NOW)
    assert not could_match(purchase, behaviour_event("purchase", 25, shop="web"), NOW)
    assert not could_match(purchase, behaviour_event("purchase", 1, shop="app"), NOW)
    assert not could_match(purchase, behaviour_event("checkout", 1, shop="web"), NOW)
    # Stamped by a clock a little ahead: it will be inside the window when checked.
    assert could_match(purchase, behaviour_event("purchase", -0.1, shop="web"), NOW)


def test_profiles_carry_the_events_the_rules_could_match_and_the_originals_stay_bare():
    rules = [rule("purchase", 24), rule("checkout", 2)]
    known = {"u1": known_profile("u1"), "u2": known_profile("u2")}
    events = {
        "u1": [
            behaviour_event("purchase", 3),
            behaviour_event("checkout", 3),  # outside its own rule's window
            behaviour_event("page_view", 1),
        ]
    }
    out = with_recent_events(known, events, rules, NOW)
    assert [e.name for e in out["u1"].recent_events] == ["purchase"]
    assert list(out["u2"].recent_events) == []
    assert list(known["u1"].recent_events) == []
    out["u1"].ClearField("recent_events")
    assert out["u1"] == known["u1"]


def test_without_rules_profiles_are_passed_as_they_are():
    known = {"u1": known_profile("u1")}
    assert with_recent_events(known, {"u1": [behaviour_event("x", 1)]}, [], NOW) == known
