"""Tier 1: the whole dev platform server-side applied to a real API server, as helm.v4 + Pulumi would.

``run(cluster, workdir)``:

1. offline render of the dev stack (``python -m stacks.render``): our own objects, the Helm
   releases' values, and ``plan.json`` (every resource's ``depends_on``);
2. discovery of the (empty) cluster: server version and API versions, which is what
   ``helm.v4.Chart`` passes to Helm as ``.Capabilities`` on a first ``pulumi up``;
3. every chart rendered by the Helm v4 SDK (e2e/helm.py) with our values;
4. apply in the order the Pulumi engine would: resources in waves along ``depends_on`` (a component
   dependency = all of its children; a chart = all of its objects), within a wave CRDs and
   Namespaces first, CRDs awaited Established, then the rest; after each wave the readiness Pulumi
   awaits (Deployments/StatefulSets/DaemonSets available, Services with ready endpoints) before
   dependents go. Each object by server-side apply (``PATCH application/apply-patch+yaml``,
   ``fieldManager=pulumi-kubernetes``, ``force=false`` as pulumi-kubernetes does without
   ``pulumi.com/patchForce``), as a cluster-admin that is *not* ``system:masters`` (kind's
   ``kubernetes-admin`` is in ``kubeadm:cluster-admins``), so RBAC escalation checks run for real;
5. webhooks answered by e2e/admission.py (routing and the caBundle/failurePolicy patches istiod and
   cert-manager's cainjector would make);
6. a second render (now with the CRDs in discovery, as the next ``pulumi up`` sees) and apply of
   everything: any object whose stored form changes, or any change in the set of objects, is
   reported in ``second_apply_changed``.
"""
from __future__ import annotations

import base64
import copy
import http.client
import ipaddress
import json
import re
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

from e2e import helm
from e2e.admission import AdmissionServer, InjectorConfig

REPO = Path(__file__).resolve().parent.parent
FIELD_MANAGER = "pulumi-kubernetes"
ADMIN_USER = "kubernetes-admin"
ADMIN_GROUP = "kubeadm:cluster-admins"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


def _log(msg: str) -> None:
    print(f"[tier1 {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------------------------- API client

class ApiError(Exception):
    def __init__(self, status: int, body: Any):
        self.status = status
        self.body = body
        msg = body.get("message") if isinstance(body, dict) else str(body)
        super().__init__(f"{status}: {msg}")


class Kube:
    """A minimal REST client on the kubeconfig of the simulated cluster (stdlib only)."""

    def __init__(self, kubeconfig: str, context: Optional[str] = None, workdir: Optional[Path] = None,
                 impersonate: Optional[tuple[str, list[str]]] = None):
        cfg = yaml.safe_load(Path(kubeconfig).read_text())
        ctx_name = context or cfg.get("current-context")
        ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])
        tmp = Path(workdir or tempfile.mkdtemp(prefix="kube-"))
        tmp.mkdir(parents=True, exist_ok=True)
        base = Path(kubeconfig).parent

        def material(d: dict[str, Any], key: str, name: str) -> Optional[str]:
            if d.get(f"{key}-data"):
                p = tmp / name
                p.write_bytes(base64.b64decode(d[f"{key}-data"]))
                return str(p)
            if d.get(key):
                return str((base / d[key]).resolve())
            return None

        u = urllib.parse.urlparse(cluster["server"])
        self.host, self.port = u.hostname, u.port or 443
        self.prefix = u.path.rstrip("/")
        self.ctx = ssl.create_default_context(cafile=material(cluster, "certificate-authority", "ca.crt"))
        if cluster.get("insecure-skip-tls-verify"):
            self.ctx.check_hostname = False
            self.ctx.verify_mode = ssl.CERT_NONE
        cert, key = material(user, "client-certificate", "client.crt"), material(user, "client-key", "client.key")
        if cert:
            self.ctx.load_cert_chain(cert, key)
        self.headers = {"User-Agent": "e2e-tier1 (pulumi-kubernetes-like)"}
        if user.get("token"):
            self.headers["Authorization"] = f"Bearer {user['token']}"
        if impersonate:
            self.headers["Impersonate-User"] = impersonate[0]
            self._groups = impersonate[1]
        else:
            self._groups = []
        self._local = threading.local()
        self.resources: dict[tuple[str, str], tuple[str, bool]] = {}  # (apiVersion, kind) -> (plural, namespaced)

    def as_user(self, user: str, groups: list[str]) -> "Kube":
        other = copy.copy(self)
        other.headers = dict(self.headers, **{"Impersonate-User": user})
        other._groups = groups
        other._local = threading.local()
        return other

    def _conn(self) -> http.client.HTTPSConnection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=60)
            self._local.conn = c
        return c

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
                query: Optional[dict[str, str]] = None) -> Any:
        url = self.prefix + path + (("?" + urllib.parse.urlencode(query)) if query else "")
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        hdrs = dict(self.headers)
        if data is not None:
            hdrs["Content-Type"] = content_type
        hdrs["Accept"] = "application/json"
        for attempt in range(3):
            c = self._conn()
            try:
                c.putrequest(method, url, skip_accept_encoding=True)
                for k, v in hdrs.items():
                    c.putheader(k, v)
                for g in self._groups:
                    c.putheader("Impersonate-Group", g)
                c.putheader("Content-Length", str(len(data or b"")))
                c.endheaders(data)
                r = c.getresponse()
                raw = r.read()
                warnings = [v for h, v in r.getheaders() if h.lower() == "warning"]
                if warnings:
                    self._local.warnings = warnings
                break
            except (http.client.HTTPException, OSError):
                c.close()
                self._local.conn = None
                if attempt == 2:
                    raise
                time.sleep(0.5)
        try:
            out = json.loads(raw) if raw else {}
        except ValueError:
            out = raw.decode(errors="replace")
        if r.status >= 400:
            raise ApiError(r.status, out)
        return out

    # discovery -------------------------------------------------------------------------------
    def discover(self) -> list[str]:
        """Refresh the resource map; returns Helm's version set (``group/version`` and ``group/version/Kind``)."""
        versions: list[str] = []
        res: dict[tuple[str, str], tuple[str, bool]] = {}
        gvs = ["v1"]
        for g in self.request("GET", "/apis").get("groups", []):
            gvs += [v["groupVersion"] for v in g["versions"]]
        def one(gv: str) -> tuple[str, list[dict[str, Any]]]:
            path = "/api/v1" if gv == "v1" else f"/apis/{gv}"
            try:
                return gv, self.request("GET", path).get("resources", [])
            except ApiError:
                return gv, []   # an aggregated API that does not answer (Helm ignores these too)
        with ThreadPoolExecutor(8) as pool:
            for gv, resources in pool.map(one, gvs):
                versions.append(gv)
                for r in resources:
                    if "/" in r["name"]:
                        continue
                    versions.append(f"{gv}/{r['kind']}")
                    res[(gv, r["kind"])] = (r["name"], r["namespaced"])
        self.resources = res
        return sorted(set(versions))

    def server_version(self) -> str:
        return self.request("GET", "/version")["gitVersion"]

    def path(self, obj: dict[str, Any], name: bool = True) -> str:
        key = (obj["apiVersion"], obj["kind"])
        if key not in self.resources:
            raise ApiError(404, {"message": f'no matches for kind "{obj["kind"]}" in version "{obj["apiVersion"]}" '
                                            "(ensure CRDs are installed first)"})
        plural, namespaced = self.resources[key]
        base = "/api/v1" if obj["apiVersion"] == "v1" else f"/apis/{obj['apiVersion']}"
        meta = obj["metadata"]
        if namespaced:
            base += f"/namespaces/{meta.get('namespace') or 'default'}"
        return f"{base}/{plural}" + (f"/{meta['name']}" if name else "")

    def last_warnings(self) -> list[str]:
        w = getattr(self._local, "warnings", None) or []
        self._local.warnings = None
        return w

    def apply(self, obj: dict[str, Any], force: bool = False, dry_run: bool = False,
              manager: str = FIELD_MANAGER) -> dict[str, Any]:
        self._local.warnings = None
        q = {"fieldManager": manager, "force": "true" if force else "false", "fieldValidation": "Strict"}
        if dry_run:
            q["dryRun"] = "All"
        return self.request("PATCH", self.path(obj), json.dumps(obj).encode(), "application/apply-patch+yaml", q)

    def get(self, obj: dict[str, Any]) -> Optional[dict[str, Any]]:
        try:
            return self.request("GET", self.path(obj))
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def list(self, api_version: str, kind: str, namespace: Optional[str] = None) -> list[dict[str, Any]]:
        probe = {"apiVersion": api_version, "kind": kind, "metadata": {"namespace": namespace or "", "name": ""}}
        p = self.path(probe, name=False)
        if namespace is None and self.resources[(api_version, kind)][1]:
            p = p.replace("/namespaces//", "/").replace("/namespaces/default/", "/")
        return self.request("GET", p).get("items", [])


# ------------------------------------------------------------------------------------------- plan

@dataclass
class Node:
    urn: str
    label: str
    objects: list[dict[str, Any]] = field(default_factory=list)
    deps: set[str] = field(default_factory=set)
    wave: int = 0


def build_nodes(plan: dict[str, Any], own: list[dict[str, Any]], charts: dict[str, list[dict[str, Any]]]) -> list[Node]:
    """One node per Chart (all its objects) and per own Kubernetes object, with Pulumi's dependencies."""
    resources = plan["resources"]
    by_urn = {r["urn"]: r for r in resources}
    children: dict[str, list[str]] = defaultdict(list)
    for r in resources:
        if r.get("parent"):
            children[r["parent"]].append(r["urn"])
    own_by_key = {helm.obj_key(o): o for o in own}
    nodes: dict[str, Node] = {}
    for r in resources:
        t = r["type"]
        if t == "kubernetes:helm.sh/v4:Chart":
            rel = r["inputs"].get("name") or r["name"]
            nodes[r["urn"]] = Node(r["urn"], f"chart {rel}", charts.get(rel, []))
        elif (t.startswith("kubernetes:") and not t.startswith("kubernetes:helm")
              and not t.startswith("pulumi:providers")):
            inp = r.get("inputs") or {}
            if not isinstance(inp.get("metadata"), dict):
                continue
            key = helm.obj_key({"apiVersion": inp["apiVersion"], "kind": inp["kind"], "metadata": inp["metadata"]})
            obj = own_by_key.pop(key, None)
            if obj is not None:
                nodes[r["urn"]] = Node(r["urn"], key, [obj])
    for key, obj in own_by_key.items():  # an object in manifests/ the plan does not name: no known deps
        nodes[f"manifest:{key}"] = Node(f"manifest:{key}", key, [obj])

    def expand(urn: str, seen: Optional[set[str]] = None) -> set[str]:
        if urn in nodes:
            return {urn}
        seen = seen or set()
        out: set[str] = set()
        for c in children.get(urn, []):
            if c not in seen:
                seen.add(c)
                out |= expand(c, seen)
        return out

    for urn, node in nodes.items():
        r = by_urn.get(urn)
        for d in (r or {}).get("depends_on") or []:
            node.deps |= expand(d) - {urn}
    order: dict[str, int] = {}

    def wave(urn: str, stack: tuple[str, ...] = ()) -> int:
        if urn in order:
            return order[urn]
        if urn in stack:
            raise ValueError(f"dependency cycle through {urn}")
        w = 1 + max((wave(d, stack + (urn,)) for d in nodes[urn].deps), default=-1)
        order[urn] = w
        return w
    for urn in nodes:
        nodes[urn].wave = wave(urn)
    return sorted(nodes.values(), key=lambda n: (n.wave, n.label))


# ------------------------------------------------------------------------------------- readiness

#: names of resources whose pods an operator would create (filled by run()), and what was not checked
OPERATOR_MANAGED: set[str] = set()
OPERATOR_KINDS = {("monitoring.coreos.com", k)
                  for k in ("Prometheus", "Alertmanager", "ThanosRuler", "PrometheusAgent")}
SIM_LIMITS: set[str] = set()


def _ready(k: Kube, obj: dict[str, Any]) -> Optional[str]:
    """None when ready the way Pulumi awaits it, else why not."""
    kind = obj["kind"]
    live = k.get(obj)
    if live is None:
        return "not found"
    st = live.get("status") or {}
    gen = live["metadata"].get("generation")
    if kind == "Deployment":
        want = live["spec"].get("replicas", 1)
        avail = {c["type"]: c["status"] for c in st.get("conditions") or []}.get("Available")
        if st.get("observedGeneration") != gen or avail != "True" or st.get("updatedReplicas", 0) < want \
                or st.get("availableReplicas", 0) < want:
            return f"available {st.get('availableReplicas', 0)}/{want}"
    elif kind == "StatefulSet":
        want = live["spec"].get("replicas", 1)
        if st.get("observedGeneration") != gen or st.get("readyReplicas", 0) < want \
                or st.get("availableReplicas", 0) < want:
            return f"ready {st.get('readyReplicas', 0)}/{want}"
    elif kind == "DaemonSet":
        want = st.get("desiredNumberScheduled", 0)
        if st.get("observedGeneration") != gen or want == 0 or st.get("numberAvailable", 0) < want:
            return f"available {st.get('numberAvailable', 0)}/{want}"
    elif kind == "APIService":  # not awaited by Pulumi, but discovery (and Helm's version set) needs it
        conds = {c["type"]: (c["status"], c.get("message", "")) for c in st.get("conditions") or []}
        if conds.get("Available", ("",))[0] != "True":
            return f"not Available: {conds.get('Available', ('', 'no condition'))[1]}"
    elif kind == "CustomResourceDefinition":
        conds = {c["type"]: c["status"] for c in st.get("conditions") or []}
        if conds.get("Established") != "True":
            return "not Established"
    elif kind == "Service":
        spec = live["spec"]
        if spec.get("selector") and spec.get("type", "ClusterIP") != "ExternalName" and spec.get("clusterIP") != "None":
            ns = live["metadata"]["namespace"]
            slices = k.request("GET", f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
                               query={"labelSelector": f"kubernetes.io/service-name={live['metadata']['name']}"})
            ready = [e for s in slices.get("items", []) for e in s.get("endpoints") or []
                     if (e.get("conditions") or {}).get("ready")]
            if not ready:
                # hostNetwork pods have the node's IP, 127.0.0.1 in the simulated cluster, which the API
                # server refuses as an endpoint address: their Service can never have endpoints here.
                sel = ",".join(f"{a}={b}" for a, b in spec["selector"].items())
                pods = k.request("GET", f"/api/v1/namespaces/{live['metadata']['namespace']}/pods",
                                 query={"labelSelector": sel}).get("items", [])
                if any((p.get("spec") or {}).get("hostNetwork")
                       and str((p.get("status") or {}).get("podIP", "")).startswith("127.")
                       and any(c.get("type") == "Ready" and c.get("status") == "True"
                               for c in (p.get("status") or {}).get("conditions") or []) for p in pods):
                    return None
                # pods that only an operator creates (prometheus-operator's StatefulSets for the
                # Prometheus/Alertmanager resources): no operator runs under kwok.
                if not pods and set(spec["selector"].values()) & OPERATOR_MANAGED:
                    SIM_LIMITS.add(f"{helm.obj_key(obj)}: selects pods of an operator-managed resource "
                                   f"({', '.join(sorted(set(spec['selector'].values()) & OPERATOR_MANAGED))}); "
                                   "no operator runs under kwok")
                    return None
                return "no ready endpoints (selector matches no ready pod)"
    return None


def warning_events(k: Kube, key: str, limit: int = 5) -> list[str]:
    """The last Warning events of a workload and what it owns (ReplicaSets, Pods): why it is not available."""
    kind_name = key.split(" ", 1)
    if len(kind_name) != 2 or "/" not in kind_name[1]:
        return []
    ns, name = kind_name[1].split("/", 1)
    try:
        evs = k.request("GET", f"/api/v1/namespaces/{ns}/events",
                        query={"fieldSelector": "type=Warning"}).get("items", [])
    except ApiError:
        return []
    kind = kind_name[0].split(".")[0]
    owned = re.compile(rf"^{re.escape(name)}(-[a-z0-9]{{5,10}}(-[a-z0-9]{{5}})?|-\d+)?$") if kind in WORKLOAD_KINDS \
        else re.compile(rf"^{re.escape(name)}$")
    mine = [e for e in evs if owned.match((e.get("involvedObject") or {}).get("name", ""))]
    mine.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    out = []
    for e in mine[-limit:]:
        io = e.get("involvedObject") or {}
        out.append(f"{io.get('kind')}/{io.get('name')}: {e.get('reason')}: {(e.get('message') or '')[:400]}")
    return out


AWAITED = ("Deployment", "StatefulSet", "DaemonSet", "CustomResourceDefinition", "Service", "APIService")


def wait_ready(k: Kube, objs: list[dict[str, Any]], timeout: float, tick: Optional[Callable[[], None]] = None) \
        -> dict[str, str]:
    """Wait until every awaited object is ready; returns {key: reason} of those that are not."""
    pending = {helm.obj_key(o): o for o in objs if o["kind"] in AWAITED}
    deadline = time.monotonic() + timeout
    why: dict[str, str] = {}
    while pending:
        if tick:
            tick()
        why = {}
        for key, o in list(pending.items()):
            try:
                reason = _ready(k, o)
            except (ApiError, KeyError, TypeError) as e:
                reason = f"{type(e).__name__}: {e}"
            if reason is None:
                pending.pop(key)
            else:
                why[key] = reason
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    return {k_: why.get(k_, "?") for k_ in pending}


# ------------------------------------------------------------------------------ webhook plumbing

class WebhookAnswerer:
    """Routes the API server's webhook/aggregation calls to the harness and patches caBundles."""

    ISTIOD = ("istio-system", "istiod")

    def __init__(self, k: Kube, server: AdmissionServer):
        self.k = k
        self.server = server
        self.routed: dict[tuple[str, str, int], str] = {}
        self.notes: list[str] = []
        self.patched: set[str] = set()
        self.injector_loaded = False

    def services(self) -> set[tuple[str, str, int]]:
        out = set()
        for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
            for cfg in self.k.list("admissionregistration.k8s.io/v1", kind):
                for wh in cfg.get("webhooks") or []:
                    svc = (wh.get("clientConfig") or {}).get("service")
                    if svc:
                        out.add((svc["namespace"], svc["name"], int(svc.get("port") or 443)))
        for api in self.k.list("apiregistration.k8s.io/v1", "APIService"):
            svc = (api.get("spec") or {}).get("service")
            if svc:
                out.add((svc["namespace"], svc["name"], int(svc.get("port") or 443)))
        return out

    def _route(self, ns: str, name: str, port: int) -> None:
        """Answer at the Service's ClusterIP:port (loopback in the SimCluster, where the API server dials
        webhooks and APIServices) once the Service has a ready endpoint, i.e. once the real server's pod
        would be up: before that, calls fail as they would for real (failurePolicy decides)."""
        if (ns, name, port) in self.routed:
            return
        try:
            svc = self.k.request("GET", f"/api/v1/namespaces/{ns}/services/{name}")
        except ApiError:
            return
        ip = svc["spec"].get("clusterIP")
        if not ip or ip == "None" or not any(int(p["port"]) == port for p in svc["spec"].get("ports", [])):
            return
        if not ipaddress.ip_address(ip).is_loopback:
            self.notes.append(f"service {ns}/{name} has ClusterIP {ip}, not on loopback: cannot answer for it")
            self.routed[(ns, name, port)] = ip
            return
        slices = self.k.request("GET", f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
                                query={"labelSelector": f"kubernetes.io/service-name={name}"})
        if not any((e.get("conditions") or {}).get("ready") for s in slices.get("items", [])
                   for e in s.get("endpoints") or []):
            return
        try:
            self.server.listen(ip, port)
        except OSError as e:
            self.notes.append(f"cannot listen on {ip}:{port} for {ns}/{name}: {e}")
        self.routed[(ns, name, port)] = ip
        _log(f"webhook service {ns}/{name}:{port} -> harness at {ip}:{port}")

    def _deployment_available(self, ns: str, name: str) -> bool:
        try:
            return _ready(self.k, {"apiVersion": "apps/v1", "kind": "Deployment",
                                   "metadata": {"namespace": ns, "name": name}}) is None
        except ApiError:
            return False

    def _patch_ca(self) -> None:
        """What istiod (webhook + validation controllers) and cert-manager's cainjector do once running."""
        istiod_up = self._deployment_available(*self.ISTIOD)
        cainjector_up = self._deployment_available("cert-manager", "cert-manager-cainjector")
        ca = self.server.ca_bundle
        for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
            for cfg in self.k.list("admissionregistration.k8s.io/v1", kind):
                name = cfg["metadata"]["name"]
                anns = cfg["metadata"].get("annotations") or {}
                ops = []
                manager = None
                for i, wh in enumerate(cfg.get("webhooks") or []):
                    svc = (wh.get("clientConfig") or {}).get("service") or {}
                    if (svc.get("namespace"), svc.get("name")) == self.ISTIOD and istiod_up:
                        manager = "pilot-discovery"
                        if wh["clientConfig"].get("caBundle") != ca:
                            ops.append({"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": ca})
                        # istiod's validation controller turns failurePolicy to Fail once it serves
                        if kind == "ValidatingWebhookConfiguration" and wh.get("failurePolicy") != "Fail":
                            ops.append({"op": "replace", "path": f"/webhooks/{i}/failurePolicy", "value": "Fail"})
                    elif "cert-manager.io/inject-ca-from-secret" in anns or "cert-manager.io/inject-ca-from" in anns:
                        if cainjector_up and wh.get("clientConfig", {}).get("caBundle") != ca:
                            manager = "cert-manager-cainjector"
                            ops.append({"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": ca})
                if ops:
                    path = f"/apis/admissionregistration.k8s.io/v1/{kind.lower()}s/{name}"
                    self.k.request("PATCH", path, ops, "application/json-patch+json", {"fieldManager": manager})
                    if f"{kind}/{name}" not in self.patched:
                        _log(f"patched {kind} {name} as {manager}: {[o['path'] for o in ops]}")
                    self.patched.add(f"{kind}/{name}")

    def _load_injector_config(self) -> None:
        """istiod reads its injection settings from the istio-sidecar-injector ConfigMap: so does the harness."""
        if self.injector_loaded:
            return
        try:
            cm = self.k.request("GET", "/api/v1/namespaces/istio-system/configmaps/istio-sidecar-injector")
        except ApiError:
            return
        try:
            self.server.webhooks.injector = InjectorConfig.from_values(json.loads((cm.get("data") or {})["values"]))
            self.injector_loaded = True
        except (KeyError, ValueError) as e:
            self.notes.append(f"istio-sidecar-injector ConfigMap unreadable ({e}); injecting with defaults")
            self.injector_loaded = True

    def tick(self) -> None:
        try:
            self._load_injector_config()
            for ns, name, port in self.services():
                self._route(ns, name, port)
            self._patch_ca()
        except ApiError as e:
            self.notes.append(f"webhook plumbing: {e}")

    def close(self) -> None:
        self.routed.clear()


# ------------------------------------------------------------------------------------------- run

def _qty(v: Any) -> float:
    """A Kubernetes quantity as a number (CPU in cores, memory in bytes)."""
    from cnplatform.quantity import parse_quantity
    return float(parse_quantity(str(v)))


def pod_requests(pod: dict[str, Any]) -> tuple[float, float]:
    """Effective (cpu, memory) requests of a pod as the scheduler counts them (sidecar init containers add up)."""
    spec = pod.get("spec") or {}

    def req(c: dict[str, Any]) -> tuple[float, float]:
        r = (c.get("resources") or {}).get("requests") or {}
        return _qty(r.get("cpu", 0)), _qty(r.get("memory", 0))
    cpu = mem = 0.0
    for c in spec.get("containers") or []:
        a, b = req(c)
        cpu, mem = cpu + a, mem + b
    init_cpu = init_mem = side_cpu = side_mem = 0.0
    for c in spec.get("initContainers") or []:
        a, b = req(c)
        if c.get("restartPolicy") == "Always":
            side_cpu, side_mem = side_cpu + a, side_mem + b
        else:
            init_cpu, init_mem = max(init_cpu, side_cpu + a), max(init_mem, side_mem + b)
    return max(cpu + side_cpu, init_cpu), max(mem + side_mem, init_mem)


def kind_system_pods() -> list[dict[str, Any]]:
    """Placeholders for what a kind node runs before the platform (stacks/checks/footprint.py KIND_SYSTEM), so
    the platform's pods get what is left of the node, as on kind."""
    from stacks.checks.footprint import KIND_SYSTEM
    pods = []
    for name, n, res in KIND_SYSTEM:
        for i in range(n):
            requests = {k: v for k, v in (res.get("requests") or {}).items() if str(v) not in ("0", "")}
            pods.append({"apiVersion": "v1", "kind": "Pod",
                         "metadata": {"name": f"kind-system-{name}-{i}", "namespace": "kube-system",
                                      "labels": {"e2e.cnplatform/kind-system": name}},
                         "spec": {"containers": [{"name": name, "image": "registry.k8s.io/pause:3.10",
                                                  "resources": {"requests": requests}}],
                                  "priorityClassName": "system-node-critical"}})
    return pods


def node_usage(k: Kube) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for node in k.request("GET", "/api/v1/nodes").get("items", []):
        alloc = node["status"].get("allocatable") or {}
        out[node["metadata"]["name"]] = {"cpu_alloc_m": round(_qty(alloc.get("cpu", 0)) * 1000),
                                         "mem_alloc_mi": round(_qty(alloc.get("memory", 0)) / 2 ** 20),
                                         "cpu_req_m": 0, "mem_req_mi": 0, "pods": 0}
    for pod in k.request("GET", "/api/v1/pods").get("items", []):
        node = (pod.get("spec") or {}).get("nodeName")
        if node not in out or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        cpu, mem = pod_requests(pod)
        out[node]["cpu_req_m"] += round(cpu * 1000)
        out[node]["mem_req_mi"] += round(mem / 2 ** 20)
        out[node]["pods"] += 1
    return out


def render_stack(workdir: Path, stack: str = "dev") -> Path:
    out = workdir / f"render-{stack}"
    if not (out / "plan.json").exists():
        subprocess.run([sys.executable, "-m", "stacks.render", "--stack", stack, "--out", str(out), "-q"],
                       cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return out


def render_charts(k: Kube, render_dir: Path, cluster: str, extra_scopes: dict[tuple[str, str], bool]) \
        -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    kube_version = k.server_version()
    api_versions = k.discover()
    releases = helm.load_releases(render_dir, cluster)
    scopes = dict(extra_scopes)

    def pass_(ns_fn: Callable[[str, str], bool]) -> dict[str, helm.Rendered]:
        return {r.name: helm.render_release(r, kube_version=kube_version, api_versions=api_versions,
                                            is_namespaced=ns_fn) for r in releases}
    first = pass_(lambda av, kind: True)
    for rendered in first.values():
        scopes.update(helm.crd_scopes(rendered.objects))

    def is_namespaced(api_version: str, kind: str) -> bool:
        if (api_version, kind) in k.resources:
            return k.resources[(api_version, kind)][1]
        group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
        if (group, kind) in scopes:
            return scopes[(group, kind)]
        return kind not in helm.BUILTIN_CLUSTER_SCOPED
    out = pass_(is_namespaced)
    info = {"kube_version": kube_version, "api_versions": len(api_versions),
            "hooks_dropped": {n: r.hooks_dropped for n, r in out.items() if r.hooks_dropped}}
    return {n: r.objects for n, r in out.items()}, info


def _normalize(obj: dict[str, Any]) -> dict[str, Any]:
    o = copy.deepcopy(obj)
    o.pop("status", None)
    meta = o.get("metadata", {})
    for key in ("resourceVersion", "managedFields", "generation", "creationTimestamp", "uid"):
        meta.pop(key, None)
    mf = [m for m in obj.get("metadata", {}).get("managedFields") or [] if m.get("manager") == FIELD_MANAGER]
    o["__ours__"] = [m.get("fieldsV1") for m in mf]
    return o


def ensure_admin_identity(k: Kube) -> Kube:
    """kind's admin: user kubernetes-admin in kubeadm:cluster-admins, bound to cluster-admin (not system:masters)."""
    crb = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
           "metadata": {"name": ADMIN_GROUP},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
           "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": ADMIN_GROUP}]}
    k.request("PATCH", f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{ADMIN_GROUP}",
              json.dumps(crb).encode(), "application/apply-patch+yaml", {"fieldManager": "kubeadm", "force": "true"})
    admin = k.as_user(ADMIN_USER, [ADMIN_GROUP, "system:authenticated"])
    who = admin.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    groups = who.get("status", {}).get("userInfo", {}).get("groups", [])
    assert "system:masters" not in groups, groups
    return admin


_DISCOVERY_LOCK = threading.Lock()


def apply_objects(k: Kube, objs: list[dict[str, Any]], rejected: list[dict[str, str]], source: dict[str, str],
                  workers: int = 8, warnings: Optional[list[dict[str, str]]] = None) -> int:
    def one(o: dict[str, Any]) -> Optional[dict[str, str]]:
        try:
            try:
                k.apply(o)
            except ApiError as e:
                if e.status != 404 or "no matches for kind" not in str(e):
                    raise
                time.sleep(2)  # discovery of a just-Established CRD can lag a moment: look again, once
                with _DISCOVERY_LOCK:
                    k.discover()
                k.apply(o)
            for w in k.last_warnings():
                if warnings is not None:
                    warnings.append({"object": helm.obj_key(o), "from": source.get(helm.obj_key(o), "?"), "warning": w})
                _log(f"warning on {helm.obj_key(o)}: {w[:300]}")
            return None
        except ApiError as e:
            return {"object": helm.obj_key(o), "from": source.get(helm.obj_key(o), "?"), "status": str(e.status),
                    "error": (e.body.get("message") if isinstance(e.body, dict) else str(e.body))[:2000]}
    n = 0
    with ThreadPoolExecutor(workers) as pool:
        for res in pool.map(one, objs):
            n += 1
            if res:
                rejected.append(res)
                _log(f"REJECTED {res['object']} ({res['from']}): {res['error'][:400]}")
    return n


def schedule(k: Kube, root: Kube, nodes: list[Node], result: dict[str, Any], source: dict[str, str],
             answerer: "WebhookAnswerer", timeout: float) -> None:
    """The Pulumi engine's order: a node starts once every node it depends on is complete (applied and,
    for what Pulumi awaits, ready); nodes whose dependencies are complete go together. A node not ready
    within ``timeout`` is reported and counted complete, so that the rest is still tried (Pulumi
    would stop its dependents there)."""
    by_urn = {n.urn: n for n in nodes}
    done: set[str] = set()
    running: dict[str, float] = {}  # urn -> deadline
    while len(done) < len(nodes):
        ready_to_start = [n for n in nodes if n.urn not in done and n.urn not in running
                          and all(d in done for d in n.deps)]
        if ready_to_start:
            # the servers of webhooks whose pods just became ready are up before anything goes on
            answerer.tick()
            objs = [o for n in ready_to_start for o in n.objects]
            first = [o for o in objs if o["kind"] in ("CustomResourceDefinition", "Namespace")]
            rest = [o for o in objs if o["kind"] not in ("CustomResourceDefinition", "Namespace")]
            _log(f"start {len(ready_to_start)} node(s), {len(objs)} objects: "
                 f"{', '.join(n.label for n in ready_to_start)[:400]}")
            result["objects"] += apply_objects(k, first, result["rejected"], source, warnings=result["warnings"])
            if any(o["kind"] == "CustomResourceDefinition" for o in first):
                wait_ready(k, [o for o in first if o["kind"] == "CustomResourceDefinition"], 60)
                root.discover()
                k.resources = root.resources
            result["objects"] += apply_objects(k, rest, result["rejected"], source, warnings=result["warnings"])
            for n in ready_to_start:
                running[n.urn] = time.monotonic() + timeout
        answerer.tick()
        progressed = False
        for urn, deadline in list(running.items()):
            n = by_urn[urn]
            why = {}
            for o in n.objects:
                if o["kind"] not in AWAITED:
                    continue
                try:
                    reason = _ready(k, o)
                except (ApiError, KeyError, TypeError) as e:
                    reason = f"{type(e).__name__}: {e}"
                if reason is not None:
                    why[helm.obj_key(o)] = reason
            if not why or time.monotonic() > deadline:
                for key, reason in why.items():
                    _log(f"not ready within {timeout:.0f}s: {key}: {reason}")
                running.pop(urn)
                done.add(urn)
                progressed = True
        if not progressed and not ready_to_start:
            if not running:
                raise RuntimeError("scheduler stuck: nodes left whose dependencies never complete")
            time.sleep(1.0)


def run(cluster: Any, workdir: Any, *, stack: str = "dev", cluster_name: str = "dev", wave_timeout: float = 180.0,
        objects: Optional[list[list[dict[str, Any]]]] = None) -> dict[str, Any]:
    """Tier 1 against a started SimCluster. ``objects`` (waves of objects, applied in that order) replaces
    the platform: the harness self-tests use it."""
    t0 = time.monotonic()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    root = Kube(cluster.kubeconfig, getattr(cluster, "context", None), workdir / "kube-creds")
    root.discover()
    k = ensure_admin_identity(root)
    k.resources = root.resources
    result: dict[str, Any] = {"ok": False, "objects": 0, "rejected": [], "unavailable": [], "second_apply_changed": [],
                              "waves": 0, "webhook_calls": 0, "notes": [], "warnings": []}
    source: dict[str, str] = {}
    if objects is not None:
        plan_nodes = [Node(f"test-{i}", f"self-test wave {i}", copy.deepcopy(objs),
                           {f"test-{i - 1}"} if i else set(), i)
                      for i, objs in enumerate(objects)]
        charts: dict[str, list[dict[str, Any]]] = {}
        render_dir = None
    else:
        render_dir = render_stack(workdir, stack)
        own = [o for _, o in helm.load_own_manifests(render_dir, cluster_name)]
        own_scopes = helm.crd_scopes(own)
        charts, info = render_charts(k, render_dir, cluster_name, own_scopes)
        root.resources = k.resources
        result.update({"kube_version": info["kube_version"], "hooks_dropped": info["hooks_dropped"]})
        helm.dump([o for v in charts.values() for o in v], workdir / "charts-first-render.yaml")
        plan = json.loads((render_dir / "plan.json").read_text())
        plan_nodes = build_nodes(plan, own, charts)
        for rel, objs in charts.items():
            for o in objs:
                source[helm.obj_key(o)] = f"chart {rel}"
        for o in own:
            source.setdefault(helm.obj_key(o), "own manifest")
        _log(f"rendered {sum(len(v) for v in charts.values())} chart objects from {len(charts)} releases "
             f"+ {len(own)} own objects; {len(plan_nodes)} plan nodes in {1 + max(n.wave for n in plan_nodes)} waves")

    SIM_LIMITS.clear()
    OPERATOR_MANAGED.clear()
    OPERATOR_MANAGED.update(o["metadata"]["name"] for n in plan_nodes for o in n.objects
                            if (o["apiVersion"].split("/")[0], o["kind"]) in OPERATOR_KINDS)
    # the harness' answers for webhooks (istiod, cert-manager, metrics-server)
    dns = [f"{n}.{ns}.svc" for ns, n in [("istio-system", "istiod"), ("cert-manager", "cert-manager-webhook"),
                                          ("kube-system", "metrics-server"),
                                          ("monitoring", "kube-prometheus-stack-operator")]]
    injector = InjectorConfig()
    for rel_objs in charts.values():
        for o in rel_objs:
            if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "istio-sidecar-injector":
                injector = InjectorConfig.from_values(json.loads(o["data"]["values"]))
    server = AdmissionServer(workdir, dns, injector)
    answerer = WebhookAnswerer(root, server)
    all_objs: list[dict[str, Any]] = []
    try:
        result["waves"] = 1 + max((n.wave for n in plan_nodes), default=-1)
        if objects is None:  # the kind node's own control plane, CoreDNS and kindnet
            for pod in kind_system_pods():
                root.apply(pod, force=True, manager="kind")
        schedule(k, root, plan_nodes, result, source, answerer, wave_timeout)
        all_objs = [o for n in plan_nodes for o in n.objects]
        # final verdict on every workload, after everything had its chance
        final = wait_ready(k, [o for o in all_objs if o["kind"] in WORKLOAD_KINDS + ("Service", "APIService")],
                           min(60.0, wave_timeout), answerer.tick)
        result["unavailable"] = [{"object": key, "from": source.get(key, "?"), "why": why,
                                  "events": warning_events(root, key)} for key, why in final.items()]
        result["workloads"] = sum(1 for o in all_objs if o["kind"] in WORKLOAD_KINDS)
        result["node_usage"] = node_usage(root)
        result["apply_s"] = round(time.monotonic() - t0, 1)

        # second run: what the next `pulumi up` would render and apply
        t1 = time.monotonic()
        if render_dir is not None:
            charts2, _ = render_charts(k, render_dir, cluster_name, helm.crd_scopes(own))
            root.resources = k.resources
            keys1 = {helm.obj_key(o) for v in charts.values() for o in v}
            keys2 = {helm.obj_key(o) for v in charts2.values() for o in v}
            for key in sorted(keys2 - keys1):
                result["second_apply_changed"].append(
                    {"object": key, "change": "new in the second render (Capabilities)"})
            for key in sorted(keys1 - keys2):
                result["second_apply_changed"].append({"object": key, "change": "gone from the second render"})
            r1 = {helm.obj_key(o): o for v in charts.values() for o in v}
            for key, o in sorted((helm.obj_key(o), o) for v in charts2.values() for o in v):
                if key in r1 and r1[key] != o:  # new inputs on the next `pulumi up`: a diff every time
                    result["second_apply_changed"].append(
                        {"object": key, "change": f"rendered differently on the second run: {_diff(r1[key], o)}"})
            helm.dump([o for v in charts2.values() for o in v], workdir / "charts-second-render.yaml")
            second = [o for v in charts2.values() for o in v] + own
        else:
            second = [o for n in plan_nodes for o in n.objects]
        rejected_keys = {r["object"] for r in result["rejected"]}
        ownership: list[str] = []

        def again(o: dict[str, Any]) -> Optional[dict[str, str]]:
            key = helm.obj_key(o)
            if key in rejected_keys:
                return None
            try:
                before = k.get(o)
                after = k.apply(o)
            except ApiError as e:
                return {"object": key, "change": f"second apply failed: {e}"}
            if before is None:
                return {"object": key, "change": "created by the second apply"}
            if before["metadata"]["resourceVersion"] != after["metadata"]["resourceVersion"]:
                b, a = _normalize(before), _normalize(after)
                ours_b, ours_a = b.pop("__ours__"), a.pop("__ours__")
                if b != a:
                    return {"object": key, "change": _diff(b, a)}
                if ours_b != ours_a:  # same values, our field ownership grew: no Pulumi diff, noted
                    ownership.append(f"{key}: field ownership only: {_diff(ours_b, ours_a)}")
            return None
        with ThreadPoolExecutor(8) as pool:
            for res in pool.map(again, second):
                if res:
                    result["second_apply_changed"].append(res)
                    _log(f"SECOND APPLY CHANGED {res['object']}: {res['change'][:300]}")
        result["second_apply_s"] = round(time.monotonic() - t1, 1)
        result["notes"] += sorted(ownership)
    finally:
        result["webhook_calls"] = len(server.log)
        result["webhook_denials"] = [e for e in server.log if not e["allowed"]]
        result["notes"] += answerer.notes + sorted(SIM_LIMITS)
        (workdir / "webhook-log.json").write_text(json.dumps(server.log, indent=1))
        answerer.close()
        server.close()
    result["ok"] = not result["rejected"] and not result["unavailable"] and not result["second_apply_changed"]
    result["total_s"] = round(time.monotonic() - t0, 1)
    (workdir / "tier1-result.json").write_text(json.dumps(result, indent=1))
    return result


def _diff(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return _diff(a.get(key), b.get(key), f"{path}.{key}")
        return path or "."
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _diff(x, y, f"{path}[{i}]")
    return f"{path}: {json.dumps(a)[:150]} -> {json.dumps(b)[:150]}"


if __name__ == "__main__":  # python -m e2e.tier1: against an already running cluster (kubeconfig)
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--context")
    ap.add_argument("--workdir", default=None)
    a = ap.parse_args()

    class _C:
        kubeconfig = a.kubeconfig
        context = a.context
    res = run(_C(), Path(a.workdir or tempfile.mkdtemp(prefix="tier1-")))
    print(json.dumps({k_: v for k_, v in res.items()}, indent=1)[:20000])
    sys.exit(0 if res["ok"] else 1)
