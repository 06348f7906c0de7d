"""cnplatform: reusable Pulumi components for a multi-cloud cloud-native platform.

Modules (one per capability): ``cluster`` (kind, EKS, GKE behind one interface), ``microservice``,
``mesh`` (Istio), ``monitoring`` (kube-prometheus-stack), ``cicd`` (Jenkins), ``addons``,
``registry`` (images), ``database`` (MySQL). Components never read ``pulumi.Config``.
"""

__version__ = "0.1.0"

#: Package name used in every component type token: ``cnplatform:<module>:<Type>``.
PACKAGE = "cnplatform"
