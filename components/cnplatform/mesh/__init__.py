"""mesh components: Istio (upstream charts), per-service traffic and authorization policy, one trust
root across clusters, optional Consul catalog sync. See docs/mesh.md."""
from cnplatform.mesh.authorization import (
    ServiceAuthorizationArgs,
    allow_nothing,
    authorization_policy,
    peer_authentication,
)
from cnplatform.mesh.ca import MeshRootCa, MeshRootCaArgs, cacerts_data
from cnplatform.mesh.consul import ConsulCatalogSync, ConsulCatalogSyncArgs
from cnplatform.mesh.egress import ExternalService, ExternalServiceArgs, service_entry
from cnplatform.mesh.istio import IstioMesh, IstioMeshArgs, cross_network_gateway, public_gateway
from cnplatform.mesh.multicluster import RemoteSecret, RemoteSecretArgs, remote_kubeconfig
from cnplatform.mesh.service_policy import ServiceMeshPolicy, ServiceMeshPolicyArgs, create_service_mesh_policy
from cnplatform.mesh.traffic import (
    ServiceTrafficPolicyArgs,
    destination_rule,
    ingress_virtual_service,
    virtual_service,
)

__all__ = [
    "ConsulCatalogSync", "ConsulCatalogSyncArgs", "ExternalService", "ExternalServiceArgs", "IstioMesh",
    "IstioMeshArgs", "MeshRootCa", "MeshRootCaArgs", "RemoteSecret", "RemoteSecretArgs",
    "ServiceAuthorizationArgs", "ServiceMeshPolicy", "ServiceMeshPolicyArgs", "ServiceTrafficPolicyArgs",
    "allow_nothing", "authorization_policy", "cacerts_data", "create_service_mesh_policy", "cross_network_gateway",
    "destination_rule", "ingress_virtual_service",
    "peer_authentication", "public_gateway", "remote_kubeconfig", "service_entry", "virtual_service",
]
