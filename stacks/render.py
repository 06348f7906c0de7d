"""Offline render: run the stack's composition under mocks and write what it would create.

    python -m stacks.render --stack NAME [--config PATH] --out DIR

Writes ``plan.json`` (every resource: urn, type, name, parent, provider, depends_on, protect,
inputs; stack outputs; secrets shown as "[secret]"), ``manifests/<cluster>/<ns|_cluster>/<Kind>-<name>.yaml``,
``helm/<cluster>/<chart>.yaml`` + ``charts.json``, ``iam/<name>.iam.json``, ``footprint.json``,
``critical_path.json`` (per cluster the longest chain of resources waiting for one another:
``stacks.checks.critical_path``). Prints per cluster its resources, requests against allocatable,
warnings and critical path, then the footprint by layer and the time taken (``--verbose``: resources
by type too). A bad config exits 2 with every error on stderr and writes nothing. Deterministic.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Optional

import yaml

from cnplatform.testing import Capture, Registration, unwrap
from cnplatform.validation import ArgsError
from stacks.checks import check_config, critical_path
from stacks.checks.footprint import report
from stacks.config import PROJECT, ROOT, ConfigError, StackConfig, secret_config_keys, stack_file
from stacks.offline import run_stack
from stacks.summary import WarningLog, by_cluster, footprint_data, format_summary, warning_lines

SECRET_MASK = "[secret]"
HELM_CHART_TYPES = ("kubernetes:helm.sh/v4:Chart", "kubernetes:helm.sh/v3:Release")
NOT_MANIFESTS = ("kubernetes:helm.sh/", "kubernetes:yaml", "kubernetes:kustomize")
#: Kubernetes kinds without a namespace.
CLUSTER_SCOPED = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "StorageClass",
    "PriorityClass", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "ClusterIssuer",
    "NodePool", "EC2NodeClass", "PersistentVolume", "APIService", "IngressClass", "RuntimeClass",
}
#: aws resource inputs that hold IAM policy documents.
IAM_POLICY_INPUTS = ("policy", "assumeRolePolicy")


class Yaml(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):
    """Block-style YAML with multi-line strings as literal blocks (readable dashboards and JCasC)."""


def _str(dumper: yaml.SafeDumper, data: str):
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


Yaml.add_representer(str, _str)


def dump_yaml(doc: Any) -> str:
    return yaml.dump(doc, Dumper=Yaml, sort_keys=True, default_flow_style=False, allow_unicode=True, width=120)


def load_stack_file(stack: str, path: Optional[str]) -> dict:
    file = Path(path) if path else ROOT / f"Pulumi.{stack}.yaml"
    return yaml.safe_load(file.read_text()) or {}


# ----------------------------------------------------------------------------------- converters


def is_k8s_object(reg: Registration) -> bool:
    return reg.custom and reg.type.startswith("kubernetes:") and not reg.type.startswith(NOT_MANIFESTS)


def manifest_of(reg: Registration) -> dict:
    """A Kubernetes manifest from the resource's inputs (type token gives apiVersion and kind)."""
    _, group_version, kind = reg.type.split(":")
    group, version = group_version.split("/")
    api_version = version if group == "core" else f"{group}/{version}"
    body = unwrap({k: v for k, v in reg.inputs.items() if k not in ("apiVersion", "kind")})
    return {"apiVersion": api_version, "kind": kind, **body}


def iam_documents(reg: Registration) -> dict[str, Any]:
    docs = {}
    if not reg.type.startswith("aws:"):
        return docs
    for key in IAM_POLICY_INPUTS:
        value = unwrap(reg.inputs.get(key))
        if isinstance(value, str) and value.strip().startswith("{"):
            doc = json.loads(value)
            if "Statement" in doc:  # IAM policy language (not e.g. an ECR lifecycle policy)
                docs[reg.name if key == "policy" else f"{reg.name}-trust"] = doc
    return docs


def plan(capture: Capture) -> dict:
    resources = [{
        "urn": r.urn, "type": r.type, "name": r.name, "parent": r.parent or None, "cluster": capture.cluster_of(r),
        "provider": r.provider_urn or None, "depends_on": r.depends_on, "protect": r.protect,
        "inputs": unwrap(r.inputs, mask=SECRET_MASK),
    } for r in capture.resources]
    return {"project": capture.project, "stack": capture.stack, "resources": resources,
            "outputs": unwrap(capture.outputs, mask=SECRET_MASK)}


def render(capture: Capture, out: Path, critical: Optional[dict] = None) -> dict[str, Counter]:
    """Write the render into ``out``; return resource counts by type per cluster. ``critical``: the
    capture's ``critical_path.json`` when the caller has it already."""
    files: dict[Path, str] = {}
    summary: dict[str, Counter] = defaultdict(Counter)
    charts: dict[str, list[dict]] = defaultdict(list)
    for reg in capture.resources:
        cluster = capture.cluster_of(reg)
        summary[cluster][reg.type] += 1
        if is_k8s_object(reg):
            doc = manifest_of(reg)
            meta = doc.get("metadata") or {}
            ns = "_cluster" if doc["kind"] in CLUSTER_SCOPED else meta.get("namespace", "default")
            path = out / "manifests" / cluster / ns / f"{doc['kind']}-{meta.get('name', reg.name)}.yaml"
            if path in files:
                raise SystemExit(f"render: two objects map to {path.relative_to(out)}")
            files[path] = dump_yaml(doc)
        elif reg.type in HELM_CHART_TYPES:
            charts[cluster].append(_chart_entry(reg))
        for name, doc in iam_documents(reg).items():
            files[out / "iam" / f"{name}.iam.json"] = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    for cluster, entries in charts.items():
        counts = Counter(e["chart"] for e in entries)
        for entry in sorted(entries, key=lambda e: e["name"]):
            values = entry.pop("_values")
            chart = os.path.basename(entry["chart"])  # a local chart directory (charts_dir) by its name
            stem = chart if counts[entry["chart"]] == 1 else f"{chart}.{entry['name']}"
            entry["valuesFile"] = f"{stem}.yaml"
            files[out / "helm" / cluster / entry["valuesFile"]] = dump_yaml(values)
        files[out / "helm" / cluster / "charts.json"] = json.dumps(
            {"releases": sorted(entries, key=lambda e: e["name"])}, indent=2, sort_keys=True) + "\n"
    files[out / "plan.json"] = json.dumps(plan(capture), indent=2, sort_keys=True) + "\n"
    critical = critical if critical is not None else critical_path.of_capture(capture)
    files[out / "critical_path.json"] = json.dumps(critical, indent=2, sort_keys=True) + "\n"
    if isinstance(capture.config, StackConfig):  # the footprint the diff compares (python -m stacks.diff)
        files[out / "footprint.json"] = json.dumps(footprint_data(capture.config), indent=2, sort_keys=True) + "\n"
    if out.exists():
        shutil.rmtree(out)
    for path, text in sorted(files.items()):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return summary


def _chart_entry(reg: Registration) -> dict:
    inputs = unwrap(reg.inputs)
    repo = (inputs.get("repositoryOpts") or {}).get("repo") or ""
    chart = str(inputs.get("chart", reg.name))
    if chart.startswith("oci://"):
        repo, chart = chart.rsplit("/", 1)
    return {"name": inputs.get("name") or reg.name, "chart": chart, "version": inputs.get("version"),
            "repo": repo, "namespace": inputs.get("namespace", "default"), "_values": inputs.get("values") or {}}


# -------------------------------------------------------------------------------------------- cli


def main(argv: Optional[list[str]] = None) -> int:
    started = time.monotonic()
    parser = argparse.ArgumentParser(prog="python -m stacks.render", description=__doc__.split("\n")[0])
    parser.add_argument("--stack", required=True, help="stack name (reads Pulumi.<stack>.yaml)")
    parser.add_argument("--config", help="a stack config file in the Pulumi.<stack>.yaml format")
    parser.add_argument("--out", required=True, help="output directory (replaced)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only warnings and errors (on stderr)")
    parser.add_argument("-v", "--verbose", action="store_true", help="also print the resources by type")
    args = parser.parse_args(argv)

    try:
        cfg, raw, secure = validated(args.stack, args.config, args.out)
    except ConfigError as err:
        print(err.report(args.stack), file=sys.stderr)
        return 2
    messages = []
    for key in sorted(secret_config_keys(cfg) - set(secure)):
        # `pulumi up` refuses a stack without them; offline they are placeholders like any secret.
        messages.append(f"secret {key!r} is not set (pulumi config set --secret {key} ...): "
                        "rendered as a placeholder")
        secure[key] = "unset"
    try:
        with WarningLog() as log:
            capture = run_stack(cfg, stack=args.stack, raw=raw, secure=secure)
    except ArgsError as err:  # a rule the config validation should have had: still exit 2, nothing written
        print(f"stack {args.stack!r}: a component rejected its arguments (please report: the config "
              f"validation should have caught this):\n{err}", file=sys.stderr)
        return 2
    critical = critical_path.of_capture(capture)
    counts = render(capture, Path(args.out), critical)
    clusters = [c.name for c in cfg.clusters]
    warnings = by_cluster(log.messages + messages, clusters)
    if args.quiet:
        for line in warning_lines(warnings, clusters):
            print(line, file=sys.stderr)
    else:
        print(format_summary(args.stack, counts, footprint_data(cfg), warnings, time.monotonic() - started,
                             args.out, report(cfg), verbose=args.verbose, critical=critical))
    return 0


def validated(stack: str, config: Optional[str], out: str) -> tuple[Any, dict, dict[str, str]]:
    """(config, raw, secure values) of the stack file, or one ConfigError with every problem (nothing written)."""
    raw, secure, errors = stack_file.load(stack, config, PROJECT)
    errors += stack_file.out_dir_errors(out)
    try:
        cfg = check_config(raw)
    except ConfigError as err:
        errors += err.errors
        cfg = None
    if errors:
        raise ConfigError(errors)
    return cfg, raw, secure


if __name__ == "__main__":
    sys.exit(main())
