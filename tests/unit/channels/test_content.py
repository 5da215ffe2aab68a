from __future__ import annotations

from sendmesh.intent.v1 import intent_pb2

from services.channels.content import Unrenderable, content_for

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


def test_template_content_cannot_be_rendered_yet():
    intent = intent_pb2.SendIntent()
    intent.content.template.template_id = "welcome"
    result = content_for(intent, C.CHANNEL_EMAIL)
    assert isinstance(result, Unrenderable)
    assert result.reason == "template_not_found"
    assert "welcome" in result.detail


def test_an_intent_without_content_has_no_content():
    result = content_for(intent_pb2.SendIntent(), C.CHANNEL_SMS)
    assert isinstance(result, Unrenderable)
    assert result.reason == "no_content"
