"""``EcrRepositories``: an EKS cluster's registry, one ECR repository ``<cluster>/<service>`` per service.

The registry belongs to the cluster, not to how a service gets its image: a service built by Pulumi
(:class:`~cnplatform.registry.image.ServiceImage` pushes into its repository) and one running an image
CI pushed (``image:``, pinned by digest) have the same repository, so switching between the two never
deletes the images the cluster runs. ``pulumi_aws`` is imported when the component is constructed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

import pulumi

from cnplatform import validation as _v
from cnplatform.naming import type_token
from cnplatform.options import inherited_depends_on

#: The type of the component that created the repositories before they were per cluster.
SERVICE_IMAGE_TYPE = type_token("registry", "ServiceImage")
REPOSITORY = "aws:ecr/repository:Repository"
LIFECYCLE_POLICY = "aws:ecr/lifecyclePolicy:LifecyclePolicy"


def ecr_lifecycle_policy(keep: int) -> str:
    """ECR lifecycle policy JSON: expire everything but the ``keep`` most recent images."""
    return json.dumps({"rules": [{
        "rulePriority": 1,
        "description": f"keep the {keep} most recent images",
        "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep},
        "action": {"type": "expire"},
    }]}, sort_keys=True)


@dataclass
class EcrRepositoriesArgs:
    """Inputs of :class:`EcrRepositories`."""

    cluster: str
    """Cluster name: the prefix of each repository name (``<cluster>/<service>``)."""
    services: list[str]
    """Services with a repository: every service running on the cluster, built by Pulumi or not."""
    region: Optional[str] = None
    """Region of the repositories (the cluster's); default: the AWS provider's."""
    keep_images: int = 20
    """Images kept per repository by the lifecycle policy."""
    force_delete: bool = False
    """Delete a repository even when it holds images (non-prod)."""
    moved_from: Optional[str] = "{cluster}-{service}-image"
    """Name (``{cluster}`` / ``{service}`` filled in) of the :class:`ServiceImage` that owned each
    repository and lifecycle policy before the registry was per cluster: both are aliased to their URNs
    under it, so a stack deployed then keeps its repositories and images. ``None``: no alias."""

    def __post_init__(self) -> None:
        """Every invalid argument at once (:class:`cnplatform.validation.ArgsError`)."""
        _v.check_args(self, {"cluster": _v.dns_label, "services": _v.dns_label, "keep_images": _v.positive},
                      checks=[_unique_services])


def _unique_services(args: EcrRepositoriesArgs) -> list[tuple[str, str]]:
    twice = sorted({s for s in args.services if args.services.count(s) > 1})
    return [("services", f"listed more than once: {', '.join(twice)}")] if twice else []


def _moved_alias(parent: Optional[pulumi.Resource], moved: Optional[str], suffix: str,
                 type_: str) -> Optional[list[pulumi.Input[str]]]:
    """The URN a child had as ``<moved>-<suffix>`` under ``ServiceImage(moved)`` (same parent as ours)."""
    if not moved:
        return None
    old_parent = pulumi.create_urn(moved, SERVICE_IMAGE_TYPE, parent=parent)
    return [pulumi.create_urn(f"{moved}-{suffix}", type_, parent=old_parent)]


class EcrRepositories(pulumi.ComponentResource):
    """ECR repositories of one cluster: scan on push, IMMUTABLE tags, KMS encryption, lifecycle policy."""

    urls: pulumi.Output[dict[str, str]]
    """service -> repository URL (``<account>.dkr.ecr.<region>.amazonaws.com/<cluster>/<service>``)."""

    #: service -> its ``aws.ecr.Repository`` (what :class:`ServiceImage` pushes into).
    repositories: dict[str, Any]

    def __init__(self, name: str, args: EcrRepositoriesArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(type_token("registry", "EcrRepositories"), name, None, opts)
        import pulumi_aws as aws

        parent = opts.parent if opts else None
        deps = inherited_depends_on(opts)
        self.repositories = {}
        for service in args.services:
            moved = args.moved_from.format(cluster=args.cluster, service=service) if args.moved_from else None

            repo = aws.ecr.Repository(
                f"{name}-{service}-repo",
                name=f"{args.cluster}/{service}",
                region=args.region,
                image_tag_mutability="IMMUTABLE",
                image_scanning_configuration={"scan_on_push": True},
                encryption_configurations=[{"encryption_type": "KMS"}],
                force_delete=args.force_delete,
                opts=pulumi.ResourceOptions(parent=self, depends_on=deps,
                                            aliases=_moved_alias(parent, moved, "repo", REPOSITORY)),
            )
            aws.ecr.LifecyclePolicy(f"{name}-{service}-lifecycle", repository=repo.name, region=args.region,
                                    policy=ecr_lifecycle_policy(args.keep_images),
                                    opts=pulumi.ResourceOptions(parent=self, depends_on=deps, aliases=_moved_alias(
                                        parent, moved, "lifecycle", LIFECYCLE_POLICY)))
            self.repositories[service] = repo
        urls = {s: r.repository_url for s, r in self.repositories.items()}
        self.urls = pulumi.Output.all(**urls) if urls else pulumi.Output.from_input({})
        self.register_outputs({"urls": self.urls})
