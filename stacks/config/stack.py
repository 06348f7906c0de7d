"""The whole stack: tier, clusters, namespaces, services and the layers' config, with tier-aware views."""
from __future__ import annotations

import copy
from functools import cached_property
from typing import Optional

from pydantic import Field

from stacks.config.addons import (
    AddonsConfig,
    CicdConfig,
    MeshConfig,
    MonitoringConfig,
    NamespaceConfig,
)
from stacks.config.base import Strict, Tier
from stacks.config.clusters import ClusterConfig
from stacks.config.services import ServiceConfig
from stacks.config.tiers import TIERS, TierDefaults


class StackConfig(Strict):
    tier: Tier
    clusters: list[ClusterConfig] = Field(min_length=1)
    namespaces: list[NamespaceConfig] = [NamespaceConfig(name="shop")]
    services: list[ServiceConfig] = []
    mesh: MeshConfig = MeshConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    cicd: CicdConfig = CicdConfig()
    addons: AddonsConfig = AddonsConfig()
    #: Directory of unpacked Helm charts (air-gapped installs, e.g. e2e/charts): every chart is installed from
    #: its subdirectory there instead of its chart repository. Unset: charts come from their repositories.
    charts_dir: Optional[str] = None

    # Derived, tier-aware views (the defaults themselves: stacks.config.tiers.TIERS).
    @property
    def defaults(self) -> TierDefaults:
        return TIERS[self.tier]

    @property
    def protect(self) -> bool:
        return self.defaults.protect

    def replicas(self, svc: ServiceConfig) -> int:
        return svc.replicas if svc.replicas is not None else self.defaults.service_replicas

    def resources(self, svc: ServiceConfig) -> dict[str, dict[str, str]]:
        """The service's requests/limits: its own ``resources`` when set, else the tier's."""
        if "resources" in svc.model_fields_set:
            return svc.resources.model_dump()
        return copy.deepcopy(self.defaults.service_resources)

    def services_on(self, cluster: str) -> list[ServiceConfig]:
        return [s for s in self.services if s.clusters is None or cluster in s.clusters]

    def service(self, name: str) -> ServiceConfig:
        return self.services_by_name[name]

    # Computed once per config (configs are not changed after validation): layers ask per service.
    @cached_property
    def services_by_name(self) -> dict[str, ServiceConfig]:
        return {s.name: s for s in self.services}

    @cached_property
    def callers(self) -> dict[str, list[str]]:
        """service -> the services that declare it in ``calls`` (the source of every traffic policy)."""
        from cnplatform.topology import callers_of

        return callers_of({s.name: s.calls for s in self.services})
