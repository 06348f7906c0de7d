"""Stack config checks across entries, on the raw data (so they run even when other fields are invalid).

Each returns ``(key path, message)`` pairs; :func:`cross_errors` runs them all. Split from
``stacks/config/`` (the model); the value rules themselves are ``cnplatform.validation``'s.
"""
from __future__ import annotations

import difflib
import re
from typing import Any

from cnplatform import validation as v
from stacks.config.tiers import tier_defaults

#: Kubernetes objects a service's name is the prefix of (Deployment/Service ``<name>``, canary,
#: in-cluster MySQL StatefulSet/Service/labels, database Secrets).
SERVICE_SUFFIXES = ("-canary",)
DATABASE_SUFFIXES = ("-mysql", "-db-root")
#: Cloud database instances are named ``<cluster>-<service>`` (RDS identifier / Cloud SQL instance: 63).
CLOUD_DB_NAME = 63


def items(raw: Any, key: str) -> list:
    """``raw[key]`` when it is a list (a wrong type is reported by the model), else []."""
    value = raw.get(key) if isinstance(raw, dict) else None
    return value if isinstance(value, list) else []


def _dicts(values: list) -> list[tuple[int, dict]]:
    return [(i, x) for i, x in enumerate(values) if isinstance(x, dict)]


def _sub(d: dict, key: str) -> dict:
    value = d.get(key)
    return value if isinstance(value, dict) else {}


#: Private registries by cloud: a cluster's nodes pull only from their own cloud's (issue #15 item 5).
PRIVATE_REGISTRIES = {
    "aws": re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/"),
    "gcp": re.compile(r"^([a-z0-9-]+-docker\.pkg\.dev|([a-z]+\.)?gcr\.io)/"),
}


def _image_errors(path: str, svc: dict, clusters: list) -> list[tuple[str, str]]:
    """Each cluster that runs the service has an image it can pull (its own cloud's registry or a public one)."""
    image = svc.get("image")
    if not image:
        return []
    cloud_of = {c.get("name"): c.get("cloud") for c in clusters
                if isinstance(c, dict) and isinstance(c.get("name"), str)}
    limit = svc.get("clusters") if isinstance(svc.get("clusters"), list) else None
    runs_on = [c for c in cloud_of if not limit or c in limit]
    per_cluster = image if isinstance(image, dict) else {c: image for c in runs_on}
    errors = []
    if isinstance(image, dict):
        errors += [(f"{path}.image.{c}", f"unknown cluster {c!r} (clusters: {', '.join(map(str, cloud_of))})")
                   for c in image if c not in cloud_of]
        errors += [(f"{path}.image", f"no image for cluster {c!r}: give every cluster that runs the service "
                                     "an image from a registry its nodes can pull") for c in runs_on if c not in image]
    for cluster, ref in per_cluster.items():
        cloud = cloud_of.get(cluster)
        other = [o for o, rx in PRIVATE_REGISTRIES.items() if o != cloud and rx.match(str(ref))]
        if cloud and other:
            key = f"{path}.image.{cluster}" if isinstance(image, dict) else f"{path}.image"
            errors.append((key, f"{ref!r} is in a private {other[0]} registry that the nodes of {cluster!r} "
                                f"({cloud}) cannot pull from; give {cluster!r} its own image "
                                f"(image: {{{cluster}: ...}})"))
    return errors


def _duplicates(raw: dict) -> list[tuple[str, str]]:
    """Cluster, service and namespace names are unique."""
    errors = []
    for key in ("clusters", "services", "namespaces"):
        seen: dict = {}
        for i, item in _dicts(items(raw, key)):
            n = item.get("name")
            if isinstance(n, str) and n in seen:
                errors.append((f"{key}[{i}].name", f"duplicate name {n!r} (also {key}[{seen[n]}])"))
            if isinstance(n, str):
                seen.setdefault(n, i)
    return errors


def _cluster_errors(raw: dict) -> list[tuple[str, str]]:
    """Deployer roles on EKS, zones inside the region, no world-open control plane in prod without opt-in."""
    errors = []
    tier = tier_defaults(raw.get("tier"))
    prod = tier is not None and tier.world_open_needs_opt_in
    for i, cluster in _dicts(items(raw, "clusters")):
        aws, cloud, region = _sub(cluster, "aws"), cluster.get("cloud"), cluster.get("region")
        if cloud == "aws" and not (aws.get("deployer_role_arns") or aws.get("admin_role_arns")):
            errors.append((f"clusters[{i}].aws.deployer_role_arns", (
                "an EKS cluster needs the IAM role that runs `pulumi up` (CI) as an access entry from the first "
                "up: e.g. [arn:aws:iam::<account>:role/<deploy-role>] (the creator is not an implicit admin)")))
        if isinstance(region, str):
            for j, z in enumerate(cluster.get("zones") if isinstance(cluster.get("zones"), list) else []):
                if message := v.zone_error(z, region, str(cloud)):
                    errors.append((f"clusters[{i}].zones[{j}]", message))
        allow_key = {"aws": ("aws", "public_access_cidrs"),
                     "gcp": ("gcp", "master_authorized_networks")}.get(str(cloud))
        if prod and allow_key and cluster.get("allow_world_open_control_plane") is not True:
            for j, c in enumerate(_sub(cluster, allow_key[0]).get(allow_key[1]) or []):
                if v.is_world_open(c):
                    errors.append((f"clusters[{i}].{allow_key[0]}.{allow_key[1]}[{j}]", (
                        f"{c} opens the prod control plane to the whole internet; list your networks (office, "
                        "VPN, CI egress) or set allow_world_open_control_plane: true on the cluster to accept it")))
    return errors


def _call_errors(i: int, svc: dict, services: set, clusters: set) -> list[tuple[str, str]]:
    errors = []
    for j, callee in enumerate(svc.get("calls") if isinstance(svc.get("calls"), list) else []):
        if callee not in services:
            close = difflib.get_close_matches(str(callee), sorted(services), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            errors.append((f"services[{i}].calls[{j}]", f"calls unknown service {callee!r}{hint}"))
        elif callee == svc.get("name"):
            errors.append((f"services[{i}].calls[{j}]", "a service cannot call itself"))
    for j, cl in enumerate(svc.get("clusters") if isinstance(svc.get("clusters"), list) else []):
        if cl not in clusters:
            errors.append((f"services[{i}].clusters[{j}]", f"unknown cluster {cl!r}"))
    return errors


def _min_replicas(i: int, svc: dict, tier_name: str, minimum: int) -> list[tuple[str, str]]:
    errors = []
    reps = svc.get("replicas")
    if isinstance(reps, int) and reps < minimum:
        errors.append((f"services[{i}].replicas", f"{tier_name} needs at least {minimum} replicas (got {reps})"))
    low = _sub(svc, "autoscaling").get("min_replicas")
    if isinstance(low, int) and low < minimum:
        errors.append((f"services[{i}].autoscaling.min_replicas",
                       f"{tier_name} needs at least {minimum} replicas (got {low})"))
    return errors


def _name_errors(i: int, svc: dict, clusters: list) -> list[tuple[str, str]]:
    """Every name derived from the service's name fits 63 characters (Kubernetes objects, cloud databases)."""
    name = svc.get("name")
    if not isinstance(name, str) or not v.DNS1035_LABEL.match(name) or len(name) > v.MAX_NAME:
        return []  # the name itself is reported by the model
    suffixes = SERVICE_SUFFIXES + (DATABASE_SUFFIXES if svc.get("database") else ())
    msgs = v.derived_names(name, suffixes, "Kubernetes object")
    if svc.get("database"):
        runs_on = svc.get("clusters") if isinstance(svc.get("clusters"), list) else None
        for _, c in _dicts(clusters):
            cname = c.get("name")
            if c.get("cloud") in ("aws", "gcp") and isinstance(cname, str) and (runs_on is None or cname in runs_on):
                msgs += v.derived_names(f"{cname}-", [name], f"database instance (on cluster {cname!r})")
    return [(f"services[{i}].name", m) for m in msgs]


def _env_errors(i: int, svc: dict) -> list[tuple[str, str]]:
    env = _sub(svc, "env")
    return [(f"services[{i}].env" + (f".{k}" if k else ""), m) for k, m in v.env_literals(env)]


def _expose_errors(raw: dict) -> list[tuple[str, str]]:
    """No two services expose overlapping paths on the same host (platform routes: ``Exposure.path``)."""
    errors = []
    seen: list[tuple[str, str, int]] = []
    for i, svc in _dicts(items(raw, "services")):
        expose = _sub(svc, "expose")
        path, host = expose.get("path"), expose.get("host", "*")
        if not isinstance(path, str):
            continue
        for other_path, other_host, j in seen:
            same_host = host == other_host or "*" in (host, other_host)
            if same_host and v.paths_overlap(path, other_path):
                errors.append((f"services[{i}].expose.path",
                               f"{path!r} overlaps {other_path!r} exposed by services[{j}] on the same host"))
        seen.append((path, host, i))
    return errors


def _cicd_errors(raw: dict, clusters: set) -> list[tuple[str, str]]:
    """``cicd.cluster`` names one of the stack's clusters (Jenkins runs there)."""
    cluster = _sub(raw, "cicd").get("cluster")
    if cluster is None or cluster in clusters:
        return []
    close = difflib.get_close_matches(str(cluster), sorted(map(str, clusters)), n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"clusters: {', '.join(sorted(map(str, clusters)))}"
    return [("cicd.cluster", f"unknown cluster {cluster!r} (Jenkins runs on one of the stack's clusters); {hint}")]


def cross_errors(raw: dict) -> list[tuple[str, str]]:
    """Checks across entries, on the raw data so they run even when other fields are invalid."""
    errors = _duplicates(raw) + _cluster_errors(raw) + _expose_errors(raw)
    services = {s.get("name") for _, s in _dicts(items(raw, "services")) if s.get("name")}
    clusters = {c.get("name") for _, c in _dicts(items(raw, "clusters")) if c.get("name")}
    errors += _cicd_errors(raw, clusters)
    declared = items(raw, "namespaces")
    declared_ns = {n.get("name") for _, n in _dicts(declared)} if "namespaces" in raw else {"shop"}
    for i, svc in _dicts(items(raw, "services")):
        errors += _call_errors(i, svc, services, clusters)
        errors += _image_errors(f"services[{i}]", svc, items(raw, "clusters"))
        errors += _name_errors(i, svc, items(raw, "clusters"))
        errors += _env_errors(i, svc)
        ns = svc.get("namespace", "shop")
        if ns not in declared_ns:
            errors.append((f"services[{i}].namespace", f"namespace {ns!r} is not declared in 'namespaces'"))
        tier = tier_defaults(raw.get("tier"))
        if tier is not None and tier.min_service_replicas > 1:
            errors += _min_replicas(i, svc, raw["tier"], tier.min_service_replicas)
    return errors
