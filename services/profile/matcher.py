"""Behaviour rules against stored events: the check right before a send."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sendmesh.profile.v1 import profile_pb2

from services.eligibility import behaviour
from services.profile.event_store import EventStore


async def match_rules(
    events: EventStore, tenant_id: str, checks: Sequence[profile_pb2.RuleCheck], at: datetime
) -> list[profile_pb2.RuleMatch]:
    """One answer per check, in order: the first rule that a stored event
    matches as of `at`. One events query for every check together."""
    rules = [r for check in checks for r in check.rules]
    users = sorted({check.user_id for check in checks if check.rules})
    since = at - behaviour.longest_window(rules)
    found = await events.recent(tenant_id, users, behaviour.event_names(rules), since)
    answers: list[profile_pb2.RuleMatch] = []
    for check in checks:
        match = behaviour.first_match(check.rules, found.get(check.user_id, ()), at)
        answer = profile_pb2.RuleMatch(user_id=check.user_id, matched=match is not None)
        if match is not None:
            answer.rule_index = match.rule_index
            answer.event.CopyFrom(match.event)
        answers.append(answer)
    return answers
