"""Channel choice and caps. Pure.

No cap policies exist yet, so every reservation is granted with the reason
`no_cap_policy`; the channel strategy is applied for real.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intent.v1 import intent_pb2

FIRST = intent_pb2.STRATEGY_FIRST_AVAILABLE


@dataclass(frozen=True)
class Choice:
    send: list[envelope_pb2.Delivery]
    skip: list[envelope_pb2.Delivery]


def choose_channels(
    strategy: int, order: Sequence[int], deliveries: Sequence[envelope_pb2.Delivery]
) -> Choice:
    """For one recipient's eligible deliveries: all of them (ALL), or only the
    first in the intent's channel order (FIRST_AVAILABLE)."""
    if strategy != FIRST or len(deliveries) <= 1:
        return Choice(list(deliveries), [])
    rank = {channel: i for i, channel in enumerate(order)}
    ranked = sorted(deliveries, key=lambda d: rank.get(d.channel, len(rank)))
    return Choice(ranked[:1], ranked[1:])
