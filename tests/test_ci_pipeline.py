"""The image pipeline of CI: pin_image per cluster, content tags, check-then-push, the deploy image
(issue 15 items 4, 5 and 15)."""
from __future__ import annotations

import json
import re

import kubernetes_validate
import pytest
import yaml

from stacks.checks import check_config
from stacks.config import ConfigError
from tests.helpers import ROOT, capture_stack, objects, stack_raw, with_changes
from tests.test_cicd import JENKINSFILE, pod

ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com/prod-eks"
AR = "europe-west1-docker.pkg.dev/acme-shop-prod/platform"


def run_pin(tmp_path, *args):
    import subprocess
    import sys
    return subprocess.run([sys.executable, str(ROOT / "ci/jenkins/pin_image.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=tmp_path)


def test_pin_image_pins_each_cluster_to_an_image_its_nodes_can_pull(tmp_path):
    """Each cluster gets the digest pushed to ITS registry; no moving tag (issue #15 item 5)."""
    stack = tmp_path / "Pulumi.prod.yaml"
    stack.write_text((ROOT / "Pulumi.prod.yaml").read_text())
    digest = {c: "@sha256:" + c * 64 for c in "123"}
    outputs = tmp_path / "clusters.json"
    outputs.write_text(json.dumps({c: {"services": {s: {"image": f"{reg}/{s}{digest['1']}"}
                                                    for s in ("user", "product", "payment", "order")}}
                                   for c, reg in (("prod-eks", ECR), ("prod-gke", AR))}))
    pushed = tmp_path / "image-ref"  # kaniko: one line per destination
    pushed.write_text(f"{ECR}/user{digest['2']}\n{AR}/user{digest['3']}\n")
    registries = f"prod-eks={ECR} prod-gke={AR}"
    proc = run_pin(tmp_path, stack, "user", "--registries", registries, "--pushed", pushed, "--outputs", outputs)
    assert proc.returncode == 0, proc.stderr
    services = {s["name"]: s for s in yaml.safe_load(stack.read_text())["config"]["ecommerce-platform:services"]}
    assert all("build" not in s for s in services.values())
    assert services["user"]["image"] == {"prod-eks": f"{ECR}/user{digest['2']}",
                                         "prod-gke": f"{AR}/user{digest['3']}"}
    assert services["order"]["image"] == {"prod-eks": f"{ECR}/order{digest['1']}",
                                          "prod-gke": f"{AR}/order{digest['1']}"}
    # The edited stack file is a valid config, and renders: every cluster's image is its own cloud's.
    from stacks.config import raw_from_stack_file
    cfg = check_config(raw_from_stack_file(yaml.safe_load(stack.read_text()))[0])
    assert cfg.service("user").image_for("prod-gke").startswith(AR)


def test_pin_image_never_falls_back_to_a_moving_tag(tmp_path):
    stack = tmp_path / "Pulumi.prod.yaml"
    stack.write_text((ROOT / "Pulumi.prod.yaml").read_text())
    pushed = tmp_path / "image-ref"
    pushed.write_text(f"{ECR}/user@sha256:" + "2" * 64 + "\n")  # only the EKS push happened
    proc = run_pin(tmp_path, stack, "user", "--registries", f"prod-eks={ECR} prod-gke={AR}", "--pushed", pushed)
    assert proc.returncode == 2
    assert "user on prod-gke" in proc.stderr and "order on prod-eks" in proc.stderr
    assert "build:" in stack.read_text()  # nothing written
    bad = run_pin(tmp_path, stack, "nope")
    assert bad.returncode == 2 and "nope" in bad.stderr


def test_an_image_from_another_clouds_private_registry_is_a_config_error():
    raw = with_changes("prod", lambda r: r["services"][0].update(build=None, image=f"{ECR}/user@sha256:" + "1" * 64))
    raw["services"][0].pop("build")
    with pytest.raises(ConfigError) as err:
        check_config(raw)
    assert "services[0].image" in str(err.value) and "'prod-gke'" in str(err.value)
    raw["services"][0]["image"] = {"prod-eks": f"{ECR}/user@sha256:" + "1" * 64}
    with pytest.raises(ConfigError) as err:
        check_config(raw)
    assert "no image for cluster 'prod-gke'" in str(err.value)


def test_jenkinsfile_pushes_per_cluster_registry_by_content_tag():
    """No per-build tag: the image's content tag, pushed only where missing (issue #15 items 5, 15)."""
    assert "$DEPLOY_BRANCH\"" not in JENKINSFILE and "-b$BUILD_NUMBER" not in JENKINSFILE
    test = JENKINSFILE[JENKINSFILE.index("stage('Test')"):JENKINSFILE.index("stage('Build & push')")]
    build = JENKINSFILE[JENKINSFILE.index("stage('Build & push')"):JENKINSFILE.index("stage('Preview')")]
    assert "python ci/jenkins/image_tag.py service \"$SERVICE_NAME\"" in test
    assert 'withEnv(["IMAGE_TAG=${imageTag}"])' in build
    check = build.index("sh 'sh ci/jenkins/build_image.sh check'")
    assert build.index("env.PUSH == 'true'") < build.index("container('crane')") < check
    assert check < build.index("sh 'sh ci/jenkins/build_image.sh build'")
    assert "--fallback-tag" not in JENKINSFILE and "--pushed pushed-images" in JENKINSFILE
    crane = next(c for c in pod("build")["spec"]["containers"] if c["name"] == "crane")
    assert {"name": "registry-auth", "mountPath": "/kaniko/.docker", "readOnly": True} in crane["volumeMounts"]
    assert {"name": "DOCKER_CONFIG", "value": "/kaniko/.docker"} in crane["env"]


def test_dev_stack_raw_has_cicd():
    assert stack_raw("dev")[0]["cicd"]["enabled"] is True
    assert objects(capture_stack("dev"), "Namespace", "dev")


def test_deploy_image_has_every_exec_plugin_the_kubeconfigs_run():
    """The deploy agents run `pulumi up` with the clusters' kubeconfigs: each exec command they name
    must be installed in the deploy image (issue #15 item 4)."""
    from cnplatform.cluster.eks import eks_kubeconfig
    from cnplatform.cluster.gke import gke_kubeconfig

    commands = {yaml.safe_load(k)["users"][0]["user"]["exec"]["command"] for k in (
        eks_kubeconfig("c", "https://x", "Y2E=", "us-east-1"), gke_kubeconfig("c", "1.2.3.4", "Y2E="))}
    assert commands == {"aws", "gke-gcloud-auth-plugin"}
    dockerfile = (ROOT / "ci/images/deploy/Dockerfile").read_text()
    installs = {"aws": r"pip install[^\n]*\bawscli==", "gke-gcloud-auth-plugin":
                r"apt-get install[^\n]*\bgoogle-cloud-cli-gke-gcloud-auth-plugin\b"}
    assert set(installs) == commands
    for command, pattern in installs.items():
        assert re.search(pattern, dockerfile), f"ci/images/deploy/Dockerfile does not install {command}"
    base = re.search(r"^FROM (\S+)", dockerfile, re.M).group(1)
    assert base == next(c["image"] for c in pod("deploy")["spec"]["containers"] if c["name"] == "pulumi")
    # EVERY stage that runs pulumi (derived from the Jenkinsfile) runs it in cicd.deploy_image: the image
    # built from that Dockerfile (make deploy-image), never in the template's base image.
    stages = pulumi_stages()
    assert len(stages) >= 2  # not vacuous: previews and deploys
    for name, body in stages.items():
        spec = stage_pod(body, DEPLOY_IMAGE)
        assert container_image(spec, body) == DEPLOY_IMAGE, f"stage {name!r} runs pulumi without the exec plugins"
    helper = groovy_function("pulumiPod")
    assert re.search(r"if \(!env\.DEPLOY_IMAGE\) \{\s*error\('cicd\.deploy_image is not set", helper)
    assert helper.index("error(") < helper.index("return")
    assert "make deploy-image" in helper and "deploy-image:" in (ROOT / "Makefile").read_text()


# ------------------------------------------------------------ Jenkinsfile: which pod runs pulumi, simulated

DEPLOY_IMAGE = "registry.example/pulumi-deploy@sha256:" + "d" * 64


def groovy_function(name: str) -> str:
    """Body of a top-level ``def <name>(...)`` of the Jenkinsfile (up to the next top-level line)."""
    match = re.search(rf"^def {name}\(.*?(?=^\S)", JENKINSFILE[JENKINSFILE.index(f"def {name}("):] + "\nEND",
                      re.S | re.M)
    assert match, name
    return match.group(0)


def stage_bodies() -> dict[str, str]:
    starts = [(m.group(1), m.start()) for m in re.finditer(r"stage\('([^']+)'\)", JENKINSFILE)]
    ends = [s for _, s in starts[1:]] + [len(JENKINSFILE)]
    return {name: JENKINSFILE[start:end] for (name, start), end in zip(starts, ends, strict=True)}


def pulumi_stages() -> dict[str, str]:
    """Stages that run the Pulumi CLI: in their own ``sh`` or through a function of the Jenkinsfile that does."""
    runs = re.compile(r"\bpulumi (up|preview|stack|refresh|destroy)\b")

    def code(text: str) -> str:  # comments (Groovy `//`, shell `#` lines) run nothing
        return re.sub(r"(?m)^\s*#.*$|//[^\n]*", "", text)
    functions = {m.group(1) for m in re.finditer(r"^def (\w+)\(", JENKINSFILE, re.M)
                 if runs.search(code(groovy_function(m.group(1))))}
    assert functions  # runPulumi
    return {name: body for name, body in stage_bodies().items()
            if runs.search(code(body)) or any(re.search(rf"\b{f}\(", code(body)) for f in functions)}


def replacements(text: str) -> list[tuple[str, str]]:
    """``.replaceFirst(/pattern/, 'literal' [+ expression])`` calls, in order."""
    return re.findall(r"\.replaceFirst\(/(.+?)/, '([^']*)'(?: \+ ([\w.]+))?\)", text)


def apply(text: str, calls, values: dict[str, str]) -> str:
    for pattern, literal, expr in calls:
        pattern = pattern.replace("\\/", "/")
        value = literal.replace("$1", "") + values.get(expr, "")
        text = re.sub(pattern, lambda m, v=value: m.group(1) + v, text, count=1)
    return text


def stage_pod(body: str, deploy_image: str) -> dict:
    """The pod a stage runs in, as the Jenkinsfile builds it with DEPLOY_IMAGE=``deploy_image``."""
    files = re.findall(r"yamlFile '([^']+)'", body)
    if files:
        return yaml.safe_load((ROOT / files[0]).read_text())
    var = re.search(r"podTemplate\(yaml: (\w+)", body)
    assert var, "a stage that runs pulumi without an agent pod"
    assign = re.search(rf"^\s+{var.group(1)} = (.+?)\n(?=\s+(?:\w+ = |\}}))", JENKINSFILE, re.M | re.S)
    assert assign, var.group(1)
    expr = assign.group(1)
    source = re.search(r"readTrusted\('([^']+)'\)", expr).group(1)
    text = apply((ROOT / source).read_text(), replacements(expr), {})
    for helper in [h for h in re.findall(r"^(\w+)\(", expr) if f"def {h}(" in JENKINSFILE]:
        text = apply(text, replacements(groovy_function(helper)), {"env.DEPLOY_IMAGE": deploy_image})
    return yaml.safe_load(text)


def container_image(spec: dict, body: str) -> str:
    name = (re.findall(r"container\('(\w+)'\)", body) or re.findall(r"defaultContainer '(\w+)'", body))[0]
    return next(c["image"] for c in spec["spec"]["containers"] if c["name"] == name)


def test_the_pulumi_stage_simulation_sees_a_stage_on_the_bare_template():
    """The check above is not vacuous: a stage on `yamlFile 'ci/jenkins/pods/deploy.yaml'` (the old
    Preview) runs the template's base image, which has no exec plugin."""
    old = "agent {\n kubernetes {\n yamlFile 'ci/jenkins/pods/deploy.yaml'\n defaultContainer 'pulumi'\n }\n }"
    assert container_image(stage_pod(old, DEPLOY_IMAGE), old).startswith("pulumi/pulumi-python")
    deploy = stage_pod(stage_bodies()["Deploy"], DEPLOY_IMAGE)
    preview = stage_pod(stage_bodies()["Preview"], DEPLOY_IMAGE)
    assert deploy["spec"]["serviceAccountName"] == "jenkins-deploy"
    assert preview["spec"]["serviceAccountName"] == "jenkins-preview"  # read-only identity for pull requests
    kubernetes_validate.validate(preview, "1.31", strict=True)


# ------------------------------------------------- CI images: content tags, check then push (issue #15 item 15)

SERVICES = ("user", "product", "payment", "order")


def run_tool(tmp_path, script, *args, env=None):
    import os
    import subprocess
    import sys
    cmd = ["sh", str(ROOT / script)] if script.endswith(".sh") else [sys.executable, str(ROOT / script)]
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, **(env or {})}, timeout=60)


def ci_tags(tmp_path, root) -> dict[str, str]:
    out = {}
    for svc in SERVICES:
        proc = run_tool(tmp_path, "ci/jenkins/image_tag.py", "service", svc, "--root", root)
        assert proc.returncode == 0, proc.stderr
        out[svc] = proc.stdout.strip()
    return out


def test_ci_tags_each_image_by_its_content_as_the_program_does(tmp_path):
    """CI's tag is the program's (image_digest of what the image copies): an edit of one service changes
    that service's tag only, so the other three are neither rebuilt, pushed nor rolled out."""
    import shutil

    from cnplatform.registry.context import image_digest
    from stacks.compose.layers.services import build_context
    program = {svc: image_digest(ROOT / c, ROOT / d, build_args=b)
               for svc in SERVICES for c, d, b in [build_context(f"services/{svc}")]}
    assert ci_tags(tmp_path, ROOT) == program and len(set(program.values())) == 4
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "services", root / "services", ignore=shutil.ignore_patterns("__pycache__"))
    before = ci_tags(tmp_path, root)
    assert before == program
    (root / "services/user/app.py").write_text((root / "services/user/app.py").read_text() + "# edit\n")
    (root / "services/tests/test_svc_order.py").write_text("# not in any image\n")
    after = ci_tags(tmp_path, root)
    assert {s for s in SERVICES if after[s] != before[s]} == {"user"}
    (root / "services/common/svc_common/__init__.py").write_text("# shared by every image\n")
    assert all(v != after[s] for s, v in ci_tags(tmp_path, root).items())
    assert run_tool(tmp_path, "ci/jenkins/image_tag.py", "service", "nope").returncode == 2


FAKE_CRANE = """#!/bin/sh
[ "$1" = digest ] || exit 3
if [ -n "${CRANE_FAIL:-}" ]; then echo "GET https://x: UNAUTHORIZED: authentication required" >&2; exit 1; fi
line="$(grep -F "$2 " "$FAKE_REGISTRY" | head -n1)"
[ -n "$line" ] || { echo "GET https://x: MANIFEST_UNKNOWN: manifest unknown" >&2; exit 1; }
echo "${line#* }"
"""
FAKE_KANIKO = """#!/bin/sh
echo "$@" >> "$WORKSPACE/kaniko-calls"
for a in "$@"; do case "$a" in --image-name-with-digest-file=*) digest_file="${a#*=}"; : > "$digest_file" ;; esac; done
for a in "$@"; do
  case "$a" in
    --destination=*) ref="${a#--destination=}"; echo "${ref%:*}@sha256:$(printf %064d 7)" >> "$digest_file" ;;
  esac
done
"""


def fake_ci(tmp_path, existing: dict[str, str], **env) -> dict[str, str]:
    bin_ = tmp_path / "bin"
    bin_.mkdir(exist_ok=True)
    for name, text in (("crane", FAKE_CRANE), ("kaniko", FAKE_KANIKO)):
        (bin_ / name).write_text(text)
        (bin_ / name).chmod(0o755)
    (tmp_path / "registry").write_text("".join(f"{ref} {digest}\n" for ref, digest in existing.items()))
    return {"CRANE": str(bin_ / "crane"), "KANIKO": str(bin_ / "kaniko"), "FAKE_REGISTRY": str(tmp_path / "registry"),
            "WORKSPACE": str(tmp_path), "REGISTRIES": f"prod-eks={ECR} prod-gke={AR}", "PUSH": "true", **env}


def build_image(tmp_path, env) -> list[str]:
    for step in ("check", "build"):
        proc = run_tool(tmp_path, "ci/jenkins/build_image.sh", step, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return (tmp_path / "image-ref").read_text().splitlines()


def test_build_pushes_a_content_tag_only_to_the_registries_missing_it(tmp_path):
    old = "@sha256:" + "1" * 64
    tag = "0123456789ab"
    # Unchanged service: both registries hold its tag, nothing is built or pushed, the digests are reused.
    env = fake_ci(tmp_path, {f"{ECR}/order:{tag}": old[1:], f"{AR}/order:{tag}": old[1:]},
                  SERVICE_NAME="order", IMAGE_TAG=tag)
    assert build_image(tmp_path, env) == [f"{ECR}/order{old}", f"{AR}/order{old}"]
    assert not (tmp_path / "kaniko-calls").exists()
    # Half-pushed before (ECR only): kaniko pushes to Artifact Registry alone, never over the ECR tag.
    env = fake_ci(tmp_path, {f"{ECR}/user:{tag}": old[1:]}, SERVICE_NAME="user", IMAGE_TAG=tag)
    refs = build_image(tmp_path, env)
    assert refs == [f"{ECR}/user{old}", f"{AR}/user@sha256:" + "0" * 63 + "7"]
    call = (tmp_path / "kaniko-calls").read_text()
    assert f"--destination={AR}/user:{tag}" in call and f"--destination={ECR}" not in call
    assert "--build-arg SERVICE=user" in call and "--no-push" not in call
    # Pull request: no registry lookup (no credentials there), a build without push, nothing to pin.
    (tmp_path / "kaniko-calls").unlink()
    proc = run_tool(tmp_path, "ci/jenkins/build_image.sh", "build", env={**env, "PUSH": "false"})
    assert proc.returncode == 0 and "--no-push" in (tmp_path / "kaniko-calls").read_text()
    assert "--destination" not in (tmp_path / "kaniko-calls").read_text() and not (tmp_path / "image-ref").exists()
    # A registry that cannot answer (auth, network) is not taken for "missing": the build stops.
    proc = run_tool(tmp_path, "ci/jenkins/build_image.sh", "check", env={**env, "CRANE_FAIL": "1"})
    assert proc.returncode == 1 and "cannot tell whether" in proc.stderr
    assert run_tool(tmp_path, "ci/jenkins/build_image.sh", "check",
                    env={**env, "IMAGE_TAG": "abc-b12"}).returncode == 2  # never a per-build tag


def test_an_unchanged_service_keeps_its_digest_and_the_others_are_left_alone(tmp_path):
    """The job of an unchanged service pins exactly what runs: `pulumi up` rolls nothing out."""
    running = {s: "@sha256:" + str(i) * 64 for i, s in enumerate(SERVICES, 1)}
    tag = "0123456789ab"
    env = fake_ci(tmp_path, {f"{reg}/order:{tag}": running["order"][1:] for reg in (ECR, AR)},
                  SERVICE_NAME="order", IMAGE_TAG=tag)
    build_image(tmp_path, env)
    stack = tmp_path / "Pulumi.prod.yaml"
    stack.write_text((ROOT / "Pulumi.prod.yaml").read_text())
    outputs = tmp_path / "clusters.json"
    outputs.write_text(json.dumps({c: {"services": {s: {"image": f"{reg}/{s}{running[s]}"} for s in SERVICES}}
                                   for c, reg in (("prod-eks", ECR), ("prod-gke", AR))}))
    proc = run_pin(tmp_path, stack, "order", "--registries", env["REGISTRIES"], "--pushed", tmp_path / "image-ref",
                   "--outputs", outputs)
    assert proc.returncode == 0, proc.stderr
    services = {s["name"]: s for s in yaml.safe_load(stack.read_text())["config"]["ecommerce-platform:services"]}
    assert {s: services[s]["image"] for s in SERVICES} == {
        s: {"prod-eks": f"{ECR}/{s}{running[s]}", "prod-gke": f"{AR}/{s}{running[s]}"} for s in SERVICES}


FAKE_DOCKER = """#!/bin/sh
echo "$@" >> "$CALLS"
case "$1 $2" in
  "buildx imagetools")
    ref="$(eval echo \\${$#})"; grep -qxF "$ref" "$PUSHED" || exit 1; echo "sha256:$(printf %064d 5)" ;;
  "push "*) echo "$2" >> "$PUSHED" ;;
esac
"""


def test_make_deploy_image_pushes_once_by_content_tag_and_prints_the_digest(tmp_path):
    """The one-time path to cicd.deploy_image: check, then push (immutable), then the digest reference."""
    registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com/prod-eks"
    aws = '#!/bin/sh\necho "aws $@" >> "$CALLS"\n'
    for name, text in (("docker", FAKE_DOCKER), ("aws", aws + "exit 1\n")):
        (tmp_path / name).write_text(text)
        (tmp_path / name).chmod(0o755)
    (tmp_path / "pushed").write_text("")
    env = {"DOCKER": str(tmp_path / "docker"), "AWS": str(tmp_path / "aws"), "CALLS": str(tmp_path / "calls"),
           "PUSHED": str(tmp_path / "pushed")}
    proc = run_tool(tmp_path, "ci/images/deploy_image.py", registry, "--stack", "prod", env=env)
    assert proc.returncode == 1 and "create-repository" in (tmp_path / "calls").read_text()  # fake aws fails
    (tmp_path / "aws").write_text(aws)
    proc = run_tool(tmp_path, "ci/images/deploy_image.py", registry, "--stack", "prod", env=env)
    assert proc.returncode == 0, proc.stderr
    digest = "sha256:" + "0" * 63 + "5"
    assert proc.stdout.strip() == f"{registry}/pulumi-deploy@{digest}"
    assert f"pulumi config set --path cicd.deploy_image {registry}/pulumi-deploy@{digest} --stack prod" in proc.stderr
    calls = (tmp_path / "calls").read_text()
    tag = run_tool(tmp_path, "ci/jenkins/image_tag.py", "dir", ROOT / "ci/images/deploy").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{12}", tag)
    assert f"build --provenance=false --sbom=false --platform linux/amd64 -t {registry}/pulumi-deploy:{tag}" in calls
    assert "--image-tag-mutability IMMUTABLE" in calls
    (tmp_path / "calls").write_text("")
    again = run_tool(tmp_path, "ci/images/deploy_image.py", registry, env=env)
    assert again.returncode == 0 and again.stdout == proc.stdout and "exists" in again.stderr
    assert "push" not in (tmp_path / "calls").read_text() and " build " not in (tmp_path / "calls").read_text()
