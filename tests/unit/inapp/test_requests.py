from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp
from sendmesh.inapp.v1 import inbox_pb2

from services.inapp import requests
from services.inapp.cursor import encode_page_token
from services.inapp.states import Status, Target
from services.inapp.store import Position
from shared.clock import to_timestamp
from shared.grpc.status import Violations

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _fields(problems: Violations) -> list[str]:
    return [field for field, _ in problems.items]


def test_named_ids_are_kept_in_order_without_repeats():
    problems = Violations()
    assert requests.named_ids(["m2", "m1", "m2"], problems) == Target.named(("m2", "m1"))
    assert not problems


def test_every_bad_id_is_reported_with_its_index():
    problems = Violations()
    requests.named_ids(["m1", "", "x" * 65], problems)
    assert _fields(problems) == ["message_ids[1]", "message_ids[2]"]


def test_no_ids_or_too_many_ids_are_refused():
    none, many = Violations(), Violations()
    requests.named_ids([], none)
    requests.named_ids([f"m{i}" for i in range(1001)], many)
    assert (_fields(none), _fields(many)) == (["message_ids"], ["message_ids"])


def test_mark_seen_takes_ids_or_all_but_not_both():
    both, stray_up_to = Violations(), Violations()
    requests.seen_target(inbox_pb2.MarkSeenRequest(message_ids=["m1"], all=True), NOW, both)
    stray = inbox_pb2.MarkSeenRequest(message_ids=["m1"], up_to=to_timestamp(NOW))
    requests.seen_target(stray, NOW, stray_up_to)
    assert (_fields(both), _fields(stray_up_to)) == (["message_ids"], ["up_to"])


def test_mark_seen_all_defaults_to_now_and_keeps_an_earlier_cut_off():
    problems = Violations()
    earlier = NOW - timedelta(minutes=1)
    everything = requests.seen_target(inbox_pb2.MarkSeenRequest(all=True), NOW, problems)
    until = inbox_pb2.MarkSeenRequest(all=True, up_to=to_timestamp(earlier))
    assert everything == Target.feed_up_to(NOW)
    assert requests.seen_target(until, NOW, problems) == Target.feed_up_to(earlier)
    assert not problems


def test_a_cut_off_that_is_no_timestamp_is_refused():
    problems = Violations()
    requests.feed_up_to(Timestamp(seconds=10**12), NOW, problems)
    assert _fields(problems) == ["up_to"]


def test_a_page_token_must_come_from_a_listing_with_the_same_status():
    token = encode_page_token(Position(NOW, "m1"), Status.UNREAD)
    same, other = Violations(), Violations()
    assert requests.page_after(token, Status.UNREAD, same) == Position(NOW, "m1")
    assert requests.page_after(token, Status.ALL, other) is None
    assert (_fields(same), _fields(other)) == ([], ["page_token"])


def test_an_unknown_status_is_refused_and_unset_means_all():
    problems = Violations()
    assert requests.status(inbox_pb2.INBOX_STATUS_UNSPECIFIED, problems) is Status.ALL
    requests.status(99, problems)
    assert _fields(problems) == ["status"]
