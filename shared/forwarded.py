"""Which reverse proxies a web server believes about the client's address (X-Forwarded-For).

The signup web and the operator console both take a comma-separated list of IP addresses or networks.
'*', or a network holding every address, is refused: anyone could then claim any address and slip past
the per-address limits, or sign a ledger or the audit log with someone else's. Empty: no header is
believed.
"""

from __future__ import annotations

import ipaddress

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def check_trusted_proxies(value: str) -> str:
    """``value`` unchanged when every entry is an address or a network short of everything; else ValueError."""
    for part in (part.strip() for part in value.split(",")):
        if not part:
            continue
        if part == "*":
            raise ValueError("'*' would believe any client's X-Forwarded-For; list the proxies' addresses or networks")
        try:
            network = ipaddress.ip_network(part, strict=False)
        except ValueError:
            raise ValueError(f"{part!r} is not an IP address or network") from None
        if network.prefixlen == 0:
            raise ValueError(f"{part} trusts every address, as '*' would; list the proxies' own network")
    return value


def trusted_networks(value: str) -> tuple[Network, ...]:
    """The networks of a list ``check_trusted_proxies`` accepted (an address is a network of one)."""
    parts = (part.strip() for part in value.split(","))
    return tuple(ipaddress.ip_network(part, strict=False) for part in parts if part)
