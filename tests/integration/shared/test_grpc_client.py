"""shared/grpc/client.py against the real profile service in this process:
TLS and mTLS as the settings say (certificates made here, by a CA of the
test's own), and the caller's trace context carried to the callee."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, get_current_span
from sendmesh.profile.v1 import profile_pb2, profile_pb2_grpc

from services.profile.__main__ import create_runtime
from services.profile.settings import ProfileSettings
from shared import tracing
from shared.grpc.client import open_channel
from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings
from tests.conftest import Tenants, running
from tests.integration.channels.support import eventually
from tests.unit.shared.test_tracing import spans  # noqa: F401

UPSERT = "sendmesh.profile.v1.Profiles/UpsertProfile"
GET = "sendmesh.profile.v1.Profiles/GetProfile"
WATCH = "grpc.health.v1.Health/Watch"
HOST = "127.0.0.1"


# -- a CA of our own ----------------------------------------------------------------


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


class TestCa:
    """A CA that signs certificates for 127.0.0.1/localhost, written to `directory`."""

    __test__ = False  # not a test class

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.name = name
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test CA")])
        self.subject = subject
        self.cert = (
            _builder(subject, subject, self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.file = directory / f"{name}-ca.crt"
        self.file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, who: str) -> Issued:
        """A certificate for `who` on this host, good for a server and a client
        (one per service, as the settings use it on both sides)."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, who)])
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
        usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        cert = (
            _builder(subject, self.subject, key.public_key())
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        issued = Issued(self.directory / f"{who}.crt", self.directory / f"{who}.key")
        issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        issued.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return issued


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


@dataclass(frozen=True)
class Pki:
    ca: TestCa
    stranger: TestCa  # a CA the server's certificate does not chain to
    server: Issued
    caller: Issued


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca = TestCa(tmp_path, "mesh")
    return Pki(ca, TestCa(tmp_path, "stranger"), ca.issue("profile"), ca.issue("intake"))


# -- the callee and its callers -------------------------------------------------------


@asynccontextmanager
async def profile_with(
    make_settings: Callable[..., Any], **tls: Any
) -> AsyncIterator[ServiceRuntime]:
    async with running(create_runtime(make_settings(ProfileSettings, **tls))) as runtime:
        yield runtime


def caller(**tls: Any) -> ServiceSettings:
    return ServiceSettings(service="caller", **tls)


async def round_trip(runtime: ServiceRuntime, settings: ServiceSettings, tenants: Tenants) -> str:
    """Upsert a profile and read it back through the factory's channel; the locale read."""
    async with open_channel(f"{HOST}:{runtime.port}", settings) as channel:
        stub = profile_pb2_grpc.ProfilesStub(channel)
        profile = profile_pb2.Profile(user_id="tls-user", locale="de-AT")
        request = profile_pb2.UpsertProfileRequest(profile=profile)
        await stub.UpsertProfile(request, metadata=tenants.metadata(), timeout=10)
        reply = await stub.GetProfile(
            profile_pb2.GetProfileRequest(user_id="tls-user"),
            metadata=tenants.metadata(),
            timeout=10,
        )
    return reply.profile.locale


async def refused_code(
    runtime: ServiceRuntime, settings: ServiceSettings, tenants: Tenants
) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await round_trip(runtime, settings, tenants)
    return raised.value.code()


async def test_a_caller_that_trusts_the_servers_ca_calls_a_tls_service(
    make_settings, tenants, pki: Pki
):
    server_tls = {"tls_cert_file": pki.server.cert, "tls_key_file": pki.server.key}
    async with profile_with(make_settings, **server_tls) as profile:
        locale = await round_trip(profile, caller(tls_server_ca_file=pki.ca.file), tenants)

    assert locale == "de-AT"


async def test_a_caller_without_the_ca_or_with_another_finds_a_tls_service_unavailable(
    make_settings, tenants, pki: Pki
):
    server_tls = {"tls_cert_file": pki.server.cert, "tls_key_file": pki.server.key}
    async with profile_with(make_settings, **server_tls) as profile:
        plain = await refused_code(profile, caller(), tenants)
        other_ca = await refused_code(
            profile, caller(tls_server_ca_file=pki.stranger.file), tenants
        )
        # The same server answers the right CA: the refusals above were TLS's.
        trusted = await round_trip(profile, caller(tls_server_ca_file=pki.ca.file), tenants)

    assert (plain, other_ca) == (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE)
    assert trusted == "de-AT"


async def test_a_service_that_requires_client_certificates_admits_only_callers_that_present_one(
    make_settings, tenants, pki: Pki
):
    server_tls = {
        "tls_cert_file": pki.server.cert,
        "tls_key_file": pki.server.key,
        "tls_client_ca_file": pki.ca.file,
    }
    trusting = {"tls_server_ca_file": pki.ca.file}
    own_cert = {"tls_cert_file": pki.caller.cert, "tls_key_file": pki.caller.key}
    foreign = pki.stranger.issue("outsider")
    foreign_cert = {"tls_cert_file": foreign.cert, "tls_key_file": foreign.key}
    async with profile_with(make_settings, **server_tls) as profile:
        without_cert = await refused_code(profile, caller(**trusting), tenants)
        with_foreign_cert = await refused_code(profile, caller(**trusting, **foreign_cert), tenants)
        with_cert = await round_trip(profile, caller(**trusting, **own_cert), tenants)

    assert without_cert == grpc.StatusCode.UNAVAILABLE
    assert with_foreign_cert == grpc.StatusCode.UNAVAILABLE
    assert with_cert == "de-AT"


# -- trace context --------------------------------------------------------------------


def spans_named(exporter: InMemorySpanExporter, name: str, kind: SpanKind) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name and s.kind == kind]


async def test_the_callees_server_span_is_a_child_of_the_callers_client_span(
    make_settings,
    tenants,
    spans: InMemorySpanExporter,  # noqa: F811
):
    async with profile_with(make_settings) as profile:
        # What a worker does: a call made while it processes a consumed message.
        with tracing.consuming("send.email", "t.send.email", [{}]):
            work = get_current_span().get_span_context()
            await round_trip(profile, caller(), tenants)
        async with open_channel(f"{HOST}:{profile.port}", caller()) as channel:
            stub = profile_pb2_grpc.ProfilesStub(channel)
            request = profile_pb2.GetProfileRequest(user_id="nobody")
            with pytest.raises(grpc.aio.AioRpcError) as missing:
                await stub.GetProfile(request, metadata=tenants.metadata(), timeout=10)

    assert work.is_valid
    [client_upsert] = spans_named(spans, UPSERT, SpanKind.CLIENT)
    [server_upsert] = spans_named(spans, UPSERT, SpanKind.SERVER)
    assert client_upsert.parent is not None and client_upsert.parent.span_id == work.span_id
    assert server_upsert.parent is not None
    assert server_upsert.parent.span_id == client_upsert.context.span_id
    assert server_upsert.context.trace_id == client_upsert.context.trace_id == work.trace_id
    assert client_upsert.attributes is not None
    assert client_upsert.attributes["rpc.grpc.status_code"] == grpc.StatusCode.OK.value[0]

    # A call outside any span starts its own trace; NOT_FOUND is an error to
    # the caller, and none of the server's doing.
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    [not_found] = [s for s in spans_named(spans, GET, SpanKind.CLIENT) if s.parent is None]
    assert not_found.status.status_code == StatusCode.ERROR
    [server_get] = [
        s
        for s in spans_named(spans, GET, SpanKind.SERVER)
        if s.parent is not None and s.parent.span_id == not_found.context.span_id
    ]
    assert server_get.context.trace_id == not_found.context.trace_id
    assert server_get.status.status_code == StatusCode.UNSET


async def test_a_streaming_calls_client_span_ends_when_the_stream_does(
    make_settings,
    spans: InMemorySpanExporter,  # noqa: F811
):
    def watch_spans() -> list[ReadableSpan]:
        return spans_named(spans, WATCH, SpanKind.CLIENT)

    async with (
        profile_with(make_settings) as profile,
        open_channel(f"{HOST}:{profile.port}", caller()) as channel,
    ):
        call = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        first = await call.read()
        while_streaming = watch_spans()
        call.cancel()
        await eventually(lambda: bool(watch_spans()))

    assert first.status == health_pb2.HealthCheckResponse.SERVING
    assert while_streaming == []
    [watch] = watch_spans()
    assert watch.attributes is not None
    assert watch.attributes["rpc.grpc.status_code"] == grpc.StatusCode.CANCELLED.value[0]
    assert watch.status.status_code == StatusCode.ERROR
