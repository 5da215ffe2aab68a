"""Templates gRPC API: proto <-> store and renderer, validation and status mapping.

Hosted by the intake process (services/intake/__main__.py): intake owns content.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeAlias

import grpc
from sendmesh.templates.v1 import templates_pb2 as pb
from sendmesh.templates.v1 import templates_pb2_grpc

from services.templates import paging, render, validation
from services.templates.store import TemplateStore
from shared.auth import current_tenant
from shared.clock import utcnow
from shared.grpc import status
from shared.grpc.status import Violations

Ctx: TypeAlias = grpc.aio.ServicerContext
LATEST, VERSIONS = "templates", "versions"


def check(*problems: Iterable[tuple[str, str]]) -> None:
    """INVALID_ARGUMENT naming every bad field, if there is one."""
    found = Violations()
    for items in problems:
        found.extend(items)
    found.raise_if_any()


def last_of(listing: str, made_for: str, token: str) -> str | int | None:
    try:
        return paging.decode_page_token(listing, made_for, token)
    except ValueError as err:
        raise status.invalid_argument([("page_token", str(err))]) from None


def render_field(err: render.RenderError) -> str:
    """The request field a render error is about: the missing `data.x` or
    `recipient.attributes.x`, else the template itself."""
    name = err.variable or ""
    if name.startswith("data."):
        return name
    if name.startswith("profile."):
        return "recipient." + name.removeprefix("profile.")
    return "template_id"


class TemplatesServicer(templates_pb2_grpc.TemplatesServicer):
    def __init__(self, store: TemplateStore) -> None:
        self._store = store

    async def PutTemplate(
        self, request: pb.PutTemplateRequest, context: Ctx
    ) -> pb.PutTemplateResponse:
        check(validation.template(request.template))
        stored = await self._store.put(current_tenant(), request.template, utcnow())
        return pb.PutTemplateResponse(template=stored)

    async def GetTemplate(
        self, request: pb.GetTemplateRequest, context: Ctx
    ) -> pb.GetTemplateResponse:
        return pb.GetTemplateResponse(
            template=await self._find(request.template_id, request.version)
        )

    async def ListTemplates(
        self, request: pb.ListTemplatesRequest, context: Ctx
    ) -> pb.ListTemplatesResponse:
        check(validation.page_size("page_size", request.page_size))
        after = last_of(LATEST, request.category, request.page_token)
        size = paging.page_size(request.page_size)
        found = await self._store.list_latest(
            current_tenant(), request.category, str(after or ""), size + 1
        )
        reply = pb.ListTemplatesResponse(templates=found[:size])
        if len(found) > size:
            reply.next_page_token = paging.encode_page_token(
                LATEST, request.category, found[size - 1].template_id
            )
        return reply

    async def ListTemplateVersions(
        self, request: pb.ListTemplateVersionsRequest, context: Ctx
    ) -> pb.ListTemplateVersionsResponse:
        check(
            validation.template_id("template_id", request.template_id),
            validation.page_size("page_size", request.page_size),
        )
        before = last_of(VERSIONS, request.template_id, request.page_token)
        size = paging.page_size(request.page_size)
        found = await self._store.list_versions(
            current_tenant(),
            request.template_id,
            before if isinstance(before, int) else None,
            size + 1,
        )
        if found is None:
            raise status.not_found("template", request.template_id)
        reply = pb.ListTemplateVersionsResponse(templates=found[:size])
        if len(found) > size:
            reply.next_page_token = paging.encode_page_token(
                VERSIONS, request.template_id, found[size - 1].version
            )
        return reply

    async def DeleteTemplate(
        self, request: pb.DeleteTemplateRequest, context: Ctx
    ) -> pb.DeleteTemplateResponse:
        check(validation.template_id("template_id", request.template_id))
        if not await self._store.delete(current_tenant(), request.template_id, utcnow()):
            raise status.not_found("template", request.template_id)
        return pb.DeleteTemplateResponse()

    async def RenderTemplate(
        self, request: pb.RenderTemplateRequest, context: Ctx
    ) -> pb.RenderTemplateResponse:
        check(validation.render_request(request))
        template = await self._find(request.template_id, request.version)
        r = request.recipient
        recipient = render.Recipient(r.user_id, r.locale, r.timezone, render.plain(r.attributes))
        data = render.plain(request.data)
        try:
            parts = list(render.render_all(template, data, recipient, request.locale))
        except render.RenderError as err:
            raise status.invalid_argument([(render_field(err), err.detail)]) from None
        reply = pb.RenderTemplateResponse(version=template.version)
        reply.rendered.locale = render.first_locale(template, request.locale or r.locale)
        for part, rendered in parts:
            target = getattr(reply.rendered, part)
            for name, value in rendered.fields.items():
                if name == "data":
                    target.data.update(value)
                else:
                    setattr(target, name, value)
            reply.locales[part] = rendered.locale
        return reply

    async def _find(self, template_id: str, version: int) -> pb.Template:
        check(validation.reference(template_id, version))
        found = await self._store.get(current_tenant(), template_id, version)
        if found is None:
            name = template_id if not version else f"{template_id} version {version}"
            raise status.not_found("template", name)
        return found
