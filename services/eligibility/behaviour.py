"""Behaviour rules ("not if they bought in the last 24h") against events.

Pure: no I/O. The eligibility stage runs it on the events the profile stage
attached; the profile service runs it on stored events for the check right
before a send (Profiles.MatchRules).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2

from shared.clock import from_timestamp

Rule = intent_pb2.BehaviourRule
Event = profile_pb2.BehaviourEvent


@dataclass(frozen=True)
class Match:
    """The first rule that matched, and the event that matched it."""

    rule_index: int
    event: Event


def rule_window(rule: Rule) -> timedelta:
    return rule.within.ToTimedelta()


def longest_window(rules: Iterable[Rule]) -> timedelta:
    """How far back the events that `rules` could match go."""
    return max((rule_window(r) for r in rules), default=timedelta(0))


def event_names(rules: Iterable[Rule]) -> set[str]:
    return {r.event for r in rules}


def matches(rule: Rule, event: Event, at: datetime) -> bool:
    """`event` is the rule's event, within its window before `at`, with its properties."""
    if event.name != rule.event:
        return False
    occurred = from_timestamp(event.occurred_at)
    if not (at - rule_window(rule) <= occurred <= at):
        return False
    return all(event.properties.get(k) == v for k, v in rule.properties.items())


def first_match(rules: Sequence[Rule], events: Iterable[Event], at: datetime) -> Match | None:
    """The first rule (in the intent's order) that any event matches, or None."""
    events = list(events)
    for index, rule in enumerate(rules):
        for event in events:
            if matches(rule, event, at):
                return Match(index, event)
    return None


def describe(match: Match, rules: Sequence[Rule]) -> str:
    """'purchase within 24h (at 2026-11-23T10:00:00Z)': no property values, which may be personal."""
    rule = rules[match.rule_index]
    hours = rule_window(rule).total_seconds() / 3600
    when = from_timestamp(match.event.occurred_at).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{rule.event} within {hours:g}h (at {when})"
