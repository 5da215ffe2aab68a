"""One hop of the baseline: consume a queue, publish each message onward, ack.

Bare aio-pika with the mesh's delivery guarantees and nothing else: persistent
messages, publisher confirms, ack only after the onward publish is confirmed.
Run as `python -m cli.bench.relay AMQP_URL SOURCE TARGET PREFETCH`; prints
`ready` once consuming, stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, DeliveryMode

READY = "ready"
CONNECT_TIMEOUT_S = 10.0
PUBLISH_TIMEOUT_S = 15.0


async def relay(amqp_url: str, source: str, target: str, prefetch: int) -> None:
    connection = await aio_pika.connect_robust(
        amqp_url,
        timeout=CONNECT_TIMEOUT_S,
        client_properties={"connection_name": f"sendmesh-bench-relay-{source}"},
    )
    async with connection:
        # Separate channels to consume and to publish, as the mesh's services do.
        consume = await connection.channel()
        await consume.set_qos(prefetch_count=prefetch)
        publish = await connection.channel(publisher_confirms=True)
        onward = publish.default_exchange

        async def forward(message: AbstractIncomingMessage) -> None:
            out = aio_pika.Message(
                message.body,
                delivery_mode=DeliveryMode.PERSISTENT,
                # Carried along, as the mesh carries its ids: the latency probe's key.
                message_id=message.message_id,
            )
            await onward.publish(out, routing_key=target, timeout=PUBLISH_TIMEOUT_S)
            await message.ack()

        queue = await consume.get_queue(source, ensure=False)
        await queue.consume(forward)
        print(READY, flush=True)
        await _until_signalled()


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("amqp_url")
    parser.add_argument("source")
    parser.add_argument("target")
    parser.add_argument("prefetch", type=int)
    args = parser.parse_args()
    import uvloop

    # The mesh's services run on uvloop too: same runtime, fair comparison.
    uvloop.run(relay(args.amqp_url, args.source, args.target, args.prefetch))


if __name__ == "__main__":
    main()
