"""Rendering a part: variables named when missing, locales, escaping."""

from __future__ import annotations

import pytest
from google.protobuf import struct_pb2

from services.templates.render import (
    Recipient,
    RenderError,
    first_locale,
    locale_chain,
    plain,
    render_all,
    render_part,
)
from tests.unit.templates.support import template, template_with

GREETING = {"inapp": {"title": "Hello", "body": "{{ data.items }} items"}}


def rendered_in(t, part: str, user_locale: str, override: str = "") -> str:
    out = render_part(t, part, {"items": 2}, Recipient("u1", user_locale), override)
    assert out is not None
    return out.locale


@pytest.mark.parametrize(
    ("source", "variable"),
    [
        ("{{ data.cart_total }}", "data.cart_total"),
        ("{{ data.cart.total }}", "data.cart"),
        ("{{ data.lines[5] }}", "data.lines[5]"),
        ("{{ profile.attributes.tier }}", "profile.attributes.tier"),
        ("{% if data.coupon %}x{% endif %}", "data.coupon"),
    ],
)
def test_a_missing_variable_fails_the_render_naming_the_variable(source, variable):
    t = template_with(sms={"text": f"Hi {source}"})
    with pytest.raises(RenderError) as err:
        render_part(t, "sms", {"lines": [1]}, Recipient("u1"))
    assert err.value.reason == "render_error"
    assert err.value.variable == variable
    assert f"{variable} is undefined" in err.value.detail
    assert "'cart' v1 (en) sms.text" in err.value.detail


def test_the_locale_chain_is_the_locale_then_its_language_then_the_default():
    assert locale_chain("pt-BR", "en") == ["pt-br", "pt", "en"]
    assert locale_chain("de", "de") == ["de"]
    assert locale_chain("", "en") == ["en"]
    assert locale_chain("en_GB", "EN") == ["en-gb", "en"]


def test_a_regional_locale_falls_back_to_its_language_then_to_the_default():
    t = template({"en": GREETING, "pt": GREETING, "pt-PT": GREETING})
    assert rendered_in(t, "inapp", "pt-BR") == "pt"
    assert rendered_in(t, "inapp", "pt-pt") == "pt-PT"
    assert rendered_in(t, "inapp", "fr-FR") == "en"
    assert rendered_in(t, "inapp", "") == "en"


def test_the_intents_locale_overrides_the_recipients():
    t = template({"en": GREETING, "de": GREETING})
    assert rendered_in(t, "inapp", "en", override="de-AT") == "de"


def test_a_channel_missing_from_the_chosen_variant_comes_from_the_next_in_the_chain():
    t = template({"en": {**GREETING, "sms": {"text": "Hello"}}, "de": GREETING})
    assert rendered_in(t, "inapp", "de") == "de"
    assert rendered_in(t, "sms", "de") == "en"
    assert first_locale(t, "de-CH") == "de"


def test_a_part_no_variant_has_renders_nothing():
    assert render_part(template_with(**GREETING), "email", {}, Recipient()) is None


def test_only_email_html_is_escaped():
    t = template_with(
        email={
            "subject": "{{ data.name }}",
            "text": "{{ data.name }}",
            "html": "<p>{{ data.name }}</p>",
        },
        sms={"text": "{{ data.name }}"},
        inapp={"title": "{{ data.name }}", "body": "b"},
    )
    data = {"name": "<Tom & Jerry>"}
    parts = dict(render_all(t, data, Recipient()))
    assert parts["email"].fields == {
        "subject": "<Tom & Jerry>",
        "text": "<Tom & Jerry>",
        "html": "<p>&lt;Tom &amp; Jerry&gt;</p>",
    }
    assert parts["sms"].fields == {"text": "<Tom & Jerry>"}
    assert parts["inapp"].fields["title"] == "<Tom & Jerry>"


def test_whole_numbers_from_a_struct_print_without_a_decimal_point():
    data = struct_pb2.Struct()
    data.update({"items": 2, "total": 12.5, "nested": {"n": [1, 2.0]}})
    assert plain(data) == {"items": 2, "total": 12.5, "nested": {"n": [1, 2]}}
    out = render_part(
        template_with(sms={"text": "{{ data.items }} for {{ data.total }}"}),
        "sms",
        plain(data),
        Recipient(),
    )
    assert out is not None and out.fields == {"text": "2 for 12.5"}


def test_inapp_data_is_passed_on_unrendered_with_every_field_present():
    t = template_with(
        inapp={"title": "Hi {{ data.items }}", "data": {"cart_id": "{{ not rendered }}"}}
    )
    out = render_part(t, "inapp", {"items": 1}, Recipient())
    assert out is not None
    assert out.fields == {
        "title": "Hi 1",
        "body": "",
        "action_url": "",
        "data": {"cart_id": "{{ not rendered }}"},
    }
