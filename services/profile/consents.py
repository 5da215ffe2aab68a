"""Consent: an append-only history, read as the latest statement per pair. Pure."""

from __future__ import annotations

from collections.abc import Iterable

from sendmesh.profile.v1 import profile_pb2

from shared.clock import from_timestamp

Pair = tuple[int, str]


def pair_of(consent: profile_pb2.Consent) -> Pair:
    return (consent.channel, consent.category)


def latest_per_pair(history: Iterable[profile_pb2.Consent]) -> list[profile_pb2.Consent]:
    """The statement in force for each (channel, category), sorted by pair.

    `history` is in the order it was recorded. The latest `at` wins, so a
    back-dated import cannot override what the user said since; of two
    statements with the same `at`, the one recorded later wins.
    """
    latest: dict[Pair, profile_pb2.Consent] = {}
    for consent in history:
        pair = pair_of(consent)
        current = latest.get(pair)
        if current is None or from_timestamp(consent.at) >= from_timestamp(current.at):
            latest[pair] = consent
    return [latest[pair] for pair in sorted(latest)]
