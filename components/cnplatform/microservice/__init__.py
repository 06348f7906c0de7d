"""microservice components: ``Microservice`` (Deployment, Service, HPA, PDB, NetworkPolicy, canary).

Pure spec builders live in :mod:`cnplatform.microservice.spec`.
"""
from cnplatform.microservice.component import Microservice, MicroserviceArgs, Peer, SecretKeyRef

__all__ = ["Microservice", "MicroserviceArgs", "Peer", "SecretKeyRef"]
