"""``ServiceImage``: build a service's image with Docker and make it available to one cluster.

* ``local``: ``docker build`` without attestations (pulumi-command), then ``kind load docker-image``
  into the kind cluster; the Deployment uses the content-hash tag (kind has no registry, so there is
  no digest to pin). The dev stack needs no Docker provider.
* ``aws``: push into the service's ECR repository of the cluster (``repository_url``, from
  :class:`~cnplatform.registry.ecr.EcrRepositories`: scan on push, IMMUTABLE tags, KMS, lifecycle policy).
* ``gcp``: push into the cluster's Artifact Registry Docker repository (:class:`ArtifactRepository`:
  immutable tags, cleanup policy; one per cluster, like the registry the GKE nodes may pull from).

The registries are the cluster's, not the image's: they exist whether a service is built here or runs
an image CI pushed, so switching a service between the two never deletes its repository.

Cloud clusters deploy the pushed image BY DIGEST (``repoDigest``). ``pulumi_aws`` / ``pulumi_gcp``
are imported inside their branch only: a dev (local) program never loads them.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import pulumi

from cnplatform import validation as _v
from cnplatform.naming import type_token
from cnplatform.options import inherited_depends_on

if TYPE_CHECKING:  # pragma: no cover
    from pulumi_gcp.artifactregistry import RepositoryCleanupPolicyArgsDict


def local_build_command(image: str, dockerfile: str, context: str, platform: Optional[str] = None,
                        build_args: tuple[tuple[str, str], ...] = ()) -> str:
    """The local (kind) build: one plain image, no attestations (see ``ServiceImage._local``)."""
    words = ["docker", "build", "--provenance=false", "--sbom=false", "-t", image, "-f", dockerfile]
    if platform:
        words += ["--platform", platform]
    for key, value in build_args:
        words += ["--build-arg", f"{key}={value}"]
    return " ".join(shlex.quote(w) for w in [*words, context])


def artifact_registry_host(region: str) -> str:
    return f"{region}-docker.pkg.dev"


def artifact_registry_url(region: str, project: str, repository: str) -> str:
    return f"{artifact_registry_host(region)}/{project}/{repository}"


def artifact_cleanup_policies(keep: int) -> list[RepositoryCleanupPolicyArgsDict]:
    """Artifact Registry cleanup: KEEP wins over DELETE, so all but the ``keep`` most recent versions go."""
    return [
        {"id": "keep-recent", "action": "KEEP", "most_recent_versions": {"keep_count": keep}},
        {"id": "delete-older", "action": "DELETE", "condition": {"tag_state": "ANY"}},
    ]


@dataclass(frozen=True)
class BuildSpec:
    """Where and how one image is built (a plain value; the Docker provider loads only for pushes)."""

    context: str
    dockerfile: str
    platform: Optional[str] = None
    build_args: tuple[tuple[str, str], ...] = ()

    def docker_args(self):
        import pulumi_docker as docker

        return docker.DockerBuildArgs(context=self.context, dockerfile=self.dockerfile, platform=self.platform,
                                      args=dict(self.build_args) or None)


@dataclass
class ServiceImageArgs:
    """Inputs of :class:`ServiceImage`."""

    service: str
    """Service name (image / repository name)."""
    context: str = "services"
    """Docker build context, relative to the Pulumi project directory."""
    dockerfile: Optional[str] = None
    """Dockerfile path relative to the project directory; default ``<context>/<service>/Dockerfile``."""
    tag: str = "latest"
    """Image tag; the stack passes :func:`cnplatform.registry.context.image_digest` (a hash of the Dockerfile,
    build args and exactly the files it copies: immutable, content-addressed)."""
    build_args: dict[str, str] = field(default_factory=dict)
    """Docker build arguments (a parameterised Dockerfile: ``{"SERVICE": "user"}``)."""
    platform: Optional[str] = None
    """Target platform of the build; default: ``linux/amd64`` for cloud registries (amd64 node pools),
    the builder's own platform for local kind clusters (so Apple Silicon laptops run native images)."""
    cloud: str = "local"
    """``local`` (kind), ``aws`` (ECR) or ``gcp`` (Artifact Registry)."""
    cluster: str = "dev"
    """Cluster name: kind cluster to load into; prefix of the cloud repository name."""
    kind_load: bool = True
    """local: run ``kind load docker-image`` (False for an existing non-kind context)."""
    local_repository: str = "ecommerce-platform"
    """local: image name prefix of the local build."""
    region: Optional[str] = None
    """aws/gcp: region of the registry (the cluster's region)."""
    project: Optional[str] = None
    """gcp: project of the Artifact Registry repository."""
    repository: str = "platform"
    """gcp: Artifact Registry repository id to push into (created once per cluster by ArtifactRepository)."""
    repository_url: Optional[pulumi.Input[str]] = None
    """aws (required): the ECR repository to push into, ``<account>.dkr.ecr.<region>.amazonaws.com/<cluster>/<service>``
    (``EcrRepositories.repositories[service].repository_url``: the cluster's registry, not the image's)."""
    cluster_ready: list[pulumi.Resource] = field(default_factory=list)
    """local: what ``kind load`` waits for (the kind cluster); the build itself, like a cloud build and
    push, waits only for the component's ``depends_on``, so it runs while the cluster is created."""

    def __post_init__(self) -> None:
        """Every invalid argument at once (:class:`cnplatform.validation.ArgsError`)."""
        _v.check_args(self, {
            "service": _v.dns_label, "tag": lambda x: _v.image_reference(f"x:{x}"),
            "cloud": _v.one_of("local", "aws", "gcp"), "cluster": _v.dns_label,
        })


class ServiceImage(pulumi.ComponentResource):
    """One service image, built and made pullable by one cluster."""

    image_ref: pulumi.Output[str]
    """What a Deployment runs: ``repo@sha256:...`` (cloud) or ``name:tag`` (local kind)."""
    image_name: pulumi.Output[str]
    """Built image name with tag."""
    repository_url: pulumi.Output[str]
    """Repository the image lives in (local: the local name)."""

    #: Resources a Deployment must wait for (the push, or the kind load).
    ready: list[pulumi.Resource]

    def __init__(self, name: str, args: ServiceImageArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(type_token("registry", "ServiceImage"), name, None, opts)
        self._deps = inherited_depends_on(opts)
        build = BuildSpec(
            context=args.context,
            dockerfile=args.dockerfile or f"{args.context}/{args.service}/Dockerfile",
            platform=args.platform or (None if args.cloud == "local" else "linux/amd64"),
            build_args=tuple(sorted(args.build_args.items())),
        )
        if args.cloud == "local":
            repository, image_ref = self._local(name, args, build)
        elif args.cloud == "aws":
            repository, image_ref = self._aws(name, args, build)
        elif args.cloud == "gcp":
            repository, image_ref = self._gcp(name, args, build)
        else:
            raise ValueError(f"ServiceImage {name!r}: unknown cloud {args.cloud!r}")
        self.repository_url = pulumi.Output.from_input(repository)
        self.image_ref = pulumi.Output.from_input(image_ref)
        self.register_outputs({"image_ref": self.image_ref, "image_name": self.image_name,
                               "repository_url": self.repository_url})

    def _local(self, name: str, args: ServiceImageArgs, build: BuildSpec):
        import pulumi_command as command

        repository = f"{args.local_repository}/{args.service}"
        image_name = f"{repository}:{args.tag}"
        # `docker build` (buildx) adds provenance/SBOM attestations by default: on Docker Desktop's
        # containerd image store the image becomes an index `kind load docker-image` cannot export.
        # A plain single-platform image loads everywhere. The tag is the content hash: same tag, no rebuild.
        image = command.local.Command(
            f"{name}-build",
            create=local_build_command(image_name, build.dockerfile, build.context, build.platform, build.build_args),
            triggers=[image_name],
            opts=pulumi.ResourceOptions(parent=self, depends_on=self._deps),
        )
        self.image_name = pulumi.Output.from_input(image_name)
        self.ready = [image]
        if args.kind_load:
            load = command.local.Command(
                f"{name}-kind-load",
                create=f"kind load docker-image {image_name} --name {args.cluster}",
                triggers=[image_name],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*self._deps, *args.cluster_ready, image]),
            )
            self.ready = [load]
        # kind has no registry: the tag (a content hash) is the immutable reference.
        return repository, image_name

    def _aws(self, name: str, args: ServiceImageArgs, build: BuildSpec):
        import pulumi_aws as aws
        import pulumi_docker as docker

        if args.repository_url is None:
            raise ValueError(f"ServiceImage {name!r}: aws needs repository_url (the cluster's ECR repository)")
        url = pulumi.Output.from_input(args.repository_url)
        # The registry id is the account: the host's first label (<account>.dkr.ecr.<region>.amazonaws.com).
        token = aws.ecr.get_authorization_token_output(registry_id=url.apply(lambda u: u.split(".", 1)[0]),
                                                       region=args.region,
                                                       opts=pulumi.InvokeOutputOptions(parent=self))
        image = docker.Image(
            f"{name}-image",
            image_name=pulumi.Output.concat(url, ":", args.tag),
            build=build.docker_args(),
            registry=docker.RegistryArgs(server=url, username=token.user_name,
                                         password=pulumi.Output.secret(token.password)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=self._deps),
        )
        self.image_name = image.image_name
        self.ready = [image]
        return url, image.repo_digest

    def _gcp(self, name: str, args: ServiceImageArgs, build: BuildSpec):
        import pulumi_docker as docker
        import pulumi_gcp as gcp

        if not args.region or not args.project:
            raise ValueError(f"ServiceImage {name!r}: gcp needs region and project")
        # The cluster's Artifact Registry repository (one per cluster, see ArtifactRepository).
        url = artifact_registry_url(args.region, args.project, args.repository)
        client = gcp.organizations.get_client_config_output(opts=pulumi.InvokeOutputOptions(parent=self))
        image = docker.Image(
            f"{name}-image",
            image_name=f"{url}/{args.service}:{args.tag}",
            build=build.docker_args(),
            registry=docker.RegistryArgs(server=artifact_registry_host(args.region), username="oauth2accesstoken",
                                         password=pulumi.Output.secret(client.access_token)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=self._deps),
        )
        self.image_name = image.image_name
        self.ready = [image]
        return url, image.repo_digest


@dataclass
class ArtifactRepositoryArgs:
    """Inputs of :class:`ArtifactRepository`."""

    project: str
    """GCP project."""
    region: str
    """Region (the cluster's)."""
    repository: str = "platform"
    """Repository id (the GKE cluster's ``registry_repository``: its nodes may pull from it)."""
    keep_images: int = 20
    """Versions kept per image by the cleanup policy."""

    def __post_init__(self) -> None:
        """Every invalid argument at once (:class:`cnplatform.validation.ArgsError`)."""
        _v.check_args(self, {"repository": _v.dns_label, "keep_images": _v.positive})


class ArtifactRepository(pulumi.ComponentResource):
    """A Docker repository in Artifact Registry: immutable tags, cleanup policy (one per GKE cluster)."""

    url: pulumi.Output[str]
    """``<region>-docker.pkg.dev/<project>/<repository>``."""

    repository: pulumi.Resource

    def __init__(self, name: str, args: ArtifactRepositoryArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(type_token("registry", "ArtifactRepository"), name, None, opts)
        import pulumi_gcp as gcp

        self.repository = gcp.artifactregistry.Repository(
            f"{name}-repo",
            repository_id=args.repository,
            project=args.project,
            location=args.region,
            format="DOCKER",
            description="Service images (pushed by Pulumi and CI), deployed by digest",
            docker_config={"immutable_tags": True},
            cleanup_policy_dry_run=False,
            cleanup_policies=artifact_cleanup_policies(args.keep_images),
            opts=pulumi.ResourceOptions(parent=self, depends_on=inherited_depends_on(opts)),
        )
        self.url = pulumi.Output.from_input(artifact_registry_url(args.region, args.project, args.repository))
        self.register_outputs({"url": self.url})
