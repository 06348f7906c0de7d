"""Where a Helm chart comes from: its chart repository, or a directory of unpacked charts.

Every chart-installing component takes an optional ``charts_dir`` (stack config key
``ecommerce-platform:charts_dir``): when set, ``helm.v4.Chart`` loads the chart from
``<charts_dir>/<directory>`` (an unpacked chart, e.g. ``e2e/charts/``) instead of fetching it from
the repository, for air-gapped installs. The pinned chart version still applies to the repository;
a local directory is taken as it is (its ``Chart.yaml`` says which version it is).
"""
from __future__ import annotations

import os
from typing import Any, Optional

import pulumi_kubernetes as k8s


def chart_source(chart: str, repository: str, charts_dir: Optional[str] = None,
                 directory: Optional[str] = None) -> dict[str, Any]:
    """The ``chart`` and ``repository_opts`` arguments of a ``helm.v4.Chart``: ``chart`` from
    ``repository``, or with ``charts_dir`` the unpacked chart in ``<charts_dir>/<directory or chart>``."""
    if charts_dir:
        return {"chart": os.path.join(os.path.expanduser(charts_dir), directory or chart)}
    return {"chart": chart, "repository_opts": k8s.helm.v4.RepositoryOptsArgs(repo=repository)}
