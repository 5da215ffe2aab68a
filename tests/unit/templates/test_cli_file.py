"""Reading a template file for `sendmesh templates put`."""

from __future__ import annotations

import json

import pytest

from cli.commands.templates import BadFile, parse_template

YAML = """
template_id: cart_reminder
category: cart_reminder
default_locale: en
variants:
  en:
    email: {subject: "Your cart", text: "Hi {{ profile.attributes.name }}"}
  de:
    inapp: {title: "Dein Warenkorb", body: "{{ data.items }} Artikel"}
"""


def test_yaml_variants_may_be_a_mapping_from_locale_to_parts():
    t = parse_template(YAML, ".yaml")
    assert (t.template_id, t.category, t.default_locale) == ("cart_reminder", "cart_reminder", "en")
    assert [v.locale for v in t.variants] == ["en", "de"]
    assert t.variants[0].email.text == "Hi {{ profile.attributes.name }}"
    assert t.variants[1].inapp.body == "{{ data.items }} Artikel"


def test_json_variants_may_be_a_list():
    text = json.dumps(
        {
            "template_id": "t",
            "default_locale": "en",
            "variants": [{"locale": "en", "sms": {"text": "x"}}],
        }
    )
    assert parse_template(text, ".json").variants[0].sms.text == "x"


@pytest.mark.parametrize(
    ("text", "suffix", "message"),
    [
        ("template_id: [", ".yml", "not YAML"),
        ("{", ".json", "not JSON"),
        ("- a\n- b", ".yaml", "one object"),
        ("template_id: t\ncolour: red", ".yaml", "colour"),
        ("variants:\n  en: hello", ".yaml", "each locale maps to its parts"),
    ],
)
def test_a_file_that_is_not_a_template_says_why(text, suffix, message):
    with pytest.raises(BadFile, match=message):
        parse_template(text, suffix)
