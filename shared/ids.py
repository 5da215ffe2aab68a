"""Identifiers: random for intents, deterministic for deliveries."""

from __future__ import annotations

import os
import time
import uuid

_DELIVERY_NS = uuid.UUID("6f1c7d2e-5b7a-4c55-9a59-2f4ad1b0e8c1")


def new_id() -> str:
    """A time-ordered UUIDv7 string: sorts by creation, indexes well."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= (rand >> 68 & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def delivery_id(intent_id: str, user_id: str, channel: int) -> str:
    """The same intent, user and channel always give the same id: the dedup key."""
    return str(uuid.uuid5(_DELIVERY_NS, f"{intent_id}\x1f{user_id}\x1f{channel}"))
