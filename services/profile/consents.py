"""Consent: an append-only history, read as the latest statement per pair. Pure."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

Pair = tuple[int, str]
T = TypeVar("T")


def pair_of(consent: Any) -> Pair:
    """A Consent's (or a consent row's) pair."""
    return (consent.channel, consent.category)


def _proto_at(consent: Any) -> tuple[int, int]:
    """A Consent proto's `at`, comparable."""
    return (consent.at.seconds, consent.at.nanos)


def latest_per_pair(history: Iterable[T], when: Callable[[T], Any] = _proto_at) -> list[T]:
    """The statement in force for each (channel, category), sorted by pair.

    `history` is in the order it was recorded. The latest `at` wins, so a
    back-dated import cannot override what the user said since; of two
    statements with the same `at`, the one recorded later wins. Statements
    are Consent protos, or anything with `channel` and `category` given a
    `when` that orders their times (the store passes its rows, and converts
    only the winners).
    """
    latest: dict[Pair, T] = {}
    for statement in history:
        pair = pair_of(statement)
        current = latest.get(pair)
        if current is None or when(statement) >= when(current):
            latest[pair] = statement
    return [latest[pair] for pair in sorted(latest)]
