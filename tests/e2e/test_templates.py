"""Templates through the whole pipeline (tests/e2e/test_pipeline.py's mesh): a
template intent is pinned at intake and rendered per recipient by the channel
workers, in the recipient's locale; a missing variable ends as render_error.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sendmesh.intake.v1 import intake_pb2
from sendmesh.profile.v1 import profile_pb2
from sendmesh.templates.v1 import templates_pb2, templates_pb2_grpc

from shared.settings import ServiceSettings
from tests.e2e import test_pipeline as pipeline
from tests.e2e.test_pipeline import C, Mesh, S, by_delivery, current, eventually
from tests.integration.grpc_helpers import channel_to
from tests.unit.templates.support import template

# The pipeline's mesh, unchanged; the override of make_settings below only
# notes each service's settings, so the Templates API can be reached on
# intake's port.
mesh = pipeline.mesh

CART = template(
    {
        "en": {
            "inapp": {
                "title": "Hi {{ profile.attributes.name }}",
                "body": "{{ data.items }} items",
            },
            "email": {"subject": "Your cart", "text": "{{ data.product }}", "html": "<p>x</p>"},
        },
        "de": {
            "inapp": {
                "title": "Hallo {{ profile.attributes.name }}",
                "body": "{{ data.items }} Artikel warten",
            },
            "email": {
                "subject": "Dein Warenkorb, {{ profile.attributes.name }}",
                "text": "{{ data.items }} Artikel: {{ data.product }}",
                "html": "<p>{{ data.product }}</p>",
            },
        },
    },
    template_id="cart",
    category="cart_reminder",
)


@pytest.fixture
def settings_made() -> dict[str, ServiceSettings]:
    return {}


@pytest.fixture
def make_settings(
    make_settings: Callable[..., Any], settings_made: dict[str, ServiceSettings]
) -> Callable[..., Any]:
    def make(cls: type[ServiceSettings], **overrides: Any) -> ServiceSettings:
        settings = make_settings(cls, **overrides)
        settings_made[settings.service] = settings
        return settings

    return make


@pytest.fixture
async def templates(
    mesh: Mesh, settings_made: dict[str, ServiceSettings]
) -> AsyncIterator[templates_pb2_grpc.TemplatesStub]:
    # Intake hosts the Templates API.
    async with channel_to(settings_made["intake"].grpc_port) as channel:
        yield templates_pb2_grpc.TemplatesStub(channel)


async def put(mesh: Mesh, stub: templates_pb2_grpc.TemplatesStub, t: templates_pb2.Template):
    request = templates_pb2.PutTemplateRequest(template=t)
    await stub.PutTemplate(request, metadata=mesh.tenants.metadata())


async def add_user(mesh: Mesh, user: str, locale: str, email: str = "") -> None:
    await mesh.add_profile(user, email)  # with consent for every channel
    p = profile_pb2.Profile(user_id=user, locale=locale, timezone="Europe/Vienna")
    p.contacts.email = email
    p.attributes.update({"name": user.capitalize()})
    request = profile_pb2.UpsertProfileRequest(profile=p)
    await mesh.profiles.UpsertProfile(request, metadata=mesh.tenants.metadata())


def template_intent(key: str, users: list[str], channels: list[int], template_id: str, **data: Any):
    intent = pipeline.intent_for(key, users, channels)
    intent.content.template.template_id = template_id
    intent.content.template.data.update(data)
    return intent


async def test_a_template_intent_is_rendered_per_recipient_in_their_locale(
    mesh: Mesh, templates: templates_pb2_grpc.TemplatesStub
):
    await put(mesh, templates, CART)
    await add_user(mesh, "anna", "de-AT", "anna@example.com")
    await add_user(mesh, "bob", "en-GB")
    intent = template_intent(
        "tpl-a",
        ["anna", "bob"],
        [C.CHANNEL_INAPP, C.CHANNEL_EMAIL],
        "cart",
        items=2,
        product="Schuhe <rot>",
    )
    intent_id = await mesh.submit(intent)

    async def anna_inbox() -> list[Any]:
        return await mesh.inbox_of("anna", intent_id)

    [message] = await eventually(anna_inbox, pipeline.INBOX_WITHIN_S, "no inbox message for anna")
    assert (message.title, message.body) == ("Hallo Anna", "2 Artikel warten")
    [english] = await mesh.inbox_of("bob", intent_id)
    assert (english.title, english.body) == ("Hi Bob", "2 items")

    view = await mesh.completed(intent_id)
    assert current(by_delivery(view)[("anna", C.CHANNEL_EMAIL)]) == (
        "email",
        S.DELIVERY_STATE_SENT,
        "sent",
    )
    written = json.loads(mesh.email_file(intent_id, "anna").read_text())
    assert (written["subject"], written["text"], written["html"]) == (
        "Dein Warenkorb, Anna",
        "2 Artikel: Schuhe <rot>",
        "<p>Schuhe &lt;rot&gt;</p>",
    )
    assert view.intent.content.template.pinned.version == 1


async def test_a_template_missing_a_variable_fails_with_render_error_naming_it(
    mesh: Mesh, templates: templates_pb2_grpc.TemplatesStub
):
    coupon = template(
        {"en": {"inapp": {"title": "Your code: {{ data.coupon }}"}}}, template_id="coupon"
    )
    await put(mesh, templates, coupon)
    await add_user(mesh, "carla", "en")
    intent = template_intent("tpl-b", ["carla"], [C.CHANNEL_INAPP], "coupon", items=1)

    request = intake_pb2.ExplainRequest(intent=intent, user_id="carla")
    explained = await mesh.intake.Explain(request, metadata=mesh.tenants.metadata())
    [channel] = explained.channels
    assert (channel.outcome, channel.reason) == (S.DELIVERY_STATE_FAILED, "render_error")
    assert "data.coupon is undefined" in channel.summary

    intent_id = await mesh.submit(intent)
    view = await mesh.completed(intent_id)
    status = by_delivery(view)[("carla", C.CHANNEL_INAPP)]
    assert current(status) == ("inapp", S.DELIVERY_STATE_FAILED, "render_error")
    assert "data.coupon is undefined" in status.current.detail
    assert await mesh.inbox_of("carla", intent_id) == []
