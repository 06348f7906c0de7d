"""Network and cloud rules of :mod:`cnplatform.validation` (CIDRs, private ranges, world-open allow-lists,
regions and zones, AWS identities, Karpenter settings)."""
from __future__ import annotations

import ipaddress
import re
from typing import Any, Callable, Optional

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


#: Zone names per cloud, ``{}`` standing for the region: ``us-east-1a``, ``europe-west1-b``.
ZONE_PATTERNS = {"aws": "{}[a-z]", "gcp": "{}-[a-z]"}
AWS_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
IAM_ROLE_ARN = re.compile(r"^arn:aws(-[a-z]+)*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")


def zone_error(zone: Any, region: str, cloud: str) -> Optional[str]:
    """Why ``zone`` is not a zone of ``region`` on ``cloud`` (None: it is, or the cloud has no zone rule)."""
    pattern = ZONE_PATTERNS.get(cloud)
    if pattern is None or re.fullmatch(pattern.format(re.escape(region)), str(zone)):
        return None
    example = f"{region}a" if cloud == "aws" else f"{region}-b"
    return f"{zone!r} is not a zone of the cluster's region {region!r} (e.g. {example!r})"


def zones_in_region(cloud: str, field: str = "zones", region_field: str = "region") -> Callable[[Any], list]:
    """Check: every zone of ``field`` lies in the region of ``region_field``."""
    def check(args: Any) -> list[tuple[str, str]]:
        region = getattr(args, region_field)
        return [(f"{field}[{i}]", m) for i, z in enumerate(getattr(args, field) or [])
                if isinstance(region, str) and (m := zone_error(z, region, cloud))]
    return check


def aws_region(value: Any) -> str:
    """An AWS region name such as ``us-east-1``."""
    if not isinstance(value, str) or not AWS_REGION.match(value):
        raise ValueError(f"{value!r} is not an AWS region (e.g. 'us-east-1')")
    return value


def iam_role_arn(value: Any) -> str:
    """An IAM role ARN: ``arn:aws:iam::<12-digit account>:role/<name>``."""
    if not isinstance(value, str) or not IAM_ROLE_ARN.match(value):
        raise ValueError(f"{value!r} is not an IAM role ARN (arn:aws:iam::123456789012:role/<name>)")
    return value


def aws_account_id(value: Any) -> str:
    if not re.fullmatch(r"\d{12}", str(value)):
        raise ValueError(f"{value!r} is not an AWS account id (12 digits)")
    return str(value)


def disruption_budget(value: Any) -> str:
    """A Karpenter disruption budget: a node count or a percentage up to 100% (``10%``)."""
    text = str(value)
    if not re.fullmatch(r"\d+%?", text) or (text.endswith("%") and int(text[:-1]) > 100):
        raise ValueError(f"{value!r} is not a node count or a percentage up to 100% (e.g. '10%')")
    return text


def ami_alias(value: Any) -> str:
    """An EC2NodeClass AMI alias: ``<family>@latest`` or ``<family>@v<YYYYMMDD>`` (al2023, bottlerocket,
    windows2019, windows2022)."""
    if not re.fullmatch(r"(al2023|bottlerocket|windows2019|windows2022)@(latest|v\d{8}(\.\d+)?)", str(value)):
        raise ValueError(f"{value!r} is not an AMI alias like 'al2023@v20251120' (or 'al2023@latest')")
    return str(value)
