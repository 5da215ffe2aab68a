"""Pinning template intents at submit: each TemplateRef gets the version it
resolves to (`pinned`), so a message in flight never changes under an edit
and channel workers render without a lookup.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from sendmesh.intent.v1 import intent_pb2

from services.templates.store import Resolved, TemplateStore

Problems = Iterator[tuple[str, str]]
# (field prefix such as "intent" or "intents[3]", the intent)
Located = tuple[str, intent_pb2.SendIntent]


def template_refs(intents: Sequence[Located]) -> set[tuple[str, int]]:
    return {
        (i.content.template.template_id, i.content.template.version)
        for _, i in intents
        if i.content.WhichOneof("source") == "template"
    }


def pin(at: str, intent: intent_pb2.SendIntent, found: Resolved) -> Problems:
    """Sets `content.template.pinned` of a template intent; problems when it cannot be."""
    if intent.content.WhichOneof("source") != "template":
        return
    ref = intent.content.template
    field = f"{at}.content.template"
    template = found.templates.get((ref.template_id, ref.version))
    if ref.template_id not in found.existing:
        yield f"{field}.template_id", f"no template {ref.template_id!r}"
    elif template is None:
        yield f"{field}.version", f"template {ref.template_id!r} has no version {ref.version}"
    elif template.category and template.category != intent.category:
        yield (
            f"{at}.category",
            f"template {ref.template_id!r} is for category {template.category!r}",
        )
    else:
        ref.pinned.CopyFrom(template)


class TemplatePinner:
    """Resolves every template intent of a call in two queries, then pins them."""

    def __init__(self, store: TemplateStore) -> None:
        self._store = store

    async def pin(self, tenant: str, intents: Sequence[Located]) -> list[tuple[str, str]]:
        refs = template_refs(intents)
        if not refs:
            return []
        found = await self._store.resolve(tenant, refs)
        return [problem for at, intent in intents for problem in pin(at, intent, found)]
