"""A TCP proxy for fault tests: a network partition without touching the server.

It forwards to a real server (the shared RabbitMQ) and, on demand, cuts every
connection it carries and turns new ones away, then lets them through again.
It also reads the AMQP method frames each client sends, so a test can see what
a client really asked of the broker on each connection (qos, confirms,
consume), not what the client library says it did.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

AMQP_HEADER = b"AMQP\x00\x00\x09\x01"
METHOD_FRAME = 1
FRAME_END = 0xCE
# (class id, method id) of the AMQP 0-9-1 methods the tests look for.
BASIC_QOS = (60, 10)
BASIC_CONSUME = (60, 20)
CONFIRM_SELECT = (85, 10)


@dataclass(frozen=True)
class Method:
    channel: int
    class_method: tuple[int, int]
    args: bytes


@dataclass
class AmqpSniffer:
    """Client-to-server AMQP method frames, parsed as the bytes pass."""

    methods: list[Method] = field(default_factory=list)
    _buffer: bytearray = field(default_factory=bytearray)
    _header_seen: bool = False

    def feed(self, data: bytes) -> None:
        self._buffer += data
        if not self._header_seen:
            if len(self._buffer) < len(AMQP_HEADER):
                return
            del self._buffer[: len(AMQP_HEADER)]
            self._header_seen = True
        while len(self._buffer) >= 7:
            kind, channel, size = struct.unpack(">BHI", self._buffer[:7])
            if len(self._buffer) < 8 + size:
                return
            payload = bytes(self._buffer[7 : 7 + size])
            del self._buffer[: 8 + size]
            if kind == METHOD_FRAME and len(payload) >= 4:
                class_id, method_id = struct.unpack(">HH", payload[:4])
                self.methods.append(Method(channel, (class_id, method_id), payload[4:]))

    def prefetch_counts(self) -> list[int]:
        """prefetch_count of every basic.qos sent."""
        return [
            struct.unpack(">IH", m.args[:6])[1] for m in self.methods if m.class_method == BASIC_QOS
        ]

    def consumed_queues(self) -> list[str]:
        """The queue of every basic.consume sent."""
        names = []
        for m in self.methods:
            if m.class_method == BASIC_CONSUME:
                length = m.args[2]  # after the reserved short
                names.append(m.args[3 : 3 + length].decode())
        return names

    def confirm_channels(self) -> list[int]:
        """Channels put in publisher-confirm mode."""
        return [m.channel for m in self.methods if m.class_method == CONFIRM_SELECT]


@dataclass
class Link:
    """One client connection carried through the proxy."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    sniffer: AmqpSniffer
    pumps: list[asyncio.Task[None]] = field(default_factory=list)
    cut: bool = False


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.links: list[Link] = []
        self.refused = 0
        self._refused_more = asyncio.Condition()
        self._refusing = False
        self._server: asyncio.Server | None = None
        self.port = 0

    @classmethod
    def for_url(cls, url: str) -> TcpProxy:
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or 5672)

    def url(self, original: str, query: str = "") -> str:
        """`original` with this proxy's address in place of the server's."""
        parts = urlsplit(original)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@127.0.0.1:{self.port}" if credentials else f"127.0.0.1:{self.port}"
        return urlunsplit((parts.scheme, netloc, parts.path or "/", query, ""))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        await self.cut_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def refuse(self) -> None:
        """New connections are closed as soon as they arrive."""
        self._refusing = True

    def allow(self) -> None:
        self._refusing = False

    async def refusals(self, count: int) -> None:
        """Return once `count` connections in all have been turned away."""
        async with self._refused_more:
            await self._refused_more.wait_for(lambda: self.refused >= count)

    async def cut_all(self) -> int:
        """Abort every live connection, both sides; returns how many were cut."""
        live = [link for link in self.links if not link.cut]
        for link in live:
            link.cut = True
            for pump in link.pumps:
                pump.cancel()
            link.client.transport.abort()
            link.server.transport.abort()
        for link in live:
            await asyncio.gather(*link.pumps, return_exceptions=True)
        return len(live)

    @property
    def live(self) -> list[Link]:
        return [link for link in self.links if not link.cut]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            writer.transport.abort()
            async with self._refused_more:
                self.refused += 1
                self._refused_more.notify_all()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        link = Link(writer, up_writer, AmqpSniffer())
        link.pumps = [
            asyncio.create_task(_pump(reader, up_writer, link.sniffer.feed)),
            asyncio.create_task(_pump(up_reader, writer, None)),
        ]
        self.links.append(link)
        await asyncio.wait(link.pumps, return_when=asyncio.FIRST_COMPLETED)
        if not link.cut:  # one side hung up: hang up the other
            link.cut = True
            for pump in link.pumps:
                pump.cancel()
            await asyncio.gather(*link.pumps, return_exceptions=True)
            for side in (writer, up_writer):
                with contextlib.suppress(Exception):
                    side.close()


async def _pump(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    tap: Callable[[bytes], None] | None,
) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            if tap is not None:
                tap(data)
            writer.write(data)
            await writer.drain()
