"""The arithmetic of the bench. Pure: tested on its own."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100), interpolating between closest ranks.

    Same definition as numpy's default ("linear"), so figures compare.
    """
    if not values:
        return math.nan
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be within 0..100, not {p}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def per_second(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else math.nan


@dataclass(frozen=True)
class Latencies:
    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def summarize(latencies_ms: Sequence[float]) -> Latencies:
    return Latencies(
        count=len(latencies_ms),
        p50_ms=percentile(latencies_ms, 50),
        p95_ms=percentile(latencies_ms, 95),
        p99_ms=percentile(latencies_ms, 99),
        max_ms=max(latencies_ms) if latencies_ms else math.nan,
    )


def open_loop_offsets(count: int, rate_per_s: float) -> list[float]:
    """When (seconds after the start) each of `count` sends is due at a fixed rate.

    Open loop: sends go out on this schedule whether or not earlier ones have
    finished, so a slow mesh shows up as latency, not as a lower offered rate.
    """
    if rate_per_s <= 0:
        raise ValueError("rate must be positive")
    return [i / rate_per_s for i in range(count)]


def latency_count(n: int, rate_per_s: float, max_seconds: float, minimum: int = 50) -> int:
    """How many sends the latency phase makes: n, or fewer to stay within max_seconds."""
    return max(min(n, int(rate_per_s * max_seconds)), min(n, minimum))


def span_rate(count: int, first: float, last: float) -> float:
    """Events per second between the first and the last of `count` events.

    `count` events mark `count - 1` intervals; fewer than two have no rate.
    """
    if count < 2 or last <= first:
        return math.nan
    return (count - 1) / (last - first)
