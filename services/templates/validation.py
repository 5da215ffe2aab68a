"""Field-level validation of Templates API requests. Pure: (field, problem) pairs.

Every source is compiled here, so a template with a syntax error, an
include or an unknown top-level name is refused at PutTemplate, not found
out by the first recipient.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from sendmesh.templates.v1 import templates_pb2

from services.templates.render import PART_FIELDS, PARTS
from services.templates.sandbox import is_html, source_problem

Problems = Iterator[tuple[str, str]]

TEMPLATE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
CATEGORY = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
LOCALE = re.compile(r"[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*")
MAX_VARIANTS = 50
MAX_SOURCE_CHARS = 64 * 1024
# Every envelope of a template intent carries the pinned version.
MAX_TEMPLATE_BYTES = 256 * 1024
MAX_DESCRIPTION = 1000


def template_id(field: str, value: str) -> Problems:
    if not TEMPLATE_ID.fullmatch(value):
        yield field, "required: 1-128 letters, digits, '_', '.', '-'"


def version(field: str, value: int) -> Problems:
    if value < 0:
        yield field, "0 (the latest) or a version number"


def locale(field: str, value: str, *, required: bool = False) -> Problems:
    if (required or value) and not LOCALE.fullmatch(value):
        yield field, "a BCP 47 tag such as 'en' or 'pt-BR'"


def page_size(field: str, size: int) -> Problems:
    if size < 0:
        yield field, "must not be negative"


def template(t: templates_pb2.Template, at: str = "template") -> Problems:
    """Every problem with a template to store, each naming its field under `at`."""
    yield from template_id(f"{at}.template_id", t.template_id)
    if t.category and not CATEGORY.fullmatch(t.category):
        yield f"{at}.category", "empty (any category) or like an intent's category"
    if len(t.description) > MAX_DESCRIPTION:
        yield f"{at}.description", f"at most {MAX_DESCRIPTION} characters"
    yield from locale(f"{at}.default_locale", t.default_locale, required=True)
    yield from _variants(t, at)
    if t.ByteSize() > MAX_TEMPLATE_BYTES:
        yield at, f"at most {MAX_TEMPLATE_BYTES // 1024} KiB in all"


def _variants(t: templates_pb2.Template, at: str) -> Problems:
    if not 1 <= len(t.variants) <= MAX_VARIANTS:
        yield f"{at}.variants", f"1-{MAX_VARIANTS} variants"
    seen: dict[str, int] = {}
    for i, variant in enumerate(t.variants):
        where = f"{at}.variants[{i}]"
        key = variant.locale.replace("_", "-").lower()
        yield from locale(f"{where}.locale", variant.locale, required=True)
        if key in seen:
            yield f"{where}.locale", f"repeats variants[{seen[key]}]"
        seen.setdefault(key, i)
        yield from _parts(variant, where)
    default = t.default_locale.replace("_", "-").lower()
    if t.default_locale and t.variants and default not in seen:
        yield f"{at}.default_locale", "needs a variant of its own"


def _parts(variant: templates_pb2.Variant, at: str) -> Problems:
    present = [p for p in PARTS if variant.HasField(p)]  # type: ignore[arg-type]
    if not present:
        yield at, f"at least one part: {', '.join(PARTS)}"
    for part in present:
        yield from _required(variant, part, f"{at}.{part}")
        for name in PART_FIELDS[part]:
            source: str = getattr(getattr(variant, part), name)
            field = f"{at}.{part}.{name}"
            if len(source) > MAX_SOURCE_CHARS:
                yield field, f"at most {MAX_SOURCE_CHARS // 1024} Ki characters"
            elif problem := source_problem(source, is_html(part, name)):
                yield field, problem


def _required(variant: templates_pb2.Variant, part: str, at: str) -> Problems:
    # The same rules as inline content (services/intake/validation.py).
    if part == "email":
        if not variant.email.subject:
            yield f"{at}.subject", "required"
        if not (variant.email.text or variant.email.html):
            yield f"{at}.text", "text or html is required"
    elif part == "sms":
        if not variant.sms.text:
            yield f"{at}.text", "required"
    elif not (getattr(variant, part).title or getattr(variant, part).body):
        yield f"{at}.title", "title or body is required"


def reference(request_id: str, request_version: int) -> Problems:
    """GetTemplate's and RenderTemplate's (template_id, version)."""
    yield from template_id("template_id", request_id)
    yield from version("version", request_version)


def render_request(request: templates_pb2.RenderTemplateRequest) -> Problems:
    yield from reference(request.template_id, request.version)
    yield from locale("locale", request.locale)
    yield from locale("recipient.locale", request.recipient.locale)
