"""Jenkins configuration as code: the security realm and matrix authorization, the Kubernetes cloud
(pod agents), the pipelines' global environment, and the job-dsl seed (one multibranch job per service).

Pure functions of :class:`~cnplatform.cicd.settings.JenkinsArgs`; the chart receives their output as
``controller.JCasC.configScripts``.
"""
from __future__ import annotations

import re
from typing import Any, Optional

import yaml

from cnplatform.cicd.identity import AGENT_NAMESPACE, AGENT_SERVICE_ACCOUNT
from cnplatform.cicd.settings import (
    ADMIN_PERMISSIONS,
    AGENT_PORT,
    DEVELOPER_PERMISSIONS,
    HTTP_PORT,
    INBOUND_AGENT_IMAGE,
    NAMESPACE,
    RELEASE,
    JenkinsArgs,
)


def github_repo(repo_url: str) -> Optional[tuple[str, str]]:
    """(owner, repository) of a github.com URL, else None."""
    m = re.match(r"^(?:https://github\.com/|git@github\.com:)([^/]+)/([^/]+?)(?:\.git)?/?$", repo_url)
    return (m.group(1), m.group(2)) if m else None


def _groovy(text: str) -> str:
    """A single-quoted Groovy string literal (no interpolation, so JCasC's ``${}`` is never involved)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def seed_script(services: list[str], repo_url: str, branch: str) -> str:
    """Job DSL: one multibranch pipeline per service, building the root Jenkinsfile.

    The job is named after the service; the Jenkinsfile takes ``SERVICE`` from its parameter or,
    when empty, from that name. Discovers ``branch`` and pull requests (which set ``CHANGE_ID``).
    """
    gh = github_repo(repo_url)
    blocks = []
    for name in services:
        if gh:
            source = "\n".join([
                "        github {",
                f"          id({_groovy('svc-' + name)})",
                f"          repoOwner({_groovy(gh[0])})",
                f"          repository({_groovy(gh[1])})",
                f"          repositoryUrl({_groovy(repo_url)})",
                "          configuredByUrl(true)",
                "          credentialsId('github-token')",
                "          traits {",
                "            gitHubBranchDiscovery { strategyId(1) }",
                "            gitHubPullRequestDiscovery { strategyId(1) }",
                f"            headWildcardFilter {{ includes({_groovy(branch + ' PR-*')}); excludes('') }}",
                "          }",
                "        }",
            ])
        else:
            source = "\n".join([
                "        git {",
                f"          id({_groovy('svc-' + name)})",
                f"          remote({_groovy(repo_url)})",
                "          credentialsId('github-token')",
                "          traits {",
                "            gitBranchDiscovery()",
                f"            headWildcardFilter {{ includes({_groovy(branch)}); excludes('') }}",
                "          }",
                "        }",
            ])
        blocks.append("\n".join([
            f"multibranchPipelineJob({_groovy(name)}) {{",
            f"  displayName({_groovy(name + ' service')})",
            f"  description({_groovy(f'Test, build and deploy the {name} service (Jenkinsfile, SERVICE={name}).')})",
            "  branchSources {",
            "    branchSource {",
            "      source {",
            source,
            "      }",
            "    }",
            "  }",
            "  factory {",
            "    workflowBranchProjectFactory { scriptPath('Jenkinsfile') }",
            "  }",
            "  orphanedItemStrategy {",
            "    discardOldItems { numToKeep(10) }",
            "  }",
            "  triggers {",
            "    periodicFolderTrigger { interval('5m') }",
            "  }",
            "}",
        ]))
    return "\n".join(blocks) + "\n"


def kubernetes_cloud(namespace: str = AGENT_NAMESPACE) -> dict[str, Any]:
    """JCasC ``jenkins.clouds[0]``: pod agents in ``namespace`` (by default the untrusted
    ``jenkins-agents``: no Secret, no cloud identity) with the agent ServiceAccount; the preview and
    deploy pods name their namespace and ServiceAccount themselves (Jenkinsfile, ci/jenkins/pods)."""
    return {"kubernetes": {
        "name": "kubernetes",
        "serverUrl": "https://kubernetes.default",
        "namespace": namespace,
        "jenkinsUrl": f"http://{RELEASE}.{NAMESPACE}.svc.cluster.local:{HTTP_PORT}",
        "jenkinsTunnel": f"{RELEASE}-agent.{NAMESPACE}.svc.cluster.local:{AGENT_PORT}",
        "containerCapStr": "10",
        "connectTimeout": 5,
        "readTimeout": 15,
        "retentionTimeout": 5,
        "waitForPodSec": 600,
        # The chart's NetworkPolicy lets pods with this label reach the agent port.
        "podLabels": [{"key": f"jenkins/{RELEASE}-jenkins-agent", "value": "true"}],
        "templates": [{
            "name": "default",
            "label": "jenkins-agent",
            "namespace": namespace,
            "serviceAccount": AGENT_SERVICE_ACCOUNT,
            "nodeUsageMode": "NORMAL",
            "idleMinutes": 0,
            "containers": [{
                "name": "jnlp",
                "image": INBOUND_AGENT_IMAGE,
                "resourceRequestCpu": "50m", "resourceRequestMemory": "256Mi",
                "resourceLimitCpu": "500m", "resourceLimitMemory": "512Mi",
                "runAsUser": "1000", "runAsGroup": "1000",
                "workingDir": "/home/jenkins/agent",
            }],
        }],
    }}


#: libyaml's dumper when PyYAML was built with it (the seed script grows with N), else the Python one.
_BaseDumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _BlockDumper(_BaseDumper):
    """Multi-line strings (the Job DSL script) as literal blocks, readable in the ConfigMap."""


_BlockDumper.add_representer(str, lambda d, v: d.represent_scalar(
    "tag:yaml.org,2002:str", v, style="|" if "\n" in v else None))


def _dump(doc: Any) -> str:
    return yaml.dump(doc, Dumper=_BlockDumper, sort_keys=False, default_flow_style=False, width=200)


def registries_env(registries: dict[str, str]) -> str:
    """``REGISTRIES``: ``cluster=prefix`` words, sorted (clusters without a registry are left out)."""
    return " ".join(f"{cluster}={url}" for cluster, url in sorted(registries.items()) if url)


def authorization_strategy(admins: list[str], developers: list[str]) -> dict[str, Any]:
    """matrix-auth ``globalMatrix``: the chart admin and ``admins`` administer, ``developers`` read and
    build; anyone else (logged in or not) gets no permission at all."""
    entries = [{"user": {"name": name, "permissions": list(ADMIN_PERMISSIONS)}}
               for name in ["${chart-admin-username}", *sorted(set(admins))]]
    entries += [{"user": {"name": name, "permissions": list(DEVELOPER_PERMISSIONS)}}
                for name in sorted(set(developers) - set(admins))]
    return {"globalMatrix": {"entries": entries}}


def jcasc_scripts(args: JenkinsArgs, registries: Optional[dict[str, str]] = None) -> dict[str, str]:
    """``controller.JCasC.configScripts``: one YAML document per concern."""
    security = {
        "jenkins": {
            "securityRealm": {"local": {
                "allowsSignup": False,
                "enableCaptcha": False,
                # Files the chart mounts from the admin Secret (controller.admin.existingSecret).
                "users": [{"id": "${chart-admin-username}", "name": "Jenkins Admin",
                           "password": "${chart-admin-password}"}],
            }},
            "authorizationStrategy": authorization_strategy(args.admins, args.developers),
            "disableRememberMe": True,
            "numExecutors": 0,
            "mode": "EXCLUSIVE",
            "slaveAgentPort": AGENT_PORT,
            "markupFormatter": "plainText",
        },
        "security": {"apiToken": {"creationOfLegacyTokenEnabled": False,
                                  "tokenGenerationOnCreationEnabled": False,
                                  "usageStatisticsEnabled": False}},
        "unclassified": {"location": {"url": f"http://{RELEASE}.{NAMESPACE}.svc.cluster.local:{HTTP_PORT}/"}},
    }
    cloud = {"jenkins": {"clouds": [kubernetes_cloud()]}}
    env = {"jenkins": {"globalNodeProperties": [{"envVars": {"env": [
        {"key": "REGISTRIES", "value": registries_env(registries or {})},
        {"key": "DEPLOY_IMAGE", "value": args.deploy_image or ""},
        {"key": "DEPLOY_BRANCH", "value": args.branch},
        {"key": "DEPLOY_STACKS", "value": " ".join(args.deploy_stacks)},
        {"key": "APPROVAL_STACKS", "value": " ".join(args.approval_stacks)},
        {"key": "STATIC_KEY_CLOUDS", "value": " ".join(sorted(args.static_key_clouds))},
    ]}}]}}
    jobs = {"jobs": [{"script": seed_script(args.services, args.repo_url, args.branch)}]}
    return {"security": _dump(security), "cloud": _dump(cloud), "env": _dump(env), "jobs": _dump(jobs)}
