"""Which webhook URLs tcr will call, checked when a subscription is made and again before every delivery.

Decision (documented in docs/partners.md):
- only `http` and `https`, with a host, no user info;
- refused always: addresses that reach the machine's cloud metadata or link-local services (169.254.0.0/16,
  fe80::/10, fd00:ec2::254, 100.100.100.200 (Alibaba Cloud metadata)), unspecified, multicast, broadcast and
  reserved addresses, and any host that resolves to one of them (every resolved address is checked);
- loopback (127.0.0.0/8, ::1) is allowed by default, because the local test receiver and single-machine
  deployments need it; production sets `TCR_WEBHOOK_ALLOW_LOOPBACK=0`;
- private networks (10/8, 172.16/12, 192.168/16, fc00::/7) are allowed: partners inside the government network
  sit there.
Deliveries connect to the addresses that were checked (the host name travels in the Host header and TLS SNI), so a
DNS answer that changes between the check and the connection (DNS rebinding) cannot redirect a delivery.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

_METADATA = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("fd00:ec2::254/128"),
    ipaddress.ip_network("100.100.100.200/32"),
)


class UnsafeUrl(ValueError):
    pass


@dataclass(frozen=True)
class CheckedUrl:
    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]  # every address the host resolved to, all checked; deliveries connect to these

    @property
    def address(self) -> str:
        return self.addresses[0]


def _address_problem(address: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_loopback: bool) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if any(address in net for net in _METADATA):
        return "a link-local or cloud metadata address"
    if address.is_loopback:
        return None if allow_loopback else "a loopback address"
    if address.is_unspecified or address.is_multicast or address.is_reserved:
        return "an unspecified, multicast or reserved address"
    if isinstance(address, ipaddress.IPv4Address) and address == ipaddress.IPv4Address("255.255.255.255"):
        return "the broadcast address"
    return None


def check_syntax(url: str) -> tuple[str, str, int]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl(f"only http and https URLs can receive webhooks, not '{parts.scheme or url}'")
    if not parts.hostname:
        raise UnsafeUrl("the URL has no host")
    if parts.username or parts.password:
        raise UnsafeUrl("the URL may not carry a user name or password; use the signature to authenticate tcr")
    if len(url) > 2000:
        raise UnsafeUrl("the URL is longer than 2000 characters")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


async def check_url(url: str, *, allow_loopback: bool = True, resolve_timeout: float = 5.0) -> CheckedUrl:
    """Check a URL and resolve its host; raises UnsafeUrl with a reason a partner can act on."""
    scheme, host, port = check_syntax(url)
    try:
        literal = ipaddress.ip_address(host)
        addresses = [literal]
    except ValueError:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), resolve_timeout)
        except (OSError, TimeoutError) as exc:
            raise UnsafeUrl(f"the host '{host}' does not resolve: {exc}") from exc
        addresses = []
        for info in infos:
            ip = ipaddress.ip_address(info[4][0].split("%")[0])
            if ip not in addresses:
                addresses.append(ip)
        if not addresses:
            raise UnsafeUrl(f"the host '{host}' does not resolve") from None
    for address in addresses:
        problem = _address_problem(address, allow_loopback)
        if problem:
            raise UnsafeUrl(f"the host '{host}' resolves to {address}, {problem}; webhooks are never sent there")
    return CheckedUrl(url=url, scheme=scheme, host=host, port=port, addresses=tuple(str(a) for a in addresses))
