"""Pinning an intent to the template version it resolves to."""

from __future__ import annotations

from sendmesh.intent.v1 import intent_pb2

from services.templates.pinning import pin, template_refs
from services.templates.store import Resolved
from tests.unit.templates.support import template

V3 = template({"en": {"sms": {"text": "Hi"}}}, template_id="cart", category="cart_reminder")
V3.version = 3


def intent(template_id: str = "cart", version: int = 0, category: str = "cart_reminder"):
    i = intent_pb2.SendIntent(category=category)
    i.content.template.template_id = template_id
    i.content.template.version = version
    return i


FOUND = Resolved({("cart", 0): V3, ("cart", 3): V3}, {"cart", "other"})


def test_a_resolved_reference_is_pinned_in_place():
    i = intent()
    assert list(pin("intent", i, FOUND)) == []
    assert i.content.template.pinned == V3


def test_an_unknown_template_names_the_template_id():
    i = intent("nope")
    assert list(pin("intents[2]", i, FOUND)) == [
        ("intents[2].content.template.template_id", "no template 'nope'")
    ]
    assert not i.content.template.HasField("pinned")


def test_an_unknown_version_of_a_known_template_names_the_version():
    assert list(pin("intent", intent("other", 7), FOUND)) == [
        ("intent.content.template.version", "template 'other' has no version 7")
    ]


def test_a_template_of_another_category_names_the_category():
    assert list(pin("intent", intent(category="welcome"), FOUND)) == [
        ("intent.category", "template 'cart' is for category 'cart_reminder'")
    ]


def test_inline_intents_are_left_alone():
    inline = intent_pb2.SendIntent()
    inline.content.inline.sms.text = "x"
    assert list(pin("intent", inline, FOUND)) == []
    assert template_refs([("intent", inline), ("intents[1]", intent(version=3))]) == {("cart", 3)}
