"""CI/CD layer: Jenkins in the ``jenkins`` namespace of one cluster per stack (when ``cicd.enabled``).

Controller size is a pure function of the tier (``TierDefaults.jenkins_resources``); the footprint is computed
from the same values the chart receives, plus ONE agent pod (the largest of the pipeline's pod
templates in ``ci/jenkins/pods/`` that this stack's pipeline starts: ``deploy`` only where Jenkins
deploys a stack): agents are ephemeral, one build at a time is what we reserve for.
"""
from __future__ import annotations

import copy
from functools import lru_cache

import pulumi
import yaml

from cnplatform.cicd.identity import static_key_clouds
from cnplatform.cicd.jenkins import Jenkins, JenkinsArgs, footprint_resources
from cnplatform.cluster.priority import PLATFORM
from cnplatform.quantity import cpu_millicores, memory_mib
from stacks.compose.context import ClusterContext
from stacks.compose.workloads import Workload
from stacks.config import ROOT

AGENT_PODS = ROOT / "ci" / "jenkins" / "pods"


def jenkins_cluster(cfg) -> str:
    """The one cluster of the stack that runs Jenkins."""
    return cfg.cicd.cluster or cfg.clusters[0].name


def deploy_plan(cfg, stack: str) -> tuple[list[str], list[str]]:
    """(stacks this Jenkins deploys in order, those behind a manual approval).

    Default: the stack itself, so every environment's Jenkins deploys only its environment (no two
    controllers run ``pulumi up`` on one stack); none for tier dev, whose state is on a laptop.
    """
    stacks = cfg.cicd.deploy_stacks
    if stacks is None:
        stacks = [stack] if cfg.defaults.jenkins_deploys_own_stack else []
    return list(stacks), [s for s in cfg.cicd.approval_stacks if s in stacks]


def eks_access_clusters(cfg, stack: str) -> list[str]:
    """The EKS clusters of this stack on which Jenkins' IRSA identities (``<cluster>-jenkins-preview``
    / ``-deploy``) get an access entry: Jenkins' own cluster, when it is EKS and Jenkins deploys this
    stack. Another EKS cluster of the stack would need one too, but its entries would have to wait for
    roles created by another cluster's layer: refused until supported (docs/clusters.md)."""
    home = next(c for c in cfg.clusters if c.name == jenkins_cluster(cfg))
    if home.cloud != "aws" or stack not in deploy_plan(cfg, stack)[0]:
        return []
    others = [c.name for c in cfg.clusters if c.cloud == "aws" and c.name != home.name]
    if others:
        raise ValueError(f"cicd: Jenkins on EKS cluster {home.name} deploys stack {stack}, whose EKS "
                         f"cluster(s) {', '.join(others)} would not admit its IRSA roles (no access entry): "
                         "one EKS cluster per stack when Jenkins runs on EKS")
    return [home.name]


def jenkins_args(cfg, cluster_cfg, registries=None, stack: str = "", workload_identity=None) -> JenkinsArgs:
    """The component's inputs for one cluster, from the stack config (tier decides the size).

    The agents' cloud identities are those of Jenkins' own cluster (``workload_identity``, its output);
    a cloud of the stack other than that one keeps static keys (``static_key_clouds``)."""
    sizes = cfg.defaults.jenkins_resources
    cicd = cfg.cicd
    deploy_stacks, approval_stacks = deploy_plan(cfg, stack)
    return JenkinsArgs(
        services=[s.name for s in cfg.services], priority_class_name=PLATFORM,
        charts_dir=cfg.charts_dir,
        repo_url=cicd.repo_url,
        branch=cicd.branch,
        registries=registries if registries is not None else {},
        deploy_image=cicd.deploy_image,
        deploy_stacks=deploy_stacks,
        approval_stacks=approval_stacks,
        admin_user=cicd.admin_user, admins=list(cicd.admins), developers=list(cicd.developers),
        storage=cicd.storage,
        storage_class=cicd.storage_class,
        controller_resources=copy.deepcopy(sizes["controller"]),
        reload_resources=copy.deepcopy(sizes["reload"]),
        pod_security="baseline",
        mesh_injection=False,
        cloud=cluster_cfg.cloud,
        cluster_name=cluster_cfg.name,
        workload_identity=workload_identity,
        static_key_clouds=static_key_clouds(cluster_cfg.cloud, [c.cloud for c in cfg.clusters])
        if deploy_stacks else [],
    )


def deploy(ctx: ClusterContext) -> None:
    cfg = ctx.cfg
    if not cfg.cicd.enabled:
        return
    names = [c.name for c in cfg.clusters]
    if jenkins_cluster(cfg) not in names:
        raise ValueError(f"cicd.cluster: unknown cluster {cfg.cicd.cluster!r} (clusters: {', '.join(names)})")
    if ctx.name != jenkins_cluster(cfg):
        return
    registries = ({c.name: cfg.cicd.registry for c in cfg.clusters} if cfg.cicd.registry
                  else ctx.shared.registries)
    args = jenkins_args(cfg, ctx.cluster_cfg, registries, pulumi.get_stack(), ctx.cluster.workload_identity)
    jenkins = Jenkins(f"{ctx.name}-jenkins", args, opts=ctx.k8s_opts())
    ctx.jenkins = jenkins
    if eks_access_clusters(cfg, pulumi.get_stack()):
        from cnplatform.cluster.eks import EksCluster
        from stacks.compose.clusters.aws import grant_ci_access

        assert isinstance(ctx.cluster, EksCluster)
        grant_ci_access(ctx.cluster, ctx.name, jenkins.identities)
    ctx.outputs["jenkins"] = {"namespace": jenkins.namespace, "url": jenkins.url,
                              "admin_secret": jenkins.admin_secret}


@lru_cache(maxsize=None)
def agent_pods() -> dict[str, dict]:
    """The pipeline's agent pod templates (the Jenkinsfile's ``yamlFile``s), by stage name."""
    return {p.stem: yaml.safe_load(p.read_text()) for p in sorted(AGENT_PODS.glob("*.yaml"))}


def pod_resources(pod: dict) -> dict[str, dict[str, str]]:
    """Sum of the containers' requests and limits of a pod manifest."""
    out: dict[str, dict[str, str]] = {}
    for kind in ("requests", "limits"):
        cpu = sum(cpu_millicores(((c.get("resources") or {}).get(kind) or {}).get("cpu", 0))
                  for c in pod["spec"]["containers"])
        mem = sum(memory_mib(((c.get("resources") or {}).get(kind) or {}).get("memory", 0))
                  for c in pod["spec"]["containers"])
        out[kind] = {"cpu": f"{cpu}m", "memory": f"{mem}Mi"}
    return out


#: The agent pod (``ci/jenkins/pods/<name>.yaml``) that only the Preview and Deploy stages start: the
#: Jenkinsfile skips both when the stack's Jenkins deploys no stack (tier dev).
DEPLOY_POD = "deploy"


def footprint(cfg, cluster_cfg) -> list[Workload]:
    if not cfg.cicd.enabled or cluster_cfg.name != jenkins_cluster(cfg):
        return []
    res = footprint_resources(jenkins_args(cfg, cluster_cfg))
    # deploy_plan of any stack name: only whether it deploys anything matters here.
    deploys = bool(deploy_plan(cfg, "stack")[0])
    pods = {name: pod_resources(pod) for name, pod in agent_pods().items() if deploys or name != DEPLOY_POD}
    largest = max(pods, key=lambda n: (memory_mib(pods[n]["requests"]["memory"]),
                                       cpu_millicores(pods[n]["requests"]["cpu"])))
    return [
        Workload.of("cicd", "jenkins-controller", 1, res["controller"]),
        Workload.of("cicd", "jenkins-config-reload", 1, res["config-reload"]),
        Workload.of("cicd", f"jenkins-agent-{largest}", 1, pods[largest]),
    ]
