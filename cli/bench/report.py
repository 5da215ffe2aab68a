"""The bench's figures: one table for people, one JSON object for machines."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from rich.table import Table

from cli.bench.baseline import BaselineResult
from cli.bench.channels import ChannelResult
from cli.bench.decisions import DecisionsResult
from cli.bench.fanout import FanoutResult
from cli.bench.mesh_load import LatencyResult, ThroughputResult
from cli.bench.procs import ProcessFigure

# The bound for every service while the fan-out runs.
RSS_TARGET_MB = 250


@dataclass(frozen=True)
class Machine:
    """Where the figures were taken: other work on the machine moves them."""

    cores: int
    # 1, 5 and 15 minute load averages when the bench ended.
    load_average: tuple[float, float, float]


@dataclass(frozen=True)
class BenchReport:
    n: int
    concurrency: int
    prefetch: int
    throughput: ThroughputResult | None = None
    latency: LatencyResult | None = None
    baseline: BaselineResult | None = None
    latency_floor: LatencyResult | None = None
    decisions: DecisionsResult | None = None
    fanout: FanoutResult | None = None
    # Per channel and provider mode (dev, then peers).
    channels: tuple[ChannelResult, ...] = ()
    machine: Machine | None = None

    @property
    def ratio(self) -> float:
        """Mesh intents/s over baseline msgs/s: the share of the bare hops' speed kept."""
        return _over_baseline(self.throughput.intents_per_s if self.throughput else math.nan, self)

    @property
    def decisions_ratio(self) -> float:
        """The same share with profile lookups, rules and caps active."""
        return _over_baseline(self.decisions.intents_per_s if self.decisions else math.nan, self)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mesh_to_baseline_ratio"] = self.ratio
        data["decisions_to_baseline_ratio"] = self.decisions_ratio
        return _without_nan(data)


def _over_baseline(rate: float, r: BenchReport) -> float:
    if r.baseline is None or not r.baseline.msgs_per_s:
        return math.nan
    return rate / r.baseline.msgs_per_s


def cpu_per_delivery_us(fig: ProcessFigure, delivered: int) -> float:
    """The service's CPU time over a phase, per delivery (or decided intent), in µs."""
    return fig.cpu_s * 1e6 / delivered if delivered else math.nan


def total_cpu_s(processes: list[ProcessFigure]) -> float:
    return sum(fig.cpu_s for fig in processes)


def _without_nan(value: Any) -> Any:
    """JSON has no NaN: a figure that could not be measured is null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nan(v) for v in value]
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
    if r.throughput is not None:
        _single_rows(table, r.throughput)
    for label, result in (("at half that rate", r.latency), ("floor", r.latency_floor)):
        if result is not None:
            _latency_rows(table, label, result)
    if r.decisions is not None:
        _decision_rows(table, r.decisions)
    if r.baseline is not None:
        b = r.baseline
        table.add_row(
            "baseline relay",
            f"{_fmt(b.msgs_per_s)} msgs/s",
            f"{b.received}/{b.published} through 4 queue hops in {_fmt(b.seconds, 2)} s",
        )
        for probe in b.latency:
            lat = probe.latencies
            table.add_row(
                f"baseline relay p50 / p95 / p99 at {_fmt(probe.offered_per_s)}/s",
                f"{_fmt(lat.p50_ms)} / {_fmt(lat.p95_ms)} / {_fmt(lat.p99_ms)} ms",
                f"{lat.count} messages over the same 4 hops, open loop, {probe.lost} lost:"
                " the broker's share of the mesh's latency at that rate",
            )
        if r.throughput is not None:
            table.add_row("mesh / baseline", _fmt(r.ratio, 3), "single intents")
        if r.decisions is not None:
            table.add_row("decisions / baseline", _fmt(r.decisions_ratio, 3), "target >= 0.5")
    for channel in r.channels:
        _channel_rows(table, channel)
    if r.fanout is not None:
        _fanout_rows(table, r.fanout)
    if r.machine is not None:
        m = r.machine
        loads = " / ".join(f"{x:.2f}" for x in m.load_average)
        table.add_row("machine load", loads, f"{m.cores} cores; 1/5/15 min averages at the end")
    return table


def _single_rows(table: Table, t: ThroughputResult) -> None:
    table.add_row(
        "mesh throughput",
        f"{_fmt(t.intents_per_s)} intents/s",
        f"{t.sent}/{t.submitted} sent in {_fmt(t.seconds, 2)} s, {t.failed} submit errors",
    )


def _decision_rows(table: Table, d: DecisionsResult) -> None:
    outcomes = (
        f"sent {d.sent} + suppressed {d.suppressed} + capped {d.capped} + other {d.other}"
        f" + undecided {d.undecided} = {d.submitted} submitted"
    )
    table.add_row(
        "decisions throughput",
        f"{_fmt(d.intents_per_s)} intents/s",
        f"{d.submitted} marketing intents to {d.profiles:,} profiles (consent, exclude_if,"
        f" cap) in {_fmt(d.seconds, 2)} s, {d.failed} submit errors",
    )
    table.add_row("decisions outcomes", str(d.submitted), outcomes)
    lat = d.latencies
    table.add_row("decisions submit -> sent p50", f"{_fmt(lat.p50_ms)} ms", "under that load")
    table.add_row("decisions submit -> sent p99", f"{_fmt(lat.p99_ms)} ms", "")
    decided = d.submitted - d.undecided
    if d.processes:
        total = total_cpu_s(d.processes) * 1e6 / decided if decided else math.nan
        busiest = sorted(d.processes, key=lambda fig: fig.cpu_s, reverse=True)
        table.add_row(
            "decisions CPU a decided intent",
            f"{_fmt(total, 0)} µs",
            "all services; "
            + ", ".join(
                f"{fig.service} {_fmt(cpu_per_delivery_us(fig, decided), 0)}" for fig in busiest
            ),
        )


def _fanout_rows(table: Table, f: FanoutResult) -> None:
    table.add_row(
        "fan-out in-app deliveries",
        f"{_fmt(f.deliveries_per_s)} /s",
        f"{f.delivered:,}/{f.members:,} delivered, first -> last SENT in {_fmt(f.seconds, 2)} s;"
        f" target >= 5,000/s",
    )
    table.add_row(
        "fan-out submit -> last SENT",
        f"{_fmt(f.end_to_end_s, 2)} s",
        f"first SENT after {_fmt(f.first_sent_after_s, 2)} s;"
        f" members loaded in {_fmt(f.seed_seconds, 1)} s",
    )
    for fig in f.processes:
        flag = "" if fig.peak_mb < RSS_TARGET_MB else f"; over {RSS_TARGET_MB} MB"
        table.add_row(
            f"{fig.service}: RSS peak, CPU",
            f"{_fmt(fig.peak_mb)} MB, {_fmt(fig.cpu_s, 1)} s",
            f"{_fmt(fig.start_mb)} MB at the submit{flag};"
            f" {_fmt(cpu_per_delivery_us(fig, f.delivered), 0)} µs CPU a delivery",
        )
    if f.processes:
        total = total_cpu_s(f.processes)
        per = total * 1e6 / f.delivered if f.delivered else math.nan
        table.add_row("all services: CPU", f"{_fmt(total, 1)} s", f"{_fmt(per, 0)} µs a delivery")
    else:
        table.add_row("RSS, CPU", "-", "not measured: the bench did not start this mesh")


def channel_outcomes(c: ChannelResult) -> str:
    """sent + each named failure + undecided = submitted, and what the peer took."""
    parts = [f"sent {c.sent}"]
    parts += [f"{name} {count}" for name, count in c.not_sent.items()]
    parts.append(f"undecided {c.undecided}")
    text = " + ".join(parts) + f" = {c.submitted} submitted"
    if c.failed_submits:
        text += f"; {c.failed_submits} submits refused"
    if c.peer_received is not None:
        text += f"; the peer took {c.peer_received}"
    return text


def _channel_rows(table: Table, c: ChannelResult) -> None:
    label = f"{c.channel} via {c.provider} ({c.mode})"
    if c.skipped:
        table.add_row(label, "-", f"not measured: {c.skipped}")
        return
    table.add_row(
        label,
        f"{_fmt(c.sends_per_s)} sends/s",
        f"closed loop, {c.concurrency} in flight; first submit -> last SENT in"
        f" {_fmt(c.seconds, 2)} s; {channel_outcomes(c)}",
    )
    lat = c.latencies
    table.add_row(
        f"{label} submit -> sent p50 / p99",
        f"{_fmt(lat.p50_ms)} / {_fmt(lat.p99_ms)} ms",
        "under that load" + ("; in-app has no external provider" if c.channel == "inapp" else ""),
    )
