"""The in-app worker end to end: send.inapp -> inbox -> Inbox gRPC API."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from sendmesh.bus.v1 import envelope_pb2
from sendmesh.inapp.v1 import inbox_pb2
from sendmesh.intent.v1 import intent_pb2

from shared.bus import topology
from tests.conftest import Tenants
from tests.integration.bus_helpers import publish_to_stage
from tests.integration.channels.support import (
    consumed,
    envelope,
    events_of,
    eventually,
    publish_event,
    sample,
    take_all,
)
from tests.integration.inapp.support import STAGE, deliver, field_violations, inbox_stub

State = intent_pb2.DeliveryState


async def test_a_delivered_envelope_is_one_inbox_message_and_one_sent_event_with_its_trail(
    inapp, amqp_url, topo, tenants: Tenants
):
    env = envelope("inapp")
    await deliver(amqp_url, topo, env)
    async with inbox_stub(inapp) as stub:
        listing = await stub.ListInbox(
            inbox_pb2.ListInboxRequest(user_id="u1"), metadata=tenants.metadata("acme")
        )
    events = events_of(await take_all(amqp_url, topo.queue(topology.EVENTS_INTAKE)))

    [message] = listing.messages
    assert (message.title, message.body, message.action_url) == (
        "Your cart",
        "You left something",
        "https://shop.example/cart",
    )
    assert (message.intent_id, message.category, message.user_id) == (
        env.intent_id,
        "cart_reminder",
        "u1",
    )
    assert (listing.unread_count, listing.unseen_count) == (1, 1)
    [event] = events
    assert (event.decision.state, event.decision.reason, event.provider) == (
        State.DELIVERY_STATE_SENT,
        "sent",
        "inbox",
    )
    assert event.decision.stage == "inapp"
    assert [d.stage for d in event.trail] == ["eligibility", "frequency"]
    assert event.delivery_id == env.deliveries[0].delivery_id


async def test_the_same_envelope_delivered_twice_makes_one_message_and_one_send(
    inapp, amqp_url, topo, tenants: Tenants
):
    def count(outcome: str) -> float:
        return sample(
            "sendmesh_deliveries_total", channel="inapp", provider="inbox", outcome=outcome
        )

    sent, duplicates = count("sent"), count("duplicate")
    env = envelope("inapp")
    await deliver(amqp_url, topo, env)
    await deliver(amqp_url, topo, env)
    async with inbox_stub(inapp) as stub:
        listing = await stub.ListInbox(
            inbox_pb2.ListInboxRequest(user_id="u1"), metadata=tenants.metadata("acme")
        )
    events = events_of(await take_all(amqp_url, topo.queue(topology.EVENTS_INTAKE)))

    assert len(listing.messages) == 1
    assert (count("sent"), count("duplicate")) == (sent + 1, duplicates + 1)
    # The repeat is reported SENT again (the first report may have been lost), never re-sent.
    assert [(e.decision.state, e.decision.detail) for e in events] == [
        (State.DELIVERY_STATE_SENT, ""),
        (State.DELIVERY_STATE_SENT, "already sent; reported again"),
    ]


async def test_a_watcher_receives_a_new_message_live_and_only_its_own_tenants(
    inapp, amqp_url, topo, tenants: Tenants
):
    async with inbox_stub(inapp) as stub:
        acme = stub.WatchInbox(
            inbox_pb2.WatchInboxRequest(user_id="u1"), metadata=tenants.metadata("acme")
        )
        globex = stub.WatchInbox(
            inbox_pb2.WatchInboxRequest(user_id="u1"), metadata=tenants.metadata("globex")
        )
        await acme.initial_metadata()  # subscribed
        await globex.initial_metadata()
        acme_env = envelope("inapp", tenant="acme")
        await publish_to_stage(amqp_url, topo, STAGE, acme_env)
        live = await asyncio.wait_for(acme.read(), timeout=1.0)
        globex_env = envelope("inapp", tenant="globex")
        await publish_to_stage(amqp_url, topo, STAGE, globex_env)
        # globex's first message is its own: acme's never reached it.
        globex_live = await asyncio.wait_for(globex.read(), timeout=1.0)
        acme.cancel()
        globex.cancel()

    assert (live.intent_id, live.user_id, live.title) == (acme_env.intent_id, "u1", "Your cart")
    assert live.message_id
    assert globex_live.intent_id == globex_env.intent_id


async def test_another_tenant_cannot_see_the_inbox(inapp, amqp_url, topo, tenants: Tenants):
    await deliver(amqp_url, topo, envelope("inapp", tenant="acme"))
    async with inbox_stub(inapp) as stub:
        mine = await stub.ListInbox(
            inbox_pb2.ListInboxRequest(user_id="u1"), metadata=tenants.metadata("acme")
        )
        theirs = await stub.ListInbox(
            inbox_pb2.ListInboxRequest(user_id="u1"), metadata=tenants.metadata("globex")
        )

    assert len(mine.messages) == 1
    assert (list(theirs.messages), theirs.unread_count, theirs.unseen_count) == ([], 0, 0)


async def test_a_call_without_an_api_key_is_unauthenticated(inapp):
    async with inbox_stub(inapp) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ListInbox(inbox_pb2.ListInboxRequest(user_id="u1"))

    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_marking_a_message_read_lowers_the_unread_count(
    inapp, amqp_url, topo, tenants: Tenants
):
    await deliver(amqp_url, topo, envelope("inapp"), envelope("inapp"))
    acme = tenants.metadata("acme")
    async with inbox_stub(inapp) as stub:
        before = await stub.ListInbox(inbox_pb2.ListInboxRequest(user_id="u1"), metadata=acme)
        marked = await stub.MarkRead(
            inbox_pb2.MarkReadRequest(user_id="u1", message_ids=[before.messages[0].message_id]),
            metadata=acme,
        )
        after = await stub.ListInbox(inbox_pb2.ListInboxRequest(user_id="u1"), metadata=acme)
        by_globex = await stub.MarkRead(
            inbox_pb2.MarkReadRequest(user_id="u1", message_ids=[before.messages[1].message_id]),
            metadata=tenants.metadata("globex"),
        )

    assert before.unread_count == 2
    assert (marked.updated, marked.unread_count) == (1, 1)
    assert (after.unread_count, after.unseen_count) == (1, 1)
    assert after.messages[0].HasField("read_at")
    assert not after.messages[1].HasField("read_at")
    assert by_globex.updated == 0


async def test_the_inbox_pages_newest_first_without_gaps_or_repeats(
    inapp, amqp_url, topo, tenants: Tenants
):
    await deliver(amqp_url, topo, *(envelope("inapp") for _ in range(5)))
    acme = tenants.metadata("acme")
    pages: list[list[str]] = []
    token = ""
    async with inbox_stub(inapp) as stub:
        everything = await stub.ListInbox(inbox_pb2.ListInboxRequest(user_id="u1"), metadata=acme)
        while True:
            page = await stub.ListInbox(
                inbox_pb2.ListInboxRequest(user_id="u1", page_size=2, page_token=token),
                metadata=acme,
            )
            pages.append([m.message_id for m in page.messages])
            token = page.next_page_token
            if not token:
                break

    assert [len(p) for p in pages] == [2, 2, 1]
    assert [m for p in pages for m in p] == [m.message_id for m in everything.messages]
    created = [(m.created_at.ToNanoseconds(), m.message_id) for m in everything.messages]
    assert created == sorted(created, reverse=True)


async def test_an_empty_user_id_and_a_bad_page_token_are_invalid_arguments(inapp, tenants: Tenants):
    async with inbox_stub(inapp) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ListInbox(
                inbox_pb2.ListInboxRequest(user_id="", page_token="not-a-token"),
                metadata=tenants.metadata("acme"),
            )
        with pytest.raises(grpc.aio.AioRpcError) as watch:
            async for _ in stub.WatchInbox(
                inbox_pb2.WatchInboxRequest(), metadata=tenants.metadata("acme")
            ):
                pass

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == ["user_id", "page_token"]
    assert watch.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_an_erased_profile_takes_its_inbox_with_it_archived_messages_included(
    inapp, amqp_url, topo, tenants: Tenants
):
    await deliver(amqp_url, topo, envelope("inapp"), envelope("inapp"))
    acme = tenants.metadata("acme")
    async with inbox_stub(inapp) as stub:
        before = await stub.ListInbox(inbox_pb2.ListInboxRequest(user_id="u1"), metadata=acme)
        archived = await stub.Archive(
            inbox_pb2.ArchiveRequest(user_id="u1", message_ids=[before.messages[0].message_id]),
            metadata=acme,
        )
    assert (len(before.messages), archived.updated) == (2, 1)
    control = topo.queue(topology.control_stage("inapp"))
    start = consumed(control)
    erased = envelope_pb2.ProfileErased(tenant_id="acme", user_id="u1")
    await publish_event(
        amqp_url,
        topo.events_exchange,
        topology.EVENTS_ERASED_KEY,
        envelope_pb2.ControlEvent(profile_erased=erased).SerializeToString(),
    )
    await eventually(lambda: consumed(control) >= start + 1)
    async with inbox_stub(inapp) as stub:
        listing = await stub.ListInbox(inbox_pb2.ListInboxRequest(user_id="u1"), metadata=acme)
        shelf = await stub.ListInbox(
            inbox_pb2.ListInboxRequest(user_id="u1", status=inbox_pb2.INBOX_STATUS_ARCHIVED),
            metadata=acme,
        )
    await take_all(amqp_url, topo.queue(topology.EVENTS_INTAKE))
    assert (list(listing.messages), list(shelf.messages)) == ([], [])
    assert (listing.unread_count, listing.unseen_count) == (0, 0)
