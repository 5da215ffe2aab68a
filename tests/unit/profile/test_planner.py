"""Planning: one delivery per recipient x channel, each with its profile snapshot."""

from __future__ import annotations

from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2

from services.profile.planner import STAGE, chunks, plan_deliveries, recipients
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
