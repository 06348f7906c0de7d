"""cicd components: Jenkins (upstream chart) with Kubernetes pod agents, JCasC and a job-dsl seed."""
from cnplatform.cicd.jenkins import (  # noqa: F401
    CHART,
    CHART_REPO,
    CHART_VERSION,
    NAMESPACE,
    PLUGINS,
    Jenkins,
    JenkinsArgs,
    agent_role_rules,
    footprint_resources,
    jcasc_scripts,
    jenkins_values,
    seed_script,
)
