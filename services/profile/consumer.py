"""plan queue -> eligibility queue: resolve recipients, attach profiles, fan out.

`user_ids` audiences are planned whole, with one profile read (and, for
intents with exclude_if rules, one event read) per tenant in the batch.
Topic and segment audiences stream: each plan envelope yields one page of
recipients, and the envelope is published again with the page's last user id
as `audience_cursor`, in the same confirmed publish as the page's deliveries
and before the ack. A crash repeats at most one page; delivery ids are
deterministic, so the workers drop the repeats.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from sendmesh.bus.v1 import envelope_pb2
from sendmesh.profile.v1 import profile_pb2

from services.eligibility import behaviour
from services.profile import planner
from services.profile.event_store import EventStore
from services.profile.resolver import AudienceResolver
from services.profile.segments import SegmentError
from services.profile.store import ProfileStore
from shared import envelopes
from shared.bus import topology
from shared.bus.publisher import Bus, Outbound, to_events, to_stage
from shared.clock import utcnow
from shared.errors import PermanentError

Profiles = dict[str, profile_pb2.Profile]
Events = dict[str, list[profile_pb2.BehaviourEvent]]


class PlanConsumer:
    def __init__(
        self,
        bus: Bus,
        profiles: ProfileStore,
        events: EventStore,
        resolver: AudienceResolver,
        envelope_deliveries: int,
    ) -> None:
        self.bus = bus
        self.profiles = profiles
        self.events = events
        self.resolver = resolver
        self.envelope_deliveries = envelope_deliveries

    async def handle(self, batch: list[envelope_pb2.Envelope]) -> list[Outbound]:
        now = utcnow()
        outs: list[Outbound] = []
        reported: list[envelope_pb2.DeliveryEvent] = []
        listed: dict[str, list[envelope_pb2.Envelope]] = defaultdict(list)
        for env in batch:
            if not planner.is_paged(env):
                listed[env.tenant_id].append(env)
        for tenant, envs in listed.items():
            known, history = await self._listed(tenant, envs, now)
            for env in envs:
                self._fan_out(env, planner.recipients(env), known, history, now, outs, reported)
        for env in batch:
            if planner.is_paged(env):
                await self._page(env, now, outs, reported)
        if reported:
            outs.append(to_events(self.bus.topology, envelopes.event_batch(reported)))
        return outs

    async def _listed(
        self, tenant: str, envs: Sequence[envelope_pb2.Envelope], now: datetime
    ) -> tuple[Profiles, Events]:
        """Profiles of every listed recipient of the tenant, and their events
        that any of the intents' rules could match: one read each."""
        users = sorted({u for env in envs for u in planner.recipients(env)})
        known = await self.profiles.get_many(tenant, users)
        ruled = [env for env in envs if env.intent.exclude_if]
        if not ruled:
            return known, {}
        rules = [r for env in ruled for r in env.intent.exclude_if]
        watched = sorted({u for env in ruled for u in planner.recipients(env)})
        since = now - behaviour.longest_window(rules)
        history = await self.events.recent(tenant, watched, behaviour.event_names(rules), since)
        return known, history

    async def _page(
        self,
        env: envelope_pb2.Envelope,
        now: datetime,
        outs: list[Outbound],
        reported: list[envelope_pb2.DeliveryEvent],
    ) -> None:
        audience = env.intent.audience
        try:
            page = await self.resolver.page(
                env.tenant_id, audience, env.audience_cursor, env.intent.exclude_if, now
            )
        except SegmentError as err:
            raise PermanentError(f"segment does not parse: {err}", reason="undecodable") from err
        self._fan_out(env, list(page.profiles), page.profiles, page.events, now, outs, reported)
        if page.cursor is not None:
            nxt = planner.continuation(env, page.cursor)
            outs.append(to_stage(self.bus.topology, topology.PLAN, nxt))

    def _fan_out(
        self,
        env: envelope_pb2.Envelope,
        users: Sequence[str],
        known: Profiles,
        history: Events,
        now: datetime,
        outs: list[Outbound],
        reported: list[envelope_pb2.DeliveryEvent],
    ) -> None:
        for part in planner.chunks(users, self._users_per_envelope(env)):
            deliveries, snapshots = planner.plan_deliveries(env, part, known)
            snapshots = planner.with_recent_events(snapshots, history, env.intent.exclude_if, now)
            onward = envelopes.onward(env, deliveries, snapshots)
            outs.append(to_stage(self.bus.topology, topology.ELIGIBILITY, onward))
            reported.extend(envelopes.event_for(onward, d, d.decisions[-1]) for d in deliveries)

    def _users_per_envelope(self, env: envelope_pb2.Envelope) -> int:
        return max(1, self.envelope_deliveries // max(1, len(env.intent.channels)))
