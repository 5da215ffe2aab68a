"""Carrier receipts: which delivery a status callback is about, and the event
that reports it, so GetIntent shows `delivered` or `undelivered` after `sent`;
and when the carrier says the number is gone for good, the hard bounce.

A callback names only the provider's message SID; the worker recorded it as
the delivery's `provider_message_id`. The lookup is indexed per tenant.
"""

from __future__ import annotations

from dataclasses import dataclass

from sendmesh.bus.v1 import envelope_pb2, feedback_pb2
from sendmesh.intent.v1 import intent_pb2
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.channels.store import DeliveryRecord
from services.sms.inbound import DeliveryReceipt
from shared import reasons
from shared.clock import now_timestamp
from shared.db import table_of, write
from shared.envelopes import State

CHANNEL = "sms"
SOURCE = "sms_receipt"
# Carrier errors on a failed receipt that say the number itself cannot take
# SMS: 30005 unknown or inactive destination, 30006 landline or unreachable
# carrier. Sending again would fail again, so they are hard bounces. Others
# (30003 handset unreachable, 30008 unknown error) may pass: no feedback.
HARD_BOUNCE_CODES = frozenset({30005, 30006})
BOUNCE_STATUSES = frozenset({"failed", "undelivered"})
# Made at start-up, not declared on the table: it is this service's lookup,
# and an existing database gets it too.
INDEX_DDL = (
    "CREATE INDEX IF NOT EXISTS ix_channel_deliveries_message "
    "ON channel_deliveries (tenant_id, provider_message_id)"
)


@dataclass(frozen=True)
class Sent:
    """What a receipt needs to know about the delivery it is about."""

    tenant_id: str
    intent_id: str
    delivery_id: str
    provider: str


async def ensure_index(engine: AsyncEngine) -> None:
    async with write(engine) as conn:
        await conn.execute(text(INDEX_DDL))


async def find_sent(engine: AsyncEngine, tenant_id: str, message_sid: str) -> Sent | None:
    """The delivery the provider knows as `message_sid`, if this worker sent it."""
    table = table_of(DeliveryRecord)
    query = (
        select(table.c.intent_id, table.c.delivery_id, table.c.provider)
        .where(table.c.tenant_id == tenant_id, table.c.provider_message_id == message_sid)
        .limit(1)
    )
    async with engine.connect() as conn:
        row = (await conn.execute(query)).first()
    if row is None:
        return None
    return Sent(tenant_id, row.intent_id, row.delivery_id, row.provider)


def receipt_event(sent: Sent, receipt: DeliveryReceipt) -> envelope_pb2.DeliveryEvent:
    """SENT `delivered`, or FAILED `undelivered` with the carrier's status and
    error code; later than the worker's SENT, so it becomes the current state."""
    detail = f"carrier status {receipt.status}"
    if receipt.error_code is not None:
        detail += f", error {receipt.error_code}"
    if receipt.outcome == "delivered":
        state, reason = State.DELIVERY_STATE_SENT, reasons.DELIVERED
    else:
        state, reason = State.DELIVERY_STATE_FAILED, reasons.UNDELIVERED
    decision = intent_pb2.Decision(
        stage=CHANNEL, state=state, reason=reason, detail=detail, at=now_timestamp()
    )
    return envelope_pb2.DeliveryEvent(
        tenant_id=sent.tenant_id,
        intent_id=sent.intent_id,
        delivery_id=sent.delivery_id,
        channel=intent_pb2.Channel.CHANNEL_SMS,
        decision=decision,
        provider=sent.provider,
    )


def is_hard_bounce(receipt: DeliveryReceipt) -> bool:
    """Whether the receipt says the number can never receive SMS."""
    return receipt.status in BOUNCE_STATUSES and receipt.error_code in HARD_BOUNCE_CODES


def bounce_feedback(sent: Sent, receipt: DeliveryReceipt, number: str) -> feedback_pb2.Feedback:
    """HARD_BOUNCE for `number` (E.164, the receipt's To): eligibility lists it."""
    return feedback_pb2.Feedback(
        tenant_id=sent.tenant_id,
        channel=intent_pb2.Channel.CHANNEL_SMS,
        kind=feedback_pb2.FeedbackKind.FEEDBACK_KIND_HARD_BOUNCE,
        contact=number,
        occurred_at=now_timestamp(),
        source=SOURCE,
        provider_ref=receipt.message_sid,
        detail=f"carrier error {receipt.error_code}",
    )
