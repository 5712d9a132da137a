"""Which webhook URLs tcr will call, checked when a subscription is made and again before every delivery.

A webhook is a request tcr makes on a partner's behalf, so a target inside tcr's own network would let a partner
probe it (server-side request forgery). The rule (docs/security.md):
- only `http` and `https`, with a host, no user info;
- the host is resolved (numbers in every spelling a resolver accepts are read as addresses: `2130706433`,
  `0177.0.0.1`, `127.1`, `0x7f.0.0.1`), and EVERY address it resolves to must be public. Refused: loopback,
  "this network" 0/8, RFC 1918, CGNAT 100.64/10 (and Alibaba Cloud's metadata 100.100.100.200 in it),
  link-local (169.254/16 with the cloud metadata address, fe80::/10), IETF protocol assignments, benchmarking
  198.18/15, documentation ranges, 6to4 relays, multicast, reserved, broadcast, unspecified, unique-local
  fc00::/7, site-local, discard-only; IPv6 addresses that embed an IPv4 one (mapped ::ffff:0:0/96, compatible
  ::/96, NAT64 64:ff9b::/96, 6to4 2002::/16) are judged by the IPv4 address they carry;
- `TCR_WEBHOOK_ALLOWED_NETWORKS` (CIDRs) opens chosen networks anyway, for partners on premises;
  `TCR_WEBHOOK_ALLOW_LOOPBACK=1` opens loopback, for local development only (off by default).
Deliveries connect to the addresses that were checked (the host name travels in the Host header and TLS SNI), so a
DNS answer that changes between the check and the connection (DNS rebinding) cannot redirect a delivery.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _nets(*cidrs: str) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


# (networks, what a partner is told). Loopback comes first: it is the one a setting can open.
_LOOPBACK = _nets("127.0.0.0/8", "::1/128")
_REFUSED: tuple[tuple[tuple[Network, ...], str], ...] = (
    (_LOOPBACK, "a loopback address"),
    (
        _nets("169.254.0.0/16", "fe80::/10", "100.100.100.200/32", "fd00:ec2::254/128"),
        "a link-local or cloud metadata address",
    ),
    (_nets("100.64.0.0/10"), "a carrier-grade NAT (shared) address"),
    (_nets("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"), "a private (RFC 1918) address"),
    (_nets("fc00::/7", "fec0::/10"), "a unique-local or site-local address"),
    (_nets("0.0.0.0/8", "::/128"), "an unspecified or 'this network' address"),
    (_nets("224.0.0.0/4", "ff00::/8"), "a multicast address"),
    (_nets("255.255.255.255/32"), "the broadcast address"),
    (_nets("198.18.0.0/15"), "a benchmarking address"),
    (
        _nets("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "3fff::/20"),
        "a documentation address",
    ),
    (
        _nets("192.0.0.0/24", "192.88.99.0/24", "240.0.0.0/4", "100::/64", "2001::/23", "64:ff9b:1::/48"),
        "a reserved or special-purpose address",
    ),
)
_EMBEDDING_V4 = _nets("::/96", "64:ff9b::/96")  # IPv4-compatible and NAT64: the low 32 bits are the IPv4 address
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")  # bits 16-48 are the IPv4 address


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


def parse_networks(text: str | Iterable[str]) -> tuple[Network, ...]:
    """`TCR_WEBHOOK_ALLOWED_NETWORKS`: CIDRs separated by commas or spaces (a plain address is a /32 or /128)."""
    items = re.split(r"[\s,]+", text) if isinstance(text, str) else list(text)
    try:
        return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip())
    except ValueError as exc:
        raise ValueError(f"TCR_WEBHOOK_ALLOWED_NETWORKS: {exc}") from exc


def embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, compatible, NAT64, 6to4), if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _SIX_TO_FOUR:
        return address.sixtofour
    if address != ipaddress.IPv6Address("::1") and any(address in net for net in _EMBEDDING_V4):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_problem(
    address: Address, *, allow_loopback: bool = False, allowed_networks: Iterable[Network] = ()
) -> str | None:
    """Why a webhook may not be sent to `address` (None: it may)."""
    allowed = tuple(allowed_networks)
    if any(address in net for net in allowed if net.version == address.version):
        return None
    inner = embedded_ipv4(address)
    if inner is not None:
        problem = address_problem(inner, allow_loopback=allow_loopback, allowed_networks=allowed)
        return f"{problem} (carried in {address})" if problem else None
    for networks, what in _REFUSED:
        if any(address in net for net in networks if net.version == address.version):
            if allow_loopback and networks is _LOOPBACK:
                return None
            return what
    if address.is_multicast or address.is_reserved or address.is_unspecified:
        return "a reserved or special-purpose address"
    return None


_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?$", re.IGNORECASE)


def legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """A host written as resolvers' inet_aton reads it: 1 to 4 parts, each decimal, octal (leading 0) or hex (0x);
    the last part fills the remaining bytes (`127.1`, `2130706433`, `0177.0.0.1`, `0x7f.1`). None: not a number."""
    if not _NUMERIC_HOST.match(host):
        return None
    parts = host.rstrip(".").split(".")
    try:
        numbers = [_number(p) for p in parts]
    except ValueError:
        return None
    *leading, last = numbers
    if any(n > 255 for n in leading) or last >= 256 ** (4 - len(leading)):
        raise UnsafeUrl(f"the host '{host}' is a malformed IPv4 address")
    value = 0
    for n in leading:
        value = value * 256 + n
    return ipaddress.IPv4Address(value * 256 ** (4 - len(leading)) + last)


def _number(part: str) -> int:
    if part.lower().startswith("0x"):
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part.startswith("0"):
        return int(part, 8)
    return int(part, 10)


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


async def resolve(host: str, port: int, timeout: float) -> list[Address]:
    """Every address `host` stands for: itself when it is a number in any spelling, else what DNS answers."""
    try:
        return [ipaddress.ip_address(host.split("%")[0])]
    except ValueError:
        pass
    legacy = legacy_ipv4(host)
    if legacy is not None:
        return [legacy]
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
    except (OSError, TimeoutError, UnicodeError) as exc:
        raise UnsafeUrl(f"the host '{host}' does not resolve: {exc or type(exc).__name__}") from exc
    addresses: list[Address] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise UnsafeUrl(f"the host '{host}' does not resolve")
    return addresses


async def check_url(
    url: str,
    *,
    allow_loopback: bool = False,
    allowed_networks: Iterable[Network] = (),
    resolve_timeout: float = 5.0,
) -> CheckedUrl:
    """Check a URL and resolve its host; raises UnsafeUrl with a reason a partner can act on."""
    scheme, host, port = check_syntax(url)
    addresses = await resolve(host, port, resolve_timeout)
    allowed = tuple(allowed_networks)
    for address in addresses:
        problem = address_problem(address, allow_loopback=allow_loopback, allowed_networks=allowed)
        if problem:
            raise UnsafeUrl(f"the host '{host}' resolves to {address}, {problem}; webhooks are never sent there")
    return CheckedUrl(url=url, scheme=scheme, host=host, port=port, addresses=tuple(str(a) for a in addresses))
