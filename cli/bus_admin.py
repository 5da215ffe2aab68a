"""The broker, seen from the CLI: is it answering, and removing a namespace.

Every call here is bounded in time: a stuck broker must give a clear error,
not a hung command.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable

import aio_pika

from cli.mesh import SERVICE_NAMES
from shared.bus.topology import Topology

CONNECT_TIMEOUT_S = 10.0
OPERATION_TIMEOUT_S = 15.0


class BrokerNotAnswering(Exception):
    """TCP connects, but no AMQP handshake in time."""


async def connect(amqp_url: str, name: str) -> aio_pika.abc.AbstractConnection:
    try:
        return await aio_pika.connect(
            amqp_url, timeout=CONNECT_TIMEOUT_S, client_properties={"connection_name": name}
        )
    except TimeoutError:
        raise BrokerNotAnswering(
            f"RabbitMQ accepts connections but did not complete the AMQP handshake in "
            f"{CONNECT_TIMEOUT_S:.0f} s: is it overloaded or stuck? "
            "(`rabbitmq-diagnostics status`)"
        ) from None


async def check_answers(amqp_url: str) -> None:
    """Raise BrokerNotAnswering unless an AMQP connection opens and closes in time."""
    connection = await connect(amqp_url, "sendmesh-cli-check")
    await connection.close()


async def delete_queues(amqp_url: str, names: Iterable[str]) -> None:
    await _delete_each(amqp_url, names, lambda channel, name: channel.queue_delete(name))


async def delete_exchanges(amqp_url: str, names: Iterable[str]) -> None:
    await _delete_each(amqp_url, names, lambda channel, name: channel.exchange_delete(name))


async def _delete_each(
    amqp_url: str,
    names: Iterable[str],
    delete: Callable[[aio_pika.abc.AbstractChannel, str], Awaitable[object]],
) -> None:
    connection = await connect(amqp_url, "sendmesh-cli-cleanup")
    async with connection:
        for name in names:
            # A fresh channel each: deleting what was never declared closes
            # the channel it was asked on.
            with contextlib.suppress(Exception):
                channel = await connection.channel()
                await asyncio.wait_for(delete(channel, name), OPERATION_TIMEOUT_S)


async def delete_namespace(amqp_url: str, namespace: str | Topology) -> None:
    """Every queue and exchange the mesh's services declare under `namespace`."""
    topo = namespace if isinstance(namespace, Topology) else Topology(namespace)
    await delete_queues(amqp_url, topo.all_queues(SERVICE_NAMES))
    await delete_exchanges(amqp_url, topo.all_exchanges())
