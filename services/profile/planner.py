"""Planning: one delivery per recipient x requested channel. Pure."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import TypeVar

from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2

from services.eligibility.behaviour import rule_window
from shared import envelopes, reasons
from shared.clock import from_timestamp
from shared.ids import delivery_id

STAGE = "profile"
PENDING = envelopes.State.DELIVERY_STATE_PENDING
T = TypeVar("T")


def recipients(env: envelope_pb2.Envelope) -> list[str]:
    """The user ids of a `user_ids` audience, without repeats, in order."""
    return list(dict.fromkeys(env.intent.audience.user_ids))


def is_paged(env: envelope_pb2.Envelope) -> bool:
    """Topic and segment audiences are resolved a page at a time."""
    audience = env.intent.audience
    return bool(audience.topic or audience.segment)


def continuation(env: envelope_pb2.Envelope, cursor: str) -> envelope_pb2.Envelope:
    """The plan envelope again, to resolve the page after user id `cursor`."""
    nxt = envelope_pb2.Envelope()
    nxt.CopyFrom(env)
    nxt.audience_cursor = cursor
    return nxt


def plan_deliveries(
    env: envelope_pb2.Envelope, users: Sequence[str], known: Mapping[str, profile_pb2.Profile]
) -> tuple[list[envelope_pb2.Delivery], dict[str, profile_pb2.Profile]]:
    """Deliveries for `users` with the profile snapshot each stage decides on.

    A user without a profile still gets deliveries — in-app needs nothing
    more than the id — and the decision says `unknown_recipient`, so a
    suppression downstream for lack of an address is explained.
    """
    deliveries: list[envelope_pb2.Delivery] = []
    profiles: dict[str, profile_pb2.Profile] = {}
    # A fan-out plans thousands per call: one decision per reason, counted once.
    decided = envelopes.BatchDecisions(STAGE)
    channels = list(env.intent.channels)
    for user in users:
        profile = known.get(user)
        reason = reasons.PLANNED if profile is not None else reasons.UNKNOWN_RECIPIENT
        profiles[user] = profile if profile is not None else profile_pb2.Profile(user_id=user)
        for channel in channels:
            deliveries.append(
                envelope_pb2.Delivery(
                    delivery_id=delivery_id(env.intent_id, user, channel),
                    user_id=user,
                    channel=channel,
                    decisions=[decided.make(PENDING, reason)],
                )
            )
    decided.flush()
    return deliveries, profiles


def could_match(
    rule: intent_pb2.BehaviourRule, event: profile_pb2.BehaviourEvent, now: datetime
) -> bool:
    """`event` can make `rule` match now or later: the right name and
    properties, and not older than the rule's window. Rules are checked again
    right before a send, when the window has only moved on, so an event that
    cannot match now never will."""
    if event.name != rule.event or from_timestamp(event.occurred_at) < now - rule_window(rule):
        return False
    return all(event.properties.get(k) == v for k, v in rule.properties.items())


def with_recent_events(
    profiles: Mapping[str, profile_pb2.Profile],
    events: Mapping[str, Sequence[profile_pb2.BehaviourEvent]],
    rules: Sequence[intent_pb2.BehaviourRule],
    now: datetime,
) -> dict[str, profile_pb2.Profile]:
    """Copies of `profiles` carrying the events that `rules` could match."""
    if not rules:
        return dict(profiles)
    out: dict[str, profile_pb2.Profile] = {}
    for user, profile in profiles.items():
        copy = profile_pb2.Profile()
        copy.CopyFrom(profile)
        del copy.recent_events[:]
        copy.recent_events.extend(
            e for e in events.get(user, ()) if any(could_match(r, e, now) for r in rules)
        )
        out[user] = copy
    return out


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
