"""Database rules: a cloud MySQL refuses plaintext connections (issue #19 item 6).

``rds-mysql-requires-tls`` (stack policy)
    An ``aws:rds/instance:Instance`` of engine ``mysql`` / ``mariadb`` uses a parameter group of this
    stack (``parameterGroupName``, or a ParameterGroup it depends on) that sets
    ``require_secure_transport`` to ``1`` / ``ON``. The default group leaves it OFF and cannot be
    changed; a group managed elsewhere cannot be checked, so both are reported.
``cloudsql-requires-tls``
    A ``gcp:sql/databaseInstance:DatabaseInstance`` sets ``settings.ipConfiguration.sslMode`` to
    ``ENCRYPTED_ONLY`` or ``TRUSTED_CLIENT_CERTIFICATE_REQUIRED`` (the default,
    ``ALLOW_UNENCRYPTED_AND_ENCRYPTED``, accepts plaintext).

Pure ``check_*`` functions over plain data (tests call them), wrapped as ``pulumi_policy`` policies
at the bottom. Self-contained: the standard library, ``cluster_rules`` and ``pulumi_policy``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Iterable

try:  # the pack runs with policy/ as its working directory; tests import it as ``policy.*``
    from cluster_rules import Res, res_of
except ImportError:  # pragma: no cover - depends on how the module is loaded
    from policy.cluster_rules import Res, res_of

RDS_INSTANCE = "aws:rds/instance:Instance"
RDS_PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup"
CLOUDSQL_INSTANCE = "gcp:sql/databaseInstance:DatabaseInstance"
#: Engines whose TLS switch is ``require_secure_transport``.
RDS_TLS_ENGINES = ("mysql", "mariadb")
CLOUDSQL_TLS_MODES = ("ENCRYPTED_ONLY", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED")


def _map(value: Any) -> Mapping:
    return value if isinstance(value, Mapping) else {}


def requires_secure_transport(group: Mapping) -> bool:
    """A parameter group's properties set ``require_secure_transport`` to 1 / ON."""
    for param in group.get("parameters") or ():
        param = _map(param)
        if param.get("name") == "require_secure_transport":
            return str(param.get("value", "")).strip().upper() in ("1", "ON")
    return False


def check_rds_tls(resources: Iterable[Res]) -> list[tuple[str, str]]:
    resources = list(resources)
    groups = [r for r in resources if r.type == RDS_PARAMETER_GROUP]
    out = []
    for inst in resources:
        if inst.type != RDS_INSTANCE or str(inst.props.get("engine", "")).lower() not in RDS_TLS_ENGINES:
            continue
        ident = inst.props.get("identifier") or inst.urn.rsplit("::", 1)[-1]
        name = inst.props.get("parameterGroupName")
        group = next((g for g in groups if name and g.props.get("name") == name), None)
        if group is None and not name:  # name unknown at preview: the group the instance depends on
            group = next((g for g in groups if g.urn in inst.depends_on), None)
        fix = ("attach a parameter group of this stack (parameter_group_name) that sets "
               "require_secure_transport = 1")
        if group is None:
            where = f"parameter group {name!r} is not managed in this stack" if name else "the default parameter group"
            out.append((inst.urn, f"RDS instance {ident} uses {where}, which does not require TLS: {fix}"))
        elif not requires_secure_transport(group.props):
            out.append((inst.urn, f"RDS instance {ident}: its parameter group {group.props.get('name', group.urn)} "
                                  f"accepts plaintext connections: set require_secure_transport = 1 in it"))
    return out


def check_cloudsql_tls(resource_type: str, props: Mapping) -> list[str]:
    if resource_type != CLOUDSQL_INSTANCE:
        return []
    mode = _map(_map(props.get("settings")).get("ipConfiguration")).get("sslMode")
    if mode in CLOUDSQL_TLS_MODES:
        return []
    return [f"Cloud SQL instance {props.get('name', '')} accepts plaintext connections (sslMode "
            f"{mode or 'unset = ALLOW_UNENCRYPTED_AND_ENCRYPTED'}): set settings.ip_configuration.ssl_mode "
            "to ENCRYPTED_ONLY"]


def policies() -> list:
    from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, StackValidationPolicy

    def validate_rds(args, report_violation) -> None:
        for urn, message in check_rds_tls(res_of(r) for r in args.resources):
            report_violation(message, urn)

    def validate_cloudsql(args, report_violation) -> None:
        for message in check_cloudsql_tls(args.resource_type, args.props):
            report_violation(message, None)

    return [
        StackValidationPolicy(
            name="rds-mysql-requires-tls", enforcement_level=EnforcementLevel.MANDATORY, validate=validate_rds,
            description="RDS MySQL/MariaDB uses a parameter group of the stack with require_secure_transport = 1."),
        ResourceValidationPolicy(
            name="cloudsql-requires-tls", enforcement_level=EnforcementLevel.MANDATORY, validate=validate_cloudsql,
            description="Cloud SQL instances refuse plaintext connections (ssl_mode ENCRYPTED_ONLY)."),
    ]
