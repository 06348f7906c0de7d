"""Every version compatibility claim of the platform, in one place (docs/versions.md gives the sources).

Checked by the stack config (a cluster on an unsupported Kubernetes minor is a config error) and by
``tests/test_versions.py`` against docs/versions.md, so the table and the code cannot drift.
"""
from __future__ import annotations

#: Kubernetes minors the whole platform supports today (2026-12): the Istio release we install
#: supports 1.31-1.35, upstream Kubernetes supports 1.35-1.37, EKS and GKE offer 1.35 in standard
#: support. The intersection is what a cluster may run.
KUBERNETES_SUPPORTED = ("1.35",)
#: Kubernetes minors the installed Istio release supports (its documented range).
ISTIO_KUBERNETES_RANGE = ("1.31", "1.35")
#: kind release whose node image the dev stack pins (``kind create cluster`` needs kind >= this).
KIND_MIN_VERSION = "0.31.0"
