"""Seen, read and archived through the Inbox API, on a running inapp service:
every RPC, its state rules, its field errors, and that nobody reaches another's inbox."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import grpc
import pytest
from sendmesh.inapp.v1 import inbox_pb2

from shared.clock import to_timestamp
from tests.conftest import Tenants
from tests.integration.bus_helpers import publish_to_stage
from tests.integration.channels.support import envelope
from tests.integration.inapp.support import STAGE, T0, field_violations, inbox_stub, seed

pb = inbox_pb2


async def _listing(
    stub,
    tenants: Tenants,
    status: pb.InboxStatus.ValueType = pb.INBOX_STATUS_UNSPECIFIED,
    user: str = "u1",
    tenant: str = "acme",
):
    return await stub.ListInbox(
        pb.ListInboxRequest(user_id=user, status=status), metadata=tenants.metadata(tenant)
    )


def _ids(listing: pb.ListInboxResponse) -> list[str]:
    return [m.message_id for m in listing.messages]


async def test_get_counts_is_the_badge_of_the_listing_and_of_nobody_else(inapp, tenants: Tenants):
    await seed(inapp, 3)
    async with inbox_stub(inapp) as stub:
        counts = await stub.GetCounts(
            pb.GetCountsRequest(user_id="u1"), metadata=tenants.metadata()
        )
        listing = await _listing(stub, tenants)
        theirs = await stub.GetCounts(
            pb.GetCountsRequest(user_id="u1"), metadata=tenants.metadata("globex")
        )
        other_user = await stub.GetCounts(
            pb.GetCountsRequest(user_id="u2"), metadata=tenants.metadata()
        )

    assert (counts.unread_count, counts.unseen_count) == (3, 3)
    assert (listing.unread_count, listing.unseen_count) == (3, 3)
    assert (theirs.unread_count, theirs.unseen_count) == (0, 0)
    assert (other_user.unread_count, other_user.unseen_count) == (0, 0)


async def test_mark_seen_by_id_lowers_only_the_unseen_count(inapp, tenants: Tenants):
    m1, _m2, _m3 = await seed(inapp, 3)
    async with inbox_stub(inapp) as stub:
        marked = await stub.MarkSeen(
            pb.MarkSeenRequest(user_id="u1", message_ids=[m1]), metadata=tenants.metadata()
        )
        again = await stub.MarkSeen(
            pb.MarkSeenRequest(user_id="u1", message_ids=[m1]), metadata=tenants.metadata()
        )
        listing = await _listing(stub, tenants)

    assert (marked.updated, marked.unread_count, marked.unseen_count) == (1, 3, 2)
    assert again.updated == 0
    seen = {m.message_id: m for m in listing.messages}[m1]
    assert seen.HasField("seen_at") and not seen.HasField("read_at")


async def test_mark_seen_all_stops_at_its_cut_off(inapp, tenants: Tenants):
    await seed(inapp, 3)  # delivered at T0 + 1, 2 and 3 minutes
    cut_off = to_timestamp(T0 + timedelta(minutes=2))
    async with inbox_stub(inapp) as stub:
        older = await stub.MarkSeen(
            pb.MarkSeenRequest(user_id="u1", all=True, up_to=cut_off), metadata=tenants.metadata()
        )
        rest = await stub.MarkSeen(
            pb.MarkSeenRequest(user_id="u1", all=True), metadata=tenants.metadata()
        )

    assert (older.updated, older.unseen_count) == (2, 1)
    assert (rest.updated, rest.unread_count, rest.unseen_count) == (1, 3, 0)


async def test_mark_read_implies_seen_and_a_second_mark_keeps_the_first_read_at(
    inapp, tenants: Tenants
):
    m1, _m2 = await seed(inapp, 2)
    request = pb.MarkReadRequest(user_id="u1", message_ids=[m1])
    async with inbox_stub(inapp) as stub:
        first = await stub.MarkRead(request, metadata=tenants.metadata())
        before = {m.message_id: m for m in (await _listing(stub, tenants)).messages}[m1]
        second = await stub.MarkRead(request, metadata=tenants.metadata())
        after = {m.message_id: m for m in (await _listing(stub, tenants)).messages}[m1]

    assert (first.updated, first.unread_count, first.unseen_count) == (1, 1, 1)
    assert (second.updated, second.unread_count) == (0, 1)
    assert before.read_at == before.seen_at
    assert (after.read_at, after.seen_at) == (before.read_at, before.seen_at)


async def test_mark_unread_puts_the_message_back_in_the_unread_count_but_not_the_unseen(
    inapp, tenants: Tenants
):
    m1, _m2 = await seed(inapp, 2)
    async with inbox_stub(inapp) as stub:
        await stub.MarkRead(
            pb.MarkReadRequest(user_id="u1", message_ids=[m1]), metadata=tenants.metadata()
        )
        unread = await stub.MarkUnread(
            pb.MarkUnreadRequest(user_id="u1", message_ids=[m1]), metadata=tenants.metadata()
        )
        message = {m.message_id: m for m in (await _listing(stub, tenants)).messages}[m1]

    assert (unread.updated, unread.unread_count, unread.unseen_count) == (1, 2, 1)
    assert message.HasField("seen_at") and not message.HasField("read_at")


async def test_mark_all_read_says_how_many_and_spares_later_and_archived_messages(
    inapp, tenants: Tenants
):
    m1, _m2, _m3, _m4 = await seed(inapp, 4)
    cut_off = to_timestamp(T0 + timedelta(minutes=3))
    async with inbox_stub(inapp) as stub:
        await stub.Archive(
            pb.ArchiveRequest(user_id="u1", message_ids=[m1]), metadata=tenants.metadata()
        )
        up_to = await stub.MarkAllRead(
            pb.MarkAllReadRequest(user_id="u1", up_to=cut_off), metadata=tenants.metadata()
        )
        rest = await stub.MarkAllRead(
            pb.MarkAllReadRequest(user_id="u1"), metadata=tenants.metadata()
        )
        archived = await _listing(stub, tenants, pb.INBOX_STATUS_ARCHIVED)

    assert (up_to.updated, up_to.unread_count, up_to.unseen_count) == (2, 1, 1)
    assert (rest.updated, rest.unread_count, rest.unseen_count) == (1, 0, 0)
    [shelved] = archived.messages
    assert shelved.message_id == m1 and not shelved.HasField("read_at")


async def test_archive_takes_messages_out_of_the_feed_and_counts_and_unarchive_brings_them_back(
    inapp, tenants: Tenants
):
    m1, m2, m3 = await seed(inapp, 3)
    async with inbox_stub(inapp) as stub:
        archived = await stub.Archive(
            pb.ArchiveRequest(user_id="u1", message_ids=[m1, m2]), metadata=tenants.metadata()
        )
        twice = await stub.Archive(
            pb.ArchiveRequest(user_id="u1", message_ids=[m1]), metadata=tenants.metadata()
        )
        feed = await _listing(stub, tenants)
        shelf = await _listing(stub, tenants, pb.INBOX_STATUS_ARCHIVED)
        back = await stub.Unarchive(
            pb.UnarchiveRequest(user_id="u1", message_ids=[m2]), metadata=tenants.metadata()
        )
        feed_after = await _listing(stub, tenants)

    assert (archived.updated, archived.unread_count, archived.unseen_count) == (2, 1, 1)
    assert twice.updated == 0
    assert (_ids(feed), _ids(shelf)) == ([m3], [m2, m1])
    assert all(m.HasField("archived_at") for m in shelf.messages)
    assert (back.updated, back.unread_count) == (1, 2)
    assert _ids(feed_after) == [m3, m2]
    assert not feed_after.messages[1].HasField("archived_at")


async def test_status_filters_list_unread_and_unseen_messages_and_pages_keep_their_filter(
    inapp, tenants: Tenants
):
    m1, m2, m3, m4 = await seed(inapp, 4)
    acme = tenants.metadata()
    async with inbox_stub(inapp) as stub:
        await stub.MarkSeen(pb.MarkSeenRequest(user_id="u1", message_ids=[m1]), metadata=acme)
        await stub.MarkRead(pb.MarkReadRequest(user_id="u1", message_ids=[m2]), metadata=acme)
        unread = await _listing(stub, tenants, pb.INBOX_STATUS_UNREAD)
        unseen = await _listing(stub, tenants, pb.INBOX_STATUS_UNSEEN)
        first = await stub.ListInbox(
            pb.ListInboxRequest(user_id="u1", status=pb.INBOX_STATUS_UNREAD, page_size=2),
            metadata=acme,
        )
        second = await stub.ListInbox(
            pb.ListInboxRequest(
                user_id="u1",
                status=pb.INBOX_STATUS_UNREAD,
                page_size=2,
                page_token=first.next_page_token,
            ),
            metadata=acme,
        )
        with pytest.raises(grpc.aio.AioRpcError) as mixed:
            await stub.ListInbox(
                pb.ListInboxRequest(user_id="u1", page_token=first.next_page_token), metadata=acme
            )

    assert (_ids(unread), _ids(unseen)) == ([m4, m3, m1], [m4, m3])
    assert (unread.unread_count, unread.unseen_count) == (3, 2)
    assert (_ids(first), _ids(second), second.next_page_token) == ([m4, m3], [m1], "")
    assert mixed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(mixed.value) == ["page_token"]


async def test_no_call_changes_another_tenants_or_another_users_messages(inapp, tenants: Tenants):
    ids = await seed(inapp, 2)
    before = await _snapshot(inapp, tenants)
    calls: list[tuple[str, Any]] = [
        ("MarkSeen", pb.MarkSeenRequest(user_id="u1", message_ids=ids)),
        ("MarkSeen", pb.MarkSeenRequest(user_id="u1", all=True)),
        ("MarkRead", pb.MarkReadRequest(user_id="u1", message_ids=ids)),
        ("MarkAllRead", pb.MarkAllReadRequest(user_id="u1")),
        ("Archive", pb.ArchiveRequest(user_id="u1", message_ids=ids)),
    ]
    updated = []
    async with inbox_stub(inapp) as stub:
        for method, request in calls:
            reply = await getattr(stub, method)(request, metadata=tenants.metadata("globex"))
            updated.append(reply.updated)
            request.user_id = "u2"
            reply = await getattr(stub, method)(request, metadata=tenants.metadata())
            updated.append(reply.updated)

    assert updated == [0] * 10
    assert await _snapshot(inapp, tenants) == before


async def _snapshot(inapp, tenants: Tenants) -> list[tuple[str, bool, bool, bool]]:
    async with inbox_stub(inapp) as stub:
        listing = await _listing(stub, tenants)
    return [
        (m.message_id, m.HasField("seen_at"), m.HasField("read_at"), m.HasField("archived_at"))
        for m in listing.messages
    ]


async def test_unread_and_unarchive_of_another_tenants_messages_change_nothing(
    inapp, tenants: Tenants
):
    m1, _m2 = await seed(inapp, 2)
    acme, globex = tenants.metadata(), tenants.metadata("globex")
    async with inbox_stub(inapp) as stub:
        await stub.MarkRead(pb.MarkReadRequest(user_id="u1", message_ids=[m1]), metadata=acme)
        await stub.Archive(pb.ArchiveRequest(user_id="u1", message_ids=[m1]), metadata=acme)
        unread = await stub.MarkUnread(
            pb.MarkUnreadRequest(user_id="u1", message_ids=[m1]), metadata=globex
        )
        back = await stub.Unarchive(
            pb.UnarchiveRequest(user_id="u1", message_ids=[m1]), metadata=globex
        )
        shelf = await _listing(stub, tenants, pb.INBOX_STATUS_ARCHIVED)

    assert (unread.updated, back.updated) == (0, 0)
    [message] = shelf.messages
    assert message.HasField("read_at") and message.HasField("archived_at")


@pytest.mark.parametrize(
    ("method", "request_", "fields"),
    [
        ("GetCounts", pb.GetCountsRequest(), ["user_id"]),
        ("MarkSeen", pb.MarkSeenRequest(user_id="u1"), ["message_ids"]),
        (
            "MarkSeen",
            pb.MarkSeenRequest(user_id="u1", all=True, message_ids=["m1"]),
            ["message_ids"],
        ),
        ("MarkRead", pb.MarkReadRequest(user_id="u1", message_ids=["m1", ""]), ["message_ids[1]"]),
        ("MarkUnread", pb.MarkUnreadRequest(user_id="u1"), ["message_ids"]),
        ("MarkAllRead", pb.MarkAllReadRequest(up_to=to_timestamp(T0)), ["user_id"]),
        ("Archive", pb.ArchiveRequest(user_id="u1", message_ids=["x" * 65]), ["message_ids[0]"]),
        ("Unarchive", pb.UnarchiveRequest(user_id="", message_ids=["m1"]), ["user_id"]),
        (
            "ListInbox",
            pb.ListInboxRequest(user_id="u1", status=pb.InboxStatus.ValueType(42)),
            ["status"],
        ),
    ],
)
async def test_a_bad_request_is_an_invalid_argument_naming_its_field(
    inapp, tenants: Tenants, method, request_, fields
):
    async with inbox_stub(inapp) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await getattr(stub, method)(request_, metadata=tenants.metadata())

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == fields


async def test_the_new_calls_need_an_api_key(inapp):
    async with inbox_stub(inapp) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetCounts(pb.GetCountsRequest(user_id="u1"))

    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_second_device_sees_new_messages_and_the_first_devices_changes_live(
    inapp, amqp_url, topo, tenants: Tenants
):
    acme = tenants.metadata()
    async with inbox_stub(inapp) as stub:
        device = stub.WatchInboxEvents(pb.WatchInboxEventsRequest(user_id="u1"), metadata=acme)
        stranger = stub.WatchInboxEvents(
            pb.WatchInboxEventsRequest(user_id="u1"), metadata=tenants.metadata("globex")
        )
        hello = await asyncio.wait_for(device.read(), timeout=5)
        await asyncio.wait_for(stranger.read(), timeout=5)

        env = envelope("inapp")
        await publish_to_stage(amqp_url, topo, STAGE, env)
        arrived = await asyncio.wait_for(device.read(), timeout=5)
        message_id = arrived.delivered.message_id
        await stub.MarkRead(
            pb.MarkReadRequest(user_id="u1", message_ids=[message_id]), metadata=acme
        )
        read = await asyncio.wait_for(device.read(), timeout=5)
        await stub.Archive(pb.ArchiveRequest(user_id="u1", message_ids=[message_id]), metadata=acme)
        archived = await asyncio.wait_for(device.read(), timeout=5)

        # globex watches its own u1: its first event after the hello is its own change.
        [globex_id] = await seed(inapp, 1, tenant="globex")
        await stub.MarkSeen(
            pb.MarkSeenRequest(user_id="u1", message_ids=[globex_id]),
            metadata=tenants.metadata("globex"),
        )
        theirs = await asyncio.wait_for(stranger.read(), timeout=5)
        device.cancel()
        stranger.cancel()

    assert (hello.WhichOneof("event"), hello.unread_count, hello.unseen_count) == (None, 0, 0)
    assert arrived.delivered.intent_id == env.intent_id
    assert (arrived.unread_count, arrived.unseen_count) == (1, 1)
    assert (read.changed.kind, list(read.changed.message_ids)) == (
        pb.INBOX_CHANGE_KIND_READ,
        [message_id],
    )
    assert (read.unread_count, read.unseen_count) == (0, 0)
    assert archived.changed.kind == pb.INBOX_CHANGE_KIND_ARCHIVED
    assert (theirs.changed.kind, list(theirs.changed.message_ids)) == (
        pb.INBOX_CHANGE_KIND_SEEN,
        [globex_id],
    )


async def test_a_mark_all_reaches_watchers_as_one_change_with_its_cut_off(inapp, tenants: Tenants):
    await seed(inapp, 3)
    acme = tenants.metadata()
    async with inbox_stub(inapp) as stub:
        device = stub.WatchInboxEvents(pb.WatchInboxEventsRequest(user_id="u1"), metadata=acme)
        hello = await asyncio.wait_for(device.read(), timeout=5)
        cut_off = to_timestamp(T0 + timedelta(minutes=2))
        await stub.MarkAllRead(pb.MarkAllReadRequest(user_id="u1", up_to=cut_off), metadata=acme)
        event = await asyncio.wait_for(device.read(), timeout=5)
        device.cancel()

    assert (hello.unread_count, hello.unseen_count) == (3, 3)
    assert (event.changed.kind, event.changed.all, event.changed.up_to) == (
        pb.INBOX_CHANGE_KIND_READ,
        True,
        cut_off,
    )
    assert list(event.changed.message_ids) == []
    assert (event.unread_count, event.unseen_count) == (1, 1)
