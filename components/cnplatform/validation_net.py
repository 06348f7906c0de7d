"""Network rules of :mod:`cnplatform.validation` (CIDRs, private ranges, world-open allow-lists)."""
from __future__ import annotations

import ipaddress
from typing import Any

WORLD = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))



def cidr(value: Any) -> str:
    """An IPv4/IPv6 network in CIDR notation without host bits (e.g. 10.0.0.0/16)."""
    try:
        net = ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not a CIDR like 10.0.0.0/16") from None
    if "/" not in str(value):
        raise ValueError(f"{value!r} is not a CIDR: add the prefix length (e.g. {value}/32)")
    if str(net) != str(value):
        raise ValueError(f"{value!r} has host bits set; did you mean {str(net)!r}?")
    return str(value)


def private_cidr(value: Any, min_prefix: int = 8, max_prefix: int = 28) -> str:
    """A private (RFC 1918) IPv4 range with a prefix length between ``min_prefix`` and ``max_prefix``."""
    net = ipaddress.ip_network(cidr(value))
    if net.version != 4 or not net.is_private or net.prefixlen == 0:
        raise ValueError(f"{value!r} is not a private IPv4 range (10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16)")
    if not min_prefix <= net.prefixlen <= max_prefix:
        raise ValueError(f"{value!r}: the prefix length must be between /{min_prefix} and /{max_prefix}")
    return str(value)


def is_world_open(value: Any) -> bool:
    """True for a CIDR that covers the whole internet (0.0.0.0/0, ::/0)."""
    try:
        return ipaddress.ip_network(str(value), strict=False) in WORLD
    except ValueError:
        return False


def overlapping(ranges: dict[str, str]) -> list[tuple[str, str]]:
    """``(key, message)`` for each pair of named CIDRs that overlap."""
    nets = {}
    for key, value in ranges.items():
        try:
            nets[key] = ipaddress.ip_network(str(value))
        except ValueError:
            continue
    keys = list(nets)
    return [(b, f"{ranges[b]} overlaps {a} ({ranges[a]})") for i, a in enumerate(keys) for b in keys[i + 1:]
            if nets[a].version == nets[b].version and nets[a].overlaps(nets[b])]
