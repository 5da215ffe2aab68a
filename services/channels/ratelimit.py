"""A token bucket per provider instance: how long to wait before the next send.
Pure: the clock is injected, nothing sleeps here.

`take(n)` reserves n tokens at once and answers how long the caller must wait
before using them; the balance may go below zero, so concurrent callers queue
behind each other in the order they asked instead of racing for refills.
Sends made at `now + take(n)` never exceed `burst + rate * window` in any window.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")
Clock = Callable[[], float]


class TokenBucket:
    def __init__(self, rate_per_s: float, burst: int, clock: Clock = time.monotonic) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive (no bucket means unlimited)")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)  # a fresh bucket may send a burst at once
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(now - self._at, 0.0)  # a clock that steps back adds nothing
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate_per_s)
        self._at = now

    def delay_for(self, n: int = 1) -> float:
        """Seconds until `n` tokens are there, without taking them."""
        self._check(n)
        self._refill()
        return max(n - self._tokens, 0.0) / self.rate_per_s

    def take(self, n: int = 1) -> float:
        """Reserve `n` tokens; the seconds to wait before sending them (0: now)."""
        wait = self.delay_for(n)
        self._tokens -= n
        return wait

    def _check(self, n: int) -> None:
        if not 1 <= n <= self.burst:
            raise ValueError(f"asked for {n} tokens: between 1 and burst ({self.burst})")


def bucket_for(rate_per_s: float, burst: int, clock: Clock = time.monotonic) -> TokenBucket | None:
    """The bucket the settings ask for: None when unlimited (rate 0). A burst of
    0 means one second's worth of sends (at least 1)."""
    if rate_per_s <= 0:
        return None
    return TokenBucket(rate_per_s, burst or max(1, round(rate_per_s)), clock)


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """`items` in consecutive slices of at most `size`: one bucket take each."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
