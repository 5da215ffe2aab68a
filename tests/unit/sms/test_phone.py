from __future__ import annotations

import pytest

from services.sms.phone import Unusable, to_e164


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("+14155552671", "US", "+14155552671"),
        ("(415) 555-2671", "US", "+14155552671"),
        ("  +44 7911 123456 ", "US", "+447911123456"),
        ("07911 123456", "GB", "+447911123456"),
        ("06 12 34 56 78", "FR", "+33612345678"),
    ],
)
def test_a_valid_number_is_normalised_to_e164(raw, region, e164):
    assert to_e164(raw, region) == e164


def test_a_national_number_is_read_in_the_default_region_only():
    assert to_e164("07911 123456", "GB") == "+447911123456"
    assert isinstance(to_e164("07911 123456", "US"), Unusable)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("12", "too short"),
        ("call me", "not a phone number"),
        ("+999123456", "unknown or missing country code"),
        ("555-2671", "a local number without an area code"),
        ("+1999999999999999", "too long"),
        ("+1 200 555 0100", "not a valid number for its country"),
    ],
)
def test_an_unusable_number_says_why(raw, why):
    assert to_e164(raw, "US") == Unusable(why)


@pytest.mark.parametrize("raw", ["12", "555-2671", "+1 200 555 0100", "+1999999999999999"])
def test_the_reason_never_repeats_the_number(raw):
    result = to_e164(raw, "US")
    assert isinstance(result, Unusable)
    assert not any(ch.isdigit() for ch in result.why)
