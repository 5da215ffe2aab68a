"""feedback.eligibility queue -> the tenant's suppression list.

    HARD_BOUNCE (email, sms)  -> listed, reason HARD_BOUNCE
    COMPLAINT   (email, sms)  -> listed, reason COMPLAINT
    OPT_OUT     (sms)         -> listed, reason SMS_STOP
    OPT_IN      (sms)         -> the SMS_STOP entry is lifted, and only that one:
                                 START never lifts a hard bounce or a complaint
    anything else             -> nothing here (HELP; email opt-outs are consent,
                                 which is profile's)

A contact already listed keeps its first reason, as with AddSuppressions.
Within a batch, the last STOP or START of a number wins. `plan` is pure; the
consumer applies its result with at most two statements per tenant.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sendmesh.bus.v1 import feedback_pb2
from sendmesh.eligibility.v1 import eligibility_pb2
from sendmesh.intent.v1 import intent_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from services.eligibility import store, suppression
from services.eligibility.settings import EligibilitySettings
from shared.bus.publisher import Outbound
from shared.clock import from_timestamp, utcnow
from shared.logs import get_logger

log = get_logger(__name__)

Kind = feedback_pb2.FeedbackKind
Reason = eligibility_pb2.SuppressionReason
SMS = intent_pb2.Channel.CHANNEL_SMS
# (channel, contact hash): one entry of a tenant's list.
ListKey = tuple[int, str]

LISTED_FOR: dict[int, int] = {
    Kind.FEEDBACK_KIND_HARD_BOUNCE: Reason.SUPPRESSION_REASON_HARD_BOUNCE,
    Kind.FEEDBACK_KIND_COMPLAINT: Reason.SUPPRESSION_REASON_COMPLAINT,
}
STOP = Reason.SUPPRESSION_REASON_SMS_STOP


@dataclass
class Changes:
    """What a batch of feedback does to the lists, per tenant."""

    add: dict[str, dict[ListKey, store.Entry]] = field(default_factory=lambda: defaultdict(dict))
    # Entries whose SMS_STOP reason is lifted (START).
    lift: dict[str, set[ListKey]] = field(default_factory=lambda: defaultdict(set))
    unusable: int = 0


def reason_for(item: feedback_pb2.Feedback) -> int | None:
    """The suppression reason this feedback lists its contact for, if any."""
    if item.kind == Kind.FEEDBACK_KIND_OPT_OUT:
        return STOP if item.channel == SMS else None
    return LISTED_FOR.get(item.kind)


def plan(items: Iterable[feedback_pb2.Feedback], hash_key: bytes, now: datetime) -> Changes:
    """The list entries to add and the STOPs to lift, in the order the
    feedback arrived. Contacts that are not an address of their channel are
    counted in `unusable` and left alone. Pure."""
    out = Changes()
    for item in items:
        reason = reason_for(item)
        lifts = item.kind == Kind.FEEDBACK_KIND_OPT_IN and item.channel == SMS
        if reason is None and not lifts:
            continue
        channel = item.channel
        if channel not in suppression.LISTED_CHANNELS or suppression.contact_problem(
            channel, item.contact
        ):
            out.unusable += 1
            continue
        key = (int(channel), suppression.contact_hash(hash_key, channel, item.contact))
        added, lifted = out.add[item.tenant_id], out.lift[item.tenant_id]
        if lifts:
            lifted.add(key)
            if key in added and added[key].reason == STOP:
                del added[key]
            continue
        assert reason is not None
        if reason == STOP:
            lifted.discard(key)
        at = from_timestamp(item.occurred_at) if item.HasField("occurred_at") else now
        detail = f"{item.source}: {item.detail}" if item.detail else item.source
        added.setdefault(key, store.Entry(key[0], key[1], reason, detail[:500], min(at, now)))
    return out


def decode_feedback(body: bytes) -> feedback_pb2.FeedbackBatch:
    return feedback_pb2.FeedbackBatch.FromString(body)


class FeedbackConsumer:
    def __init__(self, engine: AsyncEngine, settings: EligibilitySettings) -> None:
        self.engine = engine
        self.hash_key = settings.hash_key()

    async def handle(self, batch: list[feedback_pb2.FeedbackBatch]) -> list[Outbound]:
        changes = plan((i for b in batch for i in b.items), self.hash_key, utcnow())
        if changes.unusable:
            # Never the contact itself: how many, so the producer can be found.
            log.warning("feedback_contact_unusable", count=changes.unusable)
        # A key both lifted and added had a START and a bounce: the STOP goes,
        # the bounce is listed. Otherwise a batch leaves a key one or the other.
        for tenant, keys in changes.lift.items():
            await store.remove_suppressions(self.engine, tenant, keys, STOP)
        for tenant, entries in changes.add.items():
            await store.add_suppressions(self.engine, tenant, list(entries.values()))
        return []
