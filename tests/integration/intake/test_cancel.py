"""CancelIntent against intents that are already done."""

from __future__ import annotations

from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intake.v1 import intake_pb2
from sendmesh.intent.v1 import intent_pb2

from shared.bus import topology
from shared.bus.topology import Topology
from tests.conftest import TEST_RETRY_DELAYS
from tests.integration.bus_helpers import drain
from tests.integration.intake.conftest import inapp_intent
from tests.integration.intake.test_status import event, get, publish_events, wait_for_state

S = intent_pb2.DeliveryState
I = intake_pb2.IntentState  # noqa: E741


async def test_a_completed_intent_is_not_cancelled_and_stays_completed(
    stub, tenants, amqp_url, namespace
):
    # intake.proto, CancelIntentResponse.intent_ids: "already cancelled or
    # completed ones are not listed".
    intent = inapp_intent("done", cancel_key="cart-7")
    iid = (
        await stub.Submit(intake_pb2.SubmitRequest(intent=intent), metadata=tenants.metadata())
    ).intent_id
    await publish_events(
        amqp_url, namespace, event(iid, "u1", "inapp", S.DELIVERY_STATE_SENT, "sent", 1)
    )
    await wait_for_state(stub, tenants, iid, I.INTENT_STATE_COMPLETED)

    by_id = await stub.CancelIntent(
        intake_pb2.CancelIntentRequest(intent_id=iid), metadata=tenants.metadata()
    )
    by_key = await stub.CancelIntent(
        intake_pb2.CancelIntentRequest(cancel_key="cart-7"), metadata=tenants.metadata()
    )

    assert list(by_id.intent_ids) == []
    assert list(by_key.intent_ids) == []
    assert (await get(stub, tenants, iid)).state == I.INTENT_STATE_COMPLETED
    control = Topology(namespace, TEST_RETRY_DELAYS).queue(topology.control_stage("inapp"))
    announced = await drain(amqp_url, control, 1, within=1.0)
    assert [envelope_pb2.IntentCancelled.FromString(m.body).intent_id for m in announced] == []
