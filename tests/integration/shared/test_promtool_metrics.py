"""Every service's /metrics passes `promtool check metrics` (Prometheus' own
exposition-format linter: names, units, suffixes, help) after real traffic.

The services run in this process, as tests/e2e/test_pipeline.py runs them, each
with its /metrics endpoint on a port of its own. They share one registry, so
each scrape also carries what the others counted: every family is linted with
samples in it, which is what a lint of names and types needs.
"""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import typing
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import grpc
import pytest
from sendmesh.intake.v1 import intake_pb2, intake_pb2_grpc
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2, profile_pb2_grpc

from cli.mesh import SERVICE_NAMES
from tests import servers
from tests.conftest import Tenants, running
from tests.integration.grpc_helpers import channel_to

ROOT = Path(__file__).resolve().parents[3]
COMPLETED_WITHIN_S = 15.0
# Families that only exist once traffic went all the way through: seen in the
# scrape, they prove the lint below ran on a mesh that did real work.
AFTER_TRAFFIC = (
    'grpc_server_handled_total{grpc_code="OK"',
    'grpc_server_handled_total{grpc_code="INVALID_ARGUMENT"',
    "sendmesh_intents_received_total{",
    "sendmesh_decisions_total{",
    'sendmesh_deliveries_total{channel="email"',
    'sendmesh_deliveries_total{channel="inapp"',
    "sendmesh_delivery_latency_seconds_bucket{",
    'sendmesh_consumer_messages_total{outcome="ok"',
    "sendmesh_consumer_batch_handling_seconds_bucket{",
    'sendmesh_bus_published_messages_total{outcome="ok"}',
    "sendmesh_outbox_backlog_messages ",
    "sendmesh_build_info{",
)


@pytest.fixture(scope="session")
def promtool() -> str:
    """promtool from PATH, .tools/bin/, or extracted by scripts/ensure-promtool.sh."""
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "ensure-promtool.sh")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"promtool is needed and missing:\n{result.stderr}", pytrace=False)
    return result.stdout.strip().splitlines()[-1]


def create_runtime(name: str, make_settings: Callable[..., Any], **overrides: Any) -> Any:
    """services.<name>.__main__.create_runtime, with settings of the class it takes."""
    module = importlib.import_module(f"services.{name}.__main__")
    settings_cls = typing.get_type_hints(module.create_runtime)["settings"]
    return module.create_runtime(make_settings(settings_cls, **overrides))


@pytest.fixture
async def metrics_urls(
    make_settings: Callable[..., Any], tmp_path: Path
) -> AsyncIterator[dict[str, tuple[str, int]]]:
    """Every service of the mesh running: name -> (its /metrics URL, its gRPC port)."""
    async with AsyncExitStack() as stack:
        urls: dict[str, tuple[str, int]] = {}
        for name in SERVICE_NAMES:
            port = servers.free_port()
            runtime = create_runtime(
                name, make_settings, var_dir=tmp_path / name, metrics_port=port
            )
            await stack.enter_async_context(running(runtime))
            urls[name] = (f"http://127.0.0.1:{port}/metrics", runtime.port)
        yield urls


async def drive_traffic(tenants: Tenants, intake_port: int, profile_port: int) -> None:
    """One email + in-app intent through the whole mesh, and one refused Submit."""
    md = tenants.metadata()
    async with channel_to(profile_port) as channel:
        profile = profile_pb2.Profile(user_id="metrics-user", locale="en", timezone="UTC")
        profile.contacts.email = "metrics-user@example.com"
        await profile_pb2_grpc.ProfilesStub(channel).UpsertProfile(
            profile_pb2.UpsertProfileRequest(profile=profile), metadata=md
        )
    async with channel_to(intake_port) as channel:
        intake = intake_pb2_grpc.IntakeStub(channel)
        intent = intent_pb2.SendIntent(
            idempotency_key="promtool-metrics",
            category="cart_reminder",
            # Transactional: no marketing opt-in needed for it to be sent.
            kind=intent_pb2.KIND_TRANSACTIONAL,
            channels=[intent_pb2.CHANNEL_EMAIL, intent_pb2.CHANNEL_INAPP],
        )
        intent.audience.user_ids.append("metrics-user")
        inline = intent.content.inline
        inline.inapp.title, inline.inapp.body = "Your cart", "misses you"
        inline.email.subject, inline.email.text = "Your cart", "You left something behind"
        reply = await intake.Submit(intake_pb2.SubmitRequest(intent=intent), metadata=md)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await intake.Submit(intake_pb2.SubmitRequest(), metadata=md)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        view = await wait_completed(intake, reply.intent_id, md)
    states = {d.channel: d.current.state for d in view.deliveries}
    sent = intent_pb2.DELIVERY_STATE_SENT
    assert states == {intent_pb2.CHANNEL_EMAIL: sent, intent_pb2.CHANNEL_INAPP: sent}, view


async def wait_completed(
    intake: intake_pb2_grpc.IntakeStub, intent_id: str, md: tuple[tuple[str, str], ...]
) -> intake_pb2.Intent:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + COMPLETED_WITHIN_S
    request = intake_pb2.GetIntentRequest(intent_id=intent_id)
    while True:
        view = (await intake.GetIntent(request, metadata=md)).intent
        if view.state == intake_pb2.INTENT_STATE_COMPLETED:
            return view
        assert loop.time() < deadline, f"intent never completed: {view}"
        await asyncio.sleep(0.05)


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return str(reply.read().decode())


def promtool_lint(promtool: str, body: str) -> tuple[int, str]:
    """`promtool check metrics` on an exposition body: exit code and everything it said."""
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=body,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.returncode, (result.stdout + result.stderr).strip()


def test_promtool_lint_reports_a_badly_named_metric(promtool: str):
    # The check below trusts an empty answer: prove promtool answers when it should.
    body = "# HELP requests_count Requests.\n# TYPE requests_count counter\nrequests_count 1\n"
    code, said = promtool_lint(promtool, body)
    assert code != 0 and 'counter metrics should have "_total" suffix' in said


async def test_every_service_metrics_endpoint_passes_promtool_check_metrics_after_traffic(
    metrics_urls: dict[str, tuple[str, int]], tenants: Tenants, promtool: str
):
    await drive_traffic(tenants, metrics_urls["intake"][1], metrics_urls["profile"][1])
    # The outbox relay publishes its backlog gauge on its own beat.
    await asyncio.sleep(0.1)

    problems: dict[str, str] = {}
    for name, (url, _) in metrics_urls.items():
        body = await asyncio.to_thread(scrape, url)
        missing = [family for family in AFTER_TRAFFIC if family not in body]
        assert not missing, f"{name}: /metrics lacks {missing} after traffic"
        code, said = promtool_lint(promtool, body)
        if code != 0 or said:
            problems[name] = said or f"exit code {code}"
    assert not problems, f"promtool check metrics: {problems}"
