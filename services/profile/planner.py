"""Planning: one delivery per recipient x requested channel. Pure."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

from sendmesh.bus.v1 import envelope_pb2
from sendmesh.profile.v1 import profile_pb2

from shared import envelopes, reasons
from shared.ids import delivery_id

STAGE = "profile"
T = TypeVar("T")


def recipients(env: envelope_pb2.Envelope) -> list[str]:
    """The user ids an intent targets (topics and segments join here later)."""
    return list(dict.fromkeys(env.intent.audience.user_ids))


def plan_deliveries(
    env: envelope_pb2.Envelope, users: Sequence[str], known: dict[str, profile_pb2.Profile]
) -> tuple[list[envelope_pb2.Delivery], dict[str, profile_pb2.Profile]]:
    """Deliveries for `users` with the profile snapshot each stage decides on.

    A user without a profile still gets deliveries — in-app needs nothing
    more than the id — and the decision says `unknown_recipient`, so a
    suppression downstream for lack of an address is explained.
    """
    deliveries: list[envelope_pb2.Delivery] = []
    profiles: dict[str, profile_pb2.Profile] = {}
    for user in users:
        profile = known.get(user)
        reason = reasons.PLANNED if profile is not None else reasons.UNKNOWN_RECIPIENT
        profiles[user] = profile if profile is not None else profile_pb2.Profile(user_id=user)
        for channel in env.intent.channels:
            dec = envelopes.decision(STAGE, envelopes.State.DELIVERY_STATE_PENDING, reason)
            deliveries.append(
                envelope_pb2.Delivery(
                    delivery_id=delivery_id(env.intent_id, user, channel),
                    user_id=user,
                    channel=channel,
                    decisions=[dec],
                )
            )
    return deliveries, profiles


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
