"""What a channel worker asks of, and tells, the profile service.

The last look before a send: do the intent's behaviour rules match now? A
cart reminder deferred for an hour is dropped if the user checked out in the
meantime. Asked once per tenant per batch. And after a send: push
subscriptions the push service called gone are removed from the profile.
Both act for the tenant with the mesh's internal key, over a channel from
shared/grpc/client.py (TLS as set, UNAVAILABLE retried, trace context).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol

import grpc
from sendmesh.bus.v1 import envelope_pb2
from sendmesh.profile.v1 import profile_pb2, profile_pb2_grpc

from services.channels.settings import ChannelSettings
from services.eligibility import behaviour
from shared.auth import internal_metadata
from shared.errors import TransientError
from shared.grpc.client import open_channel, service_config
from shared.logs import get_logger

log = get_logger(__name__)

# (tenant, delivery id) -> why the delivery is excluded.
Exclusions = dict[tuple[str, str], str]


class Checked(Protocol):
    @property
    def env(self) -> envelope_pb2.Envelope: ...

    @property
    def delivery(self) -> envelope_pb2.Delivery: ...


class BehaviourRecheck:
    def __init__(self, settings: ChannelSettings, timeout_s: float = 5.0) -> None:
        config = service_config(timeout_s=timeout_s)
        self._channel = open_channel(settings.profile_address, settings, service_config=config)
        self._stub = profile_pb2_grpc.ProfilesStub(self._channel)
        key = settings.internal_key
        self._key = key.get_secret_value() if key is not None else None
        self._timeout_s = timeout_s

    async def close(self) -> None:
        await self._channel.close()

    async def excluded(self, items: Sequence[Checked]) -> Exclusions:
        """The deliveries whose intent's `exclude_if` matches the user's events now."""
        by_tenant: dict[str, list[Checked]] = defaultdict(list)
        for item in items:
            if item.env.intent.exclude_if:
                by_tenant[item.env.tenant_id].append(item)
        out: Exclusions = {}
        for tenant, tenant_items in by_tenant.items():
            out.update(await self._ask(tenant, tenant_items))
        return out

    async def _ask(self, tenant: str, items: list[Checked]) -> Exclusions:
        if self._key is None:
            raise TransientError(
                "behaviour rules cannot be re-checked: SENDMESH_INTERNAL_KEY unset"
            )
        request = profile_pb2.MatchRulesRequest(
            checks=[
                profile_pb2.RuleCheck(user_id=i.delivery.user_id, rules=i.env.intent.exclude_if)
                for i in items
            ]
        )
        try:
            reply = await self._stub.MatchRules(
                request, metadata=internal_metadata(self._key, tenant), timeout=self._timeout_s
            )
        except grpc.aio.AioRpcError as err:
            # Never send without the check: the batch waits in a delay queue.
            raise TransientError(f"profile did not answer MatchRules: {err.code().name}") from err
        out: Exclusions = {}
        for item, match in zip(items, reply.matches, strict=True):
            if match.matched:
                found = behaviour.Match(match.rule_index, match.event)
                detail = behaviour.describe(found, item.env.intent.exclude_if)
                out[(tenant, item.delivery.delivery_id)] = detail
        return out

    async def prune_subscriptions(self, tenant: str, user_id: str, endpoints: list[str]) -> None:
        """Best effort: a failure is logged, and the next send prunes again."""
        if self._key is None or not endpoints:
            return
        request = profile_pb2.RemoveWebPushSubscriptionsRequest(
            user_id=user_id, endpoints=endpoints
        )
        try:
            await self._stub.RemoveWebPushSubscriptions(
                request, metadata=internal_metadata(self._key, tenant), timeout=self._timeout_s
            )
        except grpc.aio.AioRpcError as err:
            log.warning("prune_subscriptions_failed", code=err.code().name, count=len(endpoints))
