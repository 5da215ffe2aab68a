"""One trace from the caller's Submit to the provider call, across every hop.

In process: the pipeline of tests/e2e/test_pipeline.py with tracing on and
one in-memory exporter (the services share the process's tracer). Across
processes: `sendmesh run` with every service writing its spans to a file.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf.duration_pb2 import Duration
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sendmesh.intake.v1 import intake_pb2
from sendmesh.intent.v1 import intent_pb2

from cli.bus_admin import delete_namespace
from cli.mesh import MeshConfig, free_port_block
from shared import tracing
from tests.e2e.test_mesh import RunningMesh, cli
from tests.e2e.test_mesh import eventually as eventually_sync
from tests.e2e.test_pipeline import Mesh, eventually, intent_for, mesh  # noqa: F401

C = intent_pb2.Channel
SUBMIT = "sendmesh.intake.v1.Intake/Submit"
MATCH_RULES = "sendmesh.profile.v1.Profiles/MatchRules"
SPANS_WITHIN_S = 10.0
# The hops an in-app delivery takes, from the provider call back to Submit:
# each publish is the child of the publish of the message it came from.
INAPP_ANCESTRY = [
    "process send.inapp",
    "publish send.inapp",
    "publish frequency",
    "publish eligibility",
    "publish plan",
    SUBMIT,
]


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Tracing on for every service this test starts, into memory."""
    monkeypatch.setenv("SENDMESH_TRACING_ENABLED", "true")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    yield exporter
    tracing.uninstall()
    provider.shutdown()


@pytest.fixture
def traced_mesh(spans: InMemorySpanExporter, mesh: Mesh) -> Mesh:  # noqa: F811
    return mesh  # started after `spans`: its servers and consumers trace


def caller_context() -> tuple[str, str]:
    """A caller's own trace: (its trace id, the traceparent it sends)."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, f"00-{trace_id}-{span_id}-01"


def ancestry(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    names = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


async def test_one_trace_covers_submit_the_outbox_every_stage_and_the_provider_calls(
    traced_mesh: Mesh, spans: InMemorySpanExporter
):
    pipeline = traced_mesh
    await pipeline.add_profile("traced", "traced@example.com")
    trace_id, traceparent = caller_context()
    intent = intent_for("trace-a", ["traced"], [C.CHANNEL_INAPP, C.CHANNEL_EMAIL])
    # A rule to look at again right before each send: the workers ask profile.
    intent.exclude_if.add(event="purchase", within=Duration(seconds=3600))
    reply = await pipeline.intake.Submit(
        intake_pb2.SubmitRequest(intent=intent),
        metadata=(*pipeline.tenants.metadata(), ("traceparent", traceparent)),
    )
    await pipeline.completed(reply.intent_id)

    def in_trace() -> list[ReadableSpan]:
        return [s for s in spans.get_finished_spans() if f"{s.context.trace_id:032x}" == trace_id]

    async def provider_calls() -> list[ReadableSpan] | None:
        names = {s.name for s in in_trace()}
        wanted = {"provider.send inapp", "provider.send email", "process send.email"}
        # Both workers' rule checks, each a client and a server span.
        checked = sum(s.name == MATCH_RULES for s in in_trace()) == 4
        return in_trace() if wanted <= names and checked else None

    found = await eventually(provider_calls, SPANS_WITHIN_S, "no provider call in the trace")
    by_id = {s.context.span_id: s for s in found}
    names = [s.name for s in found]
    [submit] = [s for s in found if s.name == SUBMIT]
    assert submit.parent is not None and f"{submit.parent.trace_id:032x}" == trace_id
    for hop in ("plan", "eligibility", "frequency", "send.inapp", "send.email"):
        assert names.count(f"publish {hop}") == 1, (hop, names)
        [consumed] = [s for s in found if s.name == f"process {hop}"]
        # One message in the batch: processed as a child of its producer.
        assert consumed.parent is not None
        assert by_id[consumed.parent.span_id].name == f"publish {hop}"

    [inapp_call] = [s for s in found if s.name == "provider.send inapp"]
    assert ancestry(inapp_call, by_id) == INAPP_ANCESTRY
    [email_call] = [s for s in found if s.name == "provider.send email"]
    assert ancestry(email_call, by_id)[:3] == [
        "process send.email",
        "publish send.email",
        "publish frequency",
    ]
    for call in (inapp_call, email_call):
        assert call.attributes is not None
        assert call.attributes["sendmesh.outcome"] == "sent"
        assert "traced@example.com" not in json.dumps(dict(call.attributes))

    # Each worker's last look at the rules: its call to profile, and profile
    # serving it, inside the processing of the message.
    checks = [s for s in found if s.name == MATCH_RULES]
    callers = sorted(
        by_id[s.parent.span_id].name
        for s in checks
        if s.kind == SpanKind.CLIENT and s.parent is not None
    )
    assert callers == ["process send.email", "process send.inapp"], names
    for served in (s for s in checks if s.kind == SpanKind.SERVER):
        assert served.parent is not None
        assert by_id[served.parent.span_id].kind == SpanKind.CLIENT


# -- across processes -------------------------------------------------------------


@pytest.fixture
def traced_processes(
    tmp_path: Path, amqp_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RunningMesh]:
    """`sendmesh run`, every service writing spans to <var>/traces/<service>.jsonl."""
    monkeypatch.setenv("SENDMESH_TRACING_ENABLED", "true")
    monkeypatch.setenv("SENDMESH_TRACING_EXPORTER", "file")
    cfg = MeshConfig(
        var_dir=tmp_path / "var",
        namespace="e2e" + uuid.uuid4().hex[:10],
        base_port=free_port_block(),
        metrics_base_port=free_port_block(),
        amqp_url=amqp_url,
    )
    running = RunningMesh(cfg)
    try:
        yield running
    finally:
        running.stop()
        asyncio.run(delete_namespace(amqp_url, cfg.namespace))


def trace_ids_by_service(traces: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted(traces.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            span = json.loads(line)
            service = span["resource"]["attributes"]["service.name"]
            found.setdefault(service, set()).add(span["context"]["trace_id"])
    return found


@pytest.mark.timeout(240)
def test_the_trace_of_a_submit_is_found_in_the_span_files_of_every_service_it_crossed(
    traced_processes: RunningMesh,
):
    processes = traced_processes
    processes.wait_ready()
    intake, inapp = processes.cfg.address("intake"), processes.cfg.address("inapp")
    user = "u-" + uuid.uuid4().hex[:8]
    sent = cli(
        processes, "send", "--user", user, "--channel", "inapp",
        "--title", "Hi", "--body", "traced", "--intake", intake,
    )  # fmt: skip

    def arrived() -> bool:
        view = cli(processes, "inbox", user, "--inapp", inapp)
        return any(m["intent_id"] == sent["intent_id"] for m in view["messages"])

    assert eventually_sync(arrived), processes.transcript()
    assert processes.stop() == 0, processes.transcript()  # stopping flushes every exporter

    traces = processes.cfg.var_dir / "traces"
    submits = [
        json.loads(line)
        for line in (traces / "intake.jsonl").read_text().splitlines()
        if json.loads(line)["name"] == SUBMIT
    ]
    assert len(submits) == 1
    trace_id = submits[0]["context"]["trace_id"]
    crossed = {s for s, ids in trace_ids_by_service(traces).items() if trace_id in ids}
    assert {"intake", "profile", "eligibility", "frequency", "inapp"} <= crossed, crossed
