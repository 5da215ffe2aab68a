"""Building templates for tests, from plain dicts."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from sendmesh.templates.v1 import templates_pb2


def template(
    variants: dict[str, dict[str, Any]],
    default_locale: str = "en",
    template_id: str = "cart",
    **fields: Any,
) -> templates_pb2.Template:
    """A template whose variants are {locale: {part: {field: source}}}."""
    t = templates_pb2.Template(
        template_id=template_id, default_locale=default_locale, version=1, **fields
    )
    for locale, parts in variants.items():
        json_format.ParseDict({"locale": locale, **parts}, t.variants.add())
    return t


def template_with(**parts: Any) -> templates_pb2.Template:
    """A one-variant (en) template with these parts."""
    return template({"en": parts})
