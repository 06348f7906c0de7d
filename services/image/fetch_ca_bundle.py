"""Fetch a CA bundle at image build time: ``fetch_ca_bundle.py URL DEST [SHA256]``.

HTTPS only, the server verified against the system CA store (AWS's published download). With a
SHA-256 the bundle must match it (a reviewed pin: the build fails when AWS publishes another bundle,
update the pin deliberately); without one its SHA-256 is printed so it can be pinned. The file must
hold only PEM certificates. Standard library only (runs in the builder stage).
"""
from __future__ import annotations

import hashlib
import re
import sys
import urllib.request
from pathlib import Path

PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----\r?\n?")


def check(data: bytes, expected_sha256: str = "") -> str:
    """The bundle's SHA-256, after checking it is only PEM certificates and matches the pin (if any)."""
    digest = hashlib.sha256(data).hexdigest()
    if expected_sha256 and digest != expected_sha256.strip().lower():
        raise ValueError(f"CA bundle SHA-256 {digest} does not match the pinned {expected_sha256}")
    certs = PEM.findall(data)
    if not certs or PEM.sub(b"", data).strip():
        raise ValueError("the CA bundle is not a list of PEM certificates")
    return digest


def main(argv: list[str]) -> int:
    url, dest, expected = argv[1], Path(argv[2]), (argv[3] if len(argv) > 3 else "")
    if not url.startswith("https://"):
        raise SystemExit(f"refusing a CA bundle over {url.split(':', 1)[0]}: HTTPS only")
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - https checked above
        data = response.read()
    digest = check(data, expected)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    print(f"{url}: {len(PEM.findall(data))} certificates, sha256 {digest}{'' if expected else ' (not pinned)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
