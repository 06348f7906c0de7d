"""Kubernetes quantity arithmetic (pure)."""
from __future__ import annotations

import re

_SUFFIX = {
    "m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}
_QUANTITY = re.compile(r"^[+]?(\d+(?:\.\d*)?|\.\d+)((?:[eE][+-]?\d+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


def is_quantity(text: object) -> bool:
    return bool(_QUANTITY.match(str(text)))


def parse_quantity(text: object) -> float:
    """A quantity in base units (cores, bytes). Raises ValueError for e.g. ``512mb``."""
    m = _QUANTITY.match(str(text))
    if not m:
        raise ValueError(f"{text!r} is not a Kubernetes quantity (e.g. 250m, 0.5, 512Mi, 2Gi)")
    return float(m.group(1) + m.group(2)) * _SUFFIX[m.group(3) or ""]


def cpu_millicores(text: object) -> int:
    return round(parse_quantity(text) * 1000)


def memory_mib(text: object) -> int:
    return round(parse_quantity(text) / 2**20)
