"""Rendering a template's part for one recipient. Pure: no I/O.

The locale is chosen along a chain (the wanted locale, its language, the
template's default); the sources run in the sandbox (sandbox.py) with two
names: `data` (the intent's TemplateRef.data) and `profile` (user_id,
locale, timezone, attributes). Any failure is a RenderError: permanent,
reason `render_error`, naming the variable, never a value.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import jinja2
from google.protobuf import json_format, struct_pb2
from sendmesh.templates.v1 import templates_pb2

from services.templates.sandbox import (
    MissingVariable,
    is_html,
    render_source,
    scoped,
)
from shared import reasons
from shared.errors import PermanentError

Template = templates_pb2.Template
PARTS = ("email", "sms", "webpush", "inapp")
# The rendered fields of each part; inapp's `data` is passed on as it is.
PART_FIELDS: dict[str, tuple[str, ...]] = {
    "email": ("subject", "text", "html"),
    "sms": ("text",),
    "webpush": ("title", "body", "icon", "url"),
    "inapp": ("title", "body", "action_url"),
}


class RenderError(PermanentError):
    """The part cannot be rendered with what it was given: no retry will help."""

    reason = reasons.RENDER_ERROR

    def __init__(self, detail: str, variable: str | None = None) -> None:
        super().__init__(detail)
        # The undefined variable's path (`data.cart.total`), when that was the cause.
        self.variable = variable


@dataclass(frozen=True)
class Recipient:
    """What `profile` holds in a template."""

    user_id: str = ""
    locale: str = ""
    timezone: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rendered:
    """One channel's content, rendered, and the variant it came from."""

    locale: str
    fields: dict[str, Any]


def plain(struct: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as Python values; whole numbers as ints, so 2 prints as "2", not "2.0"."""
    return {k: _whole(v) for k, v in json_format.MessageToDict(struct).items()}


def _whole(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _whole(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole(v) for v in value]
    return value


def context(data: Mapping[str, Any], recipient: Recipient) -> dict[str, Any]:
    """What a template sees: `data` and `profile`."""
    profile = {
        "user_id": recipient.user_id,
        "locale": recipient.locale,
        "timezone": recipient.timezone,
        "attributes": dict(recipient.attributes),
    }
    return {"data": scoped("data", data), "profile": scoped("profile", profile)}


def _key(locale: str) -> str:
    return locale.strip().replace("_", "-").lower()


def locale_chain(wanted: str, default: str) -> list[str]:
    """Locales to try, in order: `pt-BR`, then `pt`, then the template's default."""
    chain: list[str] = []
    first = _key(wanted)
    for locale in (first, first.split("-")[0], _key(default)):
        if locale and locale not in chain:
            chain.append(locale)
    return chain


def variants_by_locale(template: Template) -> dict[str, templates_pb2.Variant]:
    return {_key(v.locale): v for v in template.variants}


def pick_variant(template: Template, part: str, wanted: str) -> templates_pb2.Variant | None:
    """The first variant of the chain that has `part`; None when none has it."""
    variants = variants_by_locale(template)
    for locale in locale_chain(wanted, template.default_locale):
        variant = variants.get(locale)
        if variant is not None and variant.HasField(part):  # type: ignore[arg-type]
            return variant
    return None


def first_locale(template: Template, wanted: str) -> str:
    """The first locale of the chain that has a variant (any part)."""
    variants = variants_by_locale(template)
    for locale in locale_chain(wanted, template.default_locale):
        if locale in variants:
            return variants[locale].locale
    return ""


def render_part(
    template: Template, part: str, data: Mapping[str, Any], recipient: Recipient, locale: str = ""
) -> Rendered | None:
    """`part` (email, sms, webpush, inapp) rendered for `recipient` in `locale` (else
    the recipient's), falling back along the chain; None when no variant has the part.

    Raises RenderError naming the undefined variable or the forbidden access.
    """
    variant = pick_variant(template, part, locale or recipient.locale)
    if variant is None:
        return None
    values = context(data, recipient)
    fields: dict[str, Any] = {
        name: _render(template, variant, part, name, values) for name in PART_FIELDS[part]
    }
    if part == "inapp":
        fields["data"] = json_format.MessageToDict(variant.inapp.data)
    return Rendered(variant.locale, fields)


def _render(
    template: Template, variant: templates_pb2.Variant, part: str, name: str, values: Any
) -> str:
    source: str = getattr(getattr(variant, part), name)
    if not source:
        return ""
    where = (
        f"template {template.template_id!r} v{template.version} ({variant.locale}) {part}.{name}"
    )
    try:
        return render_source(source, is_html(part, name), values)
    except MissingVariable as err:
        raise RenderError(f"{where}: {err.message}", err.variable) from None
    except jinja2.TemplateError as err:
        # Forbidden access, our bounds: messages name paths, not values.
        raise RenderError(f"{where}: {err.message}") from None
    except Exception as err:
        # The message may quote the data (a value is message content): name the type only.
        raise RenderError(f"{where}: {type(err).__name__} while rendering") from None


def render_all(
    template: Template, data: Mapping[str, Any], recipient: Recipient, locale: str = ""
) -> Iterator[tuple[str, Rendered]]:
    """Every part the template has, rendered (for previews)."""
    for part in PARTS:
        rendered = render_part(template, part, data, recipient, locale)
        if rendered is not None:
            yield part, rendered
