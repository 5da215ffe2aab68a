"""Dead letters without a broker: what they say, how they are shown, where a
replay sends them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intent.v1 import intent_pb2
from typer.testing import CliRunner

from cli import dead_letter_model as model
from cli.main import app
from shared import reasons
from shared.bus.publisher import ATTEMPT_HEADER, DEAD_AT_HEADER, ERROR_HEADER, REASON_HEADER
from shared.bus.topology import Topology
from shared.clock import from_timestamp

TOPO = Topology("ns")
AT = datetime(2030, 1, 15, 9, 30, tzinfo=UTC)
PHONE = "+14155552671"
TEXT = "Your code is 1234"
ENVELOPE_TYPE = envelope_pb2.Envelope.DESCRIPTOR.full_name


def sms_envelope(users: tuple[str, ...] = ("u1", "u2")) -> envelope_pb2.Envelope:
    env = envelope_pb2.Envelope(tenant_id="acme", intent_id="i1")
    env.intent.content.inline.sms.text = TEXT
    for user in users:
        env.deliveries.add(
            delivery_id=f"d-{user}", user_id=user, channel=intent_pb2.Channel.CHANNEL_SMS
        )
        env.profiles[user].user_id = user
        env.profiles[user].contacts.phone = PHONE
    return env


def worker_dead_letter(env: envelope_pb2.Envelope | None = None) -> model.DeadLetter:
    headers = {
        ATTEMPT_HEADER: 3,
        REASON_HEADER: "max_attempts",
        ERROR_HEADER: "provider_unavailable: http 503",
        "x-sendmesh-stage": "send.sms",
        DEAD_AT_HEADER: int(AT.timestamp() * 1000),
    }
    body = (env or sms_envelope()).SerializeToString()
    return model.describe("send.sms", headers, body, ENVELOPE_TYPE)


def test_a_worker_dead_letter_says_why_when_and_after_how_many_attempts():
    letter = worker_dead_letter()
    assert (letter.reason, letter.attempts, letter.dead_at) == ("max_attempts", 3, AT)
    assert letter.detail == "provider_unavailable: http 503"


def test_a_message_the_broker_dead_lettered_is_explained_by_its_latest_death():
    headers = {
        "x-death": [
            {"reason": "delivery_limit", "queue": "ns.send.sms", "time": AT, "count": 1},
            {"reason": "expired", "queue": "ns.delay.0", "time": datetime(2030, 1, 1)},
        ],
        "x-delivery-count": 20,
        ATTEMPT_HEADER: 2,
    }
    letter = model.describe("send.sms", headers, sms_envelope().SerializeToString(), "")
    assert (letter.reason, letter.attempts, letter.dead_at) == ("delivery_limit", 20, AT)


def test_a_message_without_any_headers_is_described_as_unknown_not_refused():
    letter = model.describe("eligibility", {}, b"", "")
    assert (letter.reason, letter.attempts, letter.dead_at, letter.detail) == (
        "unknown",
        1,
        None,
        "",
    )


def test_channel_and_frequency_dead_letters_are_replayed_through_eligibility():
    assert model.replay_target("send.sms") == "eligibility"
    assert model.replay_target("send.inapp") == "eligibility"
    assert model.replay_target("frequency") == "eligibility"
    for stage in ("plan", "eligibility", "deferred", "release", "events.intake", "control.sms"):
        assert model.replay_target(stage) == stage


def test_a_replayed_delivery_goes_to_eligibility_marked_replayed_with_a_fresh_attempt_count():
    outs = model.replay_outbound(worker_dead_letter(), TOPO, AT)
    to_eligibility, to_events = outs
    assert (to_eligibility.exchange, to_eligibility.routing_key) == ("ns.work", "eligibility")
    assert ATTEMPT_HEADER not in to_eligibility.headers
    assert to_eligibility.headers[model.REPLAYED_HEADER] == "send.sms"
    env = envelope_pb2.Envelope.FromString(to_eligibility.body)
    for delivery in env.deliveries:
        last = delivery.decisions[-1]
        assert (last.stage, last.reason) == ("dlq", reasons.REPLAYED)
        assert last.state == intent_pb2.DeliveryState.DELIVERY_STATE_PENDING
        assert from_timestamp(last.at) == AT
        assert "max_attempts" in last.detail and "3 attempt" in last.detail
    assert env.profiles["u1"].contacts.phone == PHONE  # eligibility decides on it again

    assert (to_events.exchange, to_events.routing_key) == ("ns.events", "delivery")
    events = envelope_pb2.EventBatch.FromString(to_events.body).events
    assert [(e.delivery_id, e.decision.reason) for e in events] == [
        ("d-u1", "replayed"),
        ("d-u2", "replayed"),
    ]


def test_a_dead_letter_without_deliveries_goes_back_to_its_own_stage_as_it_was():
    batch = envelope_pb2.EventBatch().SerializeToString()
    letter = model.describe("release", {REASON_HEADER: "undecodable"}, batch, "")
    [out] = model.replay_outbound(letter, TOPO, AT)
    assert (out.exchange, out.routing_key, out.body) == ("ns.work", "release", batch)


def test_a_replay_keeps_what_cannot_succeed_and_what_the_reason_filter_excludes():
    letter = worker_dead_letter()
    assert model.why_kept(letter, None) is None
    assert model.why_kept(letter, "max_attempts") is None
    assert model.why_kept(letter, "undecodable") == "reason is max_attempts, not undecodable"
    garbage = model.describe("send.sms", {REASON_HEADER: "undecodable"}, b"\xff\x01", "")
    assert model.why_kept(garbage, None) == "undecodable: a replay cannot succeed"


def test_show_prints_headers_and_the_envelope_but_never_a_contact_point_or_the_content():
    row = model.show_row(worker_dead_letter())
    text = json.dumps(row)
    assert PHONE not in text and PHONE.lstrip("+") not in text
    assert TEXT not in text
    assert row["message"]["profiles"]["u1"]["contacts"] == model.HIDDEN
    assert row["message"]["intent"]["content"] == model.HIDDEN
    assert row["headers"][REASON_HEADER] == "max_attempts"
    assert row["dead_at"] == "2030-01-15T09:30:00.000Z"


def test_show_turns_broker_header_values_into_json():
    headers = {"x-death": [{"time": AT, "queue": b"ns.send.sms", "count": 1}]}
    letter = model.describe("send.sms", headers, b"", "")
    assert model.show_row(letter)["headers"]["x-death"] == [
        {"time": "2030-01-15T09:30:00.000Z", "queue": "ns.send.sms", "count": 1}
    ]


def test_a_summary_line_names_the_intent_and_its_deliveries():
    row = model.summary_row(worker_dead_letter())
    assert (row["intent_ids"], row["delivery_ids"]) == (["i1"], ["d-u1", "d-u2"])
    assert (row["reason"], row["attempts"], row["undecodable"]) == ("max_attempts", 3, False)


def test_every_stage_with_a_dead_letter_queue_can_be_named():
    stages = model.dead_letter_stages(TOPO)
    for stage in ("plan", "eligibility", "frequency", "send.sms", "events.intake", "control.sms"):
        assert stage in stages
    assert not [s for s in stages if s.startswith("delay")]


def test_naming_a_stage_without_a_dead_letter_queue_is_an_argument_error():
    result = CliRunner().invoke(app, ["dlq", "replay", "send.pigeon"])
    assert result.exit_code == 2
    assert "no dead-letter queue for 'send.pigeon'" in result.stderr
    assert "send.sms" in result.stderr


def test_a_message_of_a_type_this_process_does_not_know_is_replayed_as_it_is():
    letter = model.describe("feedback.eligibility", {}, b"\x0a\x03abc", "sendmesh.x.v1.Unknown")
    assert model.why_kept(letter, None) is None
    [out] = model.replay_outbound(letter, TOPO, AT)
    assert (out.routing_key, out.body, out.type) == (
        "feedback.eligibility",
        b"\x0a\x03abc",
        "sendmesh.x.v1.Unknown",
    )


def test_what_its_consumer_could_not_decode_is_kept_whatever_its_type():
    letter = model.describe("feedback.eligibility", {REASON_HEADER: "undecodable"}, b"", "")
    assert model.why_kept(letter, None) == "undecodable: a replay cannot succeed"
