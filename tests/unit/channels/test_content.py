from __future__ import annotations

from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2

from services.channels.content import Unrenderable, content_for
from tests.unit.templates.support import template

C = intent_pb2.Channel


def _intent() -> intent_pb2.SendIntent:
    intent = intent_pb2.SendIntent(category="cart_reminder")
    inline = intent.content.inline
    inline.email.subject = "Your cart"
    inline.email.text = "You left something"
    inline.sms.text = "Cart waiting"
    inline.inapp.title = "Cart"
    inline.inapp.body = "Still there"
    inline.inapp.data.update({"cart_id": "c-1", "items": 2})
    return intent


def test_email_content_has_every_field_even_the_empty_html():
    assert content_for(_intent(), C.CHANNEL_EMAIL) == {
        "subject": "Your cart",
        "text": "You left something",
        "html": "",
    }


def test_sms_content_is_its_text():
    assert content_for(_intent(), C.CHANNEL_SMS) == {"text": "Cart waiting"}


def test_inapp_content_carries_its_structured_data():
    content = content_for(_intent(), C.CHANNEL_INAPP)
    assert isinstance(content, dict)
    assert content["title"] == "Cart"
    assert content["data"] == {"cart_id": "c-1", "items": 2.0}


def test_inapp_content_without_data_has_an_empty_data_dict():
    intent = intent_pb2.SendIntent()
    intent.content.inline.inapp.title = "Hi"
    content = content_for(intent, C.CHANNEL_INAPP)
    assert isinstance(content, dict)
    assert content["data"] == {}


def test_a_channel_missing_from_inline_content_has_no_content():
    result = content_for(_intent(), C.CHANNEL_WEBPUSH)
    assert result == Unrenderable("no_content", "no inline content for channel webpush")


def test_a_template_intent_that_was_not_pinned_at_submit_is_template_not_found():
    intent = intent_pb2.SendIntent()
    intent.content.template.template_id = "welcome"
    result = content_for(intent, C.CHANNEL_EMAIL)
    assert isinstance(result, Unrenderable)
    assert result.reason == "template_not_found"
    assert "welcome" in result.detail


def _pinned(**parts: object) -> intent_pb2.SendIntent:
    intent = intent_pb2.SendIntent()
    ref = intent.content.template
    ref.template_id = "welcome"
    ref.data.update({"items": 2})
    ref.pinned.CopyFrom(template({"en": parts, "de": {"inapp": {"title": "Hallo"}}}))
    return intent


def _user(locale: str) -> profile_pb2.Profile:
    profile = profile_pb2.Profile(user_id="u1", locale=locale)
    profile.attributes.update({"name": "Ann"})
    return profile


def test_a_pinned_template_is_rendered_for_the_recipient_in_their_locale():
    intent = _pinned(
        inapp={"title": "Hi {{ profile.attributes.name }}", "body": "{{ data.items }} items"}
    )
    assert content_for(intent, C.CHANNEL_INAPP, _user("de-AT")) == {
        "title": "Hallo",
        "body": "",
        "action_url": "",
        "data": {},
    }
    english = content_for(intent, C.CHANNEL_INAPP, _user("en"))
    assert isinstance(english, dict)
    assert (english["title"], english["body"]) == ("Hi Ann", "2 items")


def test_a_pinned_template_missing_a_variable_is_a_render_error_naming_it():
    result = content_for(_pinned(sms={"text": "{{ data.coupon }}"}), C.CHANNEL_SMS, _user("en"))
    assert isinstance(result, Unrenderable)
    assert result.reason == "render_error"
    assert "data.coupon is undefined" in result.detail


def test_a_pinned_template_without_a_part_for_the_channel_has_no_content():
    result = content_for(_pinned(sms={"text": "x"}), C.CHANNEL_EMAIL, _user("en"))
    assert result == Unrenderable("no_content", "template 'welcome' v1 has no email part")


def test_an_intent_without_content_has_no_content():
    result = content_for(intent_pb2.SendIntent(), C.CHANNEL_SMS)
    assert isinstance(result, Unrenderable)
    assert result.reason == "no_content"
