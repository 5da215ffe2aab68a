"""How an intent's and a delivery's state evolve as events arrive. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sendmesh.intake.v1 import intake_pb2
from sendmesh.intent.v1 import intent_pb2

S = intent_pb2.DeliveryState
I = intake_pb2.IntentState  # noqa: E741

# States after which nothing more happens to a delivery. CAPPED is one: a
# delivery that is to wait for a slot is SCHEDULED (on_capped DEFER) instead.
FINAL = frozenset(
    {
        S.DELIVERY_STATE_SUPPRESSED,
        S.DELIVERY_STATE_CAPPED,
        S.DELIVERY_STATE_SENT,
        S.DELIVERY_STATE_FAILED,
        S.DELIVERY_STATE_DEAD,
        S.DELIVERY_STATE_CANCELLED,
        S.DELIVERY_STATE_SKIPPED,
        S.DELIVERY_STATE_EXPIRED,
    }
)


def supersedes(new_state: int, new_at: datetime, cur_state: int, cur_at: datetime) -> bool:
    """Whether a newly reported decision replaces the current one.

    Stages report independently, so events can arrive out of order: a final
    state is never replaced by a non-final one, and otherwise the later wins.
    """
    if cur_state in FINAL and new_state not in FINAL:
        return False
    if new_state in FINAL and cur_state not in FINAL:
        return True
    return new_at >= cur_at


def intent_state(
    cancelled: bool, delivery_states: Iterable[int]
) -> intake_pb2.IntentState.ValueType:
    """ACCEPTED until deliveries exist; PROCESSING while any is open; then COMPLETED."""
    if cancelled:
        return I.INTENT_STATE_CANCELLED
    states = list(delivery_states)
    if not states:
        return I.INTENT_STATE_ACCEPTED
    if all(s in FINAL for s in states):
        return I.INTENT_STATE_COMPLETED
    return I.INTENT_STATE_PROCESSING
