"""The validation rules shared by the stack config (``stacks/config/``) and every component's args.

Plain functions: each ``rule(value)`` returns the value or raises ``ValueError`` with the message a
user sees (the same message for a stack config key and a component argument). ``check_args`` runs
a dataclass's type checks and its rules and raises one :class:`ArgsError` listing every problem.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Optional

from cnplatform.argscheck import ArgsError, Rule, check_args, keys, type_errors  # noqa: F401  (re-exported)
from cnplatform.quantity import is_quantity, parse_quantity

MAX_NAME = 63
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HOST_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", re.IGNORECASE)
DURATION = re.compile(r"^\d+(\.\d+)?(ms|s|m|h)$")
#: distribution/reference grammar: [domain[:port]/]path[:tag][@digest].
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REF = re.compile(
    rf"^(?:(?P<domain>(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    rf"(?::\d+)?)/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)(?::(?P<tag>\w[\w.-]{{0,127}}))?"
    rf"(?:@(?P<digest>sha256:[0-9a-f]{{64}}))?$")
#: Environment variable names whose literal value is a secret (it belongs in ``secret_env``).
SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY|CREDENTIAL)", re.I)
#: ... unless the variable only points at one (a mounted file, a path, a key id).
SECRET_NAME_OK = re.compile(r"(_FILE|_PATH|_DIR|_ID|_NAME|_REF)$", re.I)
#: Literal values that are credentials whatever the variable is called.
SECRET_VALUE = re.compile(r"(AKIA|ASIA)[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY-----|\bghp_[A-Za-z0-9]{36}\b"
                          r"|\bxox[abprs]-[A-Za-z0-9-]{10,}|\bsk_live_[A-Za-z0-9]{16,}|\"private_key\":|://[^/\s:@]+:[^/\s@]+@")
#: etcd stores objects up to 1.5 MiB; env literals are the only unbounded part of a Deployment we render.
MAX_ENV_BYTES = 256 * 1024


# ---------------------------------------------------------------------------------- names


def dns_label(value: Any) -> str:
    """A DNS-1123 label: lower case letters, digits and '-', at most 63 characters."""
    if not isinstance(value, str) or len(value) > MAX_NAME or not DNS1123_LABEL.match(value):
        raise ValueError(
            f"{value!r} is not a DNS-1123 label (lower case letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters)")
    return value


def dns1035_label(value: Any) -> str:
    """A DNS-1035 label (a Service name): a DNS-1123 label that starts with a letter."""
    dns_label(value)
    if not DNS1035_LABEL.match(value):
        raise ValueError(f"{value!r} is not a DNS-1035 label (a Service name must start with a letter)")
    return value


def derived_names(name: str, suffixes: Iterable[str], what: str = "object") -> list[str]:
    """Problems of the names derived from ``name`` (``<name><suffix>``) that exceed 63 characters."""
    too_long = [name + s for s in suffixes if len(name + s) > MAX_NAME]
    if not too_long:
        return []
    return [f"{name!r} is too long: the derived {what} name(s) {', '.join(repr(n) for n in too_long)} exceed "
            f"{MAX_NAME} characters (shorten it to at most {MAX_NAME - max(len(n) - len(name) for n in too_long)})"]


def env_name(value: Any) -> str:
    """An environment variable name: letters, digits and '_', not starting with a digit."""
    if not isinstance(value, str) or not ENV_NAME.match(value):
        raise ValueError(f"{value!r} is not an environment variable name (letters, digits, '_')")
    return value


def hostname(value: Any, wildcard: bool = True) -> str:
    """A DNS host name (RFC 1123), ``*`` or ``*.<domain>`` where wildcards are allowed."""
    text = value if isinstance(value, str) else ""
    body = text[2:] if wildcard and text.startswith("*.") else text
    ok = (wildcard and text == "*") or (
        0 < len(text) <= 253 and all(HOST_LABEL.match(p) and len(p) <= 63 for p in body.split(".")))
    if not ok:
        raise ValueError(f"{value!r} is not a host name (letters, digits, '-' and '.' labels"
                         + (", or '*' / '*.example.com'" if wildcard else "") + ")")
    return text


def secret_key(value: Any) -> str:
    """A key of a Secret or ConfigMap: letters, digits, '-', '_' and '.', at most 253 characters."""
    if not isinstance(value, str) or not re.match(r"^[-._a-zA-Z0-9]{1,253}$", value):
        raise ValueError(f"{value!r} is not a Secret key (letters, digits, '-', '_', '.')")
    return value


def database_name(value: Any) -> str:
    """A MySQL database name: a letter, then letters, digits, '_' or '-', at most 63 characters."""
    if not isinstance(value, str) or not re.match(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$", value):
        raise ValueError(f"{value!r} is not a database name (a letter, then letters, digits, '_' or '-', "
                         "at most 63 characters)")
    return value


# ------------------------------------------------------------------------------ quantities


def quantity(value: Any) -> str:
    """A Kubernetes quantity (e.g. 250m, 0.5, 512Mi, 2Gi)."""
    text = str(value)
    if isinstance(value, bool) or not is_quantity(text):
        raise ValueError(f"{text!r} is not a Kubernetes quantity (e.g. 250m, 0.5, 512Mi, 2Gi)")
    return text


def limits_cover_requests(requests: dict[str, Any], limits: dict[str, Any], prefix: Optional[str] = None
                          ) -> list[tuple[str, str]]:
    """``(key, message)`` for each resource whose limit is lower than its request.

    Keys are ``<prefix>limits.<res>`` (stack config) or ``<res>_limit`` (component args, ``prefix`` None).
    """
    out = []
    for key in sorted(set(requests) & set(limits)):
        req, lim = requests[key], limits[key]
        if is_quantity(req) and is_quantity(lim) and parse_quantity(lim) < parse_quantity(req):
            lkey, rkey = (f"{prefix}limits.{key}", f"{prefix}requests.{key}") if prefix is not None else (
                f"{key}_limit", f"{key}_request")
            out.append((lkey, f"{lkey} ({lim!r}) is lower than {rkey} ({req!r}): limits must be >= requests"))
    return out


def duration(value: Any) -> str:
    """A duration like 500ms, 5s, 1m."""
    if not isinstance(value, str) or not DURATION.match(value):
        raise ValueError(f"{value!r} is not a duration like 500ms, 5s, 1m")
    return value


def in_range(low: Optional[float] = None, high: Optional[float] = None) -> Callable[[Any], Any]:
    def rule(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{value!r} is not a number")
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"between {low} and {high}" if low is not None and high is not None else (
                f"at least {low}" if low is not None else f"at most {high}")
            raise ValueError(f"{value!r} must be {bounds}")
        return value
    rule.__doc__ = f"a number in [{low}, {high}]"
    return rule


port = in_range(1, 65535)
percent = in_range(0, 100)
positive = in_range(1)


# ---------------------------------------------------------------------------------- images


def image_reference(value: Any, pinned: bool = False, digest: bool = False) -> str:
    """An image reference (``[registry/]repo[:tag][@sha256:...]``); ``pinned``: a digest or a version tag."""
    text = value if isinstance(value, str) else ""
    if text != text.strip() or any(c.isspace() for c in text):
        raise ValueError(f"{value!r} is not an image reference: it contains whitespace or a newline")
    m = IMAGE_REF.match(text)
    if not m or len(m.group("path")) > 255:
        raise ValueError(f"{value!r} is not an image reference ([registry/]repository[:tag][@sha256:<64 hex>], "
                         "lower-case repository)")
    if digest and not m.group("digest"):
        raise ValueError(f"{value!r} is not pinned by digest (add @sha256:<digest>)")
    if pinned and not m.group("digest") and (not m.group("tag") or m.group("tag") == "latest"):
        raise ValueError(f"{value!r} is not pinned: use a digest (@sha256:...) or a version tag, never "
                         f"{'latest' if m.group('tag') else 'an implicit latest'}")
    return text


# ----------------------------------------------------------------------------- http paths


def http_path(value: Any) -> str:
    """An absolute URL path: starts with '/', no whitespace, control characters, '..' or '//'."""
    text = value if isinstance(value, str) else ""
    if not text.startswith("/"):
        raise ValueError(f"path {value!r} must start with '/'")
    if not re.match(r"^[A-Za-z0-9._~!$&'()*+,;=:@%/-]+$", text):
        raise ValueError(f"path {value!r} has characters a URL path cannot hold (whitespace, quotes, ...)")
    if ".." in text.split("/") or "." in text.split("/") or "//" in text:
        raise ValueError(f"path {value!r} has a '.', '..' or empty segment")
    return text


#: Paths the platform itself answers on every service or gateway: never a service's public path.
RESERVED_PATHS = ("/metrics", "/healthz", "/readyz", "/stats", "/.well-known")


def expose_path(value: Any, reserved: Iterable[str] = ()) -> str:
    """A public path on the gateway: an http path, not ``/``, not a platform route or below one."""
    text = http_path(value).rstrip("/") or "/"
    if text == "/":
        raise ValueError("path '/' would route every request of the gateway to this service; expose a prefix "
                         "like /api/<service>")
    for route in (*RESERVED_PATHS, *reserved):
        r = route.rstrip("/")
        if text == r or text.startswith(r + "/") or r.startswith(text + "/"):
            raise ValueError(f"path {value!r} collides with the platform route {route!r}")
    return value


def paths_overlap(a: str, b: str) -> bool:
    a, b = a.rstrip("/"), b.rstrip("/")
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


# ------------------------------------------------------------------------------- env values


def env_literals(env: dict, secret_hint: str = "secret_env") -> list[tuple[str, str]]:
    """``(name, message)`` for literals that look like secrets, and for a total that makes the object too big."""
    out = []
    total = 0
    for key, value in env.items():
        if not isinstance(value, str):
            continue
        total += len(key) + len(value.encode())
        if SECRET_VALUE.search(value):
            out.append((key, f"the value of {key} looks like a credential; put it in a Secret and use {secret_hint}"))
        elif value and SECRET_NAME.search(key) and not SECRET_NAME_OK.search(key):
            out.append((key, f"{key} looks like a secret (its name says so); a literal would land in the "
                             f"Deployment in clear: use {secret_hint} (a Secret reference)"))
    if total > MAX_ENV_BYTES:
        out.append(("", f"the env literals are {total} bytes, more than {MAX_ENV_BYTES}: the Deployment would "
                        "come close to the API server's object size limit (1.5 MiB); use a ConfigMap or a file"))
    return out


# Network and cloud rules live in cnplatform.validation_net (re-exported here).
from cnplatform.validation_net import (  # noqa: E402,F401
    WORLD,
    ami_alias,
    aws_account_id,
    aws_region,
    cidr,
    disruption_budget,
    iam_role_arn,
    is_world_open,
    overlapping,
    private_cidr,
    zone_error,
    zones_in_region,
)

# ------------------------------------------------------------------ whole-args checks (factories)


def requests_within_limits(*pairs: tuple[str, str]) -> Callable[[Any], list[tuple[str, str]]]:
    """Check: for each ``(request field, limit field)``, the limit is at least the request."""
    def check(args: Any) -> list[tuple[str, str]]:
        out = []
        for req, lim in pairs:
            r, l_ = getattr(args, req), getattr(args, lim)
            if is_quantity(r) and is_quantity(l_) and parse_quantity(l_) < parse_quantity(r):
                out.append((lim, f"{lim} ({l_!r}) is lower than {req} ({r!r}): limits must be >= requests"))
        return out
    return check


def not_above(low: str, high: str) -> Callable[[Any], list[tuple[str, str]]]:
    """Check: field ``low`` is not greater than field ``high`` (when both are numbers)."""
    def check(args: Any) -> list[tuple[str, str]]:
        a, b = getattr(args, low), getattr(args, high)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a > b:
            return [(low, f"{low} ({a}) is greater than {high} ({b})")]
        return []
    return check


def derived(field: str, suffixes: Iterable[str], what: str = "Kubernetes object") -> Callable[[Any], list]:
    """Check: every ``<field value><suffix>`` name fits 63 characters."""
    def check(args: Any) -> list[tuple[str, str]]:
        value = getattr(args, field)
        if not isinstance(value, str) or len(value) > MAX_NAME:
            return []
        return [(field, m) for m in derived_names(value, suffixes, what)]
    return check


def no_secret_literals(field: str = "env", hint: str = "secret_env") -> Callable[[Any], list]:
    """Check: the env literals of ``field`` hold no credential and stay small."""
    def check(args: Any) -> list[tuple[str, str]]:
        return [(f"{field}[{k!r}]" if k else field, m) for k, m in env_literals(getattr(args, field) or {}, hint)]
    return check


def one_of(*choices: Any) -> Rule:
    def rule(value: Any) -> Any:
        if value not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(map(repr, choices))}")
        return value
    rule.__doc__ = f"one of {', '.join(map(repr, choices))}"
    return rule


def pinned_image(value: Any) -> str:
    """An image reference pinned by a digest or a version tag (never latest)."""
    return image_reference(value, pinned=True)


def digest_image(value: Any) -> str:
    """An image reference pinned by digest."""
    return image_reference(value, digest=True)
