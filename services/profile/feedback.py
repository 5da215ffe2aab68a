"""feedback.profile queue -> consent history.

An SMS STOP (OPT_OUT) withdraws, a START (OPT_IN) grants, consent on the whole
SMS channel (category "") for every user of the tenant whose profile has that
number, with the feedback's source (`sms_keyword`) and time. Eligibility's
own queue carries the same feedback to the suppression list. Everything else
(bounces, complaints, HELP) changes nothing here. A redelivered message adds
no second statement.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sendmesh.bus.v1 import feedback_pb2
from sendmesh.intent.v1 import intent_pb2

from services.profile.contact_store import ContactStore, Statement
from shared.bus.publisher import Outbound
from shared.clock import from_timestamp, utcnow

Kind = feedback_pb2.FeedbackKind
SMS = intent_pb2.Channel.CHANNEL_SMS
GRANTS = {Kind.FEEDBACK_KIND_OPT_OUT: False, Kind.FEEDBACK_KIND_OPT_IN: True}
# Where a keyword's consent came from when the producer did not say.
DEFAULT_SOURCE = "sms_keyword"


@dataclass(frozen=True)
class NumberConsent:
    """What one keyword says, before its number's owners are known."""

    phone: str
    granted: bool
    source: str
    at: datetime


def consent_changes(
    items: Iterable[feedback_pb2.Feedback], now: datetime
) -> dict[str, list[NumberConsent]]:
    """tenant -> the SMS opt-outs and opt-ins, in arrival order. Pure."""
    out: dict[str, list[NumberConsent]] = defaultdict(list)
    for item in items:
        granted = GRANTS.get(item.kind)
        if granted is None or item.channel != SMS or not item.contact:
            continue
        at = from_timestamp(item.occurred_at) if item.HasField("occurred_at") else now
        source = item.source or DEFAULT_SOURCE
        out[item.tenant_id].append(NumberConsent(item.contact, granted, source, min(at, now)))
    return out


def statements_for(
    changes: Iterable[NumberConsent], owners: dict[str, list[str]]
) -> list[Statement]:
    """One statement per owner of each number (none for a number nobody has). Pure."""
    return [
        Statement(user, SMS, change.granted, change.source, change.at)
        for change in changes
        for user in owners.get(change.phone, ())
    ]


def decode_feedback(body: bytes) -> feedback_pb2.FeedbackBatch:
    return feedback_pb2.FeedbackBatch.FromString(body)


class FeedbackConsumer:
    def __init__(self, contacts: ContactStore) -> None:
        self.contacts = contacts

    async def start(self) -> None:
        """Before consuming: the lookup index, on a database made before it existed."""
        await self.contacts.ensure_index()

    async def stop(self) -> None:
        return None

    async def handle(self, batch: list[feedback_pb2.FeedbackBatch]) -> list[Outbound]:
        now = utcnow()
        for tenant, changes in consent_changes((i for b in batch for i in b.items), now).items():
            owners = await self.contacts.owners_of_phones(tenant, {c.phone for c in changes})
            await self.contacts.record(tenant, statements_for(changes, owners), now)
        return []
