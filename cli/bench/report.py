"""The bench's figures: one table for people, one JSON object for machines."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from rich.table import Table

from cli.bench.baseline import BaselineResult
from cli.bench.mesh_load import LatencyResult, ThroughputResult


@dataclass(frozen=True)
class BenchReport:
    n: int
    concurrency: int
    prefetch: int
    throughput: ThroughputResult
    latency: LatencyResult | None
    baseline: BaselineResult | None
    latency_floor: LatencyResult | None = None

    @property
    def ratio(self) -> float:
        """Mesh intents/s over baseline msgs/s: the share of the bare hops' speed kept."""
        if self.baseline is None or not self.baseline.msgs_per_s:
            return math.nan
        return self.throughput.intents_per_s / self.baseline.msgs_per_s

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mesh_to_baseline_ratio"] = self.ratio
        return _without_nan(data)


def _without_nan(value: Any) -> Any:
    """JSON has no NaN: a figure that could not be measured is null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    return value


def _fmt(value: float, digits: int = 1) -> str:
    return "-" if math.isnan(value) else f"{value:,.{digits}f}"


def _latency_rows(table: Table, label: str, result: LatencyResult) -> None:
    lat = result.latencies
    notes = (
        f"{lat.count} intents at {_fmt(result.offered_per_s)}/s open loop, {result.lost} not sent"
    )
    table.add_row(f"submit -> sent p50, {label}", f"{_fmt(lat.p50_ms)} ms", notes)
    table.add_row(f"submit -> sent p95, {label}", f"{_fmt(lat.p95_ms)} ms", "")
    table.add_row(f"submit -> sent p99, {label}", f"{_fmt(lat.p99_ms)} ms", "")


def report_table(r: BenchReport) -> Table:
    table = Table(
        title=f"sendmesh bench: n={r.n}, concurrency={r.concurrency}, prefetch={r.prefetch}"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("notes")
    t = r.throughput
    table.add_row(
        "mesh throughput",
        f"{_fmt(t.intents_per_s)} intents/s",
        f"{t.sent}/{t.submitted} sent in {_fmt(t.seconds, 2)} s, {t.failed} submit errors",
    )
    for label, result in (("at half that rate", r.latency), ("floor", r.latency_floor)):
        if result is not None:
            _latency_rows(table, label, result)
    if r.baseline is not None:
        b = r.baseline
        table.add_row(
            "baseline relay",
            f"{_fmt(b.msgs_per_s)} msgs/s",
            f"{b.received}/{b.published} through 4 queue hops in {_fmt(b.seconds, 2)} s",
        )
        table.add_row("mesh / baseline", _fmt(r.ratio, 3), "")
    return table
