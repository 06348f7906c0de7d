"""The API server's size limits, checked before ``pulumi up`` sends an object that cannot be stored.
Self-contained: the standard library and ``pulumi_policy``.

``kubernetes-object-size``
    Every Kubernetes object stays within what the API server accepts:

    * ConfigMap ``data`` + ``binaryData`` and Secret ``data`` + ``stringData``: at most 1 MiB in all
      (key lengths + value bytes; ``k8s.io/kubernetes`` pkg/apis/core/validation ``MaxSecretSize``,
      applied by ``ValidateConfigMap`` and ``ValidateSecret``);
    * ``metadata.annotations``: at most 256 KiB (keys + values; apimachinery
      ``TotalAnnotationSizeLimitB``), a limit a dashboard or a large ``kubectl.kubernetes.io/
      last-applied-configuration`` reaches first;
    * the whole object, as JSON: at most 1.5 MiB, etcd's default request limit
      (``--max-request-bytes`` 1.5 MiB; the stored protobuf is usually smaller than JSON, so this is
      conservative and says so).

    Each violation names the object, its size and the limit, and what to do (split the ConfigMap,
    mount a volume, move data out of annotations).
"""
from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

MAX_DATA_BYTES = 1024 * 1024
MAX_ANNOTATION_BYTES = 256 * 1024
MAX_OBJECT_BYTES = 1536 * 1024
DATA_FIELDS = {"ConfigMap": ("data", "binaryData"), "Secret": ("data", "stringData")}


def _map(value: Any) -> Mapping:
    return value if isinstance(value, Mapping) else {}


def _kind(resource_type: str) -> str:
    """``kubernetes:core/v1:ConfigMap`` -> ``ConfigMap`` ('' for anything not Kubernetes)."""
    if not resource_type.startswith("kubernetes:") or resource_type.count(":") != 2:
        return ""
    return resource_type.rsplit(":", 1)[1]


#: Fields whose values are base64 in the API's JSON ([]byte in Go): counted decoded, as the server does.
BINARY_FIELDS = {("Secret", "data"), ("ConfigMap", "binaryData")}


def _value_bytes(kind: str, field: str, value: Any) -> int:
    text = value if isinstance(value, str) else json.dumps(value)
    if (kind, field) in BINARY_FIELDS:
        try:
            return len(base64.b64decode(text, validate=True))
        except ValueError:
            pass
    return len(text.encode())


def data_bytes(kind: str, props: Mapping) -> int:
    """What the API server counts against ``MaxSecretSize``: keys + values (base64 fields decoded)."""
    return sum(len(str(key).encode()) + _value_bytes(kind, field, value)
               for field in DATA_FIELDS.get(kind, ()) for key, value in _map(props.get(field)).items())


def annotation_bytes(props: Mapping) -> int:
    annotations = _map(_map(props.get("metadata")).get("annotations"))
    return sum(len(str(k).encode()) + len(str(v).encode()) for k, v in annotations.items())


def object_bytes(props: Mapping) -> int:
    return len(json.dumps(props, separators=(",", ":"), default=str).encode())


def _where(kind: str, props: Mapping) -> str:
    meta = _map(props.get("metadata"))
    return f"{kind} {meta.get('namespace') or '-'}/{meta.get('name') or '?'}"


def check_object_size(resource_type: str, props: Mapping) -> list[str]:
    """Violations of ``kubernetes-object-size`` for one resource."""
    kind = _kind(resource_type)
    if not kind:
        return []
    where, out = _where(kind, props), []
    if kind in DATA_FIELDS and (size := data_bytes(kind, props)) > MAX_DATA_BYTES:
        out.append(f"{where}: its data is {size} bytes, over the API server's {MAX_DATA_BYTES} (1 MiB): split "
                   "it into several objects or ship the content another way (an image, a volume)")
    if (size := annotation_bytes(props)) > MAX_ANNOTATION_BYTES:
        out.append(f"{where}: its annotations are {size} bytes, over the API server's {MAX_ANNOTATION_BYTES} "
                   "(256 KiB): move the content into a ConfigMap or the spec")
    if (size := object_bytes(props)) > MAX_OBJECT_BYTES:
        out.append(f"{where}: the object is {size} bytes as JSON, over etcd's default request limit of "
                   f"{MAX_OBJECT_BYTES} (1.5 MiB): the API server would refuse it; move large content "
                   "(env literals, embedded files) into ConfigMaps or volumes")
    return out


def policies():
    from pulumi_policy import EnforcementLevel, ResourceValidationPolicy

    def validate(args, report_violation) -> None:
        for message in check_object_size(args.resource_type, args.props):
            report_violation(message, None)

    return [ResourceValidationPolicy(
        name="kubernetes-object-size",
        description="Kubernetes objects stay within the API server's limits (1 MiB ConfigMap/Secret data, "
                    "256 KiB annotations, 1.5 MiB per object).",
        validate=validate, enforcement_level=EnforcementLevel.MANDATORY)]
