"""An intake runtime (which hosts the Templates API) and stubs for both APIs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sendmesh.intake.v1 import intake_pb2_grpc
from sendmesh.templates.v1 import templates_pb2, templates_pb2_grpc

from services.intake.__main__ import create_runtime
from services.intake.settings import IntakeSettings
from shared.runtime import ServiceRuntime
from tests.conftest import Tenants, running
from tests.integration.grpc_helpers import channel_to
from tests.unit.templates.support import template


@dataclass
class Api:
    tenants: Tenants
    templates: templates_pb2_grpc.TemplatesStub
    intake: intake_pb2_grpc.IntakeStub

    async def put(self, t: templates_pb2.Template, tenant: str = "acme") -> templates_pb2.Template:
        reply = await self.templates.PutTemplate(
            templates_pb2.PutTemplateRequest(template=t), metadata=self.tenants.metadata(tenant)
        )
        return reply.template


def cart_template(subject: str = "Your cart", **fields: Any) -> templates_pb2.Template:
    return template(
        {
            "en": {
                "email": {"subject": subject, "text": "{{ data.items }} items"},
                "inapp": {"title": "Hi {{ profile.attributes.name }}", "body": "{{ data.items }}"},
            },
            "de": {"inapp": {"title": "Hallo {{ profile.attributes.name }}", "body": "x"}},
        },
        template_id=fields.pop("template_id", "cart"),
        **fields,
    )


@pytest.fixture
async def intake(make_settings: Callable[..., Any]) -> AsyncIterator[ServiceRuntime]:
    async with running(create_runtime(make_settings(IntakeSettings))) as runtime:
        yield runtime


@pytest.fixture
async def api(intake: ServiceRuntime, tenants: Tenants) -> AsyncIterator[Api]:
    async with channel_to(intake.port) as channel:
        yield Api(
            tenants,
            templates_pb2_grpc.TemplatesStub(channel),
            intake_pb2_grpc.IntakeStub(channel),
        )
