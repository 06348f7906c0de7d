"""Alertmanager configuration (pure): receivers, routing by severity, inhibition.

Receivers' credentials never appear in the config: they live in the Kubernetes Secret
``alertmanager-receivers`` (one key per receiver, named after it), which the Alertmanager custom
resource mounts (``alertmanagerSpec.secrets``) at ``/etc/alertmanager/secrets/<secret>/<key>``; the
config refers to those files (``api_url_file``, ``routing_key_file``, ``auth_password_file``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

RECEIVERS_SECRET = "alertmanager-receivers"
#: Where the prometheus-operator mounts ``alertmanagerSpec.secrets``.
SECRETS_MOUNT = "/etc/alertmanager/secrets"
NULL_RECEIVER = "null"
#: Severities routed to each class of receiver: ours (SLO rules) plus the chart's default rules'.
SEVERITY_CLASSES = {"page": ("page", "critical"), "ticket": ("ticket", "warning")}
#: Alerts of the chart that are not meant to notify anyone (dead man's switch, info inhibitor).
SILENT_ALERTS = ("Watchdog", "InfoInhibitor")
#: The always-firing alert a dead man's switch receiver gets (a missed notification = a dead pipeline).
WATCHDOG = "Watchdog"
#: Severity of a dead man's switch receiver: it gets the Watchdog every minute, nothing else.
DEADMAN = "deadman"
#: Labels a ticket must share with a firing page to be inhibited by it.
INHIBIT_EQUAL = ["namespace", "service", "alertname"]


@dataclass
class ReceiverSpec:
    """One notification receiver (its credential is a Secret key, never a field here)."""

    name: str
    """Receiver name (DNS-1123 label); also the key of its credential in ``alertmanager-receivers``."""
    type: str
    """``slack``, ``pagerduty``, ``email`` or ``webhook`` (URL in the credential)."""
    severity: str
    """``page`` or ``ticket``: the class of alerts it gets; ``deadman``: only the Watchdog, every minute
    (a dead man's switch service pages when the pings stop)."""
    channel: Optional[str] = None
    """Slack channel (``#shop-alerts``); the webhook's default channel when unset."""
    to: Optional[str] = None
    """Email recipient."""
    smarthost: Optional[str] = None
    """Email relay ``host:port``."""
    from_address: Optional[str] = None
    """Email sender (also the SMTP user name)."""


def secret_file(receiver: ReceiverSpec) -> str:
    """Path of the receiver's credential inside the Alertmanager pods."""
    return f"{SECRETS_MOUNT}/{RECEIVERS_SECRET}/{receiver.name}"


def severity_matcher(severity: str) -> str:
    return f'severity=~"{"|".join(SEVERITY_CLASSES[severity])}"'


def receiver_config(receiver: ReceiverSpec) -> dict:
    path = secret_file(receiver)
    if receiver.type == "slack":
        slack: dict = {"api_url_file": path, "send_resolved": True,
                       "title": '{{ template "slack.default.title" . }}',
                       "text": '{{ range .Alerts }}{{ .Annotations.summary }}\n{{ end }}'}
        if receiver.channel:
            slack["channel"] = receiver.channel
        return {"name": receiver.name, "slack_configs": [slack]}
    if receiver.type == "pagerduty":
        return {"name": receiver.name, "pagerduty_configs": [
            {"routing_key_file": path, "send_resolved": True,
             "description": '{{ template "pagerduty.default.description" . }}'}]}
    if receiver.type == "email":
        missing = [f for f in ("to", "smarthost", "from_address") if not getattr(receiver, f)]
        if missing:
            raise ValueError(f"email receiver {receiver.name!r} needs {', '.join(missing)}")
        return {"name": receiver.name, "email_configs": [{
            "to": receiver.to, "from": receiver.from_address, "smarthost": receiver.smarthost,
            "auth_username": receiver.from_address, "auth_password_file": path,
            "require_tls": True, "send_resolved": True}]}
    if receiver.type == "webhook":
        return {"name": receiver.name, "webhook_configs": [{"url_file": path, "send_resolved": False}]}
    raise ValueError(f"unknown receiver type {receiver.type!r}")


def deadman_route(receiver: ReceiverSpec) -> dict:
    """The Watchdog to a dead man's switch, re-sent every minute while the pipeline works."""
    return {"receiver": receiver.name, "matchers": [f'alertname="{WATCHDOG}"'],
            "group_wait": "0s", "group_interval": "1m", "repeat_interval": "1m"}


def alertmanager_config(receivers: list[ReceiverSpec]) -> dict:
    """The whole Alertmanager config: default ``null`` receiver, one route per receiver by severity
    class (``continue`` so several receivers of one class all get the alert), tickets inhibited while
    a page fires for the same namespace/service/alertname."""
    routes: list[dict] = [deadman_route(r) for r in receivers if r.severity == DEADMAN]
    routes += [{"receiver": NULL_RECEIVER, "matchers": [f'alertname="{a}"']} for a in SILENT_ALERTS]
    for receiver in (r for r in receivers if r.severity != DEADMAN):
        routes.append({
            "receiver": receiver.name,
            "matchers": [severity_matcher(receiver.severity)],
            "continue": True,
            "repeat_interval": "1h" if receiver.severity == "page" else "12h",
        })
    return {
        "global": {"resolve_timeout": "5m"},
        "route": {
            "receiver": NULL_RECEIVER,
            "group_by": ["namespace", "service", "alertname"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "12h",
            "routes": routes,
        },
        "inhibit_rules": [
            {"source_matchers": [severity_matcher("page")],
             "target_matchers": [severity_matcher("ticket")],
             "equal": list(INHIBIT_EQUAL)},
            # The chart's rule: InfoInhibitor silences info alerts of a namespace with other alerts.
            {"source_matchers": ['alertname="InfoInhibitor"'], "target_matchers": ['severity="info"'],
             "equal": ["namespace"]},
        ],
        "receivers": [{"name": NULL_RECEIVER}] + [receiver_config(r) for r in receivers],
        "templates": ["/etc/alertmanager/config/*.tmpl"],
    }
