"""Jenkins (components/cnplatform/cicd, stacks/compose/layers/cicd.py), its agent pods and the root Jenkinsfile."""
from __future__ import annotations

import json
import re
from functools import lru_cache

import kubernetes_validate
import pytest
import yaml

from cnplatform.cicd import jenkins as j
from cnplatform.testing import Secret, unwrap
from stacks.checks import check_config
from stacks.checks.footprint import capacity_errors
from stacks.compose.layers import cicd as layer
from stacks.config import ConfigError
from tests.helpers import ROOT, capture_raw, capture_stack, config_of, with_changes
from tests.reference_checks import chart_version, unknown_values_keys

JENKINSFILE = (ROOT / "Jenkinsfile").read_text()
PODS = ROOT / "ci" / "jenkins" / "pods"
WILDCARD = "*"


def chart_reg(capture, cluster="dev"):
    regs = [r for r in capture.by_type("kubernetes:helm.sh/v4:Chart")
            if unwrap(r.inputs).get("chart") == "jenkins" and capture.cluster_of(r) == cluster]
    assert len(regs) == 1
    return regs[0]


@lru_cache(maxsize=None)
def dev_values() -> dict:
    return unwrap(chart_reg(capture_stack("dev")).inputs)["values"]


def scripts(values: dict) -> dict[str, dict]:
    return {k: yaml.safe_load(v) for k, v in values["controller"]["JCasC"]["configScripts"].items()}


def seed_jobs(values: dict) -> list[str]:
    text = scripts(values)["jobs"]["jobs"][0]["script"]
    return re.findall(r"multibranchPipelineJob\('([^']+)'\)", text)


def cicd_objects(capture, kind):
    """Manifests of ``kind`` registered under a cnplatform:cicd component."""
    index = {r.urn: r for r in capture.resources}
    out = []
    for reg in capture.resources:
        if not reg.type.endswith(":" + kind):
            continue
        node = index.get(reg.parent)
        while node is not None and not node.type.startswith("cnplatform:cicd:"):
            node = index.get(node.parent)
        if node is not None:
            from stacks.render import manifest_of
            out.append(manifest_of(reg))
    return out


# ----------------------------------------------------------------------------------- chart + values


def test_chart_pinned_from_upstream_repo():
    inputs = unwrap(chart_reg(capture_stack("dev")).inputs)
    assert inputs["chart"] == "jenkins" and inputs["name"] == "jenkins" and inputs["namespace"] == "jenkins"
    assert inputs["version"] == chart_version("jenkins") == j.CHART_VERSION == "5.9.53"
    assert inputs["repositoryOpts"] == {"repo": "https://charts.jenkins.io"}


def test_values_keys_exist_in_pinned_chart():
    assert unknown_values_keys("jenkins", dev_values()) == []


def test_no_literal_secret_in_values_and_admin_from_existing_secret():
    values = dev_values()
    text = json.dumps(values)
    assert "secret::" not in text
    admin = values["controller"]["admin"]
    assert admin["existingSecret"] == j.ADMIN_SECRET == "jenkins-admin"
    assert (admin["userKey"], admin["passwordKey"]) == ("jenkins-admin-user", "jenkins-admin-password")
    assert "password" not in admin and "username" not in admin
    # createSecret must stay true: the chart mounts the admin secret only then (and creates none).
    assert admin["createSecret"] is True


def test_admin_secret_is_generated_and_marked_secret():
    capture = capture_stack("dev")
    secrets = [r for r in capture.by_type("kubernetes:core/v1:Secret")
               if unwrap(r.inputs)["metadata"]["name"] == "jenkins-admin"]
    assert len(secrets) == 1
    reg = secrets[0]
    assert unwrap(reg.inputs)["metadata"]["namespace"] == "jenkins"
    assert isinstance(reg.inputs["stringData"], Secret)
    data = unwrap(reg.inputs)["stringData"]
    assert set(data) == {"jenkins-admin-user", "jenkins-admin-password"}
    assert data["jenkins-admin-password"].startswith("secret::")  # the RandomPassword result
    passwords = [r for r in capture.by_type("random:index/randomPassword:RandomPassword")
                 if r.name == "dev-jenkins-admin-password"]
    assert len(passwords) == 1 and unwrap(passwords[0].inputs)["length"] >= 20


def test_jcasc_scripts_parse_and_security():
    values = dev_values()
    assert values["controller"]["JCasC"]["defaultConfig"] is False
    raw = values["controller"]["JCasC"]["configScripts"]
    assert set(raw) == {"security", "cloud", "env", "jobs"}
    for name, text in raw.items():
        assert isinstance(yaml.safe_load(text), dict), name
        assert "{{" not in text and "}}" not in text, f"{name}: the chart runs configScripts through tpl"
    jenkins = scripts(values)["security"]["jenkins"]
    realm = jenkins["securityRealm"]["local"]
    assert realm["allowsSignup"] is False
    assert realm["users"] == [{"id": "${chart-admin-username}", "name": "Jenkins Admin",
                               "password": "${chart-admin-password}"}]
    assert jenkins["authorizationStrategy"] == {"globalMatrix": {"entries": [
        {"user": {"name": "${chart-admin-username}", "permissions": ["Overall/Administer"]}}]}}
    assert "anonymous" not in json.dumps(scripts(values))
    assert "unsecured" not in json.dumps(scripts(values))
    assert jenkins["numExecutors"] == 0


def test_kubernetes_cloud_runs_pod_agents_in_jenkins_agents_with_agent_sa():
    values = dev_values()
    clouds = scripts(values)["cloud"]["jenkins"]["clouds"]
    assert len(clouds) == 1
    cloud = clouds[0]["kubernetes"]
    assert cloud["namespace"] == "jenkins-agents"  # untrusted code never runs next to the controller
    assert cloud["jenkinsUrl"] == "http://jenkins.jenkins.svc.cluster.local:8080"
    assert cloud["jenkinsTunnel"] == "jenkins-agent.jenkins.svc.cluster.local:50000"
    for template in cloud["templates"]:
        assert template["namespace"] == "jenkins-agents" and template["serviceAccount"] == "jenkins-agent"
        assert all(":" in c["image"] and not c["image"].endswith(":latest") for c in template["containers"])


def test_global_env_from_config_and_cluster_registry():
    capture = capture_stack("dev")
    env = {e["key"]: e["value"] for e in
           scripts(dev_values())["env"]["jenkins"]["globalNodeProperties"][0]["envVars"]["env"]}
    cfg = config_of("dev")
    # kind has no registry (images are loaded into its node): nothing to push to.
    assert capture.outputs["clusters"]["dev"]["registry_url"] == "" and env["REGISTRIES"] == ""
    assert env["DEPLOY_BRANCH"] == cfg.cicd.branch
    # dev's Jenkins (a laptop) deploys nothing by default: test, build, preview.
    assert cfg.cicd.deploy_stacks is None and env["DEPLOY_STACKS"] == "" and env["APPROVAL_STACKS"] == ""


def test_jenkins_pushes_to_the_registry_of_every_cluster_of_its_stack():
    """One Jenkins per stack, but each cluster pulls from its own cloud's registry (issue #15 item 5)."""
    prod = capture_stack("prod")
    chart = next(r for r in prod.by_type("kubernetes:helm.sh/v4:Chart") if unwrap(r.inputs).get("chart") == "jenkins")
    env = {e["key"]: e["value"] for e in scripts(unwrap(chart.inputs)["values"])["env"]["jenkins"]
           ["globalNodeProperties"][0]["envVars"]["env"]}
    clusters = prod.outputs["clusters"]
    assert env["REGISTRIES"] == " ".join(f"{c}={clusters[c]['registry_url']}" for c in sorted(clusters))
    assert clusters["prod-eks"]["registry_url"].endswith(".amazonaws.com/prod-eks")  # ECR repos: <cluster>/<svc>
    assert clusters["prod-gke"]["registry_url"].endswith("-docker.pkg.dev/acme-shop-prod/platform")


def test_one_jenkins_per_stack_deploying_its_own_stack():
    prod = capture_stack("prod")
    charts = [r for r in prod.by_type("kubernetes:helm.sh/v4:Chart") if unwrap(r.inputs).get("chart") == "jenkins"]
    assert [prod.cluster_of(r) for r in charts] == ["prod-eks"]  # the first cluster, not both
    env = {e["key"]: e["value"] for e in scripts(unwrap(charts[0].inputs)["values"])["env"]["jenkins"]
           ["globalNodeProperties"][0]["envVars"]["env"]}
    assert env["DEPLOY_STACKS"] == "prod" and env["APPROVAL_STACKS"] == "prod"
    cfg = config_of("prod")
    assert [w.name for w in layer.footprint(cfg, cfg.clusters[1])] == []
    assert layer.deploy_plan(config_of("staging"), "staging") == (["staging"], [])
    promoting = check_config(with_changes("staging", lambda r: r["cicd"].update(
        {"deploy_stacks": ["dev", "staging", "prod"], "cluster": "staging-gke"})))
    assert layer.deploy_plan(promoting, "staging") == (["dev", "staging", "prod"], ["prod"])
    env = {e["key"]: e["value"] for e in yaml.safe_load(j.jcasc_scripts(
        layer.jenkins_args(promoting, promoting.clusters[0], "r", "staging"))["env"])["jenkins"]
        ["globalNodeProperties"][0]["envVars"]["env"]}
    assert env["DEPLOY_STACKS"] == "dev staging prod" and env["APPROVAL_STACKS"] == "prod"


def test_seed_creates_one_pipeline_per_service():
    values = dev_values()
    cfg = config_of("dev")
    assert seed_jobs(values) == [s.name for s in cfg.services]
    text = scripts(values)["jobs"]["jobs"][0]["script"]
    assert text.count("scriptPath('Jenkinsfile')") == len(cfg.services)
    assert text.count(f"repositoryUrl('{cfg.cicd.repo_url}')") == len(cfg.services)
    assert f"includes('{cfg.cicd.branch} PR-*')" in text
    assert "${" not in text  # JCasC would resolve it as a variable


def test_seed_follows_the_services_and_other_git_hosts():
    args = j.JenkinsArgs(services=["a", "b", "c"], repo_url="https://git.example.com/shop.git", branch="trunk")
    text = j.seed_script(args.services, args.repo_url, args.branch)
    assert re.findall(r"multibranchPipelineJob\('([^']+)'\)", text) == ["a", "b", "c"]
    assert "remote('https://git.example.com/shop.git')" in text and "github {" not in text
    assert j.github_repo("git@github.com:acme/shop.git") == ("acme", "shop")
    quoted = j.seed_script(["x"], "https://github.com/a/b'c", "main")
    assert "repository('b\\'c')" in quoted  # escaped, not injected


def test_added_service_gets_a_job():
    raw = with_changes("dev", lambda r: r["services"].append({"name": "cart", "image": "registry.example.com/cart:1"}))
    cfg = check_config(raw)
    values = j.jenkins_values(layer.jenkins_args(cfg, cfg.clusters[0]), {"dev": "registry.example.com"})
    assert seed_jobs(values)[-1] == "cart" and len(seed_jobs(values)) == 5


def test_plugins_pinned_exactly():
    controller = dev_values()["controller"]
    plugins = controller["installPlugins"]
    assert controller["installLatestPlugins"] is False and controller["installLatestSpecifiedPlugins"] is False
    assert all(re.match(r"^[a-z0-9-]+:\d[\w.-]*$", p) for p in plugins), plugins
    ids = [p.split(":")[0] for p in plugins]
    assert len(ids) == len(set(ids))
    assert {"kubernetes", "workflow-aggregator", "git", "configuration-as-code", "job-dsl",
            "kubernetes-credentials-provider", "credentials-binding", "github-branch-source",
            "lockable-resources"} <= set(ids)
    assert "additionalPlugins" not in controller


def test_persistent_home_sized_from_config():
    values = dev_values()
    assert values["persistence"]["enabled"] is True
    assert values["persistence"]["size"] == config_of("dev").cicd.storage == "4Gi"
    raw = with_changes("dev", lambda r: r["cicd"].update({"storage": "6Gi", "storage_class": "fast"}))
    cfg = check_config(raw)
    values = j.jenkins_values(layer.jenkins_args(cfg, cfg.clusters[0]))
    assert values["persistence"]["size"] == "6Gi" and values["persistence"]["storageClass"] == "fast"


def test_controller_pod_meets_restricted_profile():
    controller = dev_values()["controller"]
    pod = controller["podSecurityContextOverride"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 1000
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    for ctx in (controller["containerSecurityContext"],
                controller["sidecars"]["configAutoReload"]["containerSecurityContext"]):
        assert ctx["allowPrivilegeEscalation"] is False and ctx["capabilities"] == {"drop": ["ALL"]}
        assert ctx["readOnlyRootFilesystem"] is True


def test_namespace_baseline_without_sidecar_injection():
    namespaces = [n for n in cicd_objects(capture_stack("dev"), "Namespace")]
    assert sorted(n["metadata"]["name"] for n in namespaces) == ["jenkins", "jenkins-agents", "jenkins-deploy"]
    for ns in namespaces:
        labels = ns["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
        assert labels["pod-security.kubernetes.io/audit"] == "restricted"
        assert labels["istio-injection"] == "disabled"


# ------------------------------------------------------------------------------------------- RBAC


def test_agent_role_is_minimal_and_namespaced():
    """Agents get no RBAC at all; the controller gets the chart's schedule-agents rules in
    jenkins-deploy (the chart covers agent.namespace = jenkins-agents), nothing cluster-wide."""
    capture = capture_stack("dev")
    [role] = cicd_objects(capture, "Role")
    assert role["metadata"] == {**role["metadata"], "name": "jenkins-schedule-agents", "namespace": "jenkins-deploy"}
    assert role["rules"] == j.agent_role_rules()
    assert not any(r["resources"] == ["secrets"] or "secrets" in r["resources"] for r in role["rules"])
    for rule in role["rules"]:
        for key in ("apiGroups", "resources", "verbs", "resourceNames"):
            assert WILDCARD not in rule.get(key, []), rule
    [binding] = cicd_objects(capture, "RoleBinding")
    assert binding["metadata"]["namespace"] == "jenkins-deploy"
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": "jenkins-schedule-agents"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "jenkins", "namespace": "jenkins"}]
    sas = {(sa["metadata"]["namespace"], sa["metadata"]["name"]) for sa in cicd_objects(capture, "ServiceAccount")}
    assert sas == {("jenkins-agents", "jenkins-agent"), ("jenkins-deploy", "jenkins-preview"),
                   ("jenkins-deploy", "jenkins-deploy")}
    assert all(sa["automountServiceAccountToken"] is False for sa in cicd_objects(capture, "ServiceAccount"))
    assert not cicd_objects(capture, "ClusterRole") and not cicd_objects(capture, "ClusterRoleBinding")


def test_chart_rbac_namespaced():
    values = dev_values()
    # rbac.yaml of chart 5.9.53 renders only Roles/RoleBindings in the release (= agent) namespace;
    # readSecrets adds a Role for the kubernetes-credentials-provider, in `jenkins` only.
    assert values["rbac"] == {"create": True, "readSecrets": True}
    assert values["agent"]["namespace"] == "jenkins-agents"
    assert values["serviceAccountAgent"] == {"create": False, "name": "jenkins-agent"}


# -------------------------------------------------------------------------------------- footprint


def test_controller_size_is_a_function_of_tier_and_footprint_uses_the_values():
    from stacks.config import TIERS

    sizes = {t: TIERS[t].jenkins_resources["controller"]["requests"] for t in ("dev", "staging", "prod")}
    from cnplatform.quantity import cpu_millicores, memory_mib
    assert [memory_mib(sizes[t]["memory"]) for t in ("dev", "staging", "prod")] == sorted(
        memory_mib(sizes[t]["memory"]) for t in ("dev", "staging", "prod"))
    assert cpu_millicores(sizes["dev"]["cpu"]) <= 250 and memory_mib(sizes["dev"]["memory"]) <= 1024
    cfg = config_of("dev")
    items = {w.name: w for w in layer.footprint(cfg, cfg.clusters[0])}
    values = dev_values()["controller"]
    assert items["jenkins-controller"].memory_request == memory_mib(values["resources"]["requests"]["memory"])
    assert items["jenkins-controller"].cpu_limit == cpu_millicores(values["resources"]["limits"]["cpu"])
    reload = values["sidecars"]["configAutoReload"]["resources"]
    assert items["jenkins-config-reload"].memory_request == memory_mib(reload["requests"]["memory"])
    agents = [w for name, w in items.items() if name.startswith("jenkins-agent-")]
    assert len(agents) == 1 and agents[0].replicas == 1  # one ephemeral build pod is reserved
    assert capacity_errors(cfg) == []


def test_disabled_cicd_creates_nothing():
    raw = with_changes("dev", lambda r: r["cicd"].update({"enabled": False}))
    capture = capture_raw(raw, stack="nocicd")
    assert not [r for r in capture.resources if r.type.startswith("cnplatform:cicd:")]
    cfg = check_config(raw)
    assert layer.footprint(cfg, cfg.clusters[0]) == []


def test_cicd_config_validation():
    for change in ({"deploy_stacks": ["dev; rm -rf /"]}, {"approval_stacks": ["$(x)"]}, {"cluster": "Bad_Name"}):
        raw = with_changes("dev", lambda r, change=change: r["cicd"].update(change))
        with pytest.raises(ConfigError, match="cicd"):
            check_config(raw)
    raw = with_changes("dev", lambda r: r["cicd"].update({"cluster": "elsewhere"}))
    with pytest.raises(Exception, match="unknown cluster 'elsewhere'"):
        capture_raw(raw, stack="badcluster")


# ------------------------------------------------------------------------------------ agent pods


def pod(name: str) -> dict:
    return yaml.safe_load((PODS / f"{name}.yaml").read_text())


@pytest.mark.parametrize("name", ["test", "build", "deploy"])
def test_agent_pods_valid_and_least_privilege(name):
    doc = pod(name)
    kubernetes_validate.validate(doc, "1.31", strict=True)
    spec = doc["spec"]
    # deploy.yaml: the read-only preview identity (the Deploy stage swaps in jenkins-deploy).
    assert spec["serviceAccountName"] == ("jenkins-preview" if name == "deploy" else "jenkins-agent")
    assert spec["automountServiceAccountToken"] is False
    assert not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
    assert all("hostPath" not in v for v in spec.get("volumes", []))
    names = [c["name"] for c in spec["containers"]]
    assert names[0] == "jnlp"
    for c in spec["containers"]:
        image = c["image"]
        assert re.search(r":[\w.-]*\d[\w.-]*$", image) or "@sha256:" in image, image  # pinned
        ctx = c.get("securityContext") or {}
        assert not ctx.get("privileged") and ctx.get("allowPrivilegeEscalation") is False
        assert not (ctx.get("capabilities") or {}).get("add")
        assert c["resources"]["requests"] and c["resources"]["limits"]
    assert "docker.sock" not in (PODS / f"{name}.yaml").read_text()


@pytest.mark.parametrize("name", ["test", "deploy"])
def test_test_and_deploy_pods_meet_restricted(name):
    spec = pod(name)["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert all(c["securityContext"]["capabilities"] == {"drop": ["ALL"]} for c in spec["containers"])


def test_build_pod_runs_kaniko_with_the_registry_secret_mounted():
    spec = pod("build")["spec"]
    kaniko = next(c for c in spec["containers"] if c["name"] == "kaniko")
    assert re.match(r"^gcr\.io/kaniko-project/executor:v\d+\.\d+\.\d+-debug$", kaniko["image"])
    mount = next(m for m in kaniko["volumeMounts"] if m["name"] == "registry-auth")
    assert mount["mountPath"] == "/kaniko/.docker" and mount["readOnly"] is True
    volume = next(v for v in spec["volumes"] if v["name"] == "registry-auth")
    assert volume["secret"]["secretName"] == j.REGISTRY_SECRET
    # Optional: absent in jenkins-agents (pull requests build without pushing), present in jenkins-deploy.
    assert volume["secret"]["optional"] is True


# ----------------------------------------------------------------------------------- Jenkinsfile


def test_jenkinsfile_stages_and_agents():
    stages = re.findall(r"stage\('([^']+)'\)", JENKINSFILE)
    assert stages == ["Test", "Build & push", "Preview", "Deploy"]
    for path in re.findall(r"yamlFile '([^']+)'", JENKINSFILE) + re.findall(r"readFile\('(ci/[^']+)'\)", JENKINSFILE):
        assert (ROOT / path).is_file(), path
    build = (ROOT / "ci/jenkins/build_image.sh").read_text()  # the Build & push stage's script
    assert 'KANIKO="${KANIKO:-/kaniko/executor}"' in build and "docker.sock" not in JENKINSFILE + build
    assert 'services/test_svc_' not in JENKINSFILE and "services/tests/test_svc_$SERVICE_NAME.py" in JENKINSFILE
    assert '--context="dir://$WORKSPACE/services"' in build
    assert '--dockerfile="$dockerfile" --build-arg "SERVICE=$SERVICE_NAME"' in build
    assert 'dockerfile="$WORKSPACE/services/Dockerfile"' in build  # the shared, parameterised one
    preview = JENKINSFILE[JENKINSFILE.index("stage('Preview')"):JENKINSFILE.index("stage('Deploy')")]
    assert "changeRequest()" in preview and "runPulumi('preview')" in preview
    deploy = JENKINSFILE[JENKINSFILE.index("stage('Deploy')"):]
    assert "not { changeRequest() }" in deploy and "env.BRANCH_NAME == env.DEPLOY_BRANCH" in deploy
    assert deploy.index("input(") < deploy.index("runPulumi('up')")
    assert "APPROVAL_STACKS" in deploy and "lock(resource:" in deploy
    assert "pulumi up --stack" in JENKINSFILE and "pulumi preview --stack" in JENKINSFILE


def test_jenkinsfile_credentials_never_interpolated_or_echoed():
    assert "withCredentials(pulumiCredentials(command))" in JENKINSFILE
    for cred in j.PIPELINE_CREDENTIALS[:1]:
        assert f": '{cred}'" in JENKINSFILE  # credentialsId: preview ? '<read-only>' : '<deploy>'
    secret_vars = "PULUMI_ACCESS_TOKEN|AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY|GOOGLE_APPLICATION_CREDENTIALS"
    # Groovy double-quoted strings would interpolate (and leak) them; shell scripts are in '''.
    assert not re.search(r'"[^"\n]*\$\{?(' + secret_vars + ')', JENKINSFILE)
    assert not re.search(r"echo[^\n]*\$\{?(" + secret_vars + ")", JENKINSFILE)
    assert "set -x" not in JENKINSFILE
    body = JENKINSFILE[JENKINSFILE.index("def runPulumi"):JENKINSFILE.index("pipeline {")]
    assert body.index("set +x") < body.index("pulumi stack output")


def test_jenkinsfile_brackets_balance():
    text = re.sub(r"'''.*?'''", "", JENKINSFILE, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"'(?:\\.|[^'\\\n])*'|\"(?:\\.|[^\"\\\n])*\"", "''", text)
    for open_, close in ("{}", "()", "[]"):
        depth = 0
        for ch in text:
            depth += (ch == open_) - (ch == close)
            assert depth >= 0
        assert depth == 0, open_
