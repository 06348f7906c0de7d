"""registry components: ``ServiceImage`` (build with Docker; kind load / ECR / Artifact Registry) and
``ArtifactRepository`` (a GKE cluster's Docker repository)."""
from cnplatform.registry.context import context_digest, dockerfile_sources, image_digest, image_files
from cnplatform.registry.image import (
                                       ArtifactRepository,
                                       ArtifactRepositoryArgs,
                                       ServiceImage,
                                       ServiceImageArgs,
                                       artifact_cleanup_policies,
                                       ecr_lifecycle_policy,
                                       local_build_command,
)

__all__ = ["ArtifactRepository", "ArtifactRepositoryArgs", "ServiceImage", "ServiceImageArgs",
           "artifact_cleanup_policies", "context_digest", "dockerfile_sources", "ecr_lifecycle_policy",
           "image_digest", "image_files", "local_build_command"]
