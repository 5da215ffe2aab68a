"""The SSRF guard on push endpoints.

A subscription's endpoint is a URL the browser gave us, so anyone who can
subscribe can make us POST to it. Before each send the endpoint must be https
and its host must resolve only to public addresses.

What is left: the check is on the resolution made at send time, and the HTTP
client resolves the host again when it connects. A DNS server that answers a
public address here and a private one a moment later (DNS rebinding) can still
slip through; closing that means connecting to the checked address itself
(pinning it in the transport, with the host name kept for TLS SNI). The window
is a few milliseconds and every such request is still an https POST of an
encrypted body, which is judged good enough for now.
"""

from __future__ import annotations

import asyncio
import socket
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from urllib.parse import urlsplit

from shared import reasons
from shared.errors import PermanentError, TransientError

IPAddress = IPv4Address | IPv6Address

# RFC 6052 NAT64 well-known prefix: the last 32 bits are an IPv4 address that a
# NAT64 gateway would reach on our behalf.
NAT64 = IPv6Network("64:ff9b::/96")
# RFC 6598 carrier-grade NAT, not private by every Python version's tables.
SHARED_SPACE = IPv4Network("100.64.0.0/10")


class EndpointForbidden(PermanentError):
    """An endpoint we refuse to call; the subscription stays (it is not gone)."""

    reason = reasons.ENDPOINT_FORBIDDEN


def embedded_ipv4(ip: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in NAT64:
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(ip: IPAddress) -> bool:
    """True when `ip` is a global unicast address: none of private, loopback,
    link-local, multicast, reserved, unspecified or shared (CGNAT)."""
    if isinstance(ip, IPv6Address):
        inner = embedded_ipv4(ip)
        if inner is not None and not is_public_address(inner):
            return False
    if isinstance(ip, IPv4Address) and ip in SHARED_SPACE:
        return False
    # is_global alone lets multicast through on some Python versions.
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def split_endpoint(url: str, allow_http: bool) -> tuple[str, int]:
    """The host and port of an endpoint URL, or EndpointForbidden."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:  # a bad port or bracket
        raise EndpointForbidden("malformed endpoint URL") from None
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        raise EndpointForbidden(f"endpoint scheme {parts.scheme or 'none'!r} is not allowed")
    if not host or parts.username is not None or parts.password is not None:
        raise EndpointForbidden("endpoint URL has no host, or has credentials")
    return host, port or (443 if parts.scheme == "https" else 80)


async def resolve(host: str, port: int) -> set[IPAddress]:
    """Every address the host resolves to, as the HTTP client would see them."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except UnicodeError:  # not a valid IDNA name: it never will resolve
        raise EndpointForbidden("malformed endpoint host") from None
    except socket.gaierror as err:
        # Usually a passing DNS failure; a host that never resolves runs out of attempts.
        raise TransientError(
            "endpoint host does not resolve", reason=reasons.PROVIDER_UNAVAILABLE
        ) from err
    return {ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos}


async def check_endpoint(url: str, allow_private: bool, *, allow_http: bool = False) -> None:
    """Raise EndpointForbidden unless the endpoint may be called now.

    Every resolved address must be public, since the client may connect to any
    of them. `detail` never names the URL or the address: both identify the
    subscriber.
    """
    host, port = split_endpoint(url, allow_http)
    if allow_private:
        return
    addresses = await resolve(host, port)
    if not addresses or not all(is_public_address(ip) for ip in addresses):
        raise EndpointForbidden("endpoint resolves to a non-public address")
