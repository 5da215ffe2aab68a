"""Each channel's dev provider really writes what it would send."""

from __future__ import annotations

import json

from sendmesh.intent.v1 import intent_pb2

from services.email.__main__ import create_runtime as create_email
from services.email.settings import EmailSettings
from services.webpush.__main__ import create_runtime as create_webpush
from services.webpush.settings import WebPushSettings
from shared.bus import topology
from shared.bus.topology import Topology
from tests.conftest import TEST_RETRY_DELAYS, running
from tests.integration.bus_helpers import publish_to_stage
from tests.integration.channels.support import (
    consumed,
    envelope,
    events_of,
    eventually,
    take_all,
)

State = intent_pb2.DeliveryState


async def test_the_email_dev_provider_writes_the_email_it_would_send(
    make_settings, amqp_url, namespace
):
    topo = Topology(namespace, TEST_RETRY_DELAYS)
    settings = make_settings(EmailSettings)
    env = envelope("email")
    delivery_id = env.deliveries[0].delivery_id
    async with running(create_email(settings)):
        await publish_to_stage(amqp_url, topo, topology.send_stage("email"), env)
        await eventually(lambda: consumed(topo.queue(topology.send_stage("email"))) >= 1)
    events = events_of(await take_all(amqp_url, topo.queue(topology.EVENTS_INTAKE)))

    written = json.loads(
        (settings.var_dir / "outbox" / "email" / f"{delivery_id}.json").read_text()
    )
    assert written["to"] == "u1@example.com"
    assert (written["subject"], written["text"], written["html"]) == (
        "Your cart",
        "You left something",
        "",
    )
    assert (written["tenant_id"], written["delivery_id"]) == ("acme", delivery_id)
    assert [(e.decision.state, e.provider) for e in events] == [(State.DELIVERY_STATE_SENT, "dev")]


async def test_the_webpush_dev_provider_writes_the_push_for_every_subscription(
    make_settings, amqp_url, namespace
):
    topo = Topology(namespace, TEST_RETRY_DELAYS)
    settings = make_settings(WebPushSettings)
    env = envelope("webpush")
    subs = env.profiles["u1"].contacts.webpush
    subs.add(endpoint="https://push.example/a", p256dh="k1", auth="a1")
    subs.add(endpoint="https://push.example/b", p256dh="k2", auth="a2")
    async with running(create_webpush(settings)):
        await publish_to_stage(amqp_url, topo, topology.send_stage("webpush"), env)
        await eventually(lambda: consumed(topo.queue(topology.send_stage("webpush"))) >= 1)

    path = settings.var_dir / "outbox" / "webpush" / f"{env.deliveries[0].delivery_id}.json"
    written = json.loads(path.read_text())
    assert written["to"] == ["https://push.example/a", "https://push.example/b"]
    assert written["payload"]["title"] == "Cart"
