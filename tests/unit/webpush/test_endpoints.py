from __future__ import annotations

from ipaddress import ip_address

import pytest

from services.webpush.endpoints import EndpointForbidden, check_endpoint, is_public_address
from shared import reasons


@pytest.mark.parametrize(
    "ip",
    [
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "127.0.0.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "::ffff:10.0.0.1",  # IPv4-mapped
        "::ffff:127.0.0.1",
        "2002:a00:1::1",  # 6to4 around 10.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 around 169.254.169.254
    ],
)
def test_private_and_special_addresses_are_not_public(ip: str):
    assert not is_public_address(ip_address(ip))


@pytest.mark.parametrize(
    "ip", ["8.8.8.8", "142.250.74.46", "2606:4700:4700::1111", "2a00:1450:4001::200e"]
)
def test_global_unicast_addresses_are_public(ip: str):
    assert is_public_address(ip_address(ip))


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/push/x",
        "https://10.0.0.7:8443/push/x",
        "https://[::1]/push/x",
        "https://[::ffff:10.0.0.1]/push/x",
        "https://localhost/push/x",
    ],
)
async def test_an_endpoint_on_a_private_address_is_forbidden(url: str):
    with pytest.raises(EndpointForbidden) as refused:
        await check_endpoint(url, allow_private=False)
    assert refused.value.reason == reasons.ENDPOINT_FORBIDDEN
    assert url not in refused.value.detail


@pytest.mark.parametrize(
    "url",
    [
        "http://8.8.8.8/push",
        "ftp://8.8.8.8/push",
        "https://user:pw@8.8.8.8/push",
        "https:///x",
        "https://8.8.8.8:99999/push",
    ],
)
async def test_only_https_endpoints_without_credentials_are_allowed(url: str):
    with pytest.raises(EndpointForbidden):
        await check_endpoint(url, allow_private=True)


async def test_a_public_address_and_allowed_private_ones_pass():
    await check_endpoint("https://8.8.8.8/push/x", allow_private=False)
    await check_endpoint("https://[2606:4700:4700::1111]:443/push", allow_private=False)
    await check_endpoint("http://127.0.0.1:8080/push", allow_private=True, allow_http=True)


async def test_a_host_that_is_not_a_valid_name_is_forbidden_without_a_lookup():
    with pytest.raises(EndpointForbidden):
        await check_endpoint("https://" + "a" * 64 + ".example/push", allow_private=False)
