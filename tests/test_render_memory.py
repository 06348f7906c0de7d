"""The offline runner lets registrations run while the program constructs (issue #21 goal 4).

A program constructs every resource synchronously; without turns of the event loop in between, every
resource's pending registration is alive at once (the render's peak memory). The figures are measured
by ``benchmarks/render_scale.py``; here: that registrations do interleave, and that it changes nothing
in what is captured.
"""
from __future__ import annotations

import contextlib

import pulumi

from cnplatform.testing import runner
from stacks.render import plan
from tests.helpers import capture_stack, run_program


def test_resources_register_while_the_program_is_still_constructing():
    constructed, seen = [], {}
    total = 2 * runner.INTERLEAVE_EVERY + 1

    def program():
        first = pulumi.CustomResource("test:index:Thing", "first", {"n": 0})
        constructed.append(first)
        # Runs once the first resource is registered: how far the program had got by then.
        first.urn.apply(lambda _: seen.setdefault("constructed when first registered", len(constructed)))
        for i in range(total - 1):
            constructed.append(pulumi.CustomResource("test:index:Thing", f"r{i}", {"n": i}))
        return {}

    capture = run_program(program, stack="interleave")
    assert len(capture.resources) == total
    assert seen["constructed when first registered"] <= runner.INTERLEAVE_EVERY + 1 < total


def test_interleaving_captures_exactly_what_a_single_turn_does(monkeypatch):
    interleaved = plan(capture_stack("prod"))
    monkeypatch.setattr(runner, "interleaved_registration", contextlib.nullcontext)
    capture_stack.cache_clear()
    try:
        single_turn = plan(capture_stack("prod"))
    finally:
        capture_stack.cache_clear()
    assert interleaved == single_turn
