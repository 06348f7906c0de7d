"""Build and push the pipelines' deploy image once, by content tag, and print its digest reference.

    make deploy-image REGISTRY=<prefix>     # e.g. <account>.dkr.ecr.<region>.amazonaws.com/prod-eks
                                            #  or <region>-docker.pkg.dev/<project>/platform

``REGISTRY`` is the registry of the cluster Jenkins runs on (``cicd.cluster``): its nodes pull the
deploy pods' image from it. The image is ``<REGISTRY>/pulumi-deploy:<tag>``, the tag a hash of
``ci/images/deploy/Dockerfile`` (``image_digest``, the rule of the service images). The registries are
IMMUTABLE, so an existing tag is never pushed again: it is looked up (check, then push) and its digest
printed. An ECR repository that does not exist yet is created with immutable tags. Prints the
``pulumi config set`` line for ``cicd.deploy_image`` (a digest reference, which the config requires).
Needs Docker logged in to the registry (and the ``aws`` CLI for ECR).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "jenkins"))
from image_tag import dir_tag  # noqa: E402

IMAGE_DIR = Path(__file__).resolve().parent / "deploy"
REPOSITORY = "pulumi-deploy"
ECR = re.compile(r"^(\d+)\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com/(.+)$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=check)


def remote_digest(docker: str, ref: str) -> Optional[str]:
    """The digest of ``ref`` in its registry, or None when it does not exist."""
    proc = run(docker, "buildx", "imagetools", "inspect", "--format", "{{.Manifest.Digest}}", ref, check=False)
    digest = proc.stdout.strip()
    return digest if proc.returncode == 0 and DIGEST.match(digest) else None


def ensure_ecr_repository(registry: str, aws: str) -> None:
    match = ECR.match(registry)
    if not match:
        return
    name, region = f"{match.group(3)}/{REPOSITORY}", match.group(2)
    if run(aws, "ecr", "describe-repositories", "--region", region, "--repository-names", name,
           check=False).returncode == 0:
        return
    run(aws, "ecr", "create-repository", "--region", region, "--repository-name", name,
        "--image-tag-mutability", "IMMUTABLE", "--image-scanning-configuration", "scanOnPush=true")


def publish(registry: str, platform: str, docker: str = "docker", aws: str = "aws") -> str:
    """``<registry>/pulumi-deploy@sha256:...``: pushed now, or already there under its content tag."""
    registry = registry.rstrip("/")
    ref = f"{registry}/{REPOSITORY}:{dir_tag(IMAGE_DIR)}"
    digest = remote_digest(docker, ref)
    if digest is None:
        ensure_ecr_repository(registry, aws)
        subprocess.run([docker, "build", "--provenance=false", "--sbom=false", "--platform", platform,
                        "-t", ref, str(IMAGE_DIR)], check=True)
        subprocess.run([docker, "push", ref], check=True)
        digest = remote_digest(docker, ref)
        if digest is None:
            raise RuntimeError(f"{ref} was pushed but its digest cannot be read")
    else:
        print(f"{ref} exists: not built or pushed again", file=sys.stderr)
    return f"{registry}/{REPOSITORY}@{digest}"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("registry", help="prefix of the Jenkins cluster's registry")
    parser.add_argument("--platform", default="linux/amd64")
    parser.add_argument("--stack", default=os.environ.get("STACK", "<stack>"))
    args = parser.parse_args(argv)
    if not args.registry or "/" not in args.registry:
        print("deploy_image: REGISTRY must be a registry prefix (host/path)", file=sys.stderr)
        return 2
    try:
        ref = publish(args.registry, args.platform, os.environ.get("DOCKER", "docker"), os.environ.get("AWS", "aws"))
    except (subprocess.CalledProcessError, RuntimeError) as exc:
        print(f"deploy_image: {exc}", file=sys.stderr)
        return 1
    print(ref)
    print(f"then: pulumi config set --path cicd.deploy_image {ref} --stack {args.stack}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
