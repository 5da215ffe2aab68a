"""Every rule of services/intake/validation.py, each naming the field it is about."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sendmesh.intent.v1 import intent_pb2

from services.intake.validation import fingerprint, validate_batch, validate_intent

C = intent_pb2.Channel
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
Mutation = Callable[[intent_pb2.SendIntent], object]


def valid_intent(key: str = "k1") -> intent_pb2.SendIntent:
    """An in-app intent that passes every rule."""
    intent = intent_pb2.SendIntent(
        idempotency_key=key,
        category="cart_reminder",
        kind=intent_pb2.KIND_MARKETING,
        channels=[C.CHANNEL_INAPP],
    )
    intent.audience.user_ids.extend(["u1", "u2"])
    intent.content.inline.inapp.title = "Your cart"
    return intent


def problems(intent: intent_pb2.SendIntent, now: datetime = NOW) -> dict[str, str]:
    return dict(validate_intent(intent, now))


def at(seconds_from_now: float) -> int:
    return int((NOW + timedelta(seconds=seconds_from_now)).timestamp())


def add_channel(channel: int) -> Mutation:
    return lambda i: i.channels.append(C.ValueType(channel))


def add_empty_part(channel: int, part: str) -> Mutation:
    """Adds `channel` with its inline part present but empty."""

    def mutate(intent: intent_pb2.SendIntent) -> None:
        intent.channels.append(C.ValueType(channel))
        getattr(intent.content.inline, part).SetInParent()

    return mutate


def window(send_in_s: int, expire_in_s: int) -> Mutation:
    def mutate(intent: intent_pb2.SendIntent) -> None:
        intent.timing.send_at.FromSeconds(at(send_in_s))
        intent.timing.expires_at.FromSeconds(at(expire_in_s))

    return mutate


def with_email(**fields: str) -> Mutation:
    def mutate(intent: intent_pb2.SendIntent) -> None:
        intent.channels.append(C.CHANNEL_EMAIL)
        intent.content.inline.email.SetInParent()
        for name, value in fields.items():
            setattr(intent.content.inline.email, name, value)

    return mutate


def set_metadata(entries: dict[str, str]) -> Mutation:
    return lambda i: i.metadata.update(entries)


def set_within(seconds: int) -> Mutation:
    def mutate(intent: intent_pb2.SendIntent) -> None:
        rule = intent.exclude_if.add(event="purchase")
        rule.within.FromSeconds(seconds)

    return mutate


def replace_users(*users: str) -> Mutation:
    def mutate(intent: intent_pb2.SendIntent) -> None:
        intent.audience.ClearField("user_ids")
        intent.audience.user_ids.extend(users)

    return mutate


def audience(**fields: object) -> Mutation:
    """Replaces the audience with one made of `fields`."""

    def mutate(intent: intent_pb2.SendIntent) -> None:
        intent.ClearField("audience")
        intent.audience.MergeFrom(intent_pb2.Audience(**fields))  # type: ignore[arg-type]

    return mutate


DAY = 86_400

# (mutation, the one field it breaks, a fragment of the description)
BROKEN: dict[str, tuple[Mutation, str, str]] = {
    # identity
    "key missing": (lambda i: setattr(i, "idempotency_key", ""), "intent.idempotency_key", "required"),
    "key too long": (lambda i: setattr(i, "idempotency_key", "k" * 256), "intent.idempotency_key", "255"),
    "key with a control character": (lambda i: setattr(i, "idempotency_key", "a\nb"), "intent.idempotency_key", "printable"),
    "category missing": (lambda i: setattr(i, "category", ""), "intent.category", "required"),
    "category uppercase": (lambda i: setattr(i, "category", "Cart"), "intent.category", "lowercase"),
    "category too long": (lambda i: setattr(i, "category", "c" * 65), "intent.category", "max 64"),
    "category starting with _": (lambda i: setattr(i, "category", "_cart"), "intent.category", "lowercase"),
    "kind unspecified": (lambda i: i.ClearField("kind"), "intent.kind", "KIND_TRANSACTIONAL"),
    "kind unknown": (lambda i: setattr(i, "kind", 7), "intent.kind", "KIND_MARKETING"),
    "strategy unknown": (lambda i: setattr(i, "strategy", 9), "intent.strategy", "unknown strategy 9"),
    # audience
    "no recipients": (replace_users(), "intent.audience.user_ids", "at least one"),
    "empty user id": (replace_users("u1", ""), "intent.audience.user_ids[1]", "printable"),
    "user id too long": (replace_users("u" * 256), "intent.audience.user_ids[0]", "255"),
    "user id with a tab": (replace_users("a\tb"), "intent.audience.user_ids[0]", "printable"),
    "duplicate recipient": (replace_users("u1", "u2", "u1"), "intent.audience.user_ids[2]", "duplicate"),
    "user ids and a topic": (lambda i: setattr(i.audience, "topic", "news"), "intent.audience", "exactly one"),
    "topic and segment": (audience(topic="news", segment="x = 1"), "intent.audience", "topic and segment"),
    "topic with uppercase": (audience(topic="News"), "intent.audience.topic", "lowercase"),
    "topic with a space": (audience(topic="big news"), "intent.audience.topic", "lowercase"),
    "topic too long": (audience(topic="t" * 101), "intent.audience.topic", "1-100"),
    "segment that does not parse": (audience(segment="member = "), "intent.audience.segment", "at column 10"),
    "segment with a window too long": (audience(segment="event a within 500d"), "intent.audience.segment", "400d"),
    "segment too long": (audience(segment="a = 1" + " OR a = 1" * 600), "intent.audience.segment", "4096"),
    # channels
    "no channels": (lambda i: i.ClearField("channels"), "intent.channels", "at least one"),
    "unknown channel": (add_channel(99), "intent.channels[1]", "unknown channel 99"),
    "unspecified channel": (add_channel(C.CHANNEL_UNSPECIFIED), "intent.channels[1]", "unknown channel 0"),
    "duplicate channel": (add_channel(C.CHANNEL_INAPP), "intent.channels[1]", "duplicate"),
    # content, per channel
    "no content": (lambda i: i.ClearField("content"), "intent.content", "template or inline"),
    "template without id": (lambda i: i.content.template.SetInParent(), "intent.content.template.template_id", "required"),
    "email channel without email content": (add_channel(C.CHANNEL_EMAIL), "intent.content.inline.email", "channel email"),
    "sms channel without sms content": (add_channel(C.CHANNEL_SMS), "intent.content.inline.sms", "channel sms"),
    "webpush channel without webpush content": (add_channel(C.CHANNEL_WEBPUSH), "intent.content.inline.webpush", "channel webpush"),
    "email without subject": (with_email(text="hi"), "intent.content.inline.email.subject", "required"),
    "email without text or html": (with_email(subject="S"), "intent.content.inline.email.text", "text or html"),
    "sms without text": (add_empty_part(C.CHANNEL_SMS, "sms"), "intent.content.inline.sms.text", "required"),
    "webpush without title or body": (add_empty_part(C.CHANNEL_WEBPUSH, "webpush"), "intent.content.inline.webpush.title", "title or body"),
    "inapp without title or body": (lambda i: i.content.inline.inapp.Clear(), "intent.content.inline.inapp.title", "title or body"),
    # timing
    "send_at over a year ahead": (lambda i: i.timing.send_at.FromSeconds(at(367 * DAY)), "intent.timing.send_at", "one year"),
    "send_at with negative nanos": (lambda i: setattr(i.timing.send_at, "nanos", -5), "intent.timing.send_at", "valid timestamp"),
    "expires_at beyond year 9999": (lambda i: setattr(i.timing.expires_at, "seconds", 10**13), "intent.timing.expires_at", "valid timestamp"),
    "expires_at in the past": (lambda i: i.timing.expires_at.FromSeconds(at(-1)), "intent.timing.expires_at", "past"),
    "expires_at exactly now": (lambda i: i.timing.expires_at.FromSeconds(at(0)), "intent.timing.expires_at", "past"),
    "expires_at before send_at": (window(3600, 60), "intent.timing.expires_at", "after send_at"),
    "expires_at equal to send_at": (window(60, 60), "intent.timing.expires_at", "after send_at"),
    # behaviour rules
    "rule without event": (lambda i: i.exclude_if.add().within.FromSeconds(60), "intent.exclude_if[0].event", "required"),
    "rule event too long": (lambda i: i.exclude_if.add(event="e" * 65).within.FromSeconds(60), "intent.exclude_if[0].event", "64"),
    "rule without window": (lambda i: i.exclude_if.add(event="purchase"), "intent.exclude_if[0].within", "above 0"),
    "rule with a negative window": (set_within(-60), "intent.exclude_if[0].within", "above 0"),
    "rule window over 400 days": (set_within(401 * DAY), "intent.exclude_if[0].within", "400 days"),
    # cancel key and metadata
    "cancel key too long": (lambda i: setattr(i, "cancel_key", "c" * 256), "intent.cancel_key", "255"),
    "cancel key with a control character": (lambda i: setattr(i, "cancel_key", "a\x00b"), "intent.cancel_key", "printable"),
    "metadata over 32 entries": (set_metadata({f"k{n}": "v" for n in range(33)}), "intent.metadata", "at most 32"),
    "metadata empty key": (set_metadata({"": "v"}), "intent.metadata[]", "1-64"),
    "metadata key too long": (set_metadata({"m" * 65: "v"}), "intent.metadata[" + "m" * 64 + "]", "1-64"),
    "metadata value too long": (set_metadata({"campaign": "v" * 513}), "intent.metadata[campaign]", "512"),
}  # fmt: skip


def test_a_complete_intent_has_no_problems():
    assert problems(valid_intent()) == {}


def test_an_intent_with_content_for_every_channel_has_no_problems():
    intent = valid_intent()
    intent.channels.extend([C.CHANNEL_EMAIL, C.CHANNEL_SMS, C.CHANNEL_WEBPUSH])
    inline = intent.content.inline
    inline.email.subject, inline.email.html = "S", "<p>hi</p>"
    inline.sms.text = "hi"
    inline.webpush.body = "hi"
    intent.strategy = intent_pb2.STRATEGY_FIRST_AVAILABLE
    assert problems(intent) == {}


def test_a_template_is_content_for_every_channel():
    intent = valid_intent()
    intent.channels.extend([C.CHANNEL_EMAIL, C.CHANNEL_SMS, C.CHANNEL_WEBPUSH])
    intent.content.template.template_id = "cart-v2"
    assert problems(intent) == {}


@pytest.mark.parametrize(("mutate", "field", "fragment"), BROKEN.values(), ids=BROKEN.keys())
def test_each_broken_rule_names_its_field_and_only_that_field(mutate, field, fragment):
    intent = valid_intent()
    mutate(intent)
    found = problems(intent)
    assert list(found) == [field]
    assert fragment in found[field]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda i: setattr(i, "idempotency_key", "k" * 255),
        lambda i: setattr(i, "category", "c" * 64),
        lambda i: setattr(i, "category", "shop.cart-reminder_2"),
        lambda i: setattr(i, "kind", intent_pb2.KIND_TRANSACTIONAL),
        lambda i: setattr(i, "cancel_key", "c" * 255),
        lambda i: i.timing.send_at.FromSeconds(at(366 * DAY)),
        window(60, 61),
        set_within(400 * DAY),
        set_metadata({f"k{n}": "v" * 512 for n in range(32)}),
        set_metadata({"m" * 64: "v"}),
        replace_users(*(f"u{n}" for n in range(10_000))),
        audience(topic="t" * 100),
        audience(topic="shop.news_2-de"),
        audience(
            segment='member = false AND device = "mobile" AND '
            'event page_view where path starts with "/membership" within 7d'
        ),
    ],
    ids=[
        "key of 255",
        "category of 64",
        "category with . - _ and digits",
        "transactional",
        "cancel key of 255",
        "send_at exactly 366 days ahead",
        "expires_at just after send_at",
        "window of 400 days",
        "32 metadata entries of 512",
        "metadata key of 64",
        "10,000 recipients",
        "topic of 100",
        "topic with . _ - and digits",
        "the membership segment",
    ],
)
def test_values_at_the_limits_are_accepted(mutate):
    intent = valid_intent()
    mutate(intent)
    assert problems(intent) == {}


def test_more_than_10000_recipients_are_refused():
    intent = valid_intent()
    replace_users(*(f"u{n}" for n in range(10_001)))(intent)
    assert "at most 10000" in problems(intent)["intent.audience.user_ids"]


def test_every_problem_of_an_intent_is_reported_at_once():
    intent = intent_pb2.SendIntent(
        kind=intent_pb2.Kind.ValueType(7),
        strategy=intent_pb2.Strategy.ValueType(9),
        channels=[C.ValueType(99)],
    )
    assert list(problems(intent)) == [
        "intent.idempotency_key",
        "intent.category",
        "intent.kind",
        "intent.strategy",
        "intent.audience.user_ids",
        "intent.channels[0]",
        "intent.content",
    ]


def test_validation_uses_the_clock_it_is_given():
    intent = valid_intent()
    intent.timing.expires_at.FromSeconds(at(60))
    assert problems(intent, NOW) == {}
    assert list(problems(intent, NOW + timedelta(minutes=2))) == ["intent.timing.expires_at"]


def test_fields_are_named_under_the_prefix_given():
    intent = valid_intent()
    intent.idempotency_key = ""
    assert dict(validate_intent(intent, NOW, "intents[7]")) == {
        "intents[7].idempotency_key": "required"
    }


# -- batches --------------------------------------------------------------------


def test_a_batch_of_1000_valid_intents_has_no_problems():
    assert list(validate_batch([valid_intent(f"k{n}") for n in range(1000)], NOW)) == []


def test_an_empty_batch_is_refused():
    assert [field for field, _ in validate_batch([], NOW)] == ["intents"]


def test_a_batch_over_1000_is_refused_as_a_whole_without_reading_its_items():
    intents = [intent_pb2.SendIntent() for _ in range(1001)]  # every one invalid too
    found = list(validate_batch(intents, NOW))
    assert found == [("intents", "at most 1000 intents per batch, got 1001")]


def test_problems_in_a_batch_name_the_intent_by_its_index():
    bad = valid_intent("k2")
    bad.audience.ClearField("user_ids")
    bad.category = ""
    found = dict(validate_batch([valid_intent("k1"), bad, valid_intent("k3")], NOW))
    assert list(found) == ["intents[1].category", "intents[1].audience.user_ids"]


# -- fingerprints ---------------------------------------------------------------


def test_the_fingerprint_does_not_depend_on_the_order_map_entries_were_set():
    forward, backward = valid_intent(), valid_intent()
    keys = [f"key{n}" for n in range(20)]
    for key in keys:
        forward.metadata[key] = key.upper()
    for key in reversed(keys):
        backward.metadata[key] = key.upper()
    rule_a, rule_b = (
        forward.exclude_if.add(event="purchase"),
        backward.exclude_if.add(event="purchase"),
    )
    rule_a.within.FromSeconds(60)
    rule_b.within.FromSeconds(60)
    for key in keys:
        rule_a.properties[key] = "x"
    for key in reversed(keys):
        rule_b.properties[key] = "x"
    assert fingerprint(forward) == fingerprint(backward)


def test_the_fingerprint_is_the_same_for_equal_intents_built_apart():
    assert fingerprint(valid_intent()) == fingerprint(valid_intent())
    assert len(fingerprint(valid_intent())) == 64


@pytest.mark.parametrize(
    "mutate",
    [
        replace_users("u1", "u3"),
        replace_users("u2", "u1"),
        set_metadata({"campaign": "spring"}),
        lambda i: setattr(i.content.inline.inapp, "title", "Other"),
        lambda i: setattr(i, "kind", intent_pb2.KIND_TRANSACTIONAL),
    ],
    ids=["other recipient", "recipient order", "metadata", "content", "kind"],
)
def test_the_fingerprint_changes_with_the_content(mutate):
    changed = valid_intent()
    mutate(changed)
    assert fingerprint(changed) != fingerprint(valid_intent())
