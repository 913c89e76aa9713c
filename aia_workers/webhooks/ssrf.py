"""The SSRF guard: webhook URLs must resolve only to publicly routable addresses."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from aia_workers.errors import AiaError

__all__ = [
    "METADATA_ADDRESSES",
    "BlockedDestination",
    "Destination",
    "Resolver",
    "block_reason",
    "check_literal",
    "literal_address",
    "parse_url",
    "resolve",
    "system_resolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

# Cloud instance metadata services hand out credentials. They stay blocked even
# when a broad allow entry covers them; only an entry naming the address exactly
# lets one through.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean
        "169.254.170.2",  # AWS ECS task credentials
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure WireServer: a public address, so named here
        "192.0.0.192",  # Oracle Cloud
    )
)
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_CARRIER_GRADE_NAT = ipaddress.ip_network("100.64.0.0/10")
_BROADCAST = ipaddress.ip_address("255.255.255.255")
_PRIVATE: tuple[Network, ...] = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
# Underscores are not legal in host names but common in internal DNS; allowed.
_HOST_NAME = re.compile(r"[a-z0-9_.-]+")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class BlockedDestination(AiaError):
    """Raised when a webhook URL resolves to an address deliveries must not reach."""

    def __init__(self, message: str, *, rule: str | None = None) -> None:
        super().__init__(message)
        # Which range the address fell in ("loopback", "metadata", ...); None
        # when the name gave no usable address at all.
        self.rule = rule


@dataclass(frozen=True)
class Destination:
    """A checked webhook URL: its parts and the addresses a delivery may connect to."""

    scheme: str
    host: str
    port: int
    path_and_query: str
    addresses: tuple[str, ...]


def parse_url(url: str) -> tuple[str, str, int, str]:
    """Split a webhook URL into (scheme, host, port, path_and_query); ValueError if unfit.

    The host comes back lower-case, IDNA-encoded, and without IPv6 brackets.
    """
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise ValueError("a webhook URL must not contain whitespace or control characters")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ValueError(f"a webhook URL could not be parsed: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"a webhook URL must use http or https, not {scheme or 'no scheme'!r}")
    if "@" in parts.netloc:
        raise ValueError("a webhook URL must not carry credentials (user:password@)")
    host = parts.hostname
    if not host:
        raise ValueError("a webhook URL needs a host")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"a webhook URL's port must be a number in 1..65535: {exc}") from None
    if port is None:
        port = _DEFAULT_PORTS[scheme]
    if not 1 <= port <= 65535:
        raise ValueError(f"a webhook URL's port must be in 1..65535, not {port}")
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"a webhook URL's host {host!r} is not a valid domain name") from None
    if not (_is_ip_literal(host) or _HOST_NAME.fullmatch(host)):
        raise ValueError(f"a webhook URL's host {host!r} is not a valid domain name")
    path_and_query = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, host, port, path_and_query


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def literal_address(host: str) -> IPAddress | None:
    """The address ``host`` spells out, or None if it is a name to look up.

    Besides dotted quads and IPv6, every form the system resolver reads as an
    IPv4 address counts (``2130706433``, ``0x7f.1``, ``0177.0.0.1``, ``127.1``):
    getaddrinfo connects to those without asking DNS, so they are addresses,
    not names. ``inet_aton`` is the parser it uses for them.
    """
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses from the system resolver (getaddrinfo), in its order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def block_reason(address: IPAddress) -> str | None:
    """Why deliveries must not reach ``address``, or None if it is publicly routable."""
    if isinstance(address, ipaddress.IPv6Address):
        # These reach an IPv4 host, so that host's address is what counts.
        if address.ipv4_mapped is not None:
            return block_reason(address.ipv4_mapped)
        if address.sixtofour is not None and (inner := block_reason(address.sixtofour)):
            return f"{inner} (6to4)"
    checks: tuple[tuple[bool, str], ...] = (
        (address in METADATA_ADDRESSES, "metadata"),
        (address.is_unspecified, "unspecified"),
        (address in _THIS_NETWORK, "this-network"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address in _CARRIER_GRADE_NAT, "carrier-grade NAT"),
        (any(address in n for n in _PRIVATE), "private"),
        (address.is_multicast, "multicast"),
        (address == _BROADCAST, "broadcast"),
        (address.is_reserved, "reserved"),
        # Documentation, benchmarking and other special-purpose ranges.
        (not address.is_global, "not globally routable"),
    )
    return next((why for blocked, why in checks if blocked), None)


def _is_allowed(address: IPAddress, why: str, allow: Sequence[Network]) -> bool:
    candidates = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        candidates.append(address.ipv4_mapped)
    for network in allow:
        if why == "metadata" and network.num_addresses != 1:
            continue
        if any(c.version == network.version and c in network for c in candidates):
            return True
    return False


def _parse_allow(allow: Sequence[str]) -> list[Network]:
    try:
        return [ipaddress.ip_network(entry, strict=False) for entry in allow]
    except ValueError as exc:
        raise ValueError(f"a webhook allow entry is not an IP address or CIDR: {exc}") from None


def _check(host: str, text: str, allow: Sequence[Network], *, literal: bool = False) -> None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise BlockedDestination(
            f"webhook host {host!r} resolved to {text!r}, which is not an IP address"
        ) from None
    why = block_reason(address)
    if why is not None and not _is_allowed(address, why, allow):
        found = f"is the address {text}" if literal else f"resolves to {text}"
        raise BlockedDestination(
            f"webhook host {host!r} {found}, which is blocked ({why})", rule=why
        )


def check_literal(url: str, *, allow: Sequence[str] = ()) -> None:
    """Refuse ``url`` now if its host is an address deliveries must not reach.

    For registering an endpoint: an address written in the URL cannot change,
    so it is refused at once (BlockedDestination, its ``rule`` naming the
    range). A host name passes here; ``resolve`` checks what it resolves to on
    every attempt, since DNS answers change. ``allow`` is as for ``resolve``.
    Raises ValueError if the URL is unfit (see ``parse_url``).
    """
    _, host, _, _ = parse_url(url)
    address = literal_address(host)
    if address is not None:
        _check(host, str(address), _parse_allow(allow), literal=True)


def resolve(
    url: str, *, allow: Sequence[str] = (), resolver: Resolver | None = None
) -> Destination:
    """Parse ``url``, resolve its host and check every address it resolves to.

    ``allow`` holds CIDRs or single addresses ("10.0.0.0/8", "127.0.0.1") that
    pass although blocked (a metadata address only when named exactly).
    ``resolver`` maps (host, port) to IP strings; the default is
    :func:`system_resolver`. Raises BlockedDestination if the name does not
    resolve or any address is blocked: one bad answer is enough, since the
    connection could land on any of them.
    """
    scheme, host, port, path_and_query = parse_url(url)
    networks = _parse_allow(allow)
    literal = literal_address(host)
    if literal is not None:
        found = [str(literal)]
    else:
        try:
            found = (resolver or system_resolver)(host, port)
        except (OSError, UnicodeError) as exc:
            raise BlockedDestination(f"webhook host {host!r} did not resolve: {exc}") from None
    if not found:
        raise BlockedDestination(f"webhook host {host!r} did not resolve to any address")
    for text in found:
        _check(host, text, networks, literal=literal is not None)
    return Destination(scheme, host, port, path_and_query, tuple(found))
