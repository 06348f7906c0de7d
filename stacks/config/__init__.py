"""Typed stack configuration: one pydantic model for everything a stack declares.

Only this package (and the CLIs) reads Pulumi config; components receive plain typed values. Every
structural error (unknown key, wrong type, bad name or quantity) and every cross-reference error
(unknown service in ``calls``, duplicate names, tier rules) is collected and reported together with
its key path, before any resource is registered.

Modules: :mod:`.base` (project, strict model, typed values), :mod:`.clusters`, :mod:`.services`,
:mod:`.addons` (the platform layers), :mod:`.stack` (the whole), :mod:`.tiers` (every tier default),
:mod:`.checks` (rules across entries), :mod:`.errors`, :mod:`.loading` / :mod:`.stack_file` (reading).
Nothing here imports the composition (``stacks.compose``) or the checks that need it (``stacks.checks``).
"""
from stacks.config.addons import (
                                  AddonsConfig,
                                  CertManagerConfig,
                                  CicdConfig,
                                  IngressConfig,
                                  KarpenterConfig,
                                  MeshConfig,
                                  MonitoringConfig,
                                  NamespaceConfig,
                                  Receiver,
)
from stacks.config.base import PLATFORM_ROUTES, PROJECT, ROOT, Strict
from stacks.config.clusters import (
                                  AwsClusterOptions,
                                  ClusterConfig,
                                  GcpClusterOptions,
                                  LocalClusterOptions,
                                  NodePoolConfig,
)
from stacks.config.errors import ConfigError
from stacks.config.loading import (
                                  parse_config,
                                  raw_from_stack_file,
                                  read_pulumi_config,
                                  secret_config_keys,
)
from stacks.config.services import (
                                  DEFAULT_LIMITS,
                                  DEFAULT_REQUESTS,
                                  Autoscaling,
                                  Canary,
                                  DatabaseSpec,
                                  Exposure,
                                  ExternalCaller,
                                  HealthPaths,
                                  ResourceList,
                                  Resources,
                                  SecretRef,
                                  ServiceConfig,
                                  Slo,
                                  TrafficPolicy,
)
from stacks.config.stack import StackConfig
from stacks.config.tiers import TIERS, TierDefaults

__all__ = [
    "DEFAULT_LIMITS", "DEFAULT_REQUESTS", "PLATFORM_ROUTES", "PROJECT", "ROOT", "TIERS", "AddonsConfig",
    "Autoscaling", "AwsClusterOptions", "Canary", "CertManagerConfig", "CicdConfig", "ClusterConfig",
    "ConfigError", "DatabaseSpec", "Exposure", "ExternalCaller", "GcpClusterOptions", "HealthPaths",
    "IngressConfig", "KarpenterConfig", "LocalClusterOptions", "MeshConfig", "MonitoringConfig",
    "NamespaceConfig", "NodePoolConfig", "Receiver", "ResourceList", "Resources", "SecretRef", "ServiceConfig",
    "Slo", "StackConfig", "Strict", "TierDefaults", "TrafficPolicy", "parse_config", "raw_from_stack_file",
    "read_pulumi_config", "secret_config_keys",
]
