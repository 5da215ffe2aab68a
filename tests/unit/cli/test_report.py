from __future__ import annotations

import io
import json
import math
from dataclasses import replace

from rich.console import Console

from cli.bench.baseline import BaselineResult, RelayLatency
from cli.bench.decisions import DecisionsResult
from cli.bench.fanout import FanoutResult
from cli.bench.mesh_load import LatencyResult, ThroughputResult
from cli.bench.procs import ProcessFigure
from cli.bench.report import BenchReport, Machine, cpu_per_delivery_us, report_table
from cli.bench.stats import summarize

BASELINE = BaselineResult(published=100, received=100, seconds=0.125, msgs_per_s=800.0)


def report(baseline: BaselineResult | None) -> BenchReport:
    throughput = ThroughputResult(
        submitted=100, sent=100, failed=0, seconds=0.5, intents_per_s=200.0
    )
    latency = LatencyResult(
        offered_per_s=100.0, submitted=10, failed=0, lost=0, latencies=summarize([1.0, 2.0])
    )
    return BenchReport(100, 8, 512, throughput, latency, baseline)


def decided(intents_per_s: float = 400.0) -> DecisionsResult:
    return DecisionsResult(
        profiles=10_000,
        submitted=100,
        failed=0,
        sent=80,
        suppressed=15,
        capped=4,
        other=0,
        undecided=1,
        seconds=0.25,
        intents_per_s=intents_per_s,
        latencies=summarize([10.0, 30.0]),
    )


def fanned_out(*processes: ProcessFigure) -> FanoutResult:
    return FanoutResult(
        members=100_000,
        delivered=100_000,
        seed_seconds=12.0,
        first_sent_after_s=1.5,
        seconds=20.0,
        deliveries_per_s=5000.0,
        end_to_end_s=21.5,
        processes=list(processes),
    )


def text_of(r: BenchReport) -> str:
    console = Console(width=250, record=True, file=io.StringIO())
    console.print(report_table(r))
    return console.export_text()


def test_the_ratio_is_mesh_intents_over_baseline_messages_per_second():
    r = report(BASELINE)
    assert r.ratio == 0.25
    assert r.as_dict()["mesh_to_baseline_ratio"] == 0.25


def test_without_a_baseline_there_is_no_ratio_and_the_json_says_null():
    r = report(None)
    assert math.isnan(r.ratio)
    data = json.loads(json.dumps(r.as_dict(), allow_nan=False))
    assert data["mesh_to_baseline_ratio"] is None
    assert data["baseline"] is None
    assert data["latency"]["latencies"]["p50_ms"] == 1.5


def test_decisions_are_compared_with_the_baseline_of_the_same_run():
    r = BenchReport(100, 8, 512, baseline=BASELINE, decisions=decided(400.0))
    assert r.decisions_ratio == 0.5
    assert math.isnan(r.ratio)
    data = json.loads(json.dumps(r.as_dict(), allow_nan=False))
    assert data["decisions_to_baseline_ratio"] == 0.5
    assert data["mesh_to_baseline_ratio"] is None
    assert data["throughput"] is None


def test_the_table_shows_how_the_decided_intents_ended_and_that_they_add_up():
    text = text_of(BenchReport(100, 8, 512, baseline=BASELINE, decisions=decided()))
    assert "sent 80 + suppressed 15 + capped 4 + other 0 + undecided 1 = 100 submitted" in text
    assert "decisions / baseline" in text
    assert "mesh throughput" not in text


def test_the_fan_out_shows_every_service_with_its_memory_and_cpu_a_delivery():
    fan = fanned_out(
        ProcessFigure("inapp", 130.0, 260.5, 40, cpu_s=30.0),
        ProcessFigure("intake", 100.0, 140.0, 40, cpu_s=10.0),
    )
    text = text_of(BenchReport(100, 8, 512, fanout=fan, machine=Machine(2, (1.5, 1.0, 0.5))))
    assert "5,000.0 /s" in text
    assert "100,000/100,000 delivered" in text
    assert "inapp: RSS peak, CPU" in text
    assert "260.5 MB, 30.0 s" in text
    assert "over 250 MB" in text
    assert text.count("over 250 MB") == 1
    assert "400 µs a delivery" in text  # 40 s of CPU for 100,000
    assert "1.50 / 1.00 / 0.50" in text
    assert cpu_per_delivery_us(fan.processes[0], fan.delivered) == 300.0


def test_a_fan_out_on_a_mesh_the_bench_did_not_start_says_memory_was_not_measured():
    text = text_of(BenchReport(100, 8, 512, fanout=fanned_out()))
    assert "not measured" in text
    data = json.loads(json.dumps(BenchReport(1, 1, 1, fanout=fanned_out()).as_dict()))
    assert data["fanout"]["processes"] == []


def test_the_relays_latency_is_shown_beside_the_meshs_at_each_rate():
    probe = RelayLatency(offered_per_s=100.0, sent=10, lost=0, latencies=summarize([4.0, 6.0]))
    r = report(replace(BASELINE, latency=(probe,)))

    text = text_of(r)

    assert "baseline relay p50 / p95 / p99 at 100.0/s" in text
    assert "5.0 / 5.9 / 6.0 ms" in text
    assert r.as_dict()["baseline"]["latency"][0]["latencies"]["p50_ms"] == 5.0
