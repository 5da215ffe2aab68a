"""The sms service's webhooks over real HTTP, with the real profile and
eligibility services consuming what they publish: STOP withdraws consent and
lists the number, START reverses both, HELP changes nothing, an unsigned
request publishes nothing, and a status callback reports the carrier's answer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sendmesh.eligibility.v1 import eligibility_pb2 as epb
from sendmesh.eligibility.v1 import eligibility_pb2_grpc
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2 as ppb
from sendmesh.profile.v1 import profile_pb2_grpc

from services.eligibility.__main__ import create_runtime as eligibility_runtime
from services.eligibility.settings import EligibilitySettings
from services.profile.__main__ import create_runtime as profile_runtime
from services.profile.settings import ProfileSettings
from services.sms.__main__ import create_runtime as sms_runtime
from services.sms.inbound import signature_of
from services.sms.settings import SmsSettings
from shared.bus import topology
from shared.bus.topology import Topology
from shared.runtime import ServiceRuntime
from tests import servers
from tests.conftest import TEST_RETRY_DELAYS, Tenants, running
from tests.integration.bus_helpers import publish_to_stage, queue_depth
from tests.integration.channels.support import (
    ScriptedProvider,
    consumed,
    envelope,
    events_of,
    eventually,
    provider_registered,
    take_all,
)
from tests.integration.grpc_helpers import channel_to

C = intent_pb2.Channel
S = intent_pb2.DeliveryState
TOKEN = "webhook-test-auth-token"
PHONE = "+4366412345678"
HASH_KEY = "webhook-test-hash-key"
FEEDBACK_QUEUES = [topology.feedback_stage(s) for s in topology.FEEDBACK_CONSUMERS]


def signed(url: str, form: dict[str, str], token: str = TOKEN) -> dict[str, str]:
    """The X-Twilio-Signature header the provider would send with this request."""
    return {"X-Twilio-Signature": signature_of(url, form.items(), token)}


def keyword(body: str, sid: str = "SM1") -> dict[str, str]:
    return {"MessageSid": sid, "From": PHONE, "To": "+15005550006", "Body": body}


@dataclass
class Hooks:
    base: str
    http: httpx.AsyncClient

    def url(self, tenant: str, kind: str) -> str:
        return f"{self.base}/webhooks/sms/{tenant}/{kind}"

    async def post(self, kind: str, form: dict[str, str], tenant: str = "acme") -> httpx.Response:
        url = self.url(tenant, kind)
        return await self.http.post(url, data=form, headers=signed(url, form))


@dataclass
class Mesh:
    hooks: Hooks
    profiles: profile_pb2_grpc.ProfilesStub
    eligibility: eligibility_pb2_grpc.EligibilityStub
    tenants: Tenants
    namespace: str

    async def history(self, user: str) -> list[ppb.Consent]:
        request = ppb.ListConsentHistoryRequest(user_id=user)
        reply = await self.profiles.ListConsentHistory(request, metadata=self.tenants.metadata())
        return list(reply.consents)

    async def listed(self) -> list[epb.Suppression]:
        request = epb.ListSuppressionsRequest(channel=C.CHANNEL_SMS)
        reply = await self.eligibility.ListSuppressions(request, metadata=self.tenants.metadata())
        return list(reply.entries)

    def handled(self) -> float:
        topo = Topology(self.namespace, TEST_RETRY_DELAYS)
        return sum(consumed(topo.queue(q)) for q in FEEDBACK_QUEUES)


def sms_settings(make_settings: Callable[..., Any], **values: Any) -> SmsSettings:
    values = {"sms_auth_token": TOKEN, "webhook_port": servers.free_port()} | values
    return make_settings(SmsSettings, **values)


@contextlib.asynccontextmanager
async def sms_mesh(
    make_settings: Callable[..., Any], tenants: Tenants, namespace: str, settings: SmsSettings
) -> AsyncIterator[Mesh]:
    """The sms worker with `settings`, and the real profile and eligibility."""
    profile = profile_runtime(make_settings(ProfileSettings))
    eligibility = eligibility_runtime(
        make_settings(EligibilitySettings, suppression_hash_key=HASH_KEY)
    )
    async with (
        running(profile),
        running(eligibility),
        running(sms_runtime(settings)),
        httpx.AsyncClient() as http,
        channel_to(profile.port) as to_profile,
        channel_to(eligibility.port) as to_eligibility,
    ):
        yield Mesh(
            Hooks(f"http://127.0.0.1:{settings.webhook_port}", http),
            profile_pb2_grpc.ProfilesStub(to_profile),
            eligibility_pb2_grpc.EligibilityStub(to_eligibility),
            tenants,
            namespace,
        )


@pytest.fixture
async def mesh(
    make_settings: Callable[..., Any], tenants: Tenants, namespace: str
) -> AsyncIterator[Mesh]:
    settings = sms_settings(make_settings)
    async with sms_mesh(make_settings, tenants, namespace, settings) as running_mesh:
        yield running_mesh


async def owner_of_the_number(mesh: Mesh, user: str = "u1") -> None:
    profile = ppb.Profile(user_id=user)
    profile.contacts.phone = PHONE
    await mesh.profiles.UpsertProfile(
        ppb.UpsertProfileRequest(profile=profile), metadata=mesh.tenants.metadata()
    )


async def until(probe: Callable[[], Any], within_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not await probe():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def test_a_signed_stop_withdraws_sms_consent_and_lists_the_number_and_start_reverses_both(
    mesh: Mesh,
):
    await owner_of_the_number(mesh, "u1")
    await owner_of_the_number(mesh, "u2")  # a shared family phone: both owners hear it

    stopped = await mesh.hooks.post("inbound", keyword("stop ", sid="SM-stop"))
    await until(lambda: _both(mesh, lambda h: len(h) == 1, lambda listed: len(listed) == 1))
    after_stop = await mesh.history("u1"), await mesh.history("u2"), await mesh.listed()
    started = await mesh.hooks.post("inbound", keyword("START", sid="SM-start"))
    await until(lambda: _both(mesh, lambda h: len(h) == 2, lambda listed: listed == []))
    after_start = await mesh.history("u1")

    assert stopped.status_code == 200 and "<Response></Response>" in stopped.text
    assert stopped.headers["Content-Type"].startswith("text/xml")
    [withdrawn], [withdrawn_too], [entry] = after_stop
    for consent in (withdrawn, withdrawn_too):
        assert (consent.channel, consent.category, consent.granted, consent.source) == (
            C.CHANNEL_SMS,
            "",
            False,
            "sms_keyword",
        )
    assert entry.reason == epb.SUPPRESSION_REASON_SMS_STOP
    assert started.status_code == 200
    # Newest first: the START's grant, then the STOP's withdrawal, both kept.
    assert [(c.granted, c.source) for c in after_start] == [
        (True, "sms_keyword"),
        (False, "sms_keyword"),
    ]


async def _both(mesh: Mesh, history_ok: Callable[[list[Any]], bool], listed_ok: Any) -> bool:
    return history_ok(await mesh.history("u1")) and listed_ok(await mesh.listed())


async def test_help_is_answered_and_changes_neither_consent_nor_the_list(mesh: Mesh):
    await owner_of_the_number(mesh)
    before = mesh.handled()

    reply = await mesh.hooks.post("inbound", keyword("help"))
    plain = await mesh.hooks.post("inbound", keyword("see you at 8", sid="SM2"))
    # Both services really took the HELP off their queues before we look.
    await eventually(lambda: mesh.handled() >= before + 2)

    assert (reply.status_code, plain.status_code) == (200, 200)
    assert await mesh.history("u1") == []
    assert await mesh.listed() == []


async def test_a_request_not_signed_with_the_token_is_refused_and_publishes_nothing(
    make_settings, amqp_url, namespace
):
    topo = Topology(namespace, TEST_RETRY_DELAYS)
    settings = sms_settings(make_settings)
    base = f"http://127.0.0.1:{settings.webhook_port}"
    url = f"{base}/webhooks/sms/acme/inbound"
    form = keyword("STOP")
    async with running(sms_runtime(settings)), httpx.AsyncClient() as http:
        unsigned = await http.post(url, data=form)
        wrong_token = await http.post(url, data=form, headers=signed(url, form, "other-token"))
        other_url = f"{base}/webhooks/sms/globex/inbound"
        replayed = await http.post(other_url, data=form, headers=signed(url, form))
        changed = await http.post(
            url, data=form | {"From": "+15005550006"}, headers=signed(url, form)
        )
        unknown = f"{base}/webhooks/sms/nobody/inbound"
        no_tenant = await http.post(unknown, data=form, headers=signed(unknown, form))
        depths = [await queue_depth(amqp_url, topo.queue(q)) for q in FEEDBACK_QUEUES]
        good = await http.post(url, data=form, headers=signed(url, form))
        after = [await queue_depth(amqp_url, topo.queue(q)) for q in FEEDBACK_QUEUES]

    refused = [unsigned, wrong_token, replayed, changed]
    assert [r.status_code for r in refused] == [403, 403, 403, 403]
    assert no_tenant.status_code == 404
    assert depths == [0, 0]
    # The same broker shows a signed STOP: the zeros above are real.
    assert (good.status_code, after) == (200, [1, 1])


async def test_a_status_callback_reports_delivered_or_undelivered_after_sent(
    make_settings, amqp_url, namespace
):
    topo = Topology(namespace, TEST_RETRY_DELAYS)
    stage = topology.send_stage("sms")
    env = envelope("sms", users=("u1", "u2"))
    first, second = (d.delivery_id for d in env.deliveries)
    provider = ScriptedProvider("sent")  # answers SID p-<delivery id>
    with provider_registered("sms", provider) as name:
        settings = sms_settings(make_settings, provider=name)
        base = f"http://127.0.0.1:{settings.webhook_port}/webhooks/sms/acme/status"
        sent_before = consumed(topo.queue(stage))
        runtime: ServiceRuntime = sms_runtime(settings)
        async with running(runtime), httpx.AsyncClient() as http:
            await publish_to_stage(amqp_url, topo, stage, env)
            await eventually(lambda: consumed(topo.queue(stage)) > sent_before)
            sent = events_of(await take_all(amqp_url, topo.queue(topology.EVENTS_INTAKE)))

            async def status(sid: str, state: str, code: str = "") -> int:
                form = {"MessageSid": sid, "MessageStatus": state, "To": PHONE}
                form |= {"ErrorCode": code} if code else {}
                reply = await http.post(base, data=form, headers=signed(base, form))
                return reply.status_code

            codes = [
                await status(f"p-{first}", "delivered"),
                await status(f"p-{second}", "undelivered", "30003"),
                await status(f"p-{first}", "sent"),  # not final: nothing to say
                await status("SMunknown", "delivered"),  # not ours
            ]
            receipts = events_of(await take_all(amqp_url, topo.queue(topology.EVENTS_INTAKE)))

    assert sorted((e.delivery_id, e.decision.reason) for e in sent) == [
        (first, "sent"),
        (second, "sent"),
    ]
    assert codes == [200, 200, 200, 200]
    assert [
        (e.delivery_id, e.intent_id, e.channel, e.decision.state, e.decision.reason)
        for e in receipts
    ] == [
        (first, env.intent_id, C.CHANNEL_SMS, S.DELIVERY_STATE_SENT, "delivered"),
        (second, env.intent_id, C.CHANNEL_SMS, S.DELIVERY_STATE_FAILED, "undelivered"),
    ]
    assert [e.decision.detail for e in receipts] == [
        "carrier status delivered",
        "carrier status undelivered, error 30003",
    ]
    # Later than the SENT it follows, so intake's status view takes it as current.
    assert receipts[0].decision.at.ToDatetime() >= sent[0].decision.at.ToDatetime()
