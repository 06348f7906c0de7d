"""A loopback HTTPS server answering, in the simulated cluster, for the webhook servers that do not run.

Under kwok a pod is Running and Ready without any container, so istiod's sidecar injector and config
validation, cert-manager's webhook and metrics-server's aggregated API (``v1beta1.metrics.k8s.io``)
have no server. The API server would then time out or refuse on every Pod create, every Istio and
cert-manager object, and fail discovery. Rather than switching those layers off, the harness answers
for them here, the way the real servers answer for the platform's objects:

- istiod ``/inject`` (MutatingWebhookConfiguration ``istio-sidecar-injector``): allowed, with the
  JSONPatch the real injector's template (istiod chart ``files/injection-template.yaml``) makes for
  a sidecar pod with Istio CNI and native sidecars (the 1.29 default): labels
  ``security.istio.io/tlsMode`` and ``service.istio.io/canonical-*``, annotations ``istio.io/rev``,
  ``kubectl.kubernetes.io/default-container``, ``sidecar.istio.io/status``, the init containers
  ``istio-validation`` and ``istio-proxy`` (``restartPolicy: Always``) with the proxy image, the
  resources of ``global.proxy.resources`` (or the ``sidecar.istio.io/proxyCPU``... annotations) and
  the restricted-PSS security context, and the sidecar's volumes; for gateway pods
  (``inject.istio.io/templates: gateway``) the ``istio-proxy`` container's image ``auto`` replaced.
- istiod ``/validate``: the semantic checks of istiod's validation that CRD schemas do not already
  make (``pkg/config/validation``), for the kinds the platform uses; anything else is allowed.
- cert-manager ``/mutate`` and ``/validate``: allowed.
- ``/apis/metrics.k8s.io/v1beta1``: discovery and empty NodeMetrics/PodMetrics lists.

Every request is recorded in ``server.log`` (which webhook, kind, name, allowed, message).
"""
from __future__ import annotations

import base64
import copy
import datetime
import ipaddress
import json
import re
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional

# --------------------------------------------------------------------------------------------- certs


def make_certs(directory: Path, dns_names: list[str], ips: list[str] = ("127.0.0.1",)) -> dict[str, Path]:
    """A throwaway CA and one serving certificate for every webhook service DNS name (and loopback)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "e2e-harness webhook CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dict.fromkeys(dns_names)]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0] if dns_names else "e2e")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    files = {"ca": directory / "ca.crt", "cert": directory / "tls.crt", "key": directory / "tls.key"}
    files["ca"].write_bytes(ca.public_bytes(pem))
    files["cert"].write_bytes(cert.public_bytes(pem))
    files["key"].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return files


# ------------------------------------------------------------------------------------------ injector

ISTIO_VOLUMES = [
    {"name": "workload-socket", "emptyDir": {}},
    {"name": "credential-socket", "emptyDir": {}},
    {"name": "workload-certs", "emptyDir": {}},
    {"name": "istio-envoy", "emptyDir": {"medium": "Memory"}},
    {"name": "istio-data", "emptyDir": {}},
    {"name": "istio-podinfo", "downwardAPI": {"items": [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}}]}},
    {"name": "istio-token", "projected": {"sources": [{"serviceAccountToken": {
        "audience": "istio-ca", "expirationSeconds": 43200, "path": "istio-token"}}]}},
    {"name": "istiod-ca-cert", "configMap": {"name": "istio-ca-root-cert"}},
]
PROXY_MOUNTS = [{"name": v["name"], "mountPath": p} for v, p in zip(ISTIO_VOLUMES, [
    "/var/run/secrets/workload-spiffe-uds", "/var/run/secrets/credential-uds",
    "/var/run/secrets/workload-spiffe-credentials", "/etc/istio/proxy", "/var/lib/istio/data",
    "/etc/istio/pod", "/var/run/secrets/tokens", "/var/run/secrets/istio"], strict=True)]


@dataclass
class InjectorConfig:
    """What the injector takes from istiod's values (the ``istio-sidecar-injector`` ConfigMap)."""
    hub: str = "docker.io/istio"
    tag: str = "latest"
    resources: dict[str, Any] = field(default_factory=lambda: {"requests": {"cpu": "100m", "memory": "128Mi"}})
    seccomp_profile: Optional[dict[str, Any]] = None
    cni: bool = True
    native_sidecars: bool = True
    revision: str = "default"

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> "InjectorConfig":
        g = values.get("global") or {}
        proxy = g.get("proxy") or {}
        pilot = values.get("pilot") or {}
        return cls(hub=g.get("hub") or cls.hub, tag=str(g.get("tag") or cls.tag),
                   resources=proxy.get("resources") or {}, seccomp_profile=proxy.get("seccompProfile"),
                   cni=bool((pilot.get("cni") or {}).get("enabled", True)),
                   revision=values.get("revision") or "default")

    @property
    def image(self) -> str:
        return f"{self.hub}/proxyv2:{self.tag}"


def _resources(cfg: InjectorConfig, anns: dict[str, str]) -> dict[str, Any]:
    keys = {"proxyCPU": ("requests", "cpu"), "proxyMemory": ("requests", "memory"),
            "proxyCPULimit": ("limits", "cpu"), "proxyMemoryLimit": ("limits", "memory")}
    if any(f"sidecar.istio.io/{k}" in anns for k in keys):
        out: dict[str, dict[str, str]] = {}
        for k, (section, res) in keys.items():
            if f"sidecar.istio.io/{k}" in anns:
                out.setdefault(section, {})[res] = anns[f"sidecar.istio.io/{k}"]
        return out
    return copy.deepcopy(cfg.resources)


def _security_context(cfg: InjectorConfig) -> dict[str, Any]:
    sc = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "privileged": False,
          "readOnlyRootFilesystem": True, "runAsGroup": 1337, "runAsNonRoot": True, "runAsUser": 1337}
    if cfg.seccomp_profile:
        sc["seccompProfile"] = copy.deepcopy(cfg.seccomp_profile)
    return sc


def inject(pod: dict[str, Any], cfg: InjectorConfig) -> list[dict[str, Any]]:
    """The JSONPatch istiod's injector returns for ``pod`` (empty when it would not inject)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    anns = dict(meta.get("annotations") or {})
    labels = dict(meta.get("labels") or {})
    if spec.get("hostNetwork") or anns.get("sidecar.istio.io/inject") == "false" or "sidecar.istio.io/status" in anns:
        return []
    containers = copy.deepcopy(spec.get("containers") or [])
    inits = copy.deepcopy(spec.get("initContainers") or [])
    volumes = copy.deepcopy(spec.get("volumes") or [])
    app = [c["name"] for c in containers if c["name"] != "istio-proxy"]
    gateway = anns.get("inject.istio.io/templates") == "gateway"
    status: dict[str, Any] = {"initContainers": [], "containers": [], "volumes": [], "imagePullSecrets": None,
                              "revision": cfg.revision}
    if gateway:
        for c in containers:
            if c["name"] == "istio-proxy" and c.get("image") in (None, "auto"):
                c["image"] = cfg.image
        status["containers"] = ["istio-proxy"]
        status["volumes"] = [v["name"] for v in ISTIO_VOLUMES]
    else:
        native = anns.get("sidecar.istio.io/nativeSidecar", str(cfg.native_sidecars).lower()) != "false"
        res = _resources(cfg, anns)
        sc = _security_context(cfg)
        validation = {"name": "istio-validation" if cfg.cni else "istio-init", "image": cfg.image,
                      "args": ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT",
                               "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020",
                               "--log_output_level=default:info"]
                      + (["--run-validation", "--skip-rule-apply"] if cfg.cni else []),
                      "resources": copy.deepcopy(res), "securityContext": copy.deepcopy(sc)}
        proxy = {"name": "istio-proxy", "image": cfg.image,
                 "args": ["proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local",
                          "--proxyLogLevel=warning", "--proxyComponentLogLevel=misc:error",
                          "--log_output_level=default:info"],
                 "ports": [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}],
                 "env": [{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
                 "readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": 15021}, "periodSeconds": 15,
                                    "timeoutSeconds": 3, "failureThreshold": 4},
                 "resources": res, "securityContext": sc, "volumeMounts": copy.deepcopy(PROXY_MOUNTS)}
        inits = [validation] + inits
        if native:
            proxy["restartPolicy"] = "Always"
            inits.insert(1, proxy)
            status["initContainers"] = [validation["name"], "istio-proxy"]
        else:
            containers.append(proxy)
            status["initContainers"] = [validation["name"]]
            status["containers"] = ["istio-proxy"]
        have = {v["name"] for v in volumes}
        volumes += [copy.deepcopy(v) for v in ISTIO_VOLUMES if v["name"] not in have]
        status["volumes"] = [v["name"] for v in ISTIO_VOLUMES]
        labels.setdefault("security.istio.io/tlsMode", "istio")
        canonical = (labels.get("app.kubernetes.io/name") or labels.get("app")
                     or meta.get("generateName", "").rstrip("-") or meta.get("name", ""))
        labels.setdefault("service.istio.io/canonical-name", canonical[:63].rstrip("-"))
        labels.setdefault("service.istio.io/canonical-revision", labels.get("app.kubernetes.io/version")
                          or labels.get("version") or "latest")
        anns.update({"prometheus.io/path": "/stats/prometheus", "prometheus.io/port": "15020",
                     "prometheus.io/scrape": "true"})
        if app:
            anns.setdefault("kubectl.kubernetes.io/default-container", app[0])
            anns.setdefault("kubectl.kubernetes.io/default-logs-container", app[0])
        if cfg.cni:
            anns["sidecar.istio.io/interceptionMode"] = "REDIRECT"
    anns["istio.io/rev"] = cfg.revision
    anns["sidecar.istio.io/status"] = json.dumps(status, separators=(",", ":"))
    patch = [{"op": "add", "path": "/metadata/annotations", "value": anns},
             {"op": "add", "path": "/metadata/labels", "value": labels},
             {"op": "add", "path": "/spec/containers", "value": containers}]
    if inits:
        patch.append({"op": "add", "path": "/spec/initContainers", "value": inits})
    if volumes:
        patch.append({"op": "add", "path": "/spec/volumes", "value": volumes})
    return patch


# ------------------------------------------------------------------------------- istio validation

AUTHZ_ACTIONS = {"ALLOW", "DENY", "AUDIT", "CUSTOM"}
MTLS_MODES = {"UNSET", "DISABLE", "PERMISSIVE", "STRICT"}
AUTHZ_WHEN_KEYS = re.compile(
    r"^(source\.(ip|namespace|principal)|remote\.ip|request\.(auth\.(principal|audiences|presenter)|headers\[.+\]|"
    r"auth\.claims\[.+\])|destination\.(ip|port)|connection\.sni|experimental\.envoy\.filters\..+)$")


def validate_istio(obj: dict[str, Any]) -> list[str]:
    """Errors istiod's validation webhook reports for ``obj`` (empty list: valid)."""
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    errs: list[str] = []
    if kind == "AuthorizationPolicy":
        action = spec.get("action", "ALLOW")
        if action not in AUTHZ_ACTIONS:
            errs.append(f"unknown action {action!r} (want one of ALLOW, DENY, AUDIT, CUSTOM)")
        if action == "CUSTOM" and not spec.get("provider"):
            errs.append("CUSTOM action without `provider`")
        if spec.get("provider") and action != "CUSTOM":
            errs.append("`provider` can only be used with the CUSTOM action")
        if spec.get("selector") and spec.get("targetRefs"):
            errs.append("only one of targetRefs or workloadSelector can be set")
        for i, rule in enumerate(spec.get("rules") or []):
            if rule is None:
                errs.append(f"rules[{i}]: rule must not be null")
                continue
            if action == "DENY" and not rule:
                pass
            for j, frm in enumerate(rule.get("from") or []):
                if not (frm or {}).get("source"):
                    errs.append(f"rules[{i}].from[{j}]: `source` must not be empty")
                else:
                    errs += [f"rules[{i}].from[{j}].source.{k}: empty value" for k, v in frm["source"].items()
                             if isinstance(v, list) and any(x == "" for x in v)]
            for j, to in enumerate(rule.get("to") or []):
                if not (to or {}).get("operation"):
                    errs.append(f"rules[{i}].to[{j}]: `operation` must not be empty")
                else:
                    for p in (to["operation"].get("ports") or []) + (to["operation"].get("notPorts") or []):
                        if not str(p).isdigit() or not 0 < int(p) < 65536:
                            errs.append(f"rules[{i}].to[{j}].operation: invalid port {p!r}")
                    for path in (to["operation"].get("paths") or []):
                        if "{" not in path and "*" in path.strip("*"):
                            errs.append(f"rules[{i}].to[{j}].operation: invalid path {path!r} (only prefix/suffix *)")
            for j, cond in enumerate(rule.get("when") or []):
                key = (cond or {}).get("key", "")
                if not AUTHZ_WHEN_KEYS.match(key):
                    errs.append(f"rules[{i}].when[{j}]: unknown attribute {key!r}")
                if not cond.get("values") and not cond.get("notValues"):
                    errs.append(f"rules[{i}].when[{j}]: at least one of values or notValues must be set "
                                f"for key {key!r}")
    elif kind == "PeerAuthentication":
        mode = (spec.get("mtls") or {}).get("mode", "UNSET")
        if mode not in MTLS_MODES:
            errs.append(f"unknown mtls mode {mode!r}")
        if spec.get("portLevelMtls") and not (spec.get("selector") or {}).get("matchLabels"):
            errs.append("portLevelMtls requires a workload selector")
        for port, pm in (spec.get("portLevelMtls") or {}).items():
            if not str(port).isdigit() or not 0 < int(port) < 65536:
                errs.append(f"portLevelMtls: invalid port {port!r}")
            if (pm or {}).get("mode", "UNSET") not in MTLS_MODES:
                errs.append(f"portLevelMtls[{port}]: unknown mode {pm.get('mode')!r}")
    elif kind == "VirtualService":
        if not spec.get("hosts"):
            errs.append("virtual service must have at least one host")
        for i, http in enumerate(spec.get("http") or []):
            routes = http.get("route") or []
            if not routes and not http.get("redirect") and not http.get("directResponse") and not http.get("delegate"):
                errs.append(f"http[{i}]: HTTP route, redirect or direct response is required")
            total = sum(int(r.get("weight") or 0) for r in routes) if len(routes) > 1 else 0
            if total not in (0, 100):
                errs.append(f"http[{i}]: total destination weight {total} != 100")
            for j, r in enumerate(routes):
                if not (r.get("destination") or {}).get("host"):
                    errs.append(f"http[{i}].route[{j}]: destination.host is required")
    elif kind == "DestinationRule":
        if not spec.get("host"):
            errs.append("destination rule must have a host")
        names = [s.get("name") for s in spec.get("subsets") or []]
        if len(names) != len(set(names)):
            errs.append("duplicate subset names")
        for s in spec.get("subsets") or []:
            if not s.get("name"):
                errs.append("subset must have a name")
    elif kind == "Gateway":
        servers = spec.get("servers") or []
        if not servers:
            errs.append("gateway must have at least one server")
        for i, s in enumerate(servers):
            if not s.get("hosts"):
                errs.append(f"servers[{i}]: server config must contain at least one host")
            port = s.get("port") or {}
            if port.get("protocol", "").upper() == "HTTPS" and not s.get("tls"):
                errs.append(f"servers[{i}]: server must have TLS settings for HTTPS/TLS protocols")
            tls = s.get("tls") or {}
            has_cert = tls.get("credentialName") or tls.get("serverCertificate") or tls.get("credentialNames")
            if tls.get("mode") in ("SIMPLE", "MUTUAL") and not has_cert:
                errs.append(f"servers[{i}]: SIMPLE TLS requires a credentialName or serverCertificate")
    return errs


# ------------------------------------------------------------------------------------------ server

def review_response(review: dict[str, Any], allowed: bool = True, message: str = "",
                    patch: Optional[list[dict[str, Any]]] = None,
                    warnings: Optional[list[str]] = None) -> dict[str, Any]:
    req = review.get("request") or {}
    resp: dict[str, Any] = {"uid": req.get("uid", ""), "allowed": allowed}
    if not allowed:
        resp["status"] = {"code": 400, "message": message, "reason": "BadRequest"}
    if patch:
        resp["patchType"] = "JSONPatch"
        resp["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    if warnings:
        resp["warnings"] = warnings
    return {"apiVersion": review.get("apiVersion", "admission.k8s.io/v1"), "kind": "AdmissionReview", "response": resp}


METRICS_RESOURCES = {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "metrics.k8s.io/v1beta1",
                     "resources": [{"name": "nodes", "singularName": "", "namespaced": False, "kind": "NodeMetrics",
                                    "verbs": ["get", "list"]},
                                   {"name": "pods", "singularName": "", "namespaced": True, "kind": "PodMetrics",
                                    "verbs": ["get", "list"]}]}


class Webhooks:
    """The decisions, independent of HTTP (unit-tested directly)."""

    def __init__(self, injector: Optional[InjectorConfig] = None):
        self.injector = injector or InjectorConfig()
        self.log: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def _record(self, hook: str, review: dict[str, Any], allowed: bool, message: str = "") -> None:
        req = review.get("request") or {}
        obj = req.get("object") or req.get("oldObject") or {}
        meta = obj.get("metadata") or {}
        with self._lock:
            self.log.append({"webhook": hook, "operation": req.get("operation"),
                             "kind": (req.get("kind") or {}).get("kind") or obj.get("kind"),
                             "namespace": req.get("namespace") or meta.get("namespace"),
                             "name": req.get("name") or meta.get("name") or meta.get("generateName"),
                             "allowed": allowed, "message": message})

    def admit(self, server_name: str, path: str, review: dict[str, Any]) -> dict[str, Any]:
        req = review.get("request") or {}
        obj = req.get("object") or {}
        if path.startswith("/inject"):
            patch = inject(obj, self.injector) if req.get("operation", "CREATE") == "CREATE" else []
            self._record("istiod/inject", review, True, f"{len(patch)} patch ops")
            return review_response(review, True, patch=patch)
        if server_name.startswith("istiod") and path.startswith("/validate"):
            errs = validate_istio(obj) if req.get("operation") in ("CREATE", "UPDATE", None) else []
            msg = ("configuration is invalid: " + "; ".join(errs)) if errs else ""
            self._record("istiod/validate", review, not errs, msg)
            return review_response(review, not errs, msg)
        hook = f"{server_name.split('.')[0] or 'unknown'}{path}"
        self._record(hook, review, True)
        return review_response(review, True)

    @staticmethod
    def aggregated(path: str) -> tuple[int, dict[str, Any]]:
        p = path.split("?")[0].rstrip("/")
        if p == "/apis":
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [{
                "name": "metrics.k8s.io",
                "versions": [{"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}],
                "preferredVersion": {"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}}]}
        if p == "/apis/metrics.k8s.io":
            return 200, {"kind": "APIGroup", "apiVersion": "v1", "name": "metrics.k8s.io",
                         "versions": [{"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}],
                         "preferredVersion": {"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}}
        if p == "/apis/metrics.k8s.io/v1beta1":
            return 200, METRICS_RESOURCES
        if p.startswith("/apis/metrics.k8s.io/v1beta1/") and p.endswith(("/nodes", "/pods")):
            kind = "NodeMetricsList" if p.endswith("/nodes") else "PodMetricsList"
            return 200, {"kind": kind, "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": []}
        return 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
                     "message": f"{p} not served by the e2e harness"}


class _Handler(BaseHTTPRequestHandler):
    server_version = "e2e-admission/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _sni(self) -> str:
        return getattr(self.connection, "e2e_sni", None) or ""

    def do_GET(self) -> None:  # noqa: N802
        if self.path in ("/healthz", "/readyz", "/livez", "/ready"):
            data = b"ok"
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(data)
            return
        code, body = Webhooks.aggregated(self.path)
        self._send(code, body)

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        try:
            review = json.loads(self.rfile.read(length) or b"{}")
        except ValueError as e:
            self._send(400, {"error": str(e)})
            return
        self._send(200, self.server.webhooks.admit(self._sni(), self.path, review))  # type: ignore[attr-defined]


class AdmissionServer:
    """HTTPS listeners (one per address the API server is routed to), all answering with ``webhooks``."""

    def __init__(self, workdir: Path, dns_names: list[str], injector: Optional[InjectorConfig] = None,
                 ips: tuple[str, ...] = ("127.0.0.1",)):
        self.workdir = Path(workdir)
        self.dns_names = dns_names
        self.files = make_certs(self.workdir / "admission-tls", dns_names, list(ips))
        self.webhooks = Webhooks(injector)
        self._servers: dict[tuple[str, int], ThreadingHTTPServer] = {}
        self._ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ctx.load_cert_chain(self.files["cert"], self.files["key"])

        def sni(sock: Any, name: Optional[str], _ctx: Any) -> None:
            try:
                sock.e2e_sni = name or ""
            except AttributeError:
                pass
        self._ctx.sni_callback = sni

    @property
    def ca_bundle(self) -> str:
        return base64.b64encode(self.files["ca"].read_bytes()).decode()

    @property
    def log(self) -> list[dict[str, Any]]:
        return self.webhooks.log

    def listen(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        if (host, port) in self._servers:
            return host, port
        srv = ThreadingHTTPServer((host, port), _Handler)
        srv.daemon_threads = True
        ctx = self._ctx

        def get_request() -> Any:
            sock, addr = srv.socket.accept()
            return ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=True), addr
        srv.get_request = get_request  # type: ignore[method-assign]
        srv.webhooks = self.webhooks  # type: ignore[attr-defined]
        bound = srv.server_address[:2]
        self._servers[(host, bound[1])] = srv
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True,
                         name=f"admission-{host}:{bound[1]}").start()
        return host, bound[1]

    def close(self) -> None:
        for srv in self._servers.values():
            srv.shutdown()
            srv.server_close()
        self._servers.clear()

    def __enter__(self) -> "AdmissionServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
