"""Render the platform's Helm charts the way pulumi-kubernetes' ``helm.v4.Chart`` does.

``helm.v4.Chart`` (provider/pkg/provider/helm/v4/chart.go in pulumi/pulumi-kubernetes) runs Helm's
install action as ``helm template --dry-run=server``: ``ClientOnly``, ``IncludeCRDs = !skipCrds``
(the chart's ``crds/`` directories, subcharts' too, are part of the output), ``DisableHooks = true``
(objects annotated ``helm.sh/hook`` are not deployed at all), ``.Release.IsInstall`` true /
``.Release.Revision`` 1 on every run, ``.Capabilities.KubeVersion`` and ``.Capabilities.APIVersions``
read from the target cluster's discovery (Helm's defaults plus what the server serves), the release
namespace from ``namespace`` and objects without one put in it (``yaml/v2.Normalize``), ``List``
kinds flattened. Then every object is registered as its own Pulumi resource and applied by
server-side apply.

Here the same rendering runs through the Helm v4 Go SDK bundled in the PyPI package
``helm-python-sdk`` (``libhelm_c.so``), fully offline: ``lookup`` returns empty, which is what the
first ``pulumi up`` on an empty cluster sees as well.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

CHARTS_DIR = Path(__file__).resolve().parent / "charts"
HOOK_ANNOTATION = "helm.sh/hook"

# Used only when no cluster discovery is at hand (unit tests): the built-in cluster-scoped kinds.
BUILTIN_CLUSTER_SCOPED = {
    "Namespace", "Node", "PersistentVolume", "ClusterRole", "ClusterRoleBinding", "StorageClass",
    "CustomResourceDefinition", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
    "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding", "APIService", "PriorityClass", "IngressClass", "RuntimeClass",
    "CSIDriver", "CSINode", "VolumeAttachment", "FlowSchema", "PriorityLevelConfiguration",
    "CertificateSigningRequest", "ClusterIssuer", "DeviceClass",
}


@dataclass
class Release:
    name: str
    chart: str
    version: str
    namespace: str
    values: dict[str, Any]
    chart_dir: Path


@dataclass
class Rendered:
    release: Release
    objects: list[dict[str, Any]] = field(default_factory=list)
    hooks_dropped: list[str] = field(default_factory=list)
    crds: int = 0


def chart_index(charts_dir: Path = CHARTS_DIR) -> dict[tuple[str, str], Path]:
    """(chart name, version) -> unpacked chart directory under e2e/charts/."""
    index = {}
    for chart_yaml in sorted(charts_dir.glob("*/Chart.yaml")):
        meta = yaml.safe_load(chart_yaml.read_text())
        index[(meta["name"], str(meta["version"]))] = chart_yaml.parent
    return index


def load_releases(render_dir: Path, cluster: str, charts_dir: Path = CHARTS_DIR) -> list[Release]:
    """The Helm releases of one cluster of an offline render (``helm/<cluster>/charts.json``)."""
    base = Path(render_dir) / "helm" / cluster
    spec = json.loads((base / "charts.json").read_text())
    index = chart_index(charts_dir)
    out = []
    for rel in spec["releases"]:
        key = (rel["chart"], str(rel["version"]))
        if key not in index:
            raise FileNotFoundError(f"chart {key[0]} {key[1]} is not unpacked under {charts_dir}")
        values = load_yaml((base / rel["valuesFile"]).read_text()) or {}
        out.append(Release(rel["name"], rel["chart"], str(rel["version"]), rel["namespace"], values, index[key]))
    return out


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Safe loader without YAML 1.1's "=" value tag (a plain "=" is a string to Kubernetes)."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:value"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


# Helm's own splitter (pkg/release/util SplitManifests): "---" at a line start, whatever follows.
_SEP = re.compile(r"(?:^|\s*\n)---\s*")


def _docs(text: str) -> Iterable[dict[str, Any]]:
    for part in _SEP.split(text):
        doc = load_yaml(part) if part.strip() else None
        if not doc:
            continue
        if isinstance(doc, dict) and doc.get("kind", "").endswith("List") and "items" in doc:
            yield from (d for d in doc["items"] or [] if d)
        else:
            yield doc


def _subchart_enabled(chart_dir: Path, rel_path: str, merged: dict[str, Any]) -> bool:
    """Helm drops a subchart (and its crds/) when its ``condition`` is false in the merged values."""
    parts = rel_path.split("/")
    if "charts" not in parts[1:]:
        return True
    meta = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    sub = parts[parts.index("charts", 1) + 1]
    for dep in meta.get("dependencies") or []:
        if (dep.get("alias") or dep["name"]) != sub or not dep.get("condition"):
            continue
        for cond in dep["condition"].split(","):
            node: Any = merged
            for key in cond.strip().split("."):
                node = node.get(key) if isinstance(node, dict) else None
            if isinstance(node, bool):
                return node
    return True


def render_release(release: Release, *, kube_version: str, api_versions: list[str],
                   is_namespaced: Callable[[str, str], bool], include_crds: bool = True) -> Rendered:
    """Render one release as helm.v4.Chart would, returning the objects it would apply."""
    from helm_python import Chart, _native  # imported lazily: the unit tests skip without it

    opts = {"name": release.name, "namespace": release.namespace, "is_install": True,
            "revision": 1, "kube_version": kube_version, "api_versions": list(api_versions)}
    out = Rendered(release)
    with Chart.load(release.chart_dir) as chart:
        manifests: dict[str, str] = json.loads(_native.call_string(
            "helm_render", chart._raw(), json.dumps(release.values), json.dumps(opts)))
        crd_objs: list[dict[str, Any]] = []
        if include_crds:
            merged = chart.merge_values(release.values)
            for crd in chart.crds:
                if _subchart_enabled(release.chart_dir, crd.get("filename") or crd.get("name", ""), merged):
                    crd_objs.extend(_docs(crd["data"]))
    out.crds = len(crd_objs)
    objs = list(crd_objs)
    for path in sorted(manifests):
        if path.endswith("NOTES.txt"):
            continue
        for obj in _docs(manifests[path]):
            anns = (obj.get("metadata") or {}).get("annotations") or {}
            if HOOK_ANNOTATION in anns:
                out.hooks_dropped.append(f"{obj['kind']}/{obj['metadata']['name']} ({anns[HOOK_ANNOTATION]})")
                continue
            objs.append(obj)
    for obj in objs:
        meta = obj.setdefault("metadata", {})
        if is_namespaced(obj["apiVersion"], obj["kind"]):
            meta.setdefault("namespace", release.namespace)
            if not meta["namespace"]:
                meta["namespace"] = release.namespace
        else:
            meta.pop("namespace", None)
    out.objects = objs
    return out


def static_is_namespaced(extra_cluster_kinds: Iterable[str] = ()) -> Callable[[str, str], bool]:
    cluster_kinds = BUILTIN_CLUSTER_SCOPED | set(extra_cluster_kinds)
    return lambda api_version, kind: kind not in cluster_kinds


def crd_scopes(objs: Iterable[dict[str, Any]]) -> dict[tuple[str, str], bool]:
    """(group, kind) -> namespaced, from CRD objects about to be applied."""
    out = {}
    for o in objs:
        if o.get("kind") == "CustomResourceDefinition":
            spec = o["spec"]
            out[(spec["group"], spec["names"]["kind"])] = spec.get("scope", "Namespaced") == "Namespaced"
    return out


def load_own_manifests(render_dir: Path, cluster: str) -> list[tuple[Path, dict[str, Any]]]:
    """Our own objects from ``manifests/<cluster>/<namespace|_cluster>/<Kind>-<name>.yaml``."""
    base = Path(render_dir) / "manifests" / cluster
    return [(p, load_yaml(p.read_text())) for p in sorted(base.glob("*/*.yaml"))]


def obj_key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    group = obj["apiVersion"].rsplit("/", 1)[0] if "/" in obj["apiVersion"] else ""
    kind = f"{obj['kind']}.{group}" if group else obj["kind"]
    return f"{kind} {ns}/{meta.get('name')}" if ns else f"{kind} {meta.get('name')}"



def dump(objs: Iterable[dict[str, Any]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(list(objs), sort_keys=False))
    return path
