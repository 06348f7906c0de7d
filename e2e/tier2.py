"""Tier 2: the real Pulumi engine deploys the dev stack onto the simulated cluster.

``run(cluster, workdir)`` runs the Pulumi CLI built by ``e2e/tools/build_pulumi.sh`` (with the Python
language host and the provider plugins it installs into a Pulumi home of its own) against a file
backend in ``workdir`` (``PULUMI_BACKEND_URL=file://...``, never ``pulumi login``), passphrase
secrets, and no plugin downloads:

1. the project is copied into ``workdir/project`` (sources only; its ``.venv`` is a link to the
   repository's ``.venv``, which ``make venv`` builds from requirements.txt) and its
   ``Pulumi.dev.yaml`` becomes the dev stack's config with the e2e overrides (:func:`e2e_config`):
   the cluster is the simulated one (``local.existing_context`` / ``kubeconfig_path``), services run
   pinned images instead of ``build:`` (pods never pull under kwok, and there is no Docker), charts
   come from ``e2e/charts`` when the program has the ``charts_dir`` key; every layer stays on;
2. ``pulumi up --yes --skip-preview=false`` with the real kubernetes, command, random and tls
   providers, the webhooks answered by the harness (e2e/admission.py via tier 1's answerer);
3. ``pulumi preview --expect-no-changes``: a second run must change nothing (no perpetual diff);
4. ``pulumi stack output --json --show-secrets`` has the documented outputs (README "Stack outputs");
5. examples/team-app (``pulumi up`` in the same backend) reads them through a real StackReference and
   deploys its service, then is destroyed;
6. ``pulumi preview --policy-pack policy``: the real CrossGuard pack, in its own virtualenv;
7. ``pulumi destroy --yes``, then kubectl: none of our namespaces, CRDs, cluster roles/bindings,
   webhook configurations, API services or priority classes may be left (compared with the cluster
   before step 2).

The result: ``{"ok", "up_s", "preview_s", "destroy_s", "problems": [...], "steps": {...}}``. Every
CLI run is logged to ``workdir/logs/<step>.log``.

CLI: ``python -m e2e.tier2 --kubeconfig K --context C [--workdir DIR]`` against a running cluster.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

from e2e.simcluster import versions  # noqa: E402  (one reader of e2e/versions.env)

REPO = Path(__file__).resolve().parent.parent
BIN_DIR = REPO / ".tools" / "e2e" / "bin"
CHARTS_DIR = Path(__file__).resolve().parent / "charts"
CACHE = Path(os.environ.get("CNPLATFORM_E2E_CACHE") or Path.home() / ".cache" / "cnplatform-e2e")
STACK = "dev"
PROJECT = "ecommerce-platform"
#: provider plugin -> the versions.env key of the version the Python SDK pin asks for
PROVIDERS = {"kubernetes": "PULUMI_KUBERNETES_VERSION", "command": "PULUMI_COMMAND_VERSION",
             "random": "PULUMI_RANDOM_VERSION", "tls": "PULUMI_TLS_VERSION"}
#: what the copy of the project leaves out (venvs, state, builds, the charts: read in place)
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "venv", "build", ".tools", ".pulumi-state", "__pycache__",
                                     "*.egg-info", ".pytest_cache", "charts")
#: namespaces, cluster-scoped kinds a fresh cluster already has (everything else is compared before/after)
CLUSTER_SCOPED = ["namespaces", "customresourcedefinitions.apiextensions.k8s.io",
                  "clusterroles.rbac.authorization.k8s.io", "clusterrolebindings.rbac.authorization.k8s.io",
                  "mutatingwebhookconfigurations.admissionregistration.k8s.io",
                  "validatingwebhookconfigurations.admissionregistration.k8s.io",
                  "validatingadmissionpolicies.admissionregistration.k8s.io",
                  "apiservices.apiregistration.k8s.io", "priorityclasses.scheduling.k8s.io",
                  "storageclasses.storage.k8s.io", "persistentvolumes"]


def _log(msg: str) -> None:
    print(f"[tier2] {msg}", flush=True)


def missing_tools(bin_dir: Path = BIN_DIR) -> list[str]:
    """The Pulumi tools tier 2 cannot do without: the CLI, its bundled Python language host (beside the
    CLI's real executable, as in Pulumi's distribution) and the Kubernetes provider."""
    cli = bin_dir / "pulumi"
    out = [] if os.access(cli, os.X_OK) else ["pulumi"]
    if not out:
        dist = cli.resolve().parent
        out += [t for t in ("pulumi-language-python", "pulumi-language-python-exec")
                if not os.access(dist / t, os.X_OK)]
    if not os.access(bin_dir / "pulumi-resource-kubernetes", os.X_OK):
        out.append("pulumi-resource-kubernetes")
    return out


def pinned_image(service: str) -> str:
    """A pinned image reference for a service that the dev stack builds (``build:``): kwok never pulls
    images, so any well-formed, digest-pinned reference will do; deterministic, so two runs agree."""
    digest = hashlib.sha256(f"cnplatform-e2e/{service}".encode()).hexdigest()
    return f"ghcr.io/cnplatform-e2e/{service}:e2e@sha256:{digest}"


def program_config_keys(project: Path) -> set[str]:
    """The top-level stack config keys the program's typed model knows (so overrides stay valid when the
    program gains or lacks one, e.g. ``charts_dir``)."""
    package = project / "stacks" / "config"
    files = sorted(package.glob("*.py")) if package.is_dir() else [project / "stacks" / "config.py"]
    text = next((t for t in (f.read_text() for f in files) if "class StackConfig(" in t), "")
    m = re.search(r"^class StackConfig\(.*?\n(.*?)(?=^class |\Z)", text, re.S | re.M)
    body = m.group(1) if m else ""
    return set(re.findall(r"^    (\w+)\s*:", body, re.M))


def e2e_config(dev_config: dict[str, Any], *, context: str, kubeconfig: str, charts_dir: Optional[str],
               known_keys: set[str]) -> tuple[dict[str, Any], list[str]]:
    """The dev stack's config with the e2e overrides, and a note per override. Layers are never turned off."""
    cfg = json.loads(json.dumps(dev_config))  # deep copy
    ns = f"{PROJECT}:"
    notes = []
    clusters = cfg.get(ns + "clusters") or []
    for c in clusters:
        if c.get("cloud") == "local":
            c.setdefault("local", {})
            c["local"]["existing_context"] = context
            c["local"]["kubeconfig_path"] = kubeconfig
            notes.append(f"cluster {c.get('name')}: existing_context={context} (the simulated cluster)")
    for svc in cfg.get(ns + "services") or []:
        if svc.get("build"):
            svc.pop("build")
            svc["image"] = pinned_image(svc["name"])
            notes.append(f"service {svc['name']}: image {svc['image']} instead of build: "
                         "(no Docker; kwok pulls nothing)")
    if charts_dir:
        if "charts_dir" in known_keys:
            cfg[ns + "charts_dir"] = charts_dir
            notes.append(f"charts_dir={charts_dir} (no chart repository is reachable)")
        else:
            notes.append("the program has no charts_dir key: charts are fetched from their repositories")
    return cfg, notes


class Pulumi:
    """The pinned Pulumi CLI with an isolated home, a file backend and passphrase secrets."""

    def __init__(self, workdir: Path, kubeconfig: str, *, passphrase: str = "cnplatform-e2e",
                 bin_dir: Path = BIN_DIR):
        self.workdir = workdir
        self.home = workdir / "pulumi-home"
        self.state = workdir / "state"
        self.logs = workdir / "logs"
        for d in (self.home, self.state, self.logs):
            d.mkdir(parents=True, exist_ok=True)
        self.bin_dir = bin_dir
        self.exe = str(bin_dir / "pulumi")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "KUBE"))}
        env.update({
            "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
            "PULUMI_HOME": str(self.home),
            "PULUMI_BACKEND_URL": f"file://{self.state}",
            "PULUMI_CONFIG_PASSPHRASE": passphrase,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            # providers only from the plugin cache, at the version the SDK asks for (install_plugins);
            # the language host is bundled beside the CLI (bin/pulumi-<version>/), found regardless
            "PULUMI_IGNORE_AMBIENT_PLUGINS": "true",
            "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
            "PULUMI_SKIP_CONFIRMATIONS": "true",
            "PULUMI_DIY_BACKEND_NO_LEGACY_WARNING": "true",
            "KUBECONFIG": kubeconfig,
            "NO_COLOR": "1",
        })
        self.env = env

    def run(self, step: str, *args: str, cwd: Path, timeout: float = 3600) -> tuple[subprocess.CompletedProcess, float]:
        t0 = time.monotonic()
        argv = [self.exe, *args, "--non-interactive", "--color", "never"]
        log = self.logs / f"{step}.log"
        _log(f"{step}: pulumi {' '.join(args)}")
        try:
            proc = subprocess.run(argv, cwd=cwd, env=self.env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            proc = subprocess.CompletedProcess(argv, 124, out, f"timed out after {timeout}s")
        seconds = time.monotonic() - t0
        log.write_text(f"$ {' '.join(argv)}\n(cwd {cwd}, {seconds:.1f}s, exit {proc.returncode})\n"
                       f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}\n")
        _log(f"{step}: exit {proc.returncode} in {seconds:.1f}s (log {log})")
        return proc, seconds


def error_summary(proc: subprocess.CompletedProcess, limit: int = 12) -> str:
    """The lines of a failed CLI run that say what failed."""
    text = f"{proc.stdout}\n{proc.stderr}"
    lines = [ln.rstrip() for ln in text.splitlines()]
    picked = [ln.strip() for ln in lines if re.search(r"\berror\b|failed|Error:|panic", ln, re.I)
              and "warning:" not in ln]
    seen: list[str] = []
    for ln in picked:
        if ln not in seen:
            seen.append(ln)
    return " | ".join(seen[:limit]) or "\n".join(lines[-limit:])


def policy_violations(proc: subprocess.CompletedProcess, limit: int = 20) -> str:
    """Each policy violation of a preview: ``[level] policy (resource): message``."""
    lines = proc.stdout.splitlines()
    out = []
    for i, ln in enumerate(lines):
        m = re.match(r"^\s*- \[(mandatory|advisory|remediate|disabled)\]\s+(\S+)\s+\((.*)\)\s*$", ln)
        if m:
            message = lines[i + 2].strip() if i + 2 < len(lines) else ""
            out.append(f"[{m.group(1)}] {m.group(2)} ({m.group(3)}): {message}")
    return "; ".join(out[:limit]) + (f"; ... ({len(out)})" if len(out) > limit else "")


def changes_summary(proc: subprocess.CompletedProcess, limit: int = 30) -> str:
    """The resources a preview would change (lines with +, ~, -, +- markers)."""
    marks = [ln.strip() for ln in proc.stdout.splitlines()
             if re.match(r"^\s*([+~-]|\+-|-\+)\s+\S+", ln) and "pulumi:pulumi:Stack" not in ln]
    return "; ".join(marks[:limit]) + (f"; ... ({len(marks)} lines)" if len(marks) > limit else "")


def preview_no_changes(pulumi: Pulumi, project: Path, stack: str, step: str = "preview") -> tuple[Optional[str], float]:
    """`pulumi preview --expect-no-changes` right after an up: (None, seconds) when nothing would change,
    else (the problem, with the resources that would change, seconds)."""
    proc, secs = pulumi.run(step, "preview", "--expect-no-changes", "--stack", stack, cwd=project)
    if proc.returncode == 0:
        return None, secs
    # the same preview with property-level diffs, for the log only
    pulumi.run(f"{step}-diff", "preview", "--diff", "--stack", stack, cwd=project)
    return (f"pulumi preview --expect-no-changes failed (a perpetual diff, or the preview itself failed): "
            f"{changes_summary(proc) or '-'} ({error_summary(proc, 4)}; property diffs in "
            f"{pulumi.logs / (step + '-diff.log')})"), secs


def cluster_snapshot(kubectl: Callable[..., subprocess.CompletedProcess]) -> dict[str, set[str]]:
    """Names of the cluster-scoped objects (and namespaces) that matter for leftovers."""
    out: dict[str, set[str]] = {}
    for kind in CLUSTER_SCOPED:
        proc = kubectl("get", kind, "-o", "name", check=False)
        out[kind] = set(proc.stdout.split()) if proc.returncode == 0 else set()
    return out


def namespaced_leftovers(kubectl: Callable[..., subprocess.CompletedProcess], namespaces: set[str]) -> list[str]:
    """Objects of ours in namespaces that existed before (e.g. kube-system), by Pulumi's/Helm's labels."""
    found = []
    for ns in sorted(namespaces):
        proc = kubectl("get", "all,configmaps,secrets,serviceaccounts,roles,rolebindings,networkpolicies", "-n", ns,
                       "-l", "app.kubernetes.io/managed-by in (pulumi,Helm)", "-o", "name", check=False)
        found += [f"{ns}/{n}" for n in proc.stdout.split()] if proc.returncode == 0 else []
    return found


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _pip_freeze_version(venv: Path, package: str) -> Optional[str]:
    proc = subprocess.run([str(_venv_python(venv)), "-c",
                           f"import importlib.metadata as m; print(m.version({package!r}))"],
                          capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def ensure_venv(venv: Path, requirements: Path, cwd: Path, log: Path) -> None:
    """A virtualenv with ``requirements`` installed (pip, from PyPI), unless it is already there."""
    marker = venv / ".e2e-requirements.sha256"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if marker.exists() and marker.read_text() == digest:
        return
    _log(f"creating virtualenv {venv} from {requirements}")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    with log.open("a") as f:
        subprocess.run([str(_venv_python(venv)), "-m", "pip", "install", "-q", "-r", str(requirements)],
                       cwd=cwd, check=True, stdout=f, stderr=subprocess.STDOUT)
    marker.write_text(digest)


def copy_project(src: Path, dst: Path) -> Path:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=COPY_IGNORE, symlinks=True)
    return dst


class _Ticker:
    """Calls ``fn`` every ``period`` seconds in a thread while a CLI step runs (the webhook answerer)."""

    def __init__(self, fn: Optional[Callable[[], None]], period: float = 1.0):
        self.fn, self.period = fn, period
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> "_Ticker":
        if self.fn:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.fn()
            except Exception as e:  # noqa: BLE001 - keep answering
                _log(f"webhook answerer: {e}")

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)


def webhook_answerer(cluster: Any, workdir: Path) -> tuple[Optional[Callable[[], None]], Callable[[], None], list[str]]:
    """Tier 1's answerer for the webhooks that do not run under kwok (istiod, cert-manager,
    metrics-server): (tick, close, notes). Without it, those layers' webhooks time out."""
    try:
        from e2e.admission import AdmissionServer, InjectorConfig
        from e2e.tier1 import Kube, WebhookAnswerer
    except ImportError as e:
        return None, lambda: None, [f"no webhook answerer ({e}): istiod/cert-manager webhooks are not answered"]
    dns = [f"{n}.{ns}.svc" for ns, n in [("istio-system", "istiod"), ("cert-manager", "cert-manager-webhook"),
                                          ("kube-system", "metrics-server"),
                                          ("monitoring", "kube-prometheus-stack-operator")]]
    try:
        server = AdmissionServer(workdir / "admission", dns, InjectorConfig())
        kube = Kube(str(cluster.kubeconfig), getattr(cluster, "context", None), workdir / "kube-creds")
        answerer = WebhookAnswerer(kube, server)
    except Exception as e:  # noqa: BLE001 - e.g. e2e/requirements.txt not installed
        return None, lambda: None, [f"no webhook answerer ({type(e).__name__}: {e}): "
                                    "istiod/cert-manager webhooks are not answered"]

    last = [0.0]

    def tick() -> None:
        if time.monotonic() - last[0] > 5:  # CRDs and APIs appear during the up: rediscover now and then
            kube.discover()
            last[0] = time.monotonic()
        answerer.tick()

    def close() -> None:
        answerer.close()
        server.close()
    return tick, close, answerer.notes


def check_outputs(outputs: dict[str, Any], cluster_names: list[str]) -> list[str]:
    """The documented stack outputs (README "Stack outputs")."""
    problems = []
    if outputs.get("tier") != "dev":
        problems.append(f"output tier is {outputs.get('tier')!r}, not 'dev'")
    for name in cluster_names:
        c = (outputs.get("clusters") or {}).get(name)
        if not isinstance(c, dict):
            problems.append(f"output clusters.{name} missing")
            continue
        for key in ("cloud", "region", "zones", "endpoint", "registry_url", "workload_identity"):
            if key not in c:
                problems.append(f"output clusters.{name}.{key} missing")
        kc = (outputs.get("kubeconfigs") or {}).get(name)
        if not kc or "clusters" not in str(kc):
            problems.append(f"output kubeconfigs.{name} missing or not a kubeconfig")
    return problems


def install_plugins(pulumi: Pulumi, vers: dict[str, str], problems: list[str],
                    unavailable: Optional[list[str]] = None) -> dict[str, str]:
    """Install the built providers; ``unavailable`` collects those that could not be built here."""
    installed = {}
    for name, key in PROVIDERS.items():
        binary = pulumi.bin_dir / f"pulumi-resource-{name}"
        version = vers.get(key, "")
        if not os.access(binary, os.X_OK):
            message = (f"provider plugin {name} v{version} is not available (no {binary}; "
                       "see e2e/versions.env: the Go module proxy does not serve it)")
            (unavailable if unavailable is not None else problems).append(message)
            continue
        proc, _ = pulumi.run(f"plugin-install-{name}", "plugin", "install", "resource", name, version,
                             "--file", str(binary.resolve()), cwd=pulumi.workdir)
        if proc.returncode != 0:
            problems.append(f"pulumi plugin install resource {name} {version}: {error_summary(proc)}")
        else:
            installed[name] = version
    return installed


def run(cluster: Any, workdir: Path, *, project_src: Path = REPO, program_venv: Optional[Path] = None,
        team_app: bool = True, policy: bool = True) -> dict[str, Any]:
    """Tier 2 against a running cluster (``cluster.kubeconfig``, ``cluster.context``, ``cluster.kubectl``)."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"ok": False, "up_s": None, "preview_s": None, "destroy_s": None,
                              "problems": [], "steps": {}, "notes": []}
    problems: list[str] = result["problems"]
    steps: dict[str, Any] = result["steps"]
    missing = missing_tools()
    if missing:
        problems.append(f"not built: {', '.join(missing)} (in {BIN_DIR}): run bash e2e/tools/build_pulumi.sh")
        return result
    vers = versions()
    kubeconfig = str(Path(cluster.kubeconfig).resolve())
    pulumi = Pulumi(workdir, kubeconfig)

    # --- the project, its venv and the e2e stack config
    project = copy_project(project_src, workdir / "project")
    venv = Path(program_venv or project_src / ".venv").resolve()
    if not _venv_python(venv).exists():
        problems.append(f"no program virtualenv at {venv}: run `make venv`")
        return result
    (project / ".venv").symlink_to(venv, target_is_directory=True)
    lines = (project_src / "requirements.txt").read_text().splitlines()
    req = {ln.split("==")[0].lower(): ln.split("==")[1] for ln in lines if "==" in ln and not ln.startswith("#")}
    for pkg in ("pulumi", "pulumi-kubernetes"):
        have = _pip_freeze_version(venv, pkg)
        if have != req.get(pkg):
            problems.append(f"{venv} has {pkg} {have}, requirements.txt pins {req.get(pkg)}: run `make venv`")
    if problems:
        return result
    dev = yaml.safe_load((project_src / f"Pulumi.{STACK}.yaml").read_text())
    cfg, notes = e2e_config(dev.get("config") or {}, context=cluster.context, kubeconfig=kubeconfig,
                            charts_dir=str(CHARTS_DIR), known_keys=program_config_keys(project_src))
    result["notes"] += notes
    (project / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump({"config": cfg}, sort_keys=False))
    cluster_names = [c["name"] for c in cfg.get(f"{PROJECT}:clusters") or []]

    unavailable: list[str] = []
    result["plugins"] = install_plugins(pulumi, vers, problems, unavailable)
    if unavailable:
        # The dev stack needs every provider (command: kubeconfig read, random: passwords, tls: mesh CA):
        # `pulumi up` would stop at the first missing plugin. Reported as blocked, not as a pass.
        result["blocked"] = unavailable
        return result
    proc, _ = pulumi.run("stack-init", "stack", "init", STACK, "--secrets-provider", "passphrase", cwd=project)
    if proc.returncode != 0:
        problems.append(f"pulumi stack init: {error_summary(proc)}")
        return result

    before = cluster_snapshot(cluster.kubectl)
    tick, close_answerer, answerer_notes = webhook_answerer(cluster, workdir)
    try:
        # --- up
        with _Ticker(tick):
            proc, secs = pulumi.run("up", "up", "--yes", "--skip-preview=false", "--stack", STACK, cwd=project)
        result["up_s"] = round(secs, 1)
        steps["up"] = proc.returncode == 0
        if proc.returncode != 0:
            problems.append(f"pulumi up failed: {error_summary(proc)}")
        else:
            # --- no perpetual diff
            with _Ticker(tick):
                problem, secs = preview_no_changes(pulumi, project, STACK)
            result["preview_s"] = round(secs, 1)
            steps["preview_no_changes"] = problem is None
            if problem:
                problems.append(problem)

            # --- documented outputs
            proc, _ = pulumi.run("stack-output", "stack", "output", "--json", "--show-secrets", "--stack", STACK,
                                 cwd=project)
            try:
                outputs = json.loads(proc.stdout) if proc.returncode == 0 else {}
            except ValueError:
                outputs = {}
            out_problems = check_outputs(outputs, cluster_names)
            steps["outputs"] = not out_problems and proc.returncode == 0
            problems += out_problems if proc.returncode == 0 else [f"pulumi stack output: {error_summary(proc)}"]

            # --- another team's stack through a StackReference
            if team_app:
                steps["team_app"] = run_team_app(pulumi, project, cluster, problems, tick)

            # --- the policy pack
            if policy:
                steps["policy"] = run_policy(pulumi, project, problems, tick)
    finally:
        # --- destroy (also after a failed up: it must clean up what was created)
        with _Ticker(tick):
            proc, secs = pulumi.run("destroy", "destroy", "--yes", "--stack", STACK, cwd=project)
        result["destroy_s"] = round(secs, 1)
        steps["destroy"] = proc.returncode == 0
        if proc.returncode != 0:
            problems.append(f"pulumi destroy failed: {error_summary(proc)}")
        close_answerer()
        result["notes"] += list(dict.fromkeys(answerer_notes))
    after = cluster_snapshot(cluster.kubectl)
    leftovers = sorted(f"{n}" for kind in CLUSTER_SCOPED for n in after[kind] - before[kind])
    leftovers += namespaced_leftovers(cluster.kubectl, {n.split("/", 1)[1] for n in before["namespaces"]})
    steps["nothing_left"] = not leftovers
    if leftovers:
        problems.append(f"left behind after destroy: {', '.join(leftovers[:40])}"
                        + (f" ... ({len(leftovers)})" if len(leftovers) > 40 else ""))
    result["ok"] = not problems
    return result


def run_team_app(pulumi: Pulumi, project: Path, cluster: Any, problems: list[str],
                 tick: Optional[Callable[[], None]]) -> bool:
    """examples/team-app: `pulumi up` (StackReference to organization/ecommerce-platform/dev in the same
    backend), its Deployment exists in the cluster, then `pulumi destroy`."""
    app = project / "examples" / "team-app"
    venv = CACHE / "venvs" / "team-app"
    try:
        # its requirements install the library from ../.. (the copy), so the venv is rebuilt per run
        shutil.rmtree(venv, ignore_errors=True)
        ensure_venv(venv, app / "requirements.txt", app, pulumi.logs / "team-app-venv.log")
    except subprocess.CalledProcessError as e:
        problems.append(f"team-app virtualenv: {e} (log {pulumi.logs / 'team-app-venv.log'})")
        return False
    (app / ".venv").symlink_to(venv, target_is_directory=True)
    ok = True
    proc, _ = pulumi.run("team-app-stack-init", "stack", "init", STACK, "--secrets-provider", "passphrase", cwd=app)
    if proc.returncode != 0:
        problems.append(f"team-app stack init: {error_summary(proc)}")
        return False
    with _Ticker(tick):
        proc, secs = pulumi.run("team-app-up", "up", "--yes", "--skip-preview=false", "--stack", STACK, cwd=app)
    if proc.returncode != 0:
        problems.append(f"team-app pulumi up failed: {error_summary(proc)}")
        ok = False
    else:
        dep = cluster.kubectl("get", "deployments", "-A", "-l", "app.kubernetes.io/name=reviews", "-o", "name",
                              check=False)
        if not dep.stdout.strip():
            problems.append("team-app: no reviews Deployment in the cluster after its pulumi up")
            ok = False
    with _Ticker(tick):
        proc, _ = pulumi.run("team-app-destroy", "destroy", "--yes", "--stack", STACK, cwd=app)
    if proc.returncode != 0:
        problems.append(f"team-app pulumi destroy failed: {error_summary(proc)}")
        ok = False
    return ok


def run_policy(pulumi: Pulumi, project: Path, problems: list[str], tick: Optional[Callable[[], None]]) -> bool:
    """`pulumi preview --policy-pack policy`: the pack in its own virtualenv (policy/requirements.txt)."""
    pack = project / "policy"
    req = pack / "requirements.txt"
    venv = CACHE / "venvs" / f"policy-{hashlib.sha256(req.read_bytes()).hexdigest()[:16]}"
    try:
        ensure_venv(venv, req, pack, pulumi.logs / "policy-venv.log")
    except subprocess.CalledProcessError as e:
        problems.append(f"policy virtualenv: {e} (log {pulumi.logs / 'policy-venv.log'})")
        return False
    (pack / ".venv").symlink_to(venv, target_is_directory=True)
    with _Ticker(tick):
        proc, _ = pulumi.run("policy", "preview", "--policy-pack", str(pack), "--stack", STACK, cwd=project)
    if proc.returncode != 0:
        problems.append(f"pulumi preview --policy-pack policy failed: {policy_violations(proc) or error_summary(proc)}")
        return False
    if "Policies:" not in proc.stdout and "policy" not in proc.stdout.lower():
        problems.append("pulumi preview --policy-pack policy: the output does not show the policy pack ran")
        return False
    return True


class _ExternalCluster:
    """A running cluster given by kubeconfig and context (for the CLI)."""

    def __init__(self, kubeconfig: str, context: str):
        self.kubeconfig, self.context = kubeconfig, context

    def kubectl(self, *args: str, check: bool = True, input: Optional[str] = None,
                timeout: float = 120) -> subprocess.CompletedProcess:
        kubectl = BIN_DIR / "kubectl"
        argv = [str(kubectl if kubectl.exists() else "kubectl"), "--kubeconfig", self.kubeconfig,
                "--context", self.context, *args]
        proc = subprocess.run(argv, capture_output=True, text=True, input=input, timeout=timeout)
        if check and proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, argv, proc.stdout, proc.stderr)
        return proc


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m e2e.tier2", description=__doc__.split("\n\n")[0])
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--context", required=True)
    ap.add_argument("--workdir", type=Path, help="work directory (default: a new temporary directory, kept)")
    ap.add_argument("--venv", type=Path, help="the program's virtualenv (default: the repository's .venv)")
    ap.add_argument("--no-team-app", action="store_true")
    ap.add_argument("--no-policy", action="store_true")
    args = ap.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cnplatform-tier2-"))
    res = run(_ExternalCluster(args.kubeconfig, args.context), workdir, program_venv=args.venv,
              team_app=not args.no_team_app, policy=not args.no_policy)
    for p in res["problems"]:
        print(f"[tier2] problem: {p}", flush=True)
    for n in res["notes"]:
        print(f"[tier2] note: {n}", flush=True)
    print(json.dumps({k: res[k] for k in ("ok", "up_s", "preview_s", "destroy_s", "steps")}), flush=True)
    print(f"[tier2] work directory: {workdir}", flush=True)
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
