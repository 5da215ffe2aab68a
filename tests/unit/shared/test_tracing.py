"""shared/tracing.py: set-up from settings, and the W3C context across publishes,
consumed batches and envelopes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sendmesh.bus.v1 import envelope_pb2

from services.scheduler.deferrals import hold
from shared import tracing
from shared.settings import ServiceSettings, SettingsError, load_settings

ENVELOPE = envelope_pb2.Envelope.DESCRIPTOR.full_name


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    yield exporter
    tracing.uninstall()
    provider.shutdown()


def envelope(intent: str, carrier: dict[str, str] | None = None) -> envelope_pb2.Envelope:
    return envelope_pb2.Envelope(tenant_id="acme", intent_id=intent, trace_context=carrier or {})


def publish(env: envelope_pb2.Envelope, key: str = "eligibility") -> dict[str, Any]:
    headers: dict[str, Any] = {"x-sendmesh-attempt": 1}
    with tracing.publishing("ns.work", key, ENVELOPE, env.SerializeToString(), headers):
        pass
    return headers


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def span_id_of(headers: dict[str, Any]) -> int:
    return int(headers["traceparent"].split("-")[2], 16)


def test_tracing_is_off_unless_a_setting_turns_it_on_and_then_nothing_is_traced():
    settings = ServiceSettings()
    assert settings.tracing_enabled is False
    tracing.start(settings)
    assert not tracing.enabled()
    headers = publish(envelope("i-1"))
    assert headers == {"x-sendmesh-attempt": 1}
    assert tracing.current_carrier() == {}
    env = envelope("i-1")
    assert tracing.adopt(env, {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}) is env
    assert dict(env.trace_context) == {}
    with tracing.provider_call("email", "dev", 1) as span:
        tracing.call_outcome(span, "sent")
    assert span is None


def test_bad_tracing_settings_are_refused_at_start_up():
    with pytest.raises(SettingsError) as err:
        load_settings(ServiceSettings, tracing_exporter="zipkin", tracing_sample_ratio=1.5)
    assert "SENDMESH_TRACING_EXPORTER" in str(err.value)
    assert "SENDMESH_TRACING_SAMPLE_RATIO" in str(err.value)


def test_the_file_exporter_writes_one_json_line_per_span_named_after_the_service(tmp_path: Path):
    settings = ServiceSettings(
        service="profile", var_dir=tmp_path, tracing_enabled=True, tracing_exporter="file"
    )
    tracing.start(settings)
    try:
        assert tracing.enabled()
        headers = publish(envelope("i-1"))
    finally:
        tracing.stop(settings)  # flushes
    assert not tracing.enabled()
    [line] = (tmp_path / "traces" / "profile.jsonl").read_text().splitlines()
    span = json.loads(line)
    assert span["name"] == "publish eligibility"
    assert span["kind"] == "SpanKind.PRODUCER"
    assert span["resource"]["attributes"]["service.name"] == "profile"
    assert int(span["context"]["span_id"], 16) == span_id_of(headers)


def test_services_of_one_process_share_the_provider_until_the_last_one_stops(tmp_path: Path):
    first = ServiceSettings(service="intake", var_dir=tmp_path, tracing_enabled=True)
    second = ServiceSettings(service="profile", var_dir=tmp_path, tracing_enabled=True)
    tracing.start(first)
    tracing.start(second)
    tracing.stop(first)
    assert tracing.enabled()
    tracing.stop(second)
    assert not tracing.enabled()


def test_a_publish_is_a_producer_span_whose_context_goes_out_in_the_headers(
    spans: InMemorySpanExporter,
):
    headers = publish(envelope("i-1"), key="plan")
    [span] = named(spans, "publish plan")
    assert span.kind is SpanKind.PRODUCER
    assert span.context.span_id == span_id_of(headers)
    assert span.attributes is not None
    assert span.attributes["messaging.rabbitmq.destination.routing_key"] == "plan"
    assert headers["x-sendmesh-attempt"] == 1


def test_an_envelope_published_outside_a_batch_continues_the_context_it_carries(
    spans: InMemorySpanExporter,
):
    # The outbox relay and the scheduler publish stored bodies: no batch, no headers.
    with tracing.serving("/sendmesh.intake.v1.Intake/Submit", ()) as submit:
        carrier = tracing.current_carrier()
    assert submit is not None
    publish(envelope("i-1", carrier), key="plan")
    [span] = named(spans, "publish plan")
    assert span.parent is not None
    assert span.parent.span_id == submit.get_span_context().span_id
    assert span.context.trace_id == submit.get_span_context().trace_id


def test_a_batch_of_one_message_is_processed_in_a_child_span_of_its_producer(
    spans: InMemorySpanExporter,
):
    produced = publish(envelope("i-1"))
    with tracing.consuming("eligibility", "ns.eligibility", [produced]):
        pass
    [span] = named(spans, "process eligibility")
    assert span.kind is SpanKind.CONSUMER
    assert span.parent is not None and span.parent.span_id == span_id_of(produced)
    assert [link.context.span_id for link in span.links] == [span_id_of(produced)]


def test_a_batch_of_many_messages_is_a_new_trace_linked_to_each_of_them(
    spans: InMemorySpanExporter,
):
    produced = [publish(envelope(f"i-{n}")) for n in range(3)]
    with tracing.consuming("eligibility", "ns.eligibility", [*produced, None]):
        pass
    [span] = named(spans, "process eligibility")
    assert span.parent is None
    assert {link.context.span_id for link in span.links} == {span_id_of(h) for h in produced}
    assert span.attributes is not None
    assert span.attributes["messaging.batch.message_count"] == 4


def test_each_onward_publish_of_a_batch_is_a_child_of_its_own_message_linked_to_the_batch(
    spans: InMemorySpanExporter,
):
    produced = {intent: publish(envelope(intent)) for intent in ("i-1", "i-2")}
    with tracing.consuming("eligibility", "ns.eligibility", list(produced.values())):
        for intent, headers in produced.items():
            consumed = tracing.adopt(envelope(intent), headers)
            assert consumed.trace_context["traceparent"] == headers["traceparent"]
        # What a stage publishes onward: a new envelope of the same intent,
        # without the consumed one's trace_context.
        onward = {intent: publish(envelope(intent), key="frequency") for intent in produced}
    [batch] = named(spans, "process eligibility")
    by_span_id = {s.context.span_id: s for s in named(spans, "publish frequency")}
    for intent, headers in onward.items():
        span = by_span_id[span_id_of(headers)]
        assert span.parent is not None
        assert span.parent.span_id == span_id_of(produced[intent])
        assert [link.context.span_id for link in span.links] == [batch.context.span_id]


def test_a_consumed_envelope_without_headers_keeps_the_context_its_body_carries(
    spans: InMemorySpanExporter,
):
    produced = publish(envelope("i-1"))
    carried = {"traceparent": produced["traceparent"]}
    with tracing.consuming("frequency", "ns.frequency", [{}]):
        env = tracing.adopt(envelope("i-1", carried), {})
        publish(envelope("i-1"), key="send.email")
    assert dict(env.trace_context) == carried
    [span] = named(spans, "publish send.email")
    assert span.parent is not None and span.parent.span_id == span_id_of(produced)


def test_a_server_span_continues_the_callers_trace_and_marks_server_errors_only(
    spans: InMemorySpanExporter,
):
    caller = publish(envelope("i-1"))
    metadata = [("traceparent", caller["traceparent"]), ("authorization", "Bearer x")]
    with tracing.serving("/sendmesh.intake.v1.Intake/Submit", metadata) as span:
        tracing.rpc_finished(span, "INVALID_ARGUMENT", 3)
    with tracing.serving("/sendmesh.intake.v1.Intake/GetIntent", ()) as span:
        tracing.rpc_finished(span, "INTERNAL", 13)
    [submit] = named(spans, "sendmesh.intake.v1.Intake/Submit")
    assert submit.kind is SpanKind.SERVER
    assert submit.parent is not None and submit.parent.span_id == span_id_of(caller)
    assert submit.status.status_code.name == "UNSET"  # a caller's error, not ours
    assert submit.attributes is not None and submit.attributes["rpc.grpc.status_code"] == 3
    [get] = named(spans, "sendmesh.intake.v1.Intake/GetIntent")
    assert get.parent is None
    assert get.status.status_code.name == "ERROR"


def test_a_provider_call_span_says_channel_provider_and_outcome_and_nothing_about_recipients(
    spans: InMemorySpanExporter,
):
    with tracing.provider_call("sms", "twilio", 3) as span:
        tracing.call_outcome(span, "partial", not_sent=1)
    with tracing.provider_call("sms", "twilio", 2) as span:
        tracing.call_outcome(span, "transient", 2, "rate_limited")
    partial, transient = named(spans, "provider.send sms")
    assert partial.attributes is not None and transient.attributes is not None
    assert dict(partial.attributes) == {
        "sendmesh.channel": "sms",
        "sendmesh.provider": "twilio",
        "messaging.batch.message_count": 3,
        "sendmesh.outcome": "partial",
        "sendmesh.not_sent": 1,
    }
    assert transient.attributes["sendmesh.reason"] == "rate_limited"
    assert transient.status.status_code.name == "ERROR"


def test_with_a_sample_ratio_of_zero_new_traces_are_not_recorded_but_still_propagated(
    tmp_path: Path,
):
    settings = ServiceSettings(
        var_dir=tmp_path, tracing_enabled=True, tracing_exporter="file", tracing_sample_ratio=0
    )
    tracing.start(settings)
    try:
        headers = publish(envelope("i-1"))
    finally:
        tracing.stop(settings)
    flags = int(headers["traceparent"].rsplit("-", 1)[1], 16)
    assert flags & 0x01 == 0  # not sampled, and still a context to pass on
    assert not (tmp_path / "traces" / "sendmesh.jsonl").exists()


def test_a_deferral_released_by_the_scheduler_hours_later_continues_the_trace_it_came_with(
    spans: InMemorySpanExporter,
):
    deferral = envelope("i-1")
    deferral.deliveries.add(delivery_id="d-1", user_id="u-1")
    deferral.deferral.due_at.FromDatetime(datetime(2026, 3, 2, 7, tzinfo=UTC))
    deferral.deferral.stage = "eligibility"
    produced = publish(deferral, key="deferred")
    with tracing.consuming("deferred", "ns.deferred", [produced]):
        held = hold(tracing.adopt(deferral, produced), {"eligibility"})
    # The due-loop publishes the stored body later: no batch, no headers.
    with tracing.publishing("ns.work", "eligibility", ENVELOPE, held.body, {}):
        pass
    [release] = named(spans, "publish eligibility")
    assert release.parent is not None and release.parent.span_id == span_id_of(produced)
