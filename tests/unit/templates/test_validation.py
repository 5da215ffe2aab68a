"""PutTemplate's rules: every source compiled at put time, errors by field."""

from __future__ import annotations

from typing import Any

import pytest

from services.templates import validation
from tests.unit.templates.support import template

GOOD: dict[str, Any] = {"inapp": {"title": "Hi {{ profile.attributes.name }}", "body": "b"}}


def problems(t) -> dict[str, str]:
    return dict(validation.template(t))


def test_a_good_template_has_no_problems():
    assert problems(template({"en": GOOD, "de": {"sms": {"text": "{{ data.x }}"}}})) == {}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("Hi {{ data.name }", "line 1: unexpected '}'"),
        ("{% if data.x %}open", "line 1: Unexpected end of template"),
        ("{{ data.x | no_such_filter }}", "No filter named 'no_such_filter'"),
        ("{% include 'header.html' %}", "cannot include, import or extend"),
        ("{% extends 'base' %}", "cannot include, import or extend"),
        ("Hi {{ name }}", "unknown variable 'name': variables are data.<name> and profile.<field>"),
    ],
)
def test_a_source_that_cannot_be_a_template_is_refused_naming_variant_and_part(source, expected):
    t = template({"en": GOOD, "de": {"email": {"subject": "S", "text": "t", "html": source}}})
    found = problems(t)
    assert list(found) == ["template.variants[1].email.html"]
    assert expected in found["template.variants[1].email.html"]


def test_loop_variables_and_assignments_are_not_unknown_names():
    source = "{% set n = data.items | length %}{% for i in data.items %}{{ loop.index }}{{ i }}{% endfor %}{{ n }}{{ range(2) | list }}"
    assert problems(template({"en": {"sms": {"text": source}}})) == {}


def test_structure_problems_name_their_fields():
    t = template(
        {"en": {"email": {"text": "no subject"}}, "EN": GOOD, "fr": {}},
        default_locale="de",
        template_id="has space",
        category="Bad Category",
    )
    assert problems(t) == {
        "template.template_id": "required: 1-128 letters, digits, '_', '.', '-'",
        "template.category": "empty (any category) or like an intent's category",
        "template.variants[0].email.subject": "required",
        "template.variants[1].locale": "repeats variants[0]",
        "template.variants[2]": "at least one part: email, sms, webpush, inapp",
        "template.default_locale": "needs a variant of its own",
    }


def test_a_template_needs_a_default_locale_and_a_variant():
    t = template({}, default_locale="")
    assert problems(t) == {
        "template.default_locale": "a BCP 47 tag such as 'en' or 'pt-BR'",
        "template.variants": "1-50 variants",
    }


def test_each_part_needs_what_inline_content_needs():
    t = template(
        {
            "en": {
                "email": {"subject": "S"},
                "sms": {},
                "webpush": {"icon": "i"},
                "inapp": {"action_url": "u"},
            }
        }
    )
    assert problems(t) == {
        "template.variants[0].email.text": "text or html is required",
        "template.variants[0].sms.text": "required",
        "template.variants[0].webpush.title": "title or body is required",
        "template.variants[0].inapp.title": "title or body is required",
    }


def test_a_source_over_the_size_limit_is_refused():
    t = template({"en": {"sms": {"text": "x" * (validation.MAX_SOURCE_CHARS + 1)}}})
    assert problems(t) == {"template.variants[0].sms.text": "at most 64 Ki characters"}
