"""The full decision: send_at, consent, suppression, behaviour rules, quiet hours, in order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sendmesh.eligibility.v1 import eligibility_pb2
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2

from services.eligibility.quiet_hours import QuietPolicy
from services.eligibility.rules import NO_FACTS, Facts, Verdict, check

C = intent_pb2.Channel
S = intent_pb2.DeliveryState
EMAIL, SMS, INAPP = C.CHANNEL_EMAIL, C.CHANNEL_SMS, C.CHANNEL_INAPP
# 13:00 in Vienna, 07:00 in New York.
NOON = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)
NIGHT_POLICY = QuietPolicy(True, 21 * 60, 8 * 60, "Europe/Vienna")
HARD_BOUNCE = eligibility_pb2.SUPPRESSION_REASON_HARD_BOUNCE


def marketing(**kw) -> intent_pb2.SendIntent:
    intent = intent_pb2.SendIntent(
        category="cart", kind=intent_pb2.KIND_MARKETING, channels=[EMAIL, SMS, INAPP], **kw
    )
    intent.content.template.template_id = "cart-v1"
    return intent


def transactional() -> intent_pb2.SendIntent:
    intent = marketing()
    intent.kind = intent_pb2.KIND_TRANSACTIONAL
    intent.category = "receipts"
    return intent


def opted_in(timezone: str = "Europe/Vienna") -> profile_pb2.Profile:
    profile = profile_pb2.Profile(user_id="u1", timezone=timezone)
    profile.contacts.email = "ann@example.com"
    profile.contacts.phone = "+4366412345678"
    profile.consents.add(channel=C.CHANNEL_UNSPECIFIED, category="", granted=True)
    return profile


def purchase(at: datetime, **properties: str) -> profile_pb2.BehaviourEvent:
    event = profile_pb2.BehaviourEvent(name="purchase", properties=properties)
    event.occurred_at.FromDatetime(at)
    return event


def excluded_after_purchase(intent: intent_pb2.SendIntent) -> intent_pb2.SendIntent:
    rule = intent.exclude_if.add(event="purchase", properties={"sku": "A1"})
    rule.within.FromTimedelta(timedelta(hours=24))
    return intent


def verdict(intent, profile, channel=EMAIL, at=NOON, facts=NO_FACTS) -> Verdict:
    return check(intent, profile, channel, at, facts)


def outcome(v: Verdict) -> tuple[int, str]:
    return v.state, v.reason


def test_an_opted_in_recipient_outside_quiet_hours_is_allowed():
    assert outcome(verdict(marketing(), opted_in(), facts=Facts(NIGHT_POLICY))) == (
        S.DELIVERY_STATE_PENDING,
        "allowed",
    )


def test_a_future_send_at_schedules_the_delivery_for_then():
    intent = marketing()
    intent.timing.send_at.FromDatetime(NOON + timedelta(hours=3))
    v = verdict(intent, opted_in())
    assert outcome(v) == (S.DELIVERY_STATE_SCHEDULED, "scheduled")
    assert v.not_before == NOON + timedelta(hours=3)
    assert v.detail == "send_at 2030-01-15T15:00:00Z"


def test_a_send_at_that_has_come_is_checked_like_any_other():
    intent = marketing()
    intent.timing.send_at.FromDatetime(NOON)
    assert outcome(verdict(intent, opted_in())) == (S.DELIVERY_STATE_PENDING, "allowed")


def test_expiry_beats_a_future_send_at_and_send_at_beats_a_missing_contact():
    intent = marketing()
    intent.timing.send_at.FromDatetime(NOON + timedelta(hours=1))
    nobody = profile_pb2.Profile(user_id="u1")
    assert verdict(intent, nobody).reason == "scheduled"
    intent.timing.expires_at.FromDatetime(NOON)
    assert verdict(intent, nobody).reason == "expired"


def test_marketing_without_any_statement_needs_an_opt_in():
    profile = opted_in()
    profile.ClearField("consents")
    v = verdict(marketing(), profile)
    assert outcome(v) == (S.DELIVERY_STATE_SUPPRESSED, "no_consent")
    assert v.detail == "no opt-in: email / cart"
    relaxed = Facts(marketing_requires_opt_in=False)
    assert verdict(marketing(), profile, facts=relaxed).reason == "allowed"


def test_a_withdrawal_suppresses_marketing_as_opted_out_on_its_channel_only():
    profile = opted_in()
    profile.consents.add(channel=EMAIL, category="cart", granted=False)
    v = verdict(marketing(), profile, EMAIL)
    assert outcome(v) == (S.DELIVERY_STATE_SUPPRESSED, "opted_out")
    assert v.detail == "withdrawn: email / cart"
    assert verdict(marketing(), profile, SMS).reason == "allowed"


def test_transactional_needs_no_opt_in_and_passes_the_global_withdrawal():
    profile = opted_in()
    profile.ClearField("consents")
    assert verdict(transactional(), profile).reason == "allowed"
    profile.consents.add(channel=C.CHANNEL_UNSPECIFIED, category="", granted=False)
    assert verdict(transactional(), profile).reason == "allowed"
    profile.consents.add(channel=SMS, category="", granted=False)
    assert verdict(transactional(), profile, SMS).reason == "opted_out"


def test_a_listed_contact_is_suppressed_with_the_lists_reason_on_that_channel_only():
    facts = Facts(suppressed={EMAIL: HARD_BOUNCE})
    v = verdict(marketing(), opted_in(), EMAIL, facts=facts)
    assert outcome(v) == (S.DELIVERY_STATE_SUPPRESSED, "suppressed")
    assert v.detail == "on the suppression list (hard_bounce)"
    assert verdict(marketing(), opted_in(), SMS, facts=facts).reason == "allowed"
    assert verdict(transactional(), opted_in(), EMAIL, facts=facts).reason == "suppressed"


def test_consent_is_checked_before_the_suppression_list():
    profile = opted_in()
    profile.consents.add(channel=EMAIL, category="", granted=False)
    facts = Facts(suppressed={EMAIL: HARD_BOUNCE})
    assert verdict(marketing(), profile, facts=facts).reason == "opted_out"


def test_a_matching_purchase_within_the_window_excludes_the_recipient():
    profile = opted_in()
    profile.recent_events.append(purchase(NOON - timedelta(hours=3), sku="A1", shop="web"))
    v = verdict(excluded_after_purchase(marketing()), profile)
    assert outcome(v) == (S.DELIVERY_STATE_SUPPRESSED, "excluded_by_rule")
    assert v.detail == "purchase within 24h (at 2030-01-15T09:00:00Z)"


@pytest.mark.parametrize(
    "event",
    [purchase(NOON - timedelta(hours=25), sku="A1"), purchase(NOON - timedelta(hours=1), sku="B2")],
    ids=["too long ago", "another product"],
)
def test_a_purchase_outside_the_window_or_without_the_property_does_not_exclude(event):
    profile = opted_in()
    profile.recent_events.append(event)
    assert verdict(excluded_after_purchase(marketing()), profile).reason == "allowed"


def test_the_suppression_list_is_checked_before_behaviour_rules():
    profile = opted_in()
    profile.recent_events.append(purchase(NOON - timedelta(hours=1), sku="A1"))
    facts = Facts(suppressed={EMAIL: HARD_BOUNCE})
    assert verdict(excluded_after_purchase(marketing()), profile, facts=facts).reason == (
        "suppressed"
    )


def test_marketing_in_quiet_hours_waits_for_the_windows_end_and_transactional_passes():
    night = datetime(2030, 1, 15, 22, 0, tzinfo=UTC)  # 23:00 in Vienna
    v = verdict(marketing(), opted_in(), at=night, facts=Facts(NIGHT_POLICY))
    assert outcome(v) == (S.DELIVERY_STATE_SCHEDULED, "quiet_hours")
    assert v.not_before == datetime(2030, 1, 16, 7, 0, tzinfo=UTC)  # 08:00 in Vienna
    assert v.detail == "quiet hours 21:00-08:00 Europe/Vienna"
    assert verdict(transactional(), opted_in(), at=night, facts=Facts(NIGHT_POLICY)).allowed


def test_behaviour_rules_are_checked_before_quiet_hours():
    night = datetime(2030, 1, 15, 22, 0, tzinfo=UTC)
    profile = opted_in()
    profile.recent_events.append(purchase(night - timedelta(hours=1), sku="A1"))
    intent = excluded_after_purchase(marketing())
    assert verdict(intent, profile, at=night, facts=Facts(NIGHT_POLICY)).reason == (
        "excluded_by_rule"
    )


def test_quiet_hours_are_read_on_the_recipients_own_clock():
    at = datetime(2030, 1, 15, 4, 0, tzinfo=UTC)  # 05:00 in Vienna, 23:00 in New York
    policy = Facts(NIGHT_POLICY)
    assert verdict(marketing(), opted_in("Europe/Vienna"), at=at, facts=policy).not_before == (
        datetime(2030, 1, 15, 7, 0, tzinfo=UTC)
    )
    assert verdict(marketing(), opted_in("America/New_York"), at=at, facts=policy).not_before == (
        datetime(2030, 1, 15, 13, 0, tzinfo=UTC)
    )


def test_a_recipient_without_a_valid_zone_gets_the_tenants_default_then_utc():
    at = datetime(2030, 1, 15, 21, 30, tzinfo=UTC)  # 22:30 in Vienna, 21:30 UTC
    late_evening = QuietPolicy(True, 22 * 60, 6 * 60, "Europe/Vienna")
    assert verdict(marketing(), opted_in(""), at=at, facts=Facts(late_evening)).deferred
    assert verdict(marketing(), opted_in("Nowhere/Land"), at=at, facts=Facts(late_evening)).deferred
    in_utc = QuietPolicy(True, 22 * 60, 6 * 60, "")
    assert verdict(marketing(), opted_in(""), at=at, facts=Facts(in_utc)).allowed


def test_the_profiles_own_quiet_hours_override_the_tenants():
    night = datetime(2030, 1, 15, 22, 0, tzinfo=UTC)  # 23:00 in Vienna
    facts = Facts(NIGHT_POLICY)
    off = opted_in()
    off.quiet_hours.disabled = True
    assert verdict(marketing(), off, at=night, facts=facts).allowed
    own = opted_in()
    own.quiet_hours.start_minute, own.quiet_hours.end_minute = 23 * 60 + 30, 6 * 60
    assert verdict(marketing(), own, at=night, facts=facts).allowed
    own.quiet_hours.start_minute = 22 * 60
    assert verdict(marketing(), own, at=night, facts=facts).not_before == (
        datetime(2030, 1, 16, 5, 0, tzinfo=UTC)
    )


def test_a_profile_window_applies_without_any_tenant_policy():
    profile = opted_in()
    profile.quiet_hours.start_minute, profile.quiet_hours.end_minute = 12 * 60, 14 * 60
    assert verdict(marketing(), profile).deferred


def test_quiet_hours_out_of_range_in_a_snapshot_mean_none_rather_than_a_crash():
    profile = opted_in()
    profile.quiet_hours.start_minute, profile.quiet_hours.end_minute = -5, 5000
    assert verdict(marketing(), profile, facts=Facts(NIGHT_POLICY)).allowed


def test_no_detail_ever_names_the_contact_point():
    profile = opted_in()
    profile.recent_events.append(purchase(NOON - timedelta(hours=1), sku="A1"))
    details = [
        verdict(marketing(), opted_in(), facts=Facts(suppressed={EMAIL: HARD_BOUNCE})).detail,
        verdict(excluded_after_purchase(marketing()), profile).detail,
        verdict(
            marketing(), opted_in(), at=NOON.replace(hour=22), facts=Facts(NIGHT_POLICY)
        ).detail,
    ]
    assert all(d and "ann@" not in d and "+43" not in d and "A1" not in d for d in details)
