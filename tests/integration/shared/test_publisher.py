"""shared/bus/publisher.py on the real broker: what a published message carries."""

from __future__ import annotations

from aio_pika.abc import DeliveryMode

from shared.bus import topology
from shared.bus.publisher import ATTEMPT_HEADER, Bus, Outbound
from shared.bus.topology import Topology
from tests.conftest import TEST_RETRY_DELAYS
from tests.integration.bus_helpers import declared, drain

STAGE = topology.PLAN


async def test_a_message_arrives_with_its_type_headers_persistence_and_expiry(
    amqp_url: str, namespace: str
) -> None:
    topo = Topology(namespace, TEST_RETRY_DELAYS)
    bus = await declared(Bus(amqp_url, topo, "test-publisher"))
    try:
        await bus.publish(
            [
                Outbound(
                    topo.work_exchange,
                    STAGE,
                    b"kept",
                    type="sendmesh.Test",
                    headers={ATTEMPT_HEADER: 3, "x-note": "yes"},
                ),
                Outbound("", topo.queue(STAGE), b"fleeting", persistent=False, expiration_s=60.5),
            ]
        )
    finally:
        await bus.close()

    got = {m.body: m for m in await drain(amqp_url, topo.queue(STAGE), expect=2)}
    kept, fleeting = got[b"kept"], got[b"fleeting"]
    assert kept.type == "sendmesh.Test"
    assert kept.content_type == "application/x-protobuf"
    # The quorum queue adds its x-delivery-count.
    assert {k: kept.headers[k] for k in (ATTEMPT_HEADER, "x-note")} == {
        ATTEMPT_HEADER: 3,
        "x-note": "yes",
    }
    assert kept.delivery_mode == DeliveryMode.PERSISTENT
    assert kept.expiration is None
    assert fleeting.delivery_mode == DeliveryMode.NOT_PERSISTENT
    assert fleeting.expiration == 60.5
    assert fleeting.type is None
