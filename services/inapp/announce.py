"""Telling every inapp replica's watchers about new messages and state changes.

The inbox table is the record; this is a courtesy for live views, so it is
not persistent and a broker that does not confirm it fails nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from sendmesh.inapp.v1 import inbox_pb2

from services.inapp.notices import encode_notice
from shared.bus.publisher import BrokerError, Bus, Outbound
from shared.logs import get_logger

log = get_logger(__name__)


async def announce(bus: Bus, by_tenant: dict[str, Sequence[inbox_pb2.InboxEvent]]) -> None:
    """One non-persistent notice per tenant on the inbox fan-out exchange."""
    outs = [
        Outbound(bus.topology.inbox_exchange, "", encode_notice(tenant, events), persistent=False)
        for tenant, events in by_tenant.items()
        if events
    ]
    if not outs:
        return
    try:
        await bus.publish(outs)
    except BrokerError as err:
        log.warning("inbox_announce_failed", error=err.detail)
