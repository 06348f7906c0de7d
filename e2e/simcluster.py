"""A simulated Kubernetes cluster on loopback: the real control plane, with kwok in place of kubelets.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler are the real binaries (built by
``bash e2e/tools/build_kube.sh`` at the versions in ``e2e/versions.env``), configured like a kubeadm /
kind control plane: client-certificate authentication with a cluster CA, service-account tokens,
``--authorization-mode=Node,RBAC``, the default admission plugins plus NodeRestriction, the aggregation
layer's front proxy, the token, namespace, garbage-collector, deployment, replicaset, statefulset,
daemonset, job, node-lifecycle and node-ipam controllers. kwok plays every kubelet: the Nodes are
created here (labelled and sized like the dev kind node), kwok keeps them Ready and renews their
Leases, and makes scheduled pods Running and Ready without running any container (Job pods
Succeeded). A default StorageClass ``standard`` (like kind's, WaitForFirstConsumer) is provisioned by
kwok stages, so StatefulSets with volume claims become ready too.

Nothing here leaves the machine. Everything listens on 127.0.0.1 at free ports. The Service CIDR is
inside the loopback range (``127.96.0.0/16``), and the API server reaches webhook and aggregated-API
Services at their ClusterIP (aggregator routing off): a harness that listens on a Service's ClusterIP
and port, directly or through :meth:`SimCluster.route_service`, answers for a server that does not run
under kwok. The Endpoints/EndpointSlice route cannot do that: the API server's validation refuses a
loopback endpoint address ("may not be in the loopback range (127.0.0.0/8, ::1/128)"), and the pod
IPs kwok hands out (``10.244.0.0/16``, per node ``10.244.N.0/24`` like kind) are not on this machine.

Not simulated: containers, images, probes, sidecars, networking between pods, kube-proxy, DNS.

Usage::

    with SimCluster(Path("build/e2e/cluster")) as cluster:
        cluster.kubectl("get", "nodes")

    python -m e2e.simcluster up --dir build/e2e/cluster     # prints the kubeconfig path, runs until SIGTERM
    python -m e2e.simcluster down --dir build/e2e/cluster
"""
from __future__ import annotations

import argparse
import base64
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN_DIR = ROOT / ".tools" / "e2e" / "bin"
STAGES_DIR = Path(__file__).resolve().parent / "stages"
VERSIONS_FILE = Path(__file__).resolve().parent / "versions.env"

TOOLS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl")
#: kwok stage configs (copied from kwok's module, see each file's header), in load order.
STAGES = (
    "node-initialize.yaml", "node-heartbeat-with-lease.yaml",
    "pod-ready.yaml", "pod-complete.yaml", "pod-delete.yaml",
    "volume-pvc-provision.yaml", "volume-pv-bind.yaml", "volume-pvc-delete.yaml", "volume-pv-delete.yaml",
)

SERVICE_CIDR = "127.96.0.0/16"
SERVICE_IP = "127.96.0.1"  # the first address: the `kubernetes` Service
CLUSTER_CIDR = "10.244.0.0/16"
NODE_IP = "127.0.0.1"  # every node's InternalIP: kwok answers the kubelet API there
NODE_LEASE_SECONDS = 40
STATE_FILE = "state.json"


class SimClusterError(RuntimeError):
    """The simulated cluster could not be started (the message has the failing component's log tail)."""


class KubectlError(subprocess.CalledProcessError):
    """kubectl exited non-zero; ``str()`` includes its stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\n{(self.stderr or '').strip()}"


# ------------------------------------------------------------------------------------------ helpers

def versions(path: Path = VERSIONS_FILE) -> dict[str, str]:
    """The KEY=VALUE pairs of e2e/versions.env."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip().strip('"').strip("'")
    return out


def missing_tools(bin_dir: Path = BIN_DIR) -> list[str]:
    """The tools of :data:`TOOLS` not (or not executably) in ``bin_dir``."""
    return [t for t in TOOLS if not os.access(bin_dir / t, os.X_OK)]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _pid_is_ours(pid: int, marker: str) -> bool:
    """The process exists and its command line names our work directory (not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return marker in cmdline


def _marker(workdir: Path) -> str:
    """What the command line of each of a cluster's processes contains: a path inside its workdir."""
    return str(Path(workdir).resolve()) + os.sep


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


# --------------------------------------------------------------------------------------------- PKI

class _PKI:
    """Certificates and keys made with the openssl CLI (ECDSA P-256 leaves, RSA service-account key)."""

    def __init__(self, directory: Path):
        self.dir = directory

    def _run(self, *args: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(["openssl", *args], cwd=self.dir, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SimClusterError(f"openssl {' '.join(args[:2])} failed: {proc.stderr.strip()}")

    def path(self, name: str) -> Path:
        return self.dir / name

    def ca(self, name: str, cn: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / f"{name}.cnf").write_text(
            "[req]\ndistinguished_name=dn\n[dn]\n[v3_ca]\nbasicConstraints=critical,CA:TRUE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign\nsubjectKeyIdentifier=hash\n")
        self._run("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                  "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "3650", "-sha256",
                  "-subj", f"/CN={cn}", "-extensions", "v3_ca", "-config", f"{name}.cnf")

    def leaf(self, name: str, ca: str, cn: str, *, orgs: Sequence[str] = (), server: bool = False,
             client: bool = False, dns: Sequence[str] = (), ips: Sequence[str] = ()) -> None:
        subj = "".join(f"/O={o}" for o in orgs) + f"/CN={cn}"
        self._run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                  "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subj)
        usages = [u for u, on in (("serverAuth", server), ("clientAuth", client)) if on]
        ext = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment",
               f"extendedKeyUsage={','.join(usages)}", "authorityKeyIdentifier=keyid"]
        sans = [f"DNS:{d}" for d in dns] + [f"IP:{i}" for i in ips]
        if sans:
            ext.append("subjectAltName=" + ",".join(sans))
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / f"{name}.ext").write_text("\n".join(ext) + "\n")
        self._run("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
                  "-set_serial", "0x" + secrets.token_hex(16), "-days", "365", "-sha256",
                  "-extfile", f"{name}.ext", "-out", f"{name}.crt")

    def rsa_keypair(self, name: str) -> None:
        self._run("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", f"{name}.key")
        self._run("pkey", "-in", f"{name}.key", "-pubout", "-out", f"{name}.pub")

    def b64(self, name: str) -> str:
        return base64.b64encode((self.dir / name).read_bytes()).decode()


# ------------------------------------------------------------------------------------------ cluster

class SimCluster:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok on loopback.

    A context manager: ``with SimCluster(dir) as c:`` starts it and stops it. ``kubeconfig`` is an
    admin kubeconfig (client certificate in ``system:masters``) whose context is ``context``.
    """

    def __init__(self, workdir: Path, *, nodes: int = 1, cpu: str = "4", memory: str = "8Gi",
                 zones: Sequence[str] = ("dev-a",), name: str = "e2e", bin_dir: Path = BIN_DIR,
                 start_timeout: float = 120.0, aggregator_routing: bool = False):
        if nodes < 1:
            raise ValueError("nodes must be >= 1")
        if not zones:
            raise ValueError("zones must name at least one zone")
        self.workdir = Path(workdir).resolve()
        self.nodes, self.cpu, self.memory, self.zones, self.name = nodes, cpu, memory, tuple(zones), name
        self.bin_dir = Path(bin_dir)
        self.start_timeout = start_timeout
        self.aggregator_routing = aggregator_routing
        self.kubeconfig = self.workdir / "kubeconfig"
        self.context = f"sim-{name}"
        self.server = ""
        self.logs = self.workdir / "logs"
        self.pki = _PKI(self.workdir / "pki")
        self._procs: dict[str, subprocess.Popen] = {}
        self._ports: dict[str, int] = {}
        self._forwarders: list["_Forwarder"] = []
        self._ssl: Optional[ssl.SSLContext] = None
        self.versions = versions()
        self.start_seconds = 0.0

    # -------------------------------------------------------------------------------- lifecycle
    def __enter__(self) -> "SimCluster":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def node_names(self) -> list[str]:
        """kind's names: ``<name>-control-plane``, ``<name>-worker``, ``<name>-worker2``..."""
        return [f"{self.name}-control-plane"] + [
            f"{self.name}-worker{'' if i == 1 else i}" for i in range(1, self.nodes)]

    def start(self) -> None:
        """Starts every component and waits until the cluster is usable (see the module docstring)."""
        try:
            self._start()
        except SimClusterError as e:
            if "address already in use" not in str(e):
                raise
            self._start()  # a free port was taken by someone else between choosing and binding it

    def _start(self) -> None:
        missing = missing_tools(self.bin_dir)
        if missing:
            raise SimClusterError(f"tools not built: {', '.join(missing)} missing in {self.bin_dir} "
                                  "(run: bash e2e/tools/build_kube.sh)")
        if shutil.which("openssl") is None:
            raise SimClusterError("the openssl CLI is needed to make the cluster's certificates")
        stale = _read_state(self.workdir)
        if stale and any(_pid_is_ours(p, _marker(self.workdir)) for p in stale.get("pids", {}).values()):
            raise SimClusterError(f"a simulated cluster is still running in {self.workdir} "
                                  f"(python -m e2e.simcluster down --dir {self.workdir})")
        self._ssl = None
        for sub in ("etcd", "pki", "logs", "kwok-home", "kcm", "scheduler", "apiserver"):
            shutil.rmtree(self.workdir / sub, ignore_errors=True)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir()
        t0 = time.monotonic()
        try:
            self._ports = {k: free_port() for k in
                           ("etcd", "etcd-peer", "apiserver", "kcm", "scheduler", "kwok")}
            self.server = f"https://127.0.0.1:{self._ports['apiserver']}"
            self._make_pki()
            self._write_kubeconfigs()
            self._start_etcd()
            self._start_apiserver()
            self._start_controller_manager()
            self._start_scheduler()
            self._start_kwok()
            self._create_nodes()
            self._create_storage_class()
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - t0

    def stop(self) -> None:
        """Stops every component (SIGTERM, then SIGKILL after 10 s); leaves no process behind."""
        for fwd in self._forwarders:
            fwd.close()
        self._forwarders.clear()
        # etcd last: an API server whose etcd is gone first takes its whole grace period to stop
        procs = list(self._procs.items())[::-1]
        clients, stores = [p for n, p in procs if n != "etcd"], [p for n, p in procs if n == "etcd"]
        for group in (clients, stores):
            for proc in group:
                if proc.poll() is None:
                    _kill_group(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            for proc in group:
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    _kill_group(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=5)
                _kill_group(proc.pid, signal.SIGKILL)  # anything left in its process group
        self._procs.clear()
        state = self.workdir / STATE_FILE
        if state.exists():
            state.unlink()

    # ------------------------------------------------------------------------------------- API
    def kubectl(self, *args: str, check: bool = True, input: Optional[str] = None,
                timeout: float = 120) -> subprocess.CompletedProcess:
        """Runs the pinned kubectl against this cluster (admin), text in and out."""
        argv = [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig), "--context", self.context, *args]
        proc = subprocess.run(argv, capture_output=True, text=True, input=input, timeout=timeout)
        if check and proc.returncode != 0:
            raise KubectlError(proc.returncode, argv, proc.stdout, proc.stderr)
        return proc

    def api(self, method: str, path: str, body: Any = None, *,
            content_type: str = "application/json", timeout: float = 10) -> tuple[int, Any]:
        """One request to the API server as cluster-admin: (HTTP status, decoded JSON or text)."""
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method,
                                     headers={"Content-Type": content_type, "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, context=self._client_ssl(), timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def service_address(self, namespace: str, name: str, port: Optional[int] = None) -> tuple[str, int]:
        """Where the API server dials a Service (webhooks, APIServices): its ClusterIP and port."""
        status, svc = self.api("GET", f"/api/v1/namespaces/{namespace}/services/{name}")
        if status != 200:
            raise SimClusterError(f"service {namespace}/{name}: HTTP {status}: {svc}")
        ports = [p["port"] for p in svc["spec"].get("ports", [])]
        if port is None:
            if not ports:
                raise SimClusterError(f"service {namespace}/{name} has no ports")
            port = ports[0]
        elif port not in ports:
            raise SimClusterError(f"service {namespace}/{name} has no port {port} (has {ports})")
        return svc["spec"]["clusterIP"], port

    def route_service(self, namespace: str, name: str, target: tuple[str, int],
                      port: Optional[int] = None) -> tuple[str, int]:
        """Forwards TCP from a Service's ClusterIP:port (loopback here) to ``target`` (host, port) on this
        machine, so the API server's calls to that Service reach a harness server (TLS passes through
        unchanged: the server sees the API server's SNI ``<name>.<namespace>.svc``). Returns the
        ClusterIP and port. Closed by :meth:`stop`."""
        ip, svc_port = self.service_address(namespace, name, port)
        if not ip.startswith("127."):
            raise SimClusterError(f"service {namespace}/{name} has ClusterIP {ip}, not a loopback address")
        fwd = _Forwarder((ip, svc_port), target)
        self._forwarders.append(fwd)
        return ip, svc_port

    # ------------------------------------------------------------------------------- internals
    def _client_ssl(self) -> ssl.SSLContext:
        if self._ssl is None:
            ctx = ssl.create_default_context(cafile=str(self.pki.path("ca.crt")))
            ctx.load_cert_chain(str(self.pki.path("admin.crt")), str(self.pki.path("admin.key")))
            self._ssl = ctx
        return self._ssl

    def _make_pki(self) -> None:
        p = self.pki
        p.ca("ca", "kubernetes")
        p.ca("front-proxy-ca", "front-proxy-ca")
        p.leaf("apiserver", "ca", "kube-apiserver", server=True,
               dns=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                    "kubernetes.default.svc.cluster.local"], ips=["127.0.0.1", SERVICE_IP])
        p.leaf("apiserver-kubelet-client", "ca", "kube-apiserver-kubelet-client", orgs=["system:masters"],
               client=True)
        p.leaf("front-proxy-client", "front-proxy-ca", "front-proxy-client", client=True)
        p.leaf("admin", "ca", "kubernetes-admin", orgs=["system:masters"], client=True)
        p.leaf("controller-manager", "ca", "system:kube-controller-manager", client=True)
        p.leaf("scheduler", "ca", "system:kube-scheduler", client=True)
        # kwok writes Node and Pod status, Leases, PVs and PVCs for every node, as kwokctl's does: admin.
        p.leaf("kwok", "ca", "kwok-controller", orgs=["system:masters"], client=True)
        p.leaf("kwok-serving", "ca", "kwok-kubelet", server=True, dns=self.node_names, ips=[NODE_IP])
        p.rsa_keypair("sa")

    def _kubeconfig(self, user: str, cert: str) -> dict:
        return {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": self.context, "cluster": {
                "server": self.server, "certificate-authority-data": self.pki.b64("ca.crt")}}],
            "users": [{"name": user, "user": {
                "client-certificate-data": self.pki.b64(f"{cert}.crt"),
                "client-key-data": self.pki.b64(f"{cert}.key")}}],
            "contexts": [{"name": self.context, "context": {"cluster": self.context, "user": user}}],
            "current-context": self.context,
        }

    def _write_kubeconfigs(self) -> None:
        for path, user, cert in ((self.kubeconfig, f"{self.context}-admin", "admin"),
                                 (self.pki.path("controller-manager.kubeconfig"), "system:kube-controller-manager",
                                  "controller-manager"),
                                 (self.pki.path("scheduler.kubeconfig"), "system:kube-scheduler", "scheduler"),
                                 (self.pki.path("kwok.kubeconfig"), "kwok-controller", "kwok")):
            path.write_text(yaml.safe_dump(self._kubeconfig(user, cert), sort_keys=False))
            path.chmod(0o600)

    def _spawn(self, name: str, argv: list[str], env: Optional[dict] = None) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    cwd=self.workdir, env=env, start_new_session=True,
                                    preexec_fn=_die_with_parent)
        finally:
            log.close()
        self._procs[name] = proc
        _write_state(self.workdir, {"owner_pid": os.getpid(), "server": self.server,
                                    "kubeconfig": str(self.kubeconfig), "context": self.context,
                                    "pids": {n: p.pid for n, p in self._procs.items()}})
        return proc

    def _fail(self, name: str, why: str) -> SimClusterError:
        log = self.logs / f"{name}.log"
        return SimClusterError(f"{name} {why}\n--- last lines of {log} ---\n{_tail(log)}")

    def _wait(self, name: str, what: str, probe, timeout: Optional[float] = None) -> Any:
        """Polls ``probe()`` until it returns a truthy value; fails early when a component exits."""
        deadline = time.monotonic() + (timeout or self.start_timeout)
        last_err: Any = None
        while time.monotonic() < deadline:
            for comp, proc in self._procs.items():
                if proc.poll() is not None:
                    raise self._fail(comp, f"exited with code {proc.returncode} (while waiting for {what})")
            try:
                result = probe()
                if result:
                    return result
            except (OSError, ValueError, KeyError, ssl.SSLError) as e:
                last_err = e
            time.sleep(0.25)
        raise self._fail(name, f"not ready after {timeout or self.start_timeout:.0f}s: {what}"
                               + (f" (last error: {last_err})" if last_err else ""))

    def _bin(self, tool: str) -> str:
        return str(self.bin_dir / tool)

    def _start_etcd(self) -> None:
        client = f"http://127.0.0.1:{self._ports['etcd']}"
        peer = f"http://127.0.0.1:{self._ports['etcd-peer']}"
        self._spawn("etcd", [
            self._bin("etcd"), f"--name={self.name}", f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster={self.name}={peer}", "--initial-cluster-state=new",
            f"--initial-cluster-token={self.name}-{secrets.token_hex(4)}",
            # throwaway data: no fsync (the simulated cluster lives for one test session)
            "--unsafe-no-fsync=true", "--snapshot-count=10000", "--log-level=warn",
        ])

        def healthy() -> bool:
            with urllib.request.urlopen(f"{client}/health", timeout=2) as r:
                return json.loads(r.read()).get("health") == "true"
        self._wait("etcd", "/health", healthy)

    def _start_apiserver(self) -> None:
        p = self.pki.path
        self._spawn("kube-apiserver", [
            self._bin("kube-apiserver"),
            "--advertise-address=127.0.0.1", "--bind-address=127.0.0.1",
            # The `kubernetes` Service gets no endpoints: validation refuses a loopback address there
            # ("may not be in the loopback range"), and no pod runs that would call it.
            "--endpoint-reconciler-type=none",
            f"--secure-port={self._ports['apiserver']}", f"--cert-dir={self.workdir / 'apiserver'}",
            f"--etcd-servers=http://127.0.0.1:{self._ports['etcd']}",
            "--allow-privileged=true",
            "--authorization-mode=Node,RBAC",
            # the default plugins (NamespaceLifecycle, LimitRanger, ServiceAccount, DefaultStorageClass,
            # PodSecurity, ResourceQuota, the webhooks and ValidatingAdmissionPolicy, ...) plus kubeadm's
            "--enable-admission-plugins=NodeRestriction",
            f"--client-ca-file={p('ca.crt')}",
            f"--tls-cert-file={p('apiserver.crt')}", f"--tls-private-key-file={p('apiserver.key')}",
            f"--kubelet-client-certificate={p('apiserver-kubelet-client.crt')}",
            f"--kubelet-client-key={p('apiserver-kubelet-client.key')}",
            f"--kubelet-certificate-authority={p('ca.crt')}",
            "--kubelet-preferred-address-types=InternalIP",
            f"--proxy-client-cert-file={p('front-proxy-client.crt')}",
            f"--proxy-client-key-file={p('front-proxy-client.key')}",
            f"--requestheader-client-ca-file={p('front-proxy-ca.crt')}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-username-headers=X-Remote-User",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={p('sa.pub')}",
            f"--service-account-signing-key-file={p('sa.key')}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--enable-aggregator-routing={'true' if self.aggregator_routing else 'false'}",
            "--profiling=false",
        ])
        self._wait("kube-apiserver", "/readyz", lambda: self.api("GET", "/readyz")[0] == 200)

    def _healthz(self, port: int) -> bool:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # its self-signed serving cert, on loopback
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", context=ctx, timeout=2) as r:
            return r.read().strip() == b"ok"

    def _start_controller_manager(self) -> None:
        p = self.pki.path
        kc = p("controller-manager.kubeconfig")
        self._spawn("kube-controller-manager", [
            self._bin("kube-controller-manager"),
            f"--kubeconfig={kc}", f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1", f"--secure-port={self._ports['kcm']}",
            f"--cert-dir={self.workdir / 'kcm'}",
            f"--client-ca-file={p('ca.crt')}", f"--requestheader-client-ca-file={p('front-proxy-ca.crt')}",
            f"--root-ca-file={p('ca.crt')}",
            f"--service-account-private-key-file={p('sa.key')}",
            f"--cluster-signing-cert-file={p('ca.crt')}", f"--cluster-signing-key-file={p('ca.key')}",
            "--use-service-account-credentials=true",
            "--controllers=*,bootstrapsigner,tokencleaner",
            f"--cluster-name={self.name}",
            "--allocate-node-cidrs=true", f"--cluster-cidr={CLUSTER_CIDR}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--leader-elect=false", "--profiling=false",
        ])
        self._wait("kube-controller-manager", "/healthz", lambda: self._healthz(self._ports["kcm"]))

    def _start_scheduler(self) -> None:
        kc = self.pki.path("scheduler.kubeconfig")
        self._spawn("kube-scheduler", [
            self._bin("kube-scheduler"),
            f"--kubeconfig={kc}", f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1", f"--secure-port={self._ports['scheduler']}",
            f"--cert-dir={self.workdir / 'scheduler'}",
            "--leader-elect=false", "--profiling=false",
        ])
        self._wait("kube-scheduler", "/healthz", lambda: self._healthz(self._ports["scheduler"]))

    def _start_kwok(self) -> None:
        p = self.pki.path
        home = self.workdir / "kwok-home"  # kwok would also load ~/.kwok/kwok.yaml: not the user's
        home.mkdir()
        stages = [str(STAGES_DIR / s) for s in STAGES]
        self._spawn("kwok", [
            self._bin("kwok"), f"--kubeconfig={p('kwok.kubeconfig')}",
            *[f"--config={s}" for s in stages],
            "--manage-all-nodes=true",
            f"--node-ip={NODE_IP}", f"--node-port={self._ports['kwok']}",
            f"--server-address={NODE_IP}:{self._ports['kwok']}",
            f"--tls-cert-file={p('kwok-serving.crt')}", f"--tls-private-key-file={p('kwok-serving.key')}",
            f"--cidr={CLUSTER_CIDR}",  # only for a pod on a node that has no podCIDR yet
            f"--node-lease-duration-seconds={NODE_LEASE_SECONDS}",
        ], env={**os.environ, "HOME": str(home)})

    def _node(self, index: int, name: str) -> dict:
        zone = self.zones[index % len(self.zones)]
        labels = {
            "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux", "kubernetes.io/hostname": name,
            "topology.kubernetes.io/zone": zone, "topology.kubernetes.io/region": "local",
            "type": "kwok",
        }
        if index == 0:  # kind's control-plane node (untainted: it runs everything, like the dev node)
            labels.update({"node-role.kubernetes.io/control-plane": "",
                           "node.kubernetes.io/exclude-from-external-load-balancers": "",
                           "ingress-ready": "true"})
        resources = {"cpu": self.cpu, "memory": self.memory, "pods": "110",
                     "ephemeral-storage": "100Gi", "hugepages-1Gi": "0", "hugepages-2Mi": "0"}
        return {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels, "annotations": {
                "node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"}},
            "spec": {},
            "status": {
                "capacity": resources, "allocatable": dict(resources),
                "addresses": [{"type": "InternalIP", "address": NODE_IP}, {"type": "Hostname", "address": name}],
                "nodeInfo": {
                    "architecture": "amd64", "operatingSystem": "linux",
                    "kubeletVersion": self.versions.get("KUBERNETES_VERSION", ""),
                    "kubeProxyVersion": self.versions.get("KUBERNETES_VERSION", ""),
                    "containerRuntimeVersion": f"kwok://{self.versions.get('KWOK_VERSION', '')}",
                    "osImage": "kwok simulated node", "kernelVersion": "kwok",
                    "bootID": "", "machineID": "", "systemUUID": ""},
            },
        }

    def _create_nodes(self) -> None:
        for i, name in enumerate(self.node_names):
            status, body = self.api("POST", "/api/v1/nodes", self._node(i, name))
            if status not in (200, 201):
                raise SimClusterError(f"creating node {name}: HTTP {status}: {body}")

    def _create_storage_class(self) -> None:
        sc = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
              "metadata": {"name": "standard", "annotations": {
                  "storageclass.kubernetes.io/is-default-class": "true"}},
              "provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete",
              "volumeBindingMode": "WaitForFirstConsumer"}
        status, body = self.api("POST", "/apis/storage.k8s.io/v1/storageclasses", sc)
        if status not in (200, 201, 409):
            raise SimClusterError(f"creating StorageClass standard: HTTP {status}: {body}")

    def _wait_ready(self) -> None:
        def sa_exists() -> bool:
            return self.api("GET", "/api/v1/namespaces/default/serviceaccounts/default")[0] == 200
        self._wait("kube-controller-manager", "ServiceAccount default/default", sa_exists)

        def nodes_ready() -> bool:
            status, body = self.api("GET", "/api/v1/nodes")
            if status != 200:
                return False
            items = {n["metadata"]["name"]: n for n in body.get("items", [])}
            for name in self.node_names:
                node = items.get(name)
                if node is None or not node["spec"].get("podCIDR"):
                    return False
                conds = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
                if conds.get("Ready") != "True":
                    return False
                if any(t["key"].startswith("node.kubernetes.io/") for t in node["spec"].get("taints", [])):
                    return False  # not-ready/unreachable taints still on: not schedulable yet
            return True
        self._wait("kwok", f"nodes Ready and untainted: {', '.join(self.node_names)}", nodes_ready)
        self._wait("kube-apiserver", "/readyz", lambda: self.api("GET", "/readyz")[0] == 200)


# ------------------------------------------------------------------------------------ forwarding

class _Forwarder:
    """TCP forwarder: listen (host, port) -> connect target; one thread per direction per connection."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]):
        self.target = target
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(listen)
        self.sock.listen(64)
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name=f"forward-{listen}").start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                conn.close()
                continue
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self) -> None:
        self._closed = True
        self.sock.close()


# ------------------------------------------------------------------------------------------- state

def _read_state(workdir: Path) -> Optional[dict]:
    try:
        return json.loads((Path(workdir) / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None


def _write_state(workdir: Path, state: dict) -> None:
    tmp = Path(workdir) / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(Path(workdir) / STATE_FILE)


def down(workdir: Path) -> list[str]:
    """Stops a cluster started by another process (``up``) in ``workdir``; returns what it stopped."""
    workdir = Path(workdir).resolve()
    state = _read_state(workdir)
    if not state:
        return []
    marker = _marker(workdir)
    stopped = []
    owner = state.get("owner_pid")
    if owner and owner != os.getpid() and _pid_is_ours(owner, "e2e.simcluster"):
        os.kill(owner, signal.SIGTERM)  # `up` stops its components itself
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _pid_is_ours(owner, "e2e.simcluster"):
            time.sleep(0.2)
        stopped.append(f"simcluster up (pid {owner})")
    pids = {n: p for n, p in state.get("pids", {}).items() if _pid_is_ours(p, marker)}
    for group in ([n for n in pids if n != "etcd"], [n for n in pids if n == "etcd"]):  # etcd last
        for name in group:
            _kill_group(pids[name], signal.SIGTERM)
        deadline = time.monotonic() + 10
        for name in group:
            while time.monotonic() < deadline and _pid_is_ours(pids[name], marker):
                time.sleep(0.2)
            if _pid_is_ours(pids[name], marker):
                _kill_group(pids[name], signal.SIGKILL)
            stopped.append(f"{name} (pid {pids[name]})")
    (workdir / STATE_FILE).unlink(missing_ok=True)
    return stopped


# --------------------------------------------------------------------------------------------- CLI

def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m e2e.simcluster", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start a simulated cluster and keep it running until SIGTERM / Ctrl-C")
    up.add_argument("--dir", required=True, type=Path, help="work directory (certs, data, logs, kubeconfig)")
    up.add_argument("--nodes", type=int, default=1)
    up.add_argument("--cpu", default="4")
    up.add_argument("--memory", default="8Gi")
    up.add_argument("--zones", default="dev-a", help="comma-separated; nodes are spread round-robin")
    up.add_argument("--name", default="e2e")
    dn = sub.add_parser("down", help="stop the simulated cluster running in --dir")
    dn.add_argument("--dir", required=True, type=Path)
    args = ap.parse_args(argv)

    if args.cmd == "down":
        stopped = down(args.dir)
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        return 0

    cluster = SimCluster(args.dir, nodes=args.nodes, cpu=args.cpu, memory=args.memory,
                         zones=tuple(z for z in args.zones.split(",") if z), name=args.name)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    try:
        cluster.start()
    except SimClusterError as e:
        print(f"simcluster: {e}", file=sys.stderr)
        return 1
    print(cluster.kubeconfig, flush=True)
    print(f"# context {cluster.context}, server {cluster.server}, started in {cluster.start_seconds:.1f}s; "
          f"logs in {cluster.logs}; stop with SIGTERM / Ctrl-C or: python -m e2e.simcluster down --dir {args.dir}",
          file=sys.stderr, flush=True)
    try:
        while not stop.wait(1.0):
            dead = [n for n, p in cluster._procs.items() if p.poll() is not None]
            if dead:
                print(f"simcluster: {dead[0]} exited:\n{_tail(cluster.logs / f'{dead[0]}.log')}", file=sys.stderr)
                return 1
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
