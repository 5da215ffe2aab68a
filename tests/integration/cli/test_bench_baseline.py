"""The bare relay baseline on the real broker: its throughput counts only the
throughput messages, and its latency probes come back timed, one per message."""

from __future__ import annotations

from cli.bench.baseline import Baseline


async def test_the_relays_carry_throughput_and_timed_probes_through_every_hop(amqp_url: str):
    baseline = Baseline(amqp_url, prefetch=64)

    result = await baseline.run(60, 8, 30.0, latency_at=[(200.0, 30), (50.0, 10)])

    assert (result.published, result.received) == (60, 60)
    assert result.msgs_per_s > 0
    assert [(p.offered_per_s, p.sent, p.lost) for p in result.latency] == [
        (200.0, 30, 0),
        (50.0, 10, 0),
    ]
    for probe in result.latency:
        lat = probe.latencies
        assert lat.count == probe.sent
        # Four queue hops with confirms take time; a probe never arrives before it left.
        assert 0 < lat.p50_ms <= lat.p95_ms <= lat.p99_ms <= lat.max_ms
