"""Issue 21 goal 1: the dev platform asks <= 60% of the kind node's CPU and memory, counted twice.

Once by the render's own accounting (``stacks.checks.footprint``: each layer's ``footprint`` from the
values it gives its charts), once here, independently: the requests of every pod the applied objects
make, read from the objects themselves -- our manifests (``manifests/``) and what every upstream chart
renders with our values (Helm v4 SDK, as ``helm.v4.Chart`` does), plus what they make at run time:
the Pods prometheus-operator creates for the ``Prometheus``/``Alertmanager`` resources (their
``spec.resources`` and the operator's ``--config-reloader-*`` flags), the ``istio-proxy`` sidecars
istiod injects (its injector values, or the pod's ``sidecar.istio.io/proxy*`` annotations), one
Jenkins agent pod (the largest template in ``ci/jenkins/pods/``), and kind's own system pods.
"""
from __future__ import annotations

import functools
import json
import re
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from cnplatform.quantity import cpu_millicores, memory_mib
from stacks.checks import check_config
from stacks.checks import footprint as F
from stacks.config import TIERS
from tests.helpers import ROOT, config_of, manifests

BUDGET = 0.60
POD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod")
#: kind's own pods on a 4 vCPU / 8 GiB node (kind v0.31, Kubernetes 1.35): the kubeadm static pod
#: manifests (kube-apiserver 250m, kube-controller-manager 200m, kube-scheduler 100m, etcd 100m/100Mi),
#: CoreDNS (2 x 100m/70Mi) and kindnet (100m/50Mi); kube-proxy and local-path-provisioner request none.
KIND_PODS = [("kube-apiserver", 250, 0), ("kube-controller-manager", 200, 0), ("kube-scheduler", 100, 0),
             ("etcd", 100, 100), ("coredns", 100, 70), ("coredns", 100, 70), ("kindnet", 100, 50)]


def _req(container: dict) -> tuple[int, int]:
    req = (container.get("resources") or {}).get("requests") or {}
    return cpu_millicores(req.get("cpu", 0)), memory_mib(req.get("memory", 0))


def pod_requests(spec: dict) -> tuple[int, int]:
    """What the scheduler reserves for a pod: the app containers plus native sidecars (init containers
    with ``restartPolicy: Always``), or the largest ordinary init container if that is more."""
    cpu = sum(_req(c)[0] for c in spec.get("containers") or [])
    mem = sum(_req(c)[1] for c in spec.get("containers") or [])
    init_cpu = init_mem = side_cpu = side_mem = 0
    for c in spec.get("initContainers") or []:
        a, b = _req(c)
        if c.get("restartPolicy") == "Always":
            side_cpu, side_mem = side_cpu + a, side_mem + b
        else:
            init_cpu, init_mem = max(init_cpu, side_cpu + a), max(init_mem, side_mem + b)
    return max(cpu + side_cpu, init_cpu), max(mem + side_mem, init_mem)


# ------------------------------------------------------------------------------ the applied objects


@functools.lru_cache(maxsize=None)
def chart_objects(render_dir: str, cluster: str) -> tuple:
    """Every object the cluster's Helm releases render with our values (hooks dropped, as helm.v4.Chart)."""
    pytest.importorskip("helm_python")
    from e2e import helm

    out = []
    for release in helm.load_releases(render_dir, cluster):
        out += helm.render_release(release, kube_version="1.35.0", api_versions=[],
                                   is_namespaced=helm.static_is_namespaced(), include_crds=False).objects
    return tuple(out)


def applied_objects(render_dir: Path, cluster: str) -> list[dict]:
    own = [doc for path, doc in manifests(render_dir) if path.parts[-3] == cluster]
    return own + list(chart_objects(str(render_dir), cluster))


def _named(objs: list[dict], kind: str, name: str) -> dict:
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered"
    return found[0]


def operator_pods(objs: list[dict]) -> list[tuple[str, str, int, dict]]:
    """(namespace, name, replicas, pod) of the StatefulSets prometheus-operator makes for the
    ``Prometheus`` and ``Alertmanager`` resources: the main container (``spec.resources``), the
    config-reloader (and its init twin) sized by the operator's ``--config-reloader-*`` flags."""
    operator = next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-operator")
                    and "prometheus-config-reloader" in json.dumps(o))
    flags = dict(a[2:].split("=", 1) for a in operator["spec"]["template"]["spec"]["containers"][0].get("args", [])
                 if a.startswith("--config-reloader-"))
    reloader = {kind: {res: flags[f"config-reloader-{res}-{kind[:-1]}"] for res in ("cpu", "memory")
                       if f"config-reloader-{res}-{kind[:-1]}" in flags} for kind in ("requests", "limits")}
    out = []
    for cr in (o for o in objs if o["kind"] in ("Prometheus", "Alertmanager")):
        spec, main = cr["spec"], cr["kind"].lower()
        meta = spec.get("podMetadata") or {}
        pod = {"metadata": {"labels": dict(meta.get("labels") or {}),
                            "annotations": dict(meta.get("annotations") or {})},
               "spec": {"containers": [{"name": main, "resources": spec.get("resources") or {}},
                                       {"name": "config-reloader", "resources": reloader}],
                        "initContainers": [{"name": "init-config-reloader", "resources": reloader}]}}
        replicas = int(spec.get("replicas", 1)) * int(spec.get("shards", 1) or 1)
        out.append((cr["metadata"]["namespace"], f"{main}-{cr['metadata']['name']}", replicas, pod))
    return out


def workload_pods(objs: list[dict], nodes: int) -> list[tuple[str, str, int, dict]]:
    """(namespace, name, replicas, pod template) of every pod-making object; HPAs raise replicas to
    their ``minReplicas``, DaemonSets run one pod per node."""
    hpa_min: dict[tuple, int] = {}
    for h in (o for o in objs if o["kind"] == "HorizontalPodAutoscaler"):
        ref = h["spec"]["scaleTargetRef"]
        hpa_min[(h["metadata"]["namespace"], ref["kind"], ref["name"])] = int(h["spec"].get("minReplicas", 1))
    out = []
    for o in (o for o in objs if o["kind"] in POD_KINDS):
        ns, name = o["metadata"].get("namespace"), o["metadata"]["name"]
        if o["kind"] == "Pod":
            out.append((ns, name, 1, o))
            continue
        replicas = nodes if o["kind"] == "DaemonSet" else int(o["spec"].get("replicas", 1))
        replicas = max(replicas, hpa_min.get((ns, o["kind"], name), 0))
        out.append((ns, name, replicas, o["spec"]["template"]))
    return out + operator_pods(objs)


def injector(objs: list[dict]):
    """``(namespace, pod) -> proxy resources or None``: istiod's injection decision (namespace label
    ``istio-injection``, pod label/annotation ``sidecar.istio.io/inject``) and the sidecar's size (the
    injector's ``global.proxy.resources``, or the pod's ``sidecar.istio.io/proxy*`` annotations)."""
    namespaces = {o["metadata"]["name"]: (o["metadata"].get("labels") or {}) for o in objs if o["kind"] == "Namespace"}
    cm = [o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "istio-sidecar-injector"]
    if not cm:
        return lambda ns, pod: None
    default = json.loads(cm[0]["data"]["values"])["global"]["proxy"]["resources"]
    keys = {"proxyCPU": ("requests", "cpu"), "proxyMemory": ("requests", "memory"),
            "proxyCPULimit": ("limits", "cpu"), "proxyMemoryLimit": ("limits", "memory")}

    def proxy(ns: str, pod: dict):
        labels = (pod.get("metadata") or {}).get("labels") or {}
        anns = (pod.get("metadata") or {}).get("annotations") or {}
        ns_label = namespaces.get(ns, {}).get("istio-injection")
        wanted = labels.get("sidecar.istio.io/inject", anns.get("sidecar.istio.io/inject"))
        gateway = anns.get("inject.istio.io/templates") == "gateway"  # the chart's own istio-proxy container
        if gateway or ns_label == "disabled" or (pod.get("spec") or {}).get("hostNetwork") or wanted == "false":
            return None
        if ns_label != "enabled" and wanted != "true":
            return None
        if not any(f"sidecar.istio.io/{k}" in anns for k in keys):
            return json.loads(json.dumps(default))
        out: dict[str, dict[str, str]] = {}
        for k, (kind, res) in keys.items():
            if f"sidecar.istio.io/{k}" in anns:
                out.setdefault(kind, {})[res] = anns[f"sidecar.istio.io/{k}"]
        return out
    return proxy


def deploy_stacks(objs: list[dict]) -> str:
    """``DEPLOY_STACKS`` as JCasC sets it (the chart's rendered configuration ConfigMaps)."""
    for o in (o for o in objs if o["kind"] == "ConfigMap" and o["metadata"].get("namespace") == "jenkins"):
        for text in (o.get("data") or {}).values():
            found = re.search(r"key: DEPLOY_STACKS\s*\n\s*value: *'?([^'\n]*)'?", text)
            if found:
                return found.group(1).strip()
    raise AssertionError("no DEPLOY_STACKS in the rendered JCasC")


def agent_pod(objs: list[dict]) -> tuple[str, dict]:
    """The largest Jenkins agent pod the pipeline starts (one build at a time), by memory then CPU: the
    ``deploy`` pod only runs in Preview/Deploy, which the Jenkinsfile skips without DEPLOY_STACKS."""
    pods = {p.stem: yaml.safe_load(p.read_text()) for p in sorted((ROOT / "ci" / "jenkins" / "pods").glob("*.yaml"))}
    if not deploy_stacks(objs):
        del pods["deploy"]
    name = max(pods, key=lambda n: tuple(reversed(pod_requests(pods[n]["spec"]))))
    return name, pods[name]


def effective_pods(render_dir: Path, cluster: str) -> list[tuple[str, int, dict]]:
    """(``namespace/name``, replicas, pod spec as admitted: sidecar injected) of every platform pod."""
    cfg = config_of("dev")
    cluster_cfg = next(c for c in cfg.clusters if c.name == cluster)
    objs = applied_objects(render_dir, cluster)
    proxy = injector(objs)
    pods = workload_pods(objs, 1 + cluster_cfg.local.workers)
    if any(o["kind"] == "StatefulSet" and o["metadata"].get("namespace") == "jenkins" for o in objs):
        name, pod = agent_pod(objs)
        pods.append(("jenkins", f"jenkins-agent-{name}", 1, pod))
    out = []
    for ns, name, replicas, pod in pods:
        spec = dict(pod.get("spec") or {})
        sidecar = proxy(ns, pod)
        if sidecar is not None:  # istio-validation, then istio-proxy as a native sidecar
            spec["initContainers"] = [{"name": "istio-validation", "resources": sidecar},
                                      {"name": "istio-proxy", "resources": sidecar, "restartPolicy": "Always"},
                                      *(spec.get("initContainers") or [])]
        out.append((f"{ns}/{name}", replicas, spec))
    return out


def independent_sum(render_dir: Path, cluster: str) -> dict[str, tuple[int, int]]:
    """``namespace/name`` -> (CPU m, memory Mi) requested by all its pods, plus kind's own pods."""
    out: dict[str, tuple[int, int]] = defaultdict(lambda: (0, 0))
    for key, replicas, spec in effective_pods(render_dir, cluster):
        cpu, mem = pod_requests(spec)
        out[key] = (cpu * replicas, mem * replicas)
    for name, cpu, mem in KIND_PODS:
        prev = out[f"kube-system/{name}"]
        out[f"kube-system/{name}"] = (prev[0] + cpu, prev[1] + mem)
    return dict(out)


def _pct(value: int, of: int) -> float:
    return 100 * value / of


# ------------------------------------------------------------------------------------------ the goal


def test_dev_requests_fit_the_budget_by_the_renders_own_accounting(rendered):
    cfg = config_of("dev")
    cluster = cfg.clusters[0]
    cap = F.cluster_capacity(cluster, cfg)
    assert (cap.cpu_millicores, cap.memory_mib) == (4000, 8192)  # the 4 vCPU / 8 GiB kind node
    cpu, mem, _, _ = F.totals(F.workloads(cfg, cluster))
    assert cpu <= BUDGET * cap.cpu_millicores and mem <= BUDGET * cap.memory_mib, (
        f"dev asks {_pct(cpu, cap.cpu_millicores):.0f}% CPU, {_pct(mem, cap.memory_mib):.0f}% memory")
    printed = json.loads((rendered("dev") / "footprint.json").read_text())["clusters"][cluster.name]
    layers = printed["layers"].values()
    assert (sum(v["requests"]["cpu_m"] for v in layers), sum(v["requests"]["memory_mi"] for v in layers)) == (cpu, mem)
    # Every layer is on: what the budget is about.
    assert {w.layer for w in F.workloads(cfg, cluster)} >= {
        "kind-system", "addons", "mesh", "mesh-sidecars", "monitoring", "services", "databases", "cicd"}


def test_independent_sum_of_every_applied_object_agrees_and_fits(rendered):
    cfg = config_of("dev")
    cluster = cfg.clusters[0]
    pods = independent_sum(rendered("dev"), cluster.name)
    cpu, mem = sum(c for c, _ in pods.values()), sum(m for _, m in pods.values())
    assert (cpu, mem) == F.totals(F.workloads(cfg, cluster))[:2], sorted(pods.items())
    assert cpu <= BUDGET * 4000 and mem <= BUDGET * 8192
    # Each part is there: meshed services carry a sidecar, Prometheus its annotated one, the databases none.
    assert pods["shop/user"] == (35, 104) and pods["shop/user-mysql"] == (25, 256)
    assert pods["monitoring/prometheus-kube-prometheus-stack-prometheus"] == (120, 464)
    assert pods["jenkins/jenkins-agent-build"] == (300, 768)


def test_every_dev_container_is_limited_and_none_can_take_the_node(rendered):
    """A runaway container is throttled (CPU) or OOM-killed (memory) before it starves the node:
    every container of every platform pod has both limits, none above a quarter of the node's memory
    or half its CPU (kind's own pods are not ours and have none)."""
    unlimited, too_big = [], []
    for key, _, spec in effective_pods(rendered("dev"), "dev"):
        for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
            limits = (c.get("resources") or {}).get("limits") or {}
            if not limits.get("cpu") or not limits.get("memory"):
                unlimited.append(f"{key}/{c['name']}")
            elif cpu_millicores(limits["cpu"]) > 2000 or memory_mib(limits["memory"]) > 2048:
                too_big.append(f"{key}/{c['name']}: {limits}")
    assert unlimited == [] and too_big == []


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_staging_and_prod_keep_their_sizing(stack):
    """The dev figures are dev's only: services, sidecars and the Jenkins deploy agent as before."""
    cfg = config_of(stack)
    items = {w.name: w for c in cfg.clusters for w in F.workloads(cfg, c)}
    assert (items["user"].cpu_request, items["user"].memory_request) == (100, 128)
    assert (items["user-istio-proxy"].cpu_request, items["user-istio-proxy"].memory_request) == (100, 128)
    assert "jenkins-agent-deploy" in items


def test_a_service_that_sets_resources_keeps_them_in_every_tier():
    from tests.helpers import with_changes

    def change(raw):
        raw["services"][0]["resources"] = {"requests": {"memory": "300Mi"}}
    cfg = check_config(with_changes("dev", change))
    own, other = cfg.services[0], cfg.services[1]
    assert cfg.resources(own)["requests"] == {"cpu": "100m", "memory": "300Mi"}  # the model's defaults merged
    assert cfg.resources(other) == cfg.defaults.service_resources == TIERS["dev"].service_resources
    assert config_of("prod").resources(config_of("prod").services[0]) == TIERS["prod"].service_resources


def test_dev_databases_run_without_the_performance_schema(rendered):
    for path, doc in manifests(rendered("dev")):
        if doc["kind"] == "StatefulSet" and doc["metadata"]["name"].endswith("-mysql"):
            assert "--performance-schema=OFF" in doc["spec"]["template"]["spec"]["containers"][0]["args"], path
    from cnplatform.database.mysql import MySqlDatabaseArgs
    from cnplatform.database.spec import statefulset_spec

    spec = statefulset_spec(MySqlDatabaseArgs(service="x"))
    assert "--performance-schema=OFF" not in spec["template"]["spec"]["containers"][0]["args"]  # the library default


def test_the_deploy_agent_is_reserved_only_where_jenkins_deploys():
    """dev's Jenkins deploys no stack: the Jenkinsfile skips Preview/Deploy, so no deploy pod runs."""
    jenkinsfile = (ROOT / "Jenkinsfile").read_text()
    preview = jenkinsfile[jenkinsfile.index("stage('Preview')"):jenkinsfile.index("stage('Deploy')")]
    assert "expression { (env.DEPLOY_STACKS ?: '').trim() }" in preview
    dev = {w.name for w in F.workloads(config_of("dev"), config_of("dev").clusters[0]) if w.layer == "cicd"}
    assert dev == {"jenkins-controller", "jenkins-config-reload", "jenkins-agent-build"}
