"""Topic and segment audiences, a page of candidate users at a time.

A page is one keyset-paginated read of profiles (with their consents) and at
most one read of events: those the segment's event conditions and the
intent's exclude_if rules need, for the users whose answer is still open.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from google.protobuf import json_format
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2

from services.eligibility import behaviour
from services.profile import segments
from services.profile.event_store import EventStore
from services.profile.store import ProfileStore
from services.profile.topic_store import TopicStore

Events = dict[str, list[profile_pb2.BehaviourEvent]]


@dataclass
class Page:
    """The recipients of one page, in user id order, and where the next starts."""

    profiles: dict[str, profile_pb2.Profile]
    # Per recipient: stored events the intent's rules may need.
    events: Events = field(default_factory=dict)
    # The last user id this page examined; None when it was the last page.
    cursor: str | None = None


class AudienceResolver:
    def __init__(
        self, profiles: ProfileStore, events: EventStore, topics: TopicStore, page_size: int
    ) -> None:
        self.profiles = profiles
        self.events = events
        self.topics = topics
        self.page_size = page_size

    async def page(
        self,
        tenant_id: str,
        audience: intent_pb2.Audience,
        cursor: str,
        rules: Sequence[intent_pb2.BehaviourRule],
        now: datetime,
    ) -> Page:
        """The page after user id `cursor` ("" for the first) of a topic or
        segment audience. SegmentError if the segment does not parse."""
        expr = segments.parse(audience.segment) if audience.segment else None
        candidates = await self.profiles.page(tenant_id, cursor, self.page_size, audience.topic)
        full = len(candidates) == self.page_size
        nxt = candidates[-1].user_id if full else None
        # Only a segment reads attributes; a topic's members are all in.
        attrs = (
            {p.user_id: json_format.MessageToDict(p.attributes) for p in candidates}
            if expr is not None
            else {}
        )
        verdicts = {
            p.user_id: True
            if expr is None
            else segments.evaluate(expr, attrs[p.user_id], None, now)
            for p in candidates
        }
        open_users = [u for u, v in verdicts.items() if v is not False]
        names = behaviour.event_names(rules) | (segments.event_names(expr) if expr else set())
        window = max(
            behaviour.longest_window(rules),
            segments.longest_window(expr) if expr else timedelta(0),
        )
        needs_events = rules or any(v is None for v in verdicts.values())
        events: Events = {}
        if needs_events and names and open_users:
            events = await self.events.recent(tenant_id, open_users, names, now - window)
        chosen: dict[str, profile_pb2.Profile] = {}
        for profile in candidates:
            verdict = verdicts[profile.user_id]
            if verdict is None and expr is not None:
                verdict = segments.evaluate(
                    expr, attrs[profile.user_id], events.get(profile.user_id, []), now
                )
            if verdict:
                chosen[profile.user_id] = profile
        return Page(chosen, {u: events[u] for u in chosen if u in events}, nxt)

    async def count(self, tenant_id: str, audience: intent_pb2.Audience, now: datetime) -> int:
        """How many recipients the audience has now."""
        if not (audience.topic or audience.segment):
            return len(set(audience.user_ids))
        if audience.topic:
            return await self.topics.count_recipients(tenant_id, audience.topic)
        total, cursor = 0, ""
        while True:
            page = await self.page(tenant_id, audience, cursor, (), now)
            total += len(page.profiles)
            if page.cursor is None:
                return total
            cursor = page.cursor
