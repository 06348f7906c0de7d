"""Issue 19: least privilege in what the platform and the charts (with our values) really run.

Rendered-object assertions: our own objects from the offline renders, the charts' objects rendered
offline with our values (helm-python-sdk, as helm.v4.Chart does).
"""
from __future__ import annotations

import functools

import pytest
import yaml

from cnplatform import netpolicy as NP
from cnplatform.cicd.jenkins import JenkinsArgs, agent_role_rules, jcasc_scripts
from cnplatform.monitoring import values as MV
from tests.helpers import manifests

STACKS = ("dev", "staging", "prod")
READ = {"get", "list", "watch", "*"}


def own_objects(rendered, stack: str) -> list[dict]:
    return [doc for _, doc in manifests(rendered(stack))]


@functools.lru_cache(maxsize=None)
def _chart_objects(render_dir: str, cluster: str, release_name: str) -> tuple:
    pytest.importorskip("helm_python")
    from e2e import helm

    for release in helm.load_releases(render_dir, cluster):
        if release.name == release_name:
            out = helm.render_release(release, kube_version="1.35.0", api_versions=[],
                                      is_namespaced=helm.static_is_namespaced(), include_crds=False)
            return tuple(out.objects)
    raise AssertionError(f"no release {release_name} on {cluster}")


def kps_objects(rendered, stack: str = "dev", cluster: str = "dev") -> list[dict]:
    return list(_chart_objects(str(rendered(stack)), cluster, MV.RELEASE))


def secret_reads(objs: list[dict]) -> list[str]:
    """``binding -> role`` for every (Cluster)Role bound in ``objs`` that reads Secrets."""
    roles = {(o["kind"], o["metadata"]["name"]): o for o in objs if o["kind"] in ("Role", "ClusterRole")}
    out = []
    for b in (o for o in objs if o["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        role = roles.get((b["roleRef"]["kind"], b["roleRef"]["name"]))
        for rule in (role or {}).get("rules") or []:
            if {"secrets", "*"} & set(rule.get("resources") or []) and READ & set(rule.get("verbs") or []):
                out.append(f"{b['kind']} {b['metadata']['name']} -> {b['roleRef']['name']}")
    return out


# ------------------------------------------------------------------------- 1, 2: monitoring RBAC


def test_grafana_reads_configmaps_in_monitoring_only():
    values = MV.chart_values(tier="prod", cluster="c", cloud="aws", retention="7d", storage="20Gi")
    grafana = values["grafana"]
    assert grafana["rbac"] == {"namespaced": True, "useExistingRole": MV.GRAFANA_ROLE}
    assert grafana["sidecar"]["dashboards"]["searchNamespace"] == MV.NAMESPACE
    assert grafana["sidecar"]["datasources"]["searchNamespace"] == MV.NAMESPACE
    assert grafana["sidecar"]["dashboards"]["resource"] == grafana["sidecar"]["datasources"]["resource"] == "configmap"
    assert MV.GRAFANA_ROLE_RULES == [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]


def test_our_grafana_role_is_configmaps_only(rendered):
    roles = [o for o in own_objects(rendered, "dev")
             if o["kind"] == "Role" and o["metadata"]["name"] == MV.GRAFANA_ROLE]
    assert len(roles) == 1 and roles[0]["metadata"]["namespace"] == MV.NAMESPACE
    assert roles[0]["rules"] == MV.GRAFANA_ROLE_RULES


def test_monitoring_chart_reads_no_secret_but_the_operators(rendered):
    """The chart with our values: Grafana has no ClusterRole and no Secret access, kube-state-metrics
    lists no Secrets; only the operator (it writes the Prometheus/Alertmanager config Secrets) does."""
    objs = kps_objects(rendered)
    grafana = [o for o in objs if o["kind"] in ("ClusterRole", "ClusterRoleBinding", "Role")
               and "grafana" in o["metadata"]["name"]]
    assert grafana == [], [o["metadata"]["name"] for o in grafana]
    binding = [o for o in objs if o["kind"] == "RoleBinding" and o["metadata"]["name"] == f"{MV.RELEASE}-grafana"]
    assert binding and binding[0]["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                 "name": MV.GRAFANA_ROLE}
    assert secret_reads(objs) == [f"ClusterRoleBinding {MV.RELEASE}-operator -> {MV.RELEASE}-operator"]
    ksm = next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("kube-state-metrics"))
    args = " ".join(ksm["spec"]["template"]["spec"]["containers"][0].get("args") or [])
    assert "--resources=" in args and "secrets" not in args.split("--resources=")[1].split()[0].split(",")
    sidecar_envs = {c["name"]: {e["name"]: e.get("value") for e in c.get("env") or []}
                    for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("grafana")
                    for c in o["spec"]["template"]["spec"]["containers"]}
    for name in MV.GRAFANA_SIDECARS:
        assert sidecar_envs[name]["NAMESPACE"] == MV.NAMESPACE and sidecar_envs[name]["RESOURCE"] == "configmap"


# -------------------------------------------------------------------------- 8: node-exporter


def test_monitoring_is_restricted_and_node_exporter_has_its_own_namespace(rendered):
    namespaces = {o["metadata"]["name"]: o["metadata"]["labels"] for o in own_objects(rendered, "dev")
                  if o["kind"] == "Namespace"}
    assert namespaces[MV.NAMESPACE]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert namespaces[MV.NODE_EXPORTER_NAMESPACE]["pod-security.kubernetes.io/enforce"] == "privileged"
    objs = kps_objects(rendered)
    ds = [o for o in objs if o["kind"] == "DaemonSet"]
    assert [o["metadata"]["namespace"] for o in ds] == [MV.NODE_EXPORTER_NAMESPACE]
    pod = ds[0]["spec"]["template"]["spec"]
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]["securityContext"]
    assert container["capabilities"] == {"drop": ["ALL"]} and container["allowPrivilegeEscalation"] is False
    # Every other workload the chart puts in monitoring meets the restricted profile.
    for o in objs:
        if o["kind"] in ("Deployment", "StatefulSet") and o["metadata"]["namespace"] == MV.NAMESPACE:
            spec = o["spec"]["template"]["spec"]
            assert not spec.get("hostNetwork") and not any("hostPath" in v for v in spec.get("volumes") or [])
            psc = spec.get("securityContext") or {}
            for c in spec["containers"] + (spec.get("initContainers") or []):
                sc = c.get("securityContext") or {}
                where = f"{o['metadata']['name']}/{c['name']}"
                assert sc.get("allowPrivilegeEscalation") is False, where
                assert "ALL" in (sc.get("capabilities") or {}).get("drop", []), where
                assert sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True, where
                seccomp = sc.get("seccompProfile") or psc.get("seccompProfile") or {}
                assert seccomp.get("type") == "RuntimeDefault", where


# ------------------------------------------------------------------------ 4: default-deny


@pytest.mark.parametrize("stack", STACKS)
def test_every_namespace_we_create_denies_by_default(rendered, stack):
    objs = own_objects(rendered, stack)
    created = {(o["metadata"]["name"]) for o in objs if o["kind"] == "Namespace"}
    denied = {o["metadata"]["namespace"] for o in objs
              if o["kind"] == "NetworkPolicy" and NP.is_default_deny(o["spec"])}
    assert {"istio-system", "monitoring", "node-exporter", "cert-manager", "shop"} <= created
    assert created - denied == set()


def _opens_everything(rule: dict) -> bool:
    """An egress rule to any address on any port."""
    to = rule.get("to")
    return not rule.get("ports") and (not to or any((p.get("ipBlock") or {}).get("cidr") == "0.0.0.0/0" for p in to))


@pytest.mark.parametrize("stack", STACKS)
def test_no_platform_egress_is_open_to_everything(rendered, stack):
    """Jenkins' (and every platform namespace's) egress: named destinations or named ports only."""
    for o in own_objects(rendered, stack):
        if o["kind"] == "NetworkPolicy":
            bad = [r for r in o["spec"].get("egress") or [] if _opens_everything(r)]
            assert not bad, f"{o['metadata']['namespace']}/{o['metadata']['name']}: {bad}"


def test_istiods_chart_policy_is_off_and_ours_narrow():
    policies = NP.istio_system_policies(multicluster=True)
    assert policies["istiod-ingress"]["ingress"] == [{"ports": NP.tcp(15012, 15017)}]
    assert {"to": NP.ANYWHERE, "ports": NP.tcp(15443)} in policies["ingressgateway-egress"]["egress"]
    single = NP.istio_system_policies()["ingressgateway-egress"]["egress"]
    assert {"to": NP.ANYWHERE, "ports": NP.tcp(15443)} not in single
    from cnplatform.mesh.istio import IstioMeshArgs
    from cnplatform.mesh.values import istiod_values
    assert istiod_values(IstioMeshArgs(cluster_name="c"))["global"]["networkPolicy"] == {"enabled": False}


def test_jenkins_egress_is_dns_api_and_https():
    policies = NP.jenkins_policies()
    assert NP.is_default_deny(policies[NP.DEFAULT_DENY])
    egress = policies["dns-api-server-https"]["egress"]
    assert egress == [NP.dns_egress(), {"to": NP.ANYWHERE, "ports": NP.tcp(443, 6443)}]


# ------------------------------------------------------------------------------ 7: Jenkins


def test_jenkins_authorization_is_a_matrix():
    args = JenkinsArgs(services=["order"], admins=["alice"], developers=["bob", "alice"])
    security = yaml.safe_load(jcasc_scripts(args)["security"])
    strategy = security["jenkins"]["authorizationStrategy"]
    assert list(strategy) == ["globalMatrix"]
    entries = {e["user"]["name"]: e["user"]["permissions"] for e in strategy["globalMatrix"]["entries"]}
    assert entries["${chart-admin-username}"] == ["Overall/Administer"] == entries["alice"]
    assert "Overall/Administer" not in entries["bob"] and "Job/Build" in entries["bob"]
    assert not any(p.startswith(("Job/Configure", "Run/Replay", "Overall/Administer")) for p in entries["bob"])
    assert "authenticated" not in entries and "anonymous" not in entries


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_jenkins_agents_cannot_exec(rendered, stack):
    # Agents get no RBAC at all: no (Cluster)RoleBinding names an agent ServiceAccount; pods/exec is
    # only the controller's (agent_role_rules: its schedule-agents Role in jenkins-deploy).
    agents = {"jenkins-agent", "jenkins-preview", "jenkins-deploy"}
    for doc in own_objects(rendered, stack):
        if doc.get("kind") in ("RoleBinding", "ClusterRoleBinding"):
            assert not {s.get("name") for s in doc.get("subjects") or []} & agents, doc["metadata"]
    assert [s["name"] for r in own_objects(rendered, stack) if r.get("kind") == "RoleBinding"
            and r["roleRef"]["name"] == "jenkins-schedule-agents" for s in r["subjects"]] == ["jenkins"]
    assert any("pods/exec" in rule["resources"] for rule in agent_role_rules())


@pytest.mark.parametrize("stack", ["dev", "staging"])
def test_rendered_jenkins_uses_the_matrix(rendered, stack):
    values = yaml.safe_load((next((rendered(stack) / "helm").glob("*/jenkins.yaml"))).read_text())
    security = yaml.safe_load(values["controller"]["JCasC"]["configScripts"]["security"])
    assert "globalMatrix" in security["jenkins"]["authorizationStrategy"]
    assert any(p.startswith("matrix-auth:") for p in values["controller"]["installPlugins"])


# ------------------------------------------------------------------------ 11: retained volumes


@pytest.mark.parametrize("stack, policy", [("prod", "Retain")])
def test_protected_eks_default_storage_class_retains_volumes(rendered, stack, policy):
    classes = [o for o in own_objects(rendered, stack)
               if o["kind"] == "StorageClass" and o["metadata"]["name"] == "gp3"]
    assert classes and all(o["reclaimPolicy"] == policy for o in classes)


def test_reclaim_policy_follows_deletion_protection():
    from cnplatform.cluster.eks import storage_reclaim_policy
    assert (storage_reclaim_policy(True), storage_reclaim_policy(False)) == ("Retain", "Delete")


# ---------------------------------------------------------------- 5: east-west gateway ports


def test_east_west_gateway_pods_accept_only_cross_network_traffic(rendered):
    """Multi-primary: no peer calls istiod through the east-west gateway (15012/15017 are refused)."""
    for o in own_objects(rendered, "prod"):
        if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "istio-eastwestgateway":
            ports = {p["port"] for rule in o["spec"]["ingress"] for p in rule["ports"]}
            assert ports == {15443, 15021, 15090}
            break
    else:
        raise AssertionError("no east-west gateway NetworkPolicy in prod")


# ----------------------------------------------------------------------- 12: dead man's switch


def test_watchdog_goes_to_the_dead_mans_switch():
    from cnplatform.monitoring.alerting import ReceiverSpec, alertmanager_config
    config = alertmanager_config([ReceiverSpec("deadman", "webhook", "deadman"),
                                  ReceiverSpec("oncall", "pagerduty", "page")])
    first = config["route"]["routes"][0]
    assert first == {"receiver": "deadman", "matchers": ['alertname="Watchdog"'], "group_wait": "0s",
                     "group_interval": "1m", "repeat_interval": "1m"}
    url_file = "/etc/alertmanager/secrets/alertmanager-receivers/deadman"
    deadman = {"name": "deadman", "webhook_configs": [{"url_file": url_file, "send_resolved": False}]}
    assert deadman in config["receivers"]
    assert not any(r.get("receiver") == "deadman" for r in config["route"]["routes"][1:])


def test_prod_routes_the_watchdog_and_warns_without_one(rendered):
    from stacks.compose.layers import monitoring as layer
    from tests.helpers import config_of
    values = yaml.safe_load(next((rendered("prod") / "helm").glob("*/kube-prometheus-stack.yaml")).read_text())
    assert values["alertmanager"]["config"]["route"]["routes"][0]["receiver"] == "deadman"
    cfg = config_of("prod")
    cfg.monitoring.receivers = [r for r in cfg.monitoring.receivers if r.severity != "deadman"]
    assert any("dead man's switch" in w for w in layer.config_warnings(cfg, cfg.clusters[0]))


# ------------------------------------------------------------------- 14: Karpenter in prod


def test_karpenter_disruption_is_a_tier_default_and_prod_is_slower(rendered):
    from stacks.config import TIERS

    prod = TIERS["prod"]
    pools = [o for o in own_objects(rendered, "prod") if o["kind"] == "NodePool"]
    assert pools
    for pool in pools:
        disruption = pool["spec"]["disruption"]
        assert (disruption["consolidateAfter"], disruption["budgets"]) == (prod.karpenter_consolidate_after,
                                                                          [{"nodes": prod.karpenter_disruption_budget}])
    assert prod.karpenter_consolidate_after != TIERS["dev"].karpenter_consolidate_after == "1m"


def test_prod_warns_about_an_unpinned_karpenter_ami():
    from stacks.compose.clusters.aws import karpenter_warnings
    from tests.helpers import config_of
    cfg = config_of("prod")
    cfg.addons.karpenter.ami_alias = "al2023@latest"
    assert any("ami_alias" in w for w in karpenter_warnings(cfg))
    cfg.addons.karpenter.ami_alias = "al2023@v20251103"
    assert karpenter_warnings(cfg) == []
    assert karpenter_warnings(config_of("staging")) == []
    # Our own prod stack pins it.
    assert config_of("prod").addons.karpenter.ami_alias == "al2023@v20260903"
    assert karpenter_warnings(config_of("prod")) == []


# ------------------------------------------------------------------------ 3: CI (Jenkins part)


def test_pull_requests_preview_with_read_only_identities_and_the_policy_pack():
    from cnplatform.cicd.jenkins import PIPELINE_CREDENTIALS, PREVIEW_CREDENTIALS
    from tests.helpers import ROOT
    text = (ROOT / "Jenkinsfile").read_text()
    creds = text[text.index("def pulumiCredentials"):text.index("def runPulumi")]
    for deploy, preview in zip(PIPELINE_CREDENTIALS[:1], PREVIEW_CREDENTIALS, strict=True):
        assert f"preview ? '{preview}' : '{deploy}'" in creds
    assert "def preview = command != 'up'" in creds
    assert text.count("--policy-pack policy") == 2
    assert "pulumi up --stack \"$STACK\" --yes --non-interactive --diff --policy-pack policy" in text
    assert "readFile('ci/jenkins/pods/" not in text and "readTrusted('ci/jenkins/pods/deploy.yaml')" in text
