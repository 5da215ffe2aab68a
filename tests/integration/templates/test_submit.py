"""Template intents at intake: resolved and pinned at submit, or refused by field."""

from __future__ import annotations

import grpc
import pytest
from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intake.v1 import intake_pb2
from sendmesh.intent.v1 import intent_pb2
from sendmesh.templates.v1 import templates_pb2

from shared.bus import topology
from shared.bus.topology import Topology
from shared.runtime import ServiceRuntime
from tests.conftest import TEST_RETRY_DELAYS
from tests.integration.bus_helpers import drain
from tests.integration.grpc_helpers import bad_fields
from tests.integration.intake.conftest import inapp_intent, stored_intents
from tests.integration.templates.conftest import Api, cart_template


def template_intent(key: str = "k1", version: int = 0, template_id: str = "cart"):
    intent = inapp_intent(key)
    intent.content.template.template_id = template_id
    intent.content.template.version = version
    intent.content.template.data.update({"items": 2})
    return intent


async def submit(api: Api, intent: intent_pb2.SendIntent) -> intake_pb2.SubmitResponse:
    request = intake_pb2.SubmitRequest(intent=intent)
    return await api.intake.Submit(request, metadata=api.tenants.metadata())


async def pinned_version(api: Api, intent_id: str) -> int:
    request = intake_pb2.GetIntentRequest(intent_id=intent_id)
    view = await api.intake.GetIntent(request, metadata=api.tenants.metadata())
    return view.intent.intent.content.template.pinned.version


async def refusal(api: Api, intent: intent_pb2.SendIntent) -> dict[str, str]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await submit(api, intent)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    return bad_fields(err.value)


async def test_the_envelope_carries_the_version_that_was_latest_at_submit(
    api: Api, amqp_url, namespace
):
    await api.put(cart_template("One"))
    reply = await submit(api, template_intent())
    await api.put(cart_template("Two"))

    [message] = await drain(
        amqp_url, Topology(namespace, TEST_RETRY_DELAYS).queue(topology.PLAN), 1
    )
    pinned = envelope_pb2.Envelope.FromString(message.body).intent.content.template.pinned
    assert (pinned.version, pinned.variants[0].email.subject) == (1, "One")
    assert await pinned_version(api, reply.intent_id) == 1


async def test_an_intent_may_name_an_older_version(api: Api):
    await api.put(cart_template("One"))
    await api.put(cart_template("Two"))
    reply = await submit(api, template_intent(version=1))
    assert await pinned_version(api, reply.intent_id) == 1


async def test_a_replay_after_the_template_changed_is_still_a_replay(api: Api):
    await api.put(cart_template("One"))
    first = await submit(api, template_intent("same"))
    await api.put(cart_template("Two"))
    again = await submit(api, template_intent("same"))
    assert (again.intent_id, again.duplicate) == (first.intent_id, True)


async def test_unknown_templates_versions_and_other_categories_are_refused_and_nothing_is_stored(
    api: Api, intake: ServiceRuntime
):
    await api.put(cart_template(category="welcome"))
    await api.put(cart_template(template_id="any"))
    assert await refusal(api, template_intent(template_id="ghost")) == {
        "intent.content.template.template_id": "no template 'ghost'"
    }
    assert await refusal(api, template_intent(template_id="any", version=5)) == {
        "intent.content.template.version": "template 'any' has no version 5"
    }
    assert await refusal(api, template_intent()) == {
        "intent.category": "template 'cart' is for category 'welcome'"
    }
    assert await stored_intents(intake) == 0


async def test_a_caller_may_not_pin_a_template_itself(api: Api):
    await api.put(cart_template())
    intent = template_intent()
    intent.content.template.pinned.CopyFrom(templates_pb2.Template(template_id="cart"))
    assert await refusal(api, intent) == {
        "intent.content.template.pinned": "set by intake at submit: leave it empty"
    }


async def test_a_deleted_template_can_no_longer_be_submitted(api: Api):
    await api.put(cart_template())
    await submit(api, template_intent("before"))
    request = templates_pb2.DeleteTemplateRequest(template_id="cart")
    await api.templates.DeleteTemplate(request, metadata=api.tenants.metadata())
    assert list(await refusal(api, template_intent("after"))) == [
        "intent.content.template.template_id"
    ]


async def test_a_batch_with_one_unknown_template_is_refused_as_a_whole(
    api: Api, intake: ServiceRuntime
):
    await api.put(cart_template())
    request = intake_pb2.SubmitBatchRequest(
        intents=[template_intent("a"), inapp_intent("b"), template_intent("c", template_id="ghost")]
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.intake.SubmitBatch(request, metadata=api.tenants.metadata())
    assert bad_fields(err.value) == {
        "intents[2].content.template.template_id": "no template 'ghost'"
    }
    assert await stored_intents(intake) == 0

    del request.intents[2]
    reply = await api.intake.SubmitBatch(request, metadata=api.tenants.metadata())
    assert await pinned_version(api, reply.results[0].intent_id) == 1


async def test_explain_refuses_an_unknown_template_before_asking_any_stage(api: Api):
    request = intake_pb2.ExplainRequest(intent=template_intent(template_id="ghost"), user_id="u1")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.intake.Explain(request, metadata=api.tenants.metadata())
    assert bad_fields(err.value) == {"intent.content.template.template_id": "no template 'ghost'"}
