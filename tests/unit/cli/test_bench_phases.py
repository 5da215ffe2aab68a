"""The pure parts of the decisions and fan-out phases: data, requests, tallies."""

from __future__ import annotations

import math

from sendmesh.intent.v1 import intent_pb2

from cli.bench import decisions, fanout
from cli.bench.runner import ALL_PHASES, Phase, phases_of
from cli.bench.seed import batches
from cli.bench.stats import span_rate

S = intent_pb2.DeliveryState


def test_every_twentieth_user_has_no_opt_in_and_the_others_opted_in_to_the_offers():
    users = decisions.user_ids("run", 40)
    profiles = decisions.population(users)
    without = [p.user_id for p in profiles if not p.consents]
    assert without == [users[0], users[20]]
    [consent] = profiles[1].consents
    assert (consent.channel, consent.category, consent.granted) == (
        intent_pb2.CHANNEL_INAPP,
        decisions.CATEGORY,
        True,
    )


def test_every_tenth_user_bought_something_an_hour_ago():
    users = decisions.user_ids("run", 30)
    bought = decisions.purchases(users)
    assert [e.user_id for e in bought] == [users[5], users[15], users[25]]
    assert {e.event.name for e in bought} == {decisions.RULE_EVENT}


def test_an_offer_is_in_app_marketing_that_a_recent_purchase_excludes():
    intent = decisions.offer_request("u1").intent
    assert intent.kind == intent_pb2.KIND_MARKETING
    assert list(intent.audience.user_ids) == ["u1"]
    assert list(intent.channels) == [intent_pb2.CHANNEL_INAPP]
    [rule] = intent.exclude_if
    assert (rule.event, rule.within.seconds) == (decisions.RULE_EVENT, 24 * 3600)
    policy = decisions.cap_policy()
    assert (policy.category, policy.limit) == (intent.category, 1)


def test_the_outcomes_of_the_submitted_intents_add_up_to_what_was_submitted():
    ended = {
        "a": (S.DELIVERY_STATE_SENT, 1.0),
        "b": (S.DELIVERY_STATE_SUPPRESSED, 1.0),
        "c": (S.DELIVERY_STATE_CAPPED, 1.0),
        "d": (S.DELIVERY_STATE_EXPIRED, 1.0),
        "not-ours": (S.DELIVERY_STATE_SENT, 1.0),
    }
    counts = decisions.tally(ended, ["a", "b", "c", "d", "e"])
    assert counts == {"sent": 1, "suppressed": 1, "capped": 1, "other": 1, "undecided": 1}
    assert sum(counts.values()) == 5


def test_the_fan_out_goes_to_the_topic_with_no_cap_on_its_category():
    intent = fanout.news_request(fanout.TOPIC).intent
    assert intent.audience.topic == fanout.TOPIC
    assert not intent.audience.user_ids
    assert intent.category != decisions.cap_policy().category
    assert len(set(fanout.member_ids("run", 1000))) == 1000


def test_the_rate_of_a_span_counts_the_intervals_between_its_events():
    assert span_rate(101, 10.0, 12.0) == 50.0
    assert math.isnan(span_rate(1, 10.0, 10.0))
    assert math.isnan(span_rate(5, 10.0, 10.0))


def test_seed_batches_are_at_most_the_size_one_call_takes():
    assert [len(b) for b in batches(list(range(2500)), 1000)] == [1000, 1000, 500]


def test_all_or_no_phase_named_means_every_phase():
    assert phases_of([]) == ALL_PHASES
    assert phases_of([Phase.single, Phase.all]) == ALL_PHASES
    assert phases_of([Phase.fanout]) == {Phase.fanout}
