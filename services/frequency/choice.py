"""Which of a recipient's deliveries get a cap slot. Pure.

A request is one recipient's deliveries in the order they are tried; at most
one of them is granted. STRATEGY_ALL makes one request per delivery;
STRATEGY_FIRST_AVAILABLE one request with every delivery in the intent's
channel order, so the first channel with a free slot wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from enum import StrEnum
from typing import TypeVar

from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intent.v1 import intent_pb2

from services.frequency import caps
from services.frequency.caps import Policy, Send

FIRST = intent_pb2.STRATEGY_FIRST_AVAILABLE
# Rounds of "every blocking policy's next slot" before giving up on agreeing.
MAX_ROUNDS = 32


@dataclass(frozen=True)
class Ask:
    delivery_id: str
    channel: int
    category: str
    kind: int


@dataclass(frozen=True)
class Request:
    """One recipient's alternatives at one instant, tried in order."""

    tenant_id: str
    user_id: str
    at: datetime
    zone: tzinfo
    asks: tuple[Ask, ...]


class Outcome(StrEnum):
    RESERVED = "reserved"  # a slot taken now under every matching policy
    HELD = "held"  # reserved before (a redelivery): the same answer, no new slot
    NO_POLICY = "no_policy"  # nothing to count against
    CAPPED = "capped"


@dataclass(frozen=True)
class Verdict:
    delivery_id: str
    outcome: Outcome
    policy_ids: tuple[str, ...] = ()
    # CAPPED: when every matching policy admits a send again (None: unknown).
    next_slot: datetime | None = None
    detail: str = ""

    @property
    def granted(self) -> bool:
        return self.outcome is not Outcome.CAPPED


D = TypeVar("D", envelope_pb2.Delivery, Ask)


def in_intent_order(order: Sequence[int], deliveries: Sequence[D]) -> list[D]:
    """`deliveries` in the intent's channel order; channels it omits go last."""
    rank = {channel: i for i, channel in enumerate(order)}
    return sorted(deliveries, key=lambda d: rank.get(d.channel, len(rank)))


def alternatives(strategy: int, ordered: Sequence[D]) -> list[list[D]]:
    """Each delivery alone (ALL), or all of them as one choice (FIRST_AVAILABLE)."""
    if strategy == FIRST and ordered:
        return [list(ordered)]
    return [[d] for d in ordered]


def judge(
    policies: Sequence[Policy], sends: Sequence[Send], ask: Ask, at: datetime, zone: tzinfo
) -> Verdict:
    """One more send for `ask` at `at`: a slot under every matching policy, or capped."""
    matching = [p for p in policies if p.matches(ask.channel, ask.category, ask.kind)]
    if not matching:
        return Verdict(ask.delivery_id, Outcome.NO_POLICY)
    ids = tuple(p.policy_id for p in matching)
    times = {p.policy_id: caps.counted(p, sends) for p in matching}
    blocking = [p for p in matching if not caps.admits(p, times[p.policy_id], at, zone)]
    if not blocking:
        return Verdict(ask.delivery_id, Outcome.RESERVED, ids, detail=_held_detail(ids))
    first = blocking[0]
    detail = caps.why_capped(first, times[first.policy_id], at, zone)
    if len(blocking) > 1:
        detail += f" (and {len(blocking) - 1} more)"
    slot = common_slot(matching, times, at, zone)
    return Verdict(ask.delivery_id, Outcome.CAPPED, ids, slot, detail)


def common_slot(
    policies: Sequence[Policy], times: dict[str, list[datetime]], at: datetime, zone: tzinfo
) -> datetime | None:
    """The first instant from `at` when every policy admits a send."""
    slot = at
    for _ in range(MAX_ROUNDS):
        nexts = [caps.next_slot(p, times[p.policy_id], slot, zone) for p in policies]
        if any(n is None for n in nexts):
            return None
        latest = max(n for n in nexts if n is not None)
        if latest == slot:
            return slot
        slot = latest
    return None


def decide(
    policies: Sequence[Policy], sends: list[Send], held: set[str], request: Request
) -> list[Verdict]:
    """Try the request's asks in order until one is granted; verdicts of those tried.

    A granted ask joins `sends` (and `held`), so the next request of the same
    recipient in the batch counts it."""
    verdicts: list[Verdict] = []
    for ask in request.asks:
        if ask.delivery_id in held:
            ids = tuple(
                p.policy_id for p in policies if p.matches(ask.channel, ask.category, ask.kind)
            )
            verdicts.append(Verdict(ask.delivery_id, Outcome.HELD, ids, detail=_held_detail(ids)))
            return verdicts
        verdict = judge(policies, sends, ask, request.at, request.zone)
        verdicts.append(verdict)
        if verdict.outcome is Outcome.RESERVED:
            sends.append(Send(request.at, ask.channel, ask.category, ask.kind))
            held.add(ask.delivery_id)
        if verdict.granted:
            return verdicts
    return verdicts


def _held_detail(ids: Sequence[str]) -> str:
    return f"slot under {', '.join(ids)}" if ids else ""
