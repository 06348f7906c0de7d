"""registry components: ``ServiceImage`` (build with Docker; kind load / ECR / Artifact Registry) and
``ArtifactRepository`` (a GKE cluster's Docker repository)."""
from cnplatform.registry.image import (ArtifactRepository, ArtifactRepositoryArgs, ServiceImage, ServiceImageArgs,
                                       artifact_cleanup_policies, context_digest, ecr_lifecycle_policy)

__all__ = ["ArtifactRepository", "ArtifactRepositoryArgs", "ServiceImage", "ServiceImageArgs",
           "artifact_cleanup_policies", "context_digest", "ecr_lifecycle_policy"]
