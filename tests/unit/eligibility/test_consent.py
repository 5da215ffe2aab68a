"""Consent: the most specific statement decides; transactional ignores only the global switch."""

from __future__ import annotations

import pytest
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2

from services.eligibility.consent import Consent, consent_for, latest_statements, lookup_order

C = intent_pb2.Channel
EMAIL, SMS, ANY = C.CHANNEL_EMAIL, C.CHANNEL_SMS, C.CHANNEL_UNSPECIFIED
MARKETING, TRANSACTIONAL = intent_pb2.KIND_MARKETING, intent_pb2.KIND_TRANSACTIONAL


def stmt(channel: int, category: str, granted: bool, at: int = 100) -> profile_pb2.Consent:
    c = profile_pb2.Consent(channel=channel, category=category, granted=granted)  # type: ignore[arg-type]
    c.at.FromSeconds(at)
    return c


def test_statements_are_looked_up_most_specific_first():
    assert lookup_order(EMAIL, "cart", MARKETING) == [
        (EMAIL, "cart"),
        (EMAIL, ""),
        (ANY, "cart"),
        (ANY, ""),
    ]


def test_an_intent_without_a_category_asks_each_statement_once():
    assert lookup_order(EMAIL, "", MARKETING) == [(EMAIL, ""), (ANY, "")]


def test_transactional_never_asks_the_global_statement():
    assert (ANY, "") not in lookup_order(EMAIL, "receipts", TRANSACTIONAL)


def test_no_statement_at_all_is_missing():
    assert consent_for([], EMAIL, "cart", MARKETING) is Consent.MISSING


@pytest.mark.parametrize(
    ("statements", "expected"),
    [
        ([stmt(ANY, "", True)], Consent.GIVEN),
        ([stmt(ANY, "", True), stmt(ANY, "cart", False)], Consent.WITHDRAWN),
        ([stmt(ANY, "cart", False), stmt(EMAIL, "", True)], Consent.GIVEN),
        ([stmt(EMAIL, "", True), stmt(EMAIL, "cart", False)], Consent.WITHDRAWN),
        ([stmt(EMAIL, "cart", True), stmt(ANY, "", False)], Consent.GIVEN),
        ([stmt(SMS, "cart", True)], Consent.MISSING),
        ([stmt(EMAIL, "news", False)], Consent.MISSING),
    ],
    ids=[
        "global grant",
        "category-wide withdrawal beats global grant",
        "channel-wide grant beats category-wide withdrawal",
        "exact withdrawal beats channel-wide grant",
        "exact grant beats global withdrawal",
        "another channel says nothing",
        "another category says nothing",
    ],
)
def test_the_most_specific_statement_decides_marketing(statements, expected):
    assert consent_for(statements, EMAIL, "cart", MARKETING) is expected


def test_the_latest_statement_for_a_pair_wins_if_one_repeats():
    older, newer = stmt(EMAIL, "cart", True, at=100), stmt(EMAIL, "cart", False, at=200)
    assert latest_statements([newer, older]) == {(EMAIL, "cart"): False}
    assert consent_for([older, newer], EMAIL, "cart", MARKETING) is Consent.WITHDRAWN


def test_transactional_passes_a_global_withdrawal():
    assert consent_for([stmt(ANY, "", False)], EMAIL, "receipts", TRANSACTIONAL) is Consent.MISSING


@pytest.mark.parametrize(
    "withdrawal",
    [stmt(EMAIL, "receipts", False), stmt(EMAIL, "", False), stmt(ANY, "receipts", False)],
    ids=["exact", "channel-wide (e.g. SMS STOP)", "category on every channel"],
)
def test_transactional_stops_at_a_withdrawal_naming_its_channel_or_category(withdrawal):
    assert consent_for([withdrawal], EMAIL, "receipts", TRANSACTIONAL) is Consent.WITHDRAWN


def test_a_withdrawal_on_another_channel_does_not_stop_transactional():
    assert consent_for([stmt(SMS, "", False)], EMAIL, "receipts", TRANSACTIONAL) is Consent.MISSING
