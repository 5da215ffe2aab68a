from __future__ import annotations

import json
import math

from cli.bench.baseline import BaselineResult
from cli.bench.mesh_load import LatencyResult, ThroughputResult
from cli.bench.report import BenchReport
from cli.bench.stats import summarize


def report(baseline: BaselineResult | None) -> BenchReport:
    throughput = ThroughputResult(
        submitted=100, sent=100, failed=0, seconds=0.5, intents_per_s=200.0
    )
    latency = LatencyResult(
        offered_per_s=100.0, submitted=10, failed=0, lost=0, latencies=summarize([1.0, 2.0])
    )
    return BenchReport(100, 8, 512, throughput, latency, baseline)


def test_the_ratio_is_mesh_intents_over_baseline_messages_per_second():
    r = report(BaselineResult(published=100, received=100, seconds=0.125, msgs_per_s=800.0))
    assert r.ratio == 0.25
    assert r.as_dict()["mesh_to_baseline_ratio"] == 0.25


def test_without_a_baseline_there_is_no_ratio_and_the_json_says_null():
    r = report(None)
    assert math.isnan(r.ratio)
    data = json.loads(json.dumps(r.as_dict(), allow_nan=False))
    assert data["mesh_to_baseline_ratio"] is None
    assert data["baseline"] is None
    assert data["latency"]["latencies"]["p50_ms"] == 1.5
