"""The feedback consumer's writes on SQLite and PostgreSQL: what a batch of
feedback leaves on the suppression list."""

from __future__ import annotations

import pytest
from sendmesh.bus.v1 import feedback_pb2
from sendmesh.eligibility.v1 import eligibility_pb2
from sendmesh.intent.v1 import intent_pb2

from services.eligibility import store
from services.eligibility.feedback import FeedbackConsumer
from services.eligibility.settings import EligibilitySettings
from services.eligibility.suppression import contact_hash

K = feedback_pb2.FeedbackKind
R = eligibility_pb2.SuppressionReason
EMAIL, SMS = intent_pb2.Channel.CHANNEL_EMAIL, intent_pb2.Channel.CHANNEL_SMS
HASH_KEY = "feedback-store-hash-key"
PHONE, OTHER = "+4366412345678", "+14155552671"


@pytest.fixture
async def consumer(store_engine):
    engine = await store_engine(store.TABLES)
    return FeedbackConsumer(engine, EligibilitySettings(suppression_hash_key=HASH_KEY))


def batch(*items: tuple[int, int, str]) -> feedback_pb2.FeedbackBatch:
    return feedback_pb2.FeedbackBatch(
        items=[
            feedback_pb2.Feedback(tenant_id="acme", channel=ch, kind=kind, contact=contact)  # type: ignore[arg-type]
            for kind, ch, contact in items
        ]
    )


async def reasons_listed(consumer: FeedbackConsumer) -> dict[tuple[int, str], int]:
    entries = await store.list_suppressions(consumer.engine, "acme", None, 100, None)
    return {(e.channel, e.contact_hash): e.reason for e in entries}


def key(channel: int, contact: str) -> tuple[int, str]:
    return (channel, contact_hash(HASH_KEY.encode(), channel, contact))  # type: ignore[arg-type]


async def test_start_lifts_a_stop_but_never_a_hard_bounce(consumer):
    await consumer.handle(
        [
            batch(
                (K.FEEDBACK_KIND_OPT_OUT, SMS, PHONE),
                (K.FEEDBACK_KIND_HARD_BOUNCE, SMS, OTHER),
                (K.FEEDBACK_KIND_COMPLAINT, EMAIL, "ann@example.com"),
            )
        ]
    )
    listed = await reasons_listed(consumer)
    await consumer.handle(
        [batch((K.FEEDBACK_KIND_OPT_IN, SMS, PHONE), (K.FEEDBACK_KIND_OPT_IN, SMS, OTHER))]
    )

    assert listed == {
        key(SMS, PHONE): R.SUPPRESSION_REASON_SMS_STOP,
        key(SMS, OTHER): R.SUPPRESSION_REASON_HARD_BOUNCE,
        key(EMAIL, "ann@example.com"): R.SUPPRESSION_REASON_COMPLAINT,
    }
    assert await reasons_listed(consumer) == {
        key(SMS, OTHER): R.SUPPRESSION_REASON_HARD_BOUNCE,
        key(EMAIL, "ann@example.com"): R.SUPPRESSION_REASON_COMPLAINT,
    }


async def test_a_batch_delivered_twice_leaves_the_list_as_once(consumer):
    stop = batch((K.FEEDBACK_KIND_OPT_OUT, SMS, PHONE))

    await consumer.handle([stop])
    await consumer.handle([stop])

    assert await reasons_listed(consumer) == {key(SMS, PHONE): R.SUPPRESSION_REASON_SMS_STOP}
