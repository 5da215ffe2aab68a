"""Deciding whether a profile is in a segment. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sendmesh.profile.v1 import profile_pb2

from services.profile.segment_syntax import (
    And,
    Compare,
    EventCondition,
    Exists,
    Expr,
    Not,
    Or,
    PropertyTest,
    Scalar,
)
from shared.clock import from_timestamp


def event_names(expr: Expr) -> set[str]:
    """Every event name the segment asks about."""
    return {c.name for c in _conditions(expr)}


def longest_window(expr: Expr) -> timedelta:
    """How far back the segment's event conditions look (0: it has none)."""
    return max((c.within for c in _conditions(expr)), default=timedelta(0))


def _conditions(expr: Expr) -> list[EventCondition]:
    if isinstance(expr, EventCondition):
        return [expr]
    if isinstance(expr, Not):
        return _conditions(expr.operand)
    if isinstance(expr, And | Or):
        return [c for item in expr.operands for c in _conditions(item)]
    return []


def evaluate(
    expr: Expr,
    attributes: Mapping[str, Any],
    events: Sequence[profile_pb2.BehaviourEvent] | None,
    now: datetime,
) -> bool | None:
    """Whether a profile with `attributes` and `events` is in the segment at `now`.

    With `events` None the answer is None where it depends on events (AND and
    OR are three-valued), so a caller reads events only for undecided users.
    """
    if isinstance(expr, Compare):
        return compare(lookup(attributes, expr.path), expr.op, expr.value)
    if isinstance(expr, Exists):
        return lookup(attributes, expr.path) is not None
    if isinstance(expr, EventCondition):
        return None if events is None else any(happened(expr, e, now) for e in events)
    if isinstance(expr, Not):
        inner = evaluate(expr.operand, attributes, events, now)
        return None if inner is None else not inner
    results = [evaluate(item, attributes, events, now) for item in expr.operands]
    decisive = isinstance(expr, Or)  # True decides an OR, False an AND
    if decisive in results:
        return decisive
    return None if None in results else not decisive


def lookup(attributes: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """The value at a dotted path; None if absent (or null)."""
    value: Any = attributes
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else "other"


def compare(actual: Any, op: str, expected: Scalar) -> bool:
    """A missing attribute passes no comparison; one of another type passes only `!=`."""
    if actual is None:
        return False
    if _kind(actual) != _kind(expected):
        return op == "!="
    if op in ("=", "!="):
        return (actual == expected) == (op == "=")
    if isinstance(actual, bool):
        return False  # true and false have no order
    if op == "<":
        return bool(actual < expected)
    if op == "<=":
        return bool(actual <= expected)
    return bool(actual > expected) if op == ">" else bool(actual >= expected)


def happened(cond: EventCondition, event: profile_pb2.BehaviourEvent, now: datetime) -> bool:
    """`event` satisfies `cond` at `now`."""
    if event.name != cond.name:
        return False
    if not now - cond.within <= from_timestamp(event.occurred_at) <= now:
        return False
    return all(_holds(t, event.properties.get(t.name)) for t in cond.where)


def _holds(test: PropertyTest, value: str | None) -> bool:
    if value is None:
        return False
    if test.op == "=":
        return value == test.value
    return value.startswith(test.value) if test.op == "starts with" else test.value in value
