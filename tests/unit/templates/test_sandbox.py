"""The sandbox: what a template may and may not reach."""

from __future__ import annotations

from typing import Any

import pytest

from services.templates.render import Recipient, RenderError, render_part
from tests.unit.templates.support import template_with

DATA: dict[str, Any] = {"name": "Ann", "items": ["a", "b"], "cart": {"total": 12}, "nil": None}


def subject(source: str, data: dict[str, Any] | None = None) -> str:
    rendered = render_part(
        template_with(email={"subject": source, "text": "t"}),
        "email",
        DATA if data is None else data,
        Recipient("u1", "en", "Europe/Vienna", {"tier": "gold"}),
    )
    assert rendered is not None
    return str(rendered.fields["subject"])


def refusal(source: str) -> str:
    with pytest.raises(RenderError) as err:
        subject(source)
    assert err.value.reason == "render_error"
    return err.value.detail


@pytest.mark.parametrize(
    "source",
    [
        "{{ data.__class__ }}",
        "{{ data['__class__'] }}",
        "{{ data.name.__class__.__mro__ }}",
        "{{ profile.__init__.__globals__ }}",
        "{{ ''.__class__.__subclasses__() }}",
        "{{ data.cart.__dict__ }}",
    ],
)
def test_the_sandbox_refuses_access_to_python_internals(source):
    assert "is not allowed in a template" in refusal(source)


def test_a_template_cannot_change_the_values_it_is_given():
    assert "data.items.append is not allowed" in refusal("{{ data.items.append('c') }}")
    assert "data.update is undefined" in refusal("{{ data.update({'name': 'Bob'}) }}")


def test_a_huge_repetition_or_power_fails_instead_of_taking_the_worker():
    assert "1,000,000 characters" in refusal("{{ 'x' * 10000000 }}")
    assert "bits is not allowed" in refusal("{{ 10 ** 100000 }}")
    looped = "{% for i in range(100000) %}{% for j in range(100) %}xxxx{% endfor %}{% endfor %}"
    assert "renders to more than 1,000,000 characters" in refusal(looped)


def test_a_python_error_is_named_by_its_type_only_never_by_the_values_it_quotes():
    detail = refusal("{{ data.name | int(base=2) // 0 }}")
    assert detail.endswith("ZeroDivisionError while rendering")
    assert "Ann" not in detail


def test_a_key_named_like_a_dict_method_is_the_key_and_a_missing_one_is_undefined():
    assert subject("{{ data.items | join(',') }}") == "a,b"
    assert subject("{% for k, v in data.cart | items %}{{ k }}={{ v }}{% endfor %}") == "total=12"
    assert "data.keys is undefined" in refusal("{{ data.keys() }}")
    assert "data.cart.items is undefined" in refusal("{{ data.cart.items }}")


def test_defined_tests_and_defaults_work_for_optional_values():
    source = "{% if data.coupon is defined %}coupon{% else %}{{ data.coupon | default('none') }}{% endif %}"
    assert subject(source) == "none"


def test_a_null_prints_as_nothing():
    assert subject("[{{ data.nil }}]") == "[]"


def test_profile_fields_and_attributes_are_there():
    assert subject("{{ profile.user_id }} {{ profile.locale }} {{ profile.attributes.tier }}") == (
        "u1 en gold"
    )
