"""Test Pulumi programs that use cnplatform offline: no CLI, no cluster, no cloud account.

:func:`run_program` runs a program under Pulumi's mocks (realistic outputs for every resource type the
library creates, on kind, AWS and GCP) and returns a :class:`Capture`: every registered resource with
its inputs, parent, provider, dependencies and options, and the program's resolved outputs::

    from cnplatform.testing import run_program, unwrap
    from cnplatform.microservice import Microservice, MicroserviceArgs

    def test_reviews_gets_a_deployment():
        capture = run_program(lambda: {"name": Microservice("reviews", MicroserviceArgs(
            name="reviews", image="ghcr.io/acme/reviews:1.0@sha256:" + "0" * 64, port=8080)).name},
            project="team-app", stack="dev")
        deployment = capture.one("kubernetes:apps/v1:Deployment", "reviews")
        assert unwrap(deployment.inputs)["spec"]["replicas"] == 1

A team's own test is shorter with :func:`run_component` (:mod:`cnplatform.testing.consumer`): the
component's resolved outputs, its child resources by kind and name, their manifests as plain data::

    from cnplatform.testing import run_component

    def test_reviews_is_one_replica_in_dev():
        run = run_component(lambda: Microservice("reviews", MicroserviceArgs(
            name="reviews", image="ghcr.io/acme/reviews:1.0@sha256:" + "0" * 64, port=8080)))
        assert run.manifest("Deployment", "reviews-deployment")["spec"]["replicas"] == 1
        assert run.outputs["url"].startswith("http://reviews.")

The platform's own render (``python -m stacks.render``) and its tests use the same harness.
"""
from cnplatform.testing.capture import Capture, Registration, Secret, unwrap
from cnplatform.testing.consumer import ComponentRun, run_component
from cnplatform.testing.mocks import ACCOUNT_ID, mock_call, mock_kubeconfig, mock_output, secret_placeholder
from cnplatform.testing.runner import flatten_config, run_program

__all__ = ["ACCOUNT_ID", "Capture", "ComponentRun", "Registration", "Secret", "flatten_config", "mock_call",
           "mock_kubeconfig", "mock_output", "run_component", "run_program", "secret_placeholder", "unwrap"]
