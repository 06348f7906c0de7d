"""registry components: ``ServiceImage`` (build with Docker; kind load / push into the cluster's
registry), ``EcrRepositories`` (an EKS cluster's ECR repositories) and ``ArtifactRepository`` (a GKE
cluster's Docker repository)."""
from cnplatform.registry.context import context_digest, dockerfile_sources, image_digest, image_files
from cnplatform.registry.ecr import EcrRepositories, EcrRepositoriesArgs, ecr_lifecycle_policy
from cnplatform.registry.image import (
                                       ArtifactRepository,
                                       ArtifactRepositoryArgs,
                                       ServiceImage,
                                       ServiceImageArgs,
                                       artifact_cleanup_policies,
                                       local_build_command,
)

__all__ = ["ArtifactRepository", "ArtifactRepositoryArgs", "EcrRepositories", "EcrRepositoriesArgs",
           "ServiceImage", "ServiceImageArgs", "artifact_cleanup_policies", "context_digest",
           "dockerfile_sources", "ecr_lifecycle_policy", "image_digest", "image_files", "local_build_command"]
