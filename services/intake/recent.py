"""Which decisions this process stored lately, so trails need not be stored again.

Every event carries its delivery's trail: the decisions before it. That makes
any one event enough to explain its delivery, even if an earlier event was
dead-lettered. But each stage also reports its own decision, so by the time
in-app's SENT arrives, its three trail entries are usually in the history
already, and on a fan-out six of every ten history rows intake offered the
database were such repeats, each a probe of the key for nothing.

This remembers, for the most recent deliveries, which (stage, state) pairs
were committed, so `_history` can leave those trail entries out. It is only
a shortcut: a delivery it has forgotten, or one another replica stored, has
its trail offered as before and the insert ignores what exists. An event's
own decision is always offered.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

# Deliveries remembered: far more than are between the first and the last
# stage at once (a fan-out keeps a few thousand in flight), a few MB.
CAPACITY = 50_000


class RecentDecisions:
    def __init__(self, capacity: int = CAPACITY) -> None:
        self._capacity = capacity
        # delivery id -> bit set of the (stage, state) pairs stored for it.
        self._stored: OrderedDict[str, int] = OrderedDict()
        self._bits: dict[tuple[str, int], int] = {}

    def _bit(self, stage: str, state: int) -> int:
        bit = self._bits.get((stage, state))
        if bit is None:
            bit = self._bits[(stage, state)] = 1 << len(self._bits)
        return bit

    def stored(self, delivery_id: str, stage: str, state: int) -> bool:
        """Whether this decision was committed by this process lately."""
        known = self._stored.get(delivery_id)
        return known is not None and bool(known & self._bit(stage, state))

    def remember(self, decisions: Iterable[tuple[str, str, int]]) -> None:
        """Note (delivery id, stage, state) decisions as committed; call only
        after the transaction that wrote them committed."""
        stored = self._stored
        for delivery_id, stage, state in decisions:
            bit = self._bit(stage, state)
            known = stored.get(delivery_id)
            if known is None:
                stored[delivery_id] = bit
            else:
                stored[delivery_id] = known | bit
                stored.move_to_end(delivery_id)
        while len(stored) > self._capacity:
            stored.popitem(last=False)

    def __len__(self) -> int:
        return len(self._stored)
