"""Suppression keys: normalised contacts, keyed hashes, contact validation."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2

from services.eligibility.cursor import decode_page_token, encode_page_token
from services.eligibility.suppression import (
    contact_hash,
    contact_problem,
    describe,
    listed_channels,
    normalise,
    profile_hashes,
)

C = intent_pb2.Channel
KEY = b"k" * 32


def test_an_email_is_trimmed_and_lower_cased_before_hashing():
    assert normalise(C.CHANNEL_EMAIL, "  Ann.Lee@Example.COM \n") == "ann.lee@example.com"
    assert contact_hash(KEY, C.CHANNEL_EMAIL, " Ann@Example.com") == contact_hash(
        KEY, C.CHANNEL_EMAIL, "ann@example.com"
    )


def test_a_phone_is_hashed_in_e164_form():
    assert normalise(C.CHANNEL_SMS, "+43 664 1234 5678") == "+4366412345678"
    assert contact_hash(KEY, C.CHANNEL_SMS, "+43 (664) 12345678") == contact_hash(
        KEY, C.CHANNEL_SMS, "+4366412345678"
    )


def test_the_hash_is_hmac_sha256_of_the_normalised_contact_in_hex():
    expected = hmac.new(KEY, b"ann@example.com", hashlib.sha256).hexdigest()
    assert contact_hash(KEY, C.CHANNEL_EMAIL, "ANN@example.com") == expected
    assert len(expected) == 64


def test_another_key_gives_another_hash():
    assert contact_hash(KEY, C.CHANNEL_EMAIL, "a@example.com") != contact_hash(
        b"x" * 32, C.CHANNEL_EMAIL, "a@example.com"
    )


@pytest.mark.parametrize(
    ("channel", "contact", "problem"),
    [
        (C.CHANNEL_EMAIL, "ann@example.com", None),
        (C.CHANNEL_EMAIL, " Ann+promo@mail.example.co.uk ", None),
        (C.CHANNEL_EMAIL, "", "required"),
        (C.CHANNEL_EMAIL, "ann", "not an email address"),
        (C.CHANNEL_EMAIL, "ann@localhost", "not an email address"),
        (C.CHANNEL_EMAIL, "a b@example.com", "not an email address"),
        (C.CHANNEL_EMAIL, "a@b@example.com", "not an email address"),
        (C.CHANNEL_EMAIL, "x" * 250 + "@example.com", "not an email address"),
        (C.CHANNEL_SMS, "+4366412345678", None),
        (C.CHANNEL_SMS, "+1 202 555 0143", None),
        (
            C.CHANNEL_SMS,
            "066412345678",
            "an E.164 number with its country code, such as +4366412345678",
        ),
        (C.CHANNEL_SMS, "+43 12", "not a valid phone number for its country"),
        (C.CHANNEL_SMS, "+abc", "not a phone number"),
    ],
)
def test_contacts_are_validated_without_repeating_them(channel, contact, problem):
    assert contact_problem(channel, contact) == problem
    if problem:
        assert contact.strip() == "" or contact.strip() not in problem


def test_a_profile_is_hashed_on_its_email_and_phone_only():
    profile = profile_pb2.Profile(user_id="u1")
    profile.contacts.email = "Ann@Example.com"
    profile.contacts.webpush.add(endpoint="https://push.example/1")
    assert profile_hashes(KEY, profile) == {
        C.CHANNEL_EMAIL: contact_hash(KEY, C.CHANNEL_EMAIL, "ann@example.com")
    }
    profile.contacts.phone = "+4366412345678"
    assert set(profile_hashes(KEY, profile)) == {C.CHANNEL_EMAIL, C.CHANNEL_SMS}


def test_a_suppression_is_described_by_its_reason():
    assert describe(1) == "on the suppression list (hard_bounce)"
    assert describe(3) == "on the suppression list (sms_stop)"
    assert describe(99) == "on the suppression list (unspecified)"


def test_a_page_token_round_trips_and_a_foreign_one_is_refused():
    digest = "ab" * 32
    assert decode_page_token(encode_page_token(2, digest)) == (2, digest)
    for bad in ["", "!!!", encode_page_token(2, "short"), "MnwyfGFi"]:
        with pytest.raises(ValueError):
            decode_page_token(bad)


def test_a_profile_is_listed_on_the_channels_whose_hash_the_tenant_holds():
    profile = profile_pb2.Profile(user_id="u1")
    profile.contacts.email, profile.contacts.phone = "ann@example.com", "+4366412345678"
    email = contact_hash(KEY, C.CHANNEL_EMAIL, "ann@example.com")
    listed: dict[tuple[str, int, str], int] = {
        ("acme", C.CHANNEL_EMAIL, email): 2,
        ("globex", C.CHANNEL_SMS, "x" * 64): 3,
    }
    assert listed_channels(KEY, "acme", profile, listed) == {C.CHANNEL_EMAIL: 2}
    assert listed_channels(KEY, "globex", profile, listed) == {}
