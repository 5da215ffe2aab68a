"""The Templates API, served by intake: versions, latest, delete, tenants, errors."""

from __future__ import annotations

import grpc
import pytest
from sendmesh.templates.v1 import templates_pb2 as pb

from tests.integration.grpc_helpers import bad_fields
from tests.integration.templates.conftest import Api, cart_template

Code = grpc.StatusCode


async def get(api: Api, template_id: str = "cart", version: int = 0, tenant: str = "acme"):
    request = pb.GetTemplateRequest(template_id=template_id, version=version)
    return (
        await api.templates.GetTemplate(request, metadata=api.tenants.metadata(tenant))
    ).template


async def refused(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value


async def test_each_put_is_a_new_version_and_get_reads_the_latest_or_a_given_one(api: Api):
    first = await api.put(cart_template("One"))
    second = await api.put(cart_template("Two"))
    assert (first.version, second.version) == (1, 2)
    assert second.HasField("created_at")
    assert (await get(api)).variants[0].email.subject == "Two"
    assert (await get(api, version=1)).variants[0].email.subject == "One"
    missing = await refused(get(api, version=3))
    assert missing.code() == Code.NOT_FOUND


async def test_a_version_given_in_the_request_is_ignored(api: Api):
    t = cart_template()
    t.version = 42
    assert (await api.put(t)).version == 1


async def test_a_template_with_a_syntax_error_is_refused_naming_locale_and_part(api: Api):
    t = cart_template()
    t.variants[1].inapp.body = "{{ data.items }"
    err = await refused(api.put(t))
    assert err.code() == Code.INVALID_ARGUMENT
    assert bad_fields(err) == {"template.variants[1].inapp.body": "line 1: unexpected '}'"}
    assert (await refused(get(api))).code() == Code.NOT_FOUND


async def test_bad_requests_name_their_fields(api: Api):
    md = api.tenants.metadata()
    cases = [
        (
            api.templates.GetTemplate(pb.GetTemplateRequest(version=-1), metadata=md),
            {"template_id", "version"},
        ),
        (
            api.templates.ListTemplates(pb.ListTemplatesRequest(page_size=-1), metadata=md),
            {"page_size"},
        ),
        (
            api.templates.ListTemplates(pb.ListTemplatesRequest(page_token="nope"), metadata=md),
            {"page_token"},
        ),
        (
            api.templates.DeleteTemplate(pb.DeleteTemplateRequest(template_id="a b"), metadata=md),
            {"template_id"},
        ),
        (
            api.templates.RenderTemplate(
                pb.RenderTemplateRequest(template_id="cart", locale="#"), metadata=md
            ),
            {"locale"},
        ),
    ]
    for call, fields in cases:
        err = await refused(call)
        assert err.code() == Code.INVALID_ARGUMENT
        assert set(bad_fields(err)) == fields


async def test_tenants_see_only_their_own_templates(api: Api):
    await api.put(cart_template("acme's"))
    assert (await refused(get(api, tenant="globex"))).code() == Code.NOT_FOUND
    await api.put(cart_template("globex's"), tenant="globex")
    assert (await get(api, tenant="globex")).variants[0].email.subject == "globex's"
    assert (await get(api)).variants[0].email.subject == "acme's"
    request = pb.DeleteTemplateRequest(template_id="cart")
    await api.templates.DeleteTemplate(request, metadata=api.tenants.metadata("globex"))
    assert (await get(api)).version == 1


async def test_a_deleted_template_is_not_found_and_a_new_put_continues_its_versions(api: Api):
    await api.put(cart_template())
    md = api.tenants.metadata()
    await api.templates.DeleteTemplate(pb.DeleteTemplateRequest(template_id="cart"), metadata=md)
    assert (await refused(get(api))).code() == Code.NOT_FOUND
    again = await refused(
        api.templates.DeleteTemplate(pb.DeleteTemplateRequest(template_id="cart"), metadata=md)
    )
    assert again.code() == Code.NOT_FOUND
    assert (await api.put(cart_template())).version == 2


async def test_listings_page_through_templates_and_versions(api: Api):
    for template_id in ("c", "a", "b"):
        await api.put(cart_template(template_id=template_id))
    await api.put(cart_template("newer", template_id="a"))
    md = api.tenants.metadata()
    seen, token = [], ""
    while True:
        request = pb.ListTemplatesRequest(page_size=2, page_token=token)
        reply = await api.templates.ListTemplates(request, metadata=md)
        seen += [(t.template_id, t.version) for t in reply.templates]
        if not (token := reply.next_page_token):
            break
    assert seen == [("a", 2), ("b", 1), ("c", 1)]

    request_v = pb.ListTemplateVersionsRequest(template_id="a", page_size=1)
    first = await api.templates.ListTemplateVersions(request_v, metadata=md)
    request_v.page_token = first.next_page_token
    second = await api.templates.ListTemplateVersions(request_v, metadata=md)
    assert [t.version for t in [*first.templates, *second.templates]] == [2, 1]
    assert not second.next_page_token
    request_v.template_id = "b"
    wrong = await refused(api.templates.ListTemplateVersions(request_v, metadata=md))
    assert bad_fields(wrong) == {"page_token": "made for another query"}


async def test_render_previews_every_part_in_the_recipients_locale(api: Api):
    await api.put(cart_template())
    request = pb.RenderTemplateRequest(template_id="cart")
    request.data.update({"items": 3})
    request.recipient.locale = "de-AT"
    request.recipient.attributes.update({"name": "Ann"})
    reply = await api.templates.RenderTemplate(request, metadata=api.tenants.metadata())
    assert reply.version == 1
    assert reply.rendered.locale == "de"
    assert (reply.rendered.inapp.title, reply.rendered.email.text) == ("Hallo Ann", "3 items")
    assert dict(reply.locales) == {"email": "en", "inapp": "de"}


async def test_render_names_the_missing_variable_as_a_request_field(api: Api):
    await api.put(cart_template())
    md = api.tenants.metadata()
    request = pb.RenderTemplateRequest(template_id="cart")
    request.recipient.attributes.update({"name": "Ann"})
    err = await refused(api.templates.RenderTemplate(request, metadata=md))
    assert err.code() == Code.INVALID_ARGUMENT
    [(field, description)] = bad_fields(err).items()
    assert field == "data.items"
    assert "data.items is undefined" in description

    request.data.update({"items": 1})
    request.recipient.attributes.Clear()
    err = await refused(api.templates.RenderTemplate(request, metadata=md))
    assert list(bad_fields(err)) == ["recipient.attributes.name"]
